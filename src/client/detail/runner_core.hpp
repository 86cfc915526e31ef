#pragma once
// What a RemoteRunner shares with its calls: the channel, the configuration, and the set of
// calls in flight (for close() and for the destructor's wait).

#include <condition_variable>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "client/detail/channel.hpp"
#include "sandbox/runner_config.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace sandbox::detail {

class CallBase;
class RunnerMembership;

/// Owned by RemoteRunner, whose destructor closes it and waits until every call object was
/// destroyed: a gRPC call (its ClientContext) must never outlive the channel it runs on.
/// Calls hold a plain pointer: they touch it only between `add()` and `remove()`.
/// No gRPC function is called under the core's lock: gRPC may run reactions inline in the
/// calling thread (TryCancel, StartCall), and OnDone takes this lock.
class RunnerCore {
 public:
  /// @throws std::system_error for an invalid configuration (see `connect()`).
  explicit RunnerCore(RemoteRunnerConfig config);

  [[nodiscard]] const RemoteRunnerConfig& config() const noexcept { return config_; }
  [[nodiscard]] const Connection& connection() const noexcept { return connection_; }
  [[nodiscard]] v1::SandboxExecService::Stub& stub() noexcept { return *stub_; }

  /// Registers a call about to start; false when the runner is closed.
  bool add(RunnerMembership* member, const std::shared_ptr<CallBase>& call);
  /// Unregisters a call being destroyed; it must not touch the core afterwards.
  void remove(RunnerMembership* member);
  /// Marks the runner closed and cancels every registered call. Idempotent.
  void close() noexcept;
  [[nodiscard]] bool closed() const noexcept;
  /// Blocks until no call is registered.
  void wait_until_idle();

 private:
  RemoteRunnerConfig config_;
  Connection connection_;
  std::unique_ptr<v1::SandboxExecService::Stub> stub_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  // Weak: the registry never extends a call's life. Guarded by mutex_.
  std::unordered_map<RunnerMembership*, std::weak_ptr<CallBase>> calls_;
  bool closed_ = false;  // guarded by mutex_
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
  bool joined_ = false;
};

}  // namespace sandbox::detail
