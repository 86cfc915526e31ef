#pragma once
// What both kinds of Exec calls share: request preparation, the attempts and the waits
// between them (decided by RetryFsm), cancellation reasons, and the status -> error
// decision. The two subclasses differ only in where output goes: ExecOperation collects
// it, StreamRpc queues it for a consumer.

#include <grpcpp/alarm.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>

#include "client/detail/attempt.hpp"
#include "client/detail/call_trace.hpp"
#include "client/detail/cancel_policy.hpp"
#include "client/detail/request.hpp"
#include "client/detail/retry_fsm.hpp"
#include "client/detail/runner_core.hpp"
#include "client/detail/status_mapping.hpp"
#include "client/detail/tsan_annotations.hpp"
#include "sandbox/command.hpp"

namespace sandbox::detail {

/// One Exec call: one attempt after another until RetryFsm says it is over. Lives while an
/// attempt or a wait holds it (each holds a shared_ptr), plus whoever else shares it.
///
/// Threads: attempts' reactions and the wait's alarm run on gRPC threads, one at a time
/// for a call (an attempt or a wait starts only after the previous one ended); `cancel_with`
/// runs on any thread. `mutex_` guards the FSM and the current attempt/wait. No gRPC
/// function that may run a reaction inline (TryCancel, StartCall, alarm Cancel) is called
/// with it held.
class CallBase : protected RunnerMembership, public std::enable_shared_from_this<CallBase> {
 public:
  CallBase(const CallBase&) = delete;
  CallBase& operator=(const CallBase&) = delete;
  virtual ~CallBase() { ordered_after(this); }

  /// Requests cancellation with `reason` (ignored if a reason is already set): cancels the
  /// attempt in flight, or ends a wait at once. Thread-safe, also before the call started.
  void cancel_with(CancelReason reason) noexcept;

  /// An attempt's reactions (Attempt forwards them).
  virtual void on_read(Attempt& attempt, bool ok) = 0;
  void attempt_done(Attempt& attempt, const grpc::Status& status);
  /// An attempt received `started`: the runner learns that its agent reattaches.
  void agent_sent_started() noexcept;

 protected:
  /// Takes `command` over (moved from: one move, not one per layer).
  CallBase(RunnerCore* core, Command&& command);

  /// Validates the command and builds the request; on failure fills `error`/`message`.
  bool prepare(OutputUse use, std::error_code& error, std::string& message);
  /// Registers with the runner and starts the first attempt, each with `holds` holds (for
  /// reads started outside reactions). False when the runner is closed (nothing started).
  bool start_call(int holds);
  /// The attempt in flight, if any (for reads started by a consumer).
  [[nodiscard]] std::shared_ptr<Attempt> current_attempt() const;
  /// The attempts so far.
  [[nodiscard]] RetryHistory history() const;

  /// An attempt is about to start (called with the call's lock held; the subclass takes
  /// only its own lock inside).
  virtual void on_attempt_starting() {}
  /// The call is over: `error` empty only after an exit was received. Called once, on a
  /// gRPC thread, without the call's lock.
  virtual void finish(std::error_code error, std::string message) = 0;
  /// Runs once, on the cancelling thread, after the first reason was set and the attempt
  /// in flight (`attempt`, may be null) was cancelled: a subclass that holds the attempt
  /// open (a hold) releases it here.
  virtual void on_cancelled(Attempt* /*attempt*/) noexcept {}

  [[nodiscard]] CancelReason cancel_reason() const noexcept { return cancel_reason_.load(); }

  Command command_;
  v1::ExecRequest request_;  // attempts only read it; rewritten between attempts
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();

 private:
  /// Does what the FSM said. Never called with the lock held.
  void run(RetryStep step);
  void wait_done();
  /// The error of an attempt that ended without an exit, and what would explain it.
  std::error_code error_for(const Attempt& attempt, const grpc::Status& status,
                            std::string& message, Probe& probe) const;
  /// Asks the agent what `probe` says (tls_probe.hpp) and, when it names a TLS reason,
  /// makes `end` an `errc::tls_error` saying it; leaves `end` alone otherwise.
  void explain(Probe probe, const std::string& grpc_message, AttemptEnd& end) const;
  /// Ends the call: asks the agent to kill the command when the client abandoned it.
  void conclude(RetryStep step, bool abandoned);

  CallTrace trace_;  // used by run() and conclude() only, one attempt at a time
  mutable std::mutex mutex_;
  std::optional<RetryFsm> fsm_;         // guarded by mutex_; set by start_call
  std::shared_ptr<Attempt> attempt_;    // guarded by mutex_: the attempt in flight
  std::unique_ptr<grpc::Alarm> alarm_;  // guarded by mutex_: the wait in progress
  bool request_sent_ = false;           // guarded by mutex_: some attempt may have run it
  int holds_ = 0;
  std::atomic<CancelReason> cancel_reason_{CancelReason::none};
};

}  // namespace sandbox::detail
