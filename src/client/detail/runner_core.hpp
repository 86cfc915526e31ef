#pragma once
// What a RemoteRunner shares with its calls: the channel, the configuration, the set of
// calls in flight (for close() and for the destructor's wait), and the Cancel RPCs it sends
// for calls the client abandoned.

#include <grpcpp/alarm.h>
#include <grpcpp/client_context.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client/detail/call_trace.hpp"
#include "client/detail/channel.hpp"
#include "compat/sandbox_exec_legacy.grpc.pb.h"
#include "sandbox/runner_config.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace sandbox::detail {

class CallBase;
class RunnerMembership;

/// gRPC takes deadlines only as system_clock time points; the SDK counts in steady time.
inline std::chrono::system_clock::time_point to_system(std::chrono::steady_clock::time_point when) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             when - std::chrono::steady_clock::now());
}

/// How long a call whose exit arrived waits for the agent's status before it cancels its
/// RPC (docs/behavior.md §3): the reference agent sends it at once, so the RPC ends without
/// a cancellation (none through gRPC's stack, no RST_STREAM per call); an agent that keeps
/// the stream open after the exit gets its RPC cancelled this much later.
inline constexpr std::chrono::milliseconds kExitStatusWait{100};

/// Owned by RemoteRunner, whose destructor closes it and waits until every call object was
/// destroyed and every Cancel RPC answered: a gRPC call (its ClientContext) must never
/// outlive the channel it runs on. Calls hold a plain pointer: they touch it only between
/// `add()` and `remove()`.
/// No gRPC function is called under the core's lock: gRPC may run reactions inline in the
/// calling thread (TryCancel, StartCall), and OnDone takes this lock.
class RunnerCore {
 public:
  /// @throws std::system_error for an invalid configuration (see `connect()`).
  explicit RunnerCore(RemoteRunnerConfig config);

  [[nodiscard]] const RemoteRunnerConfig& config() const noexcept { return config_; }
  [[nodiscard]] const Connection& connection() const noexcept { return connection_; }
  /// What every attempt span of this runner shares (tracing off without a tracer).
  [[nodiscard]] const TraceTarget& trace() const noexcept { return trace_; }
  /// Starts an Exec RPC on the agent's generation of the service (`config().protocol`):
  /// binds `reactor` to it; nothing runs before the reactor's StartCall.
  void start_exec(grpc::ClientContext* context, const v1::ExecRequest* request,
                  grpc::ClientReadReactor<v1::ExecResponse>* reactor);

  /// Registers a call about to start; false when the runner is closed.
  bool add(RunnerMembership* member, const std::shared_ptr<CallBase>& call);
  /// Unregisters a call being destroyed; it must not touch the core afterwards.
  void remove(RunnerMembership* member);
  /// Marks the runner closed and cancels every registered call. Idempotent. Cancel RPCs in
  /// flight are left alone: closing is what sends most of them.
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept;
  /// Blocks until no call is registered and no Cancel RPC is pending (each is bounded by
  /// `cancel_timeout`).
  void wait_until_idle();

  /// Prepares `context` for one RPC of this runner: the deadline (none when nullopt), the
  /// `sandbox-id` metadata and the per-call credentials. Exec and Cancel both go through
  /// here, so a Cancel always carries the identity its Exec had.
  void prepare_context(grpc::ClientContext& context,
                       std::optional<std::chrono::system_clock::time_point> deadline) const;

  /// Asks the agent to kill the command of `exec_id` now (Cancel, CANCEL_SIGNAL_TERM), best
  /// effort: bounded by `cancel_timeout`, its failures ignored, never blocking, also after
  /// close(). Does nothing when `cancel_timeout` is zero or the agent answered UNIMPLEMENTED
  /// (an older generation): then cancelling the Exec RPC is all the SDK can do. Until the
  /// agent has answered a first Cancel, later ones wait for that answer (within their own
  /// bound), so an older agent sees one attempt per runner, not one per call.
  /// Must be called while a registered call keeps the runner alive.
  void send_cancel(const std::string& exec_id);

