#pragma once
// What both kinds of Exec calls share: request preparation, the gRPC context, cancellation
// reasons, and the final status -> error decision. The two subclasses differ only in where
// output goes: ExecOperation collects it, StreamCore queues it for a consumer.

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <atomic>
#include <chrono>
#include <string>
#include <system_error>

#include "client/detail/cancel_policy.hpp"
#include "client/detail/request.hpp"
#include "client/detail/response_sequence.hpp"
#include "client/detail/runner_core.hpp"
#include "sandbox/command.hpp"

namespace sandbox::detail {

/// One Exec RPC (a grpc ClientReadReactor). Reactions run on gRPC threads.
class CallBase : protected RunnerMembership, public grpc::ClientReadReactor<v1::ExecResponse> {
 public:
  CallBase(const CallBase&) = delete;
  CallBase& operator=(const CallBase&) = delete;
  ~CallBase() override = default;

  /// Requests cancellation with `reason` (ignored if a reason is already set). Thread-safe,
  /// also before the RPC started (gRPC then cancels it at start).
  void cancel_with(CancelReason reason) noexcept;

 protected:
  CallBase(RunnerCore* core, Command command);

  /// Validates the command and builds the request; on failure fills `error`/`message`.
  bool prepare(OutputUse use, std::error_code& error, std::string& message);
  /// Registers with the runner and issues the RPC with one read in flight; `holds` extra
  /// holds are added first (for reads started outside reactions). False when the runner is
  /// closed (nothing was started then).
  bool start_rpc(const std::shared_ptr<CallBase>& self, int holds);
  /// The error a finished call reports, from the cancellation reason and the status.
  std::error_code error_for(const grpc::Status& status, std::string& message) const;
  /// Whether the client abandoned the exec (`should_send_cancel`). OnDone decides first,
  /// before it hands the outcome over: what the user does on seeing the outcome (destroy
  /// the runner, which closes it) must not turn a call that already ended into an
  /// abandoned one.
  [[nodiscard]] bool abandoned(const grpc::Status& status) const;
  /// Asks the agent to kill the command (Cancel). Called by OnDone after the outcome was
  /// handed over (the user never waits for it) and before the call releases itself: the
  /// runner counts the Cancel before this call leaves it, so it never looks idle in
  /// between. gRPC confirmed the Exec call ended, so the Cancel cannot overtake it.
  void send_cancel();
  [[nodiscard]] CancelReason cancel_reason() const noexcept { return cancel_reason_.load(); }
  /// Runs once, on the cancelling thread, after the first reason was set and TryCancel
  /// issued: a subclass that holds the call open (a hold) releases it here.
  virtual void on_cancelled() noexcept {}

  Command command_;
  grpc::ClientContext context_;
  v1::ExecRequest request_;
  v1::ExecResponse response_;
  ResponseSequence sequence_;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();

 private:
  std::atomic<CancelReason> cancel_reason_{CancelReason::none};
};

}  // namespace sandbox::detail