  /// The call `member` received its exit and reads once more for the status: cancels it
  /// (`CancelReason::exited`) if it is still registered `kExitStatusWait` from now. `member`
  /// must be registered (only an attempt of a joined call receives an exit). One alarm per
  /// runner serves every such call (armed while some wait); never blocks, never runs a
  /// reaction inline.
  void end_after_exit(RunnerMembership* member);

  /// Whether an Exec of this runner has seen `started`: the agent is of the generation
  /// that reattaches, so a retry before a call's own `started` cannot run a command twice.
  [[nodiscard]] bool agent_reattaches() const noexcept {
    return agent_reattaches_.load(std::memory_order_relaxed);
  }
  /// Records that an Exec saw `started`.
  void note_agent_reattaches() noexcept {
    agent_reattaches_.store(true, std::memory_order_relaxed);
  }

 private:
  /// What the runner knows about the agent's Cancel.
  enum class CancelSupport { unknown, supported, unsupported };
  /// A Cancel waiting for the answer to the first one (the probe).
  struct DeferredCancel {
    std::string exec_id;
    std::chrono::system_clock::time_point deadline;
  };

  void start_cancel(std::string exec_id, std::chrono::system_clock::time_point deadline,
                    bool probe);
  void cancel_answered(grpc::StatusCode code, bool probe);
  /// Arms the exit alarm for `due`. With the lock held.
  void arm_exit_alarm_locked(std::chrono::steady_clock::time_point due);
  /// The exit alarm fired (`ok`) or was cancelled by close().
  void exit_alarm_fired(bool ok);
  [[nodiscard]] bool idle_locked() const noexcept {
    return calls_ == nullptr && cancels_ == 0 && !exit_alarm_armed_;
  }

  RemoteRunnerConfig config_;
  Connection connection_;
  TraceTarget trace_;
  std::unique_ptr<v1::SandboxExecService::Stub> stub_;
  /// The older generation's Exec (AgentProtocol::legacy); null otherwise.
  std::unique_ptr<workflow::plugin::external::sandbox::SandboxExecService::Stub> legacy_stub_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  /// The registered calls: an intrusive list through their RunnerMembership, so joining
  /// allocates nothing. Guarded by mutex_, as are the links and entries of its members.
  RunnerMembership* calls_ = nullptr;
  bool closed_ = false;  // guarded by mutex_
  // Guarded by mutex_: Cancels started or deferred and not yet answered (or dropped); the
  // support learnt from the answers; whether the probe is in flight; the Cancels waiting
  // for it (counted in cancels_).
  std::size_t cancels_ = 0;
  CancelSupport cancel_support_ = CancelSupport::unknown;
  bool probing_ = false;
  std::vector<DeferredCancel> deferred_cancels_;
  // Guarded by mutex_: the alarm that ends the calls whose status is overdue (armed while
  // some registered call has a `status_due`); armed: its callback is still to run (it
  // touches the core).
  std::unique_ptr<grpc::Alarm> exit_alarm_;
  bool exit_alarm_armed_ = false;
  std::atomic<bool> agent_reattaches_{false};
};

/// The first base of every call. Base subobjects are destroyed after the members of the
/// class deriving from them, so the call leaves the runner only after its ClientContext
/// (and with it the grpc call) is gone.
class RunnerMembership {
 public:
  RunnerMembership(const RunnerMembership&) = delete;
  RunnerMembership& operator=(const RunnerMembership&) = delete;

 protected:
  explicit RunnerMembership(RunnerCore* core) noexcept : core_(core) {}
  ~RunnerMembership() {
    if (joined_) core_->remove(this);
  }
  /// Joins the runner; false when it is closed.
  bool join(const std::shared_ptr<CallBase>& call) { return joined_ = core_->add(this, call); }

  RunnerCore* core_;

 private:
  friend class RunnerCore;

  bool joined_ = false;
  // Guarded by the core's mutex while joined: the registry's links; the call, weakly (the
  // registry never extends a call's life; kept here because the call's own weak reference
  // to itself is destroyed before this base leaves the registry); and when the call is
  // cancelled unless it has left (set by end_after_exit).
  RunnerMembership* prev_ = nullptr;
  RunnerMembership* next_ = nullptr;
  std::weak_ptr<CallBase> call_;
  std::optional<std::chrono::steady_clock::time_point> status_due_;
};

}  // namespace sandbox::detail
