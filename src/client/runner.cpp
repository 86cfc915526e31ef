#include "sandbox/runner.hpp"

#include <vector>

#include "client/detail/exec_call.hpp"
#include "client/detail/runner_core.hpp"
#include "client/detail/stream_core.hpp"
#include "sandbox/error.hpp"

namespace sandbox {
namespace detail {

RunnerCore::RunnerCore(RemoteRunnerConfig config)
    : config_(std::move(config)),
      connection_(connect(config_)),
      trace_(trace_target_of(config_)),
      stub_(v1::SandboxExecService::NewStub(connection_.channel)) {
  if (config_.protocol == AgentProtocol::legacy) {
    legacy_stub_ =
        workflow::plugin::external::sandbox::SandboxExecService::NewStub(connection_.channel);
  }
}

void RunnerCore::start_exec(grpc::ClientContext* context, const v1::ExecRequest* request,
                            grpc::ClientReadReactor<v1::ExecResponse>* reactor) {
  if (legacy_stub_) {
    legacy_stub_->async()->Exec(context, request, reactor);
  } else {
    stub_->async()->Exec(context, request, reactor);
  }
}

bool RunnerCore::add(RunnerMembership* member, const std::shared_ptr<CallBase>& call) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  member->call_ = call;
  member->next_ = calls_;
  if (calls_ != nullptr) calls_->prev_ = member;
  calls_ = member;
  return true;
}

void RunnerCore::remove(RunnerMembership* member) {
  std::lock_guard lock(mutex_);
  if (member->prev_ != nullptr) {
    member->prev_->next_ = member->next_;
  } else {
    calls_ = member->next_;
  }
  if (member->next_ != nullptr) member->next_->prev_ = member->prev_;
  // Notified under the lock: the waiter may destroy the core as soon as it wakes.
  if (idle_locked()) idle_.notify_all();
}

void RunnerCore::close() noexcept {
  std::vector<std::shared_ptr<CallBase>> live;
  std::unique_ptr<grpc::Alarm> exit_alarm;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto* member = calls_; member != nullptr; member = member->next_) {
      if (auto strong = member->call_.lock()) live.push_back(std::move(strong));
    }
    // Every call is cancelled below; the alarm's callback still runs (ok false).
    exit_alarm = std::move(exit_alarm_);
  }
  if (exit_alarm) exit_alarm->Cancel();
  // Outside the lock: TryCancel may run OnDone inline, and OnDone calls remove().
  for (auto& call : live) call->cancel_with(CancelReason::closed);
}

void RunnerCore::end_after_exit(RunnerMembership* member) {
  std::lock_guard lock(mutex_);
  if (closed_) return;  // close() cancels every call
  const auto due = std::chrono::steady_clock::now() + kExitStatusWait;
  member->status_due_ = due;
  if (!exit_alarm_armed_) arm_exit_alarm_locked(due);
}

void RunnerCore::arm_exit_alarm_locked(std::chrono::steady_clock::time_point due) {
  exit_alarm_armed_ = true;
  exit_alarm_ = std::make_unique<grpc::Alarm>();
  // The callback runs on a gRPC thread, never inline, so setting it under the lock is safe.
  ordered_before(&exit_alarm_);  // before Set: gRPC hands the callback over unseen by TSan
  exit_alarm_->Set(to_system(due), [this](bool ok) {
    ordered_after(&exit_alarm_);
    exit_alarm_fired(ok);
  });
}

void RunnerCore::exit_alarm_fired(bool ok) {
  std::vector<std::shared_ptr<CallBase>> overdue;
  // The alarm that fired, destroyed after its callback ran (gRPC holds its own reference
  // while the callback runs); a successor may be armed meanwhile.
  std::unique_ptr<grpc::Alarm> fired;
  {
    std::lock_guard lock(mutex_);
    exit_alarm_armed_ = false;
    if (ok && !closed_) {
      fired = std::move(exit_alarm_);
      // The calls whose RPC ended after the exit have left the registry (a call leaves it
      // when it is destroyed); a call still registered that has ended changes nothing when
      // cancelled. The registry holds only calls in flight, so this walk is short.
      const auto now = std::chrono::steady_clock::now();
      std::optional<std::chrono::steady_clock::time_point> next;
      for (auto* member = calls_; member != nullptr; member = member->next_) {
        const auto& due = member->status_due_;
        if (!due) continue;
        if (*due <= now) {
          member->status_due_.reset();
          if (auto call = member->call_.lock()) overdue.push_back(std::move(call));
        } else if (!next || *due < *next) {
          next = due;
        }
      }
      if (next) arm_exit_alarm_locked(*next);
    }
    // Notified under the lock: the waiter may destroy the core as soon as it wakes.
    if (idle_locked()) idle_.notify_all();
  }
  for (auto& call : overdue) call->cancel_with(CancelReason::exited);
}

bool RunnerCore::closed() const noexcept {
  std::lock_guard lock(mutex_);
  return closed_;
}

void RunnerCore::wait_until_idle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return idle_locked(); });
}

void RunnerCore::prepare_context(
    grpc::ClientContext& context,
    std::optional<std::chrono::system_clock::time_point> deadline) const {
  if (deadline) context.set_deadline(*deadline);
  if (!config_.sandbox_id.empty()) context.AddMetadata("sandbox-id", config_.sandbox_id);
}

namespace {

/// What one Cancel RPC lends gRPC until its callback ran.
struct CancelCall {
  grpc::ClientContext context;
  v1::CancelRequest request;
  v1::CancelResponse response;
};

}  // namespace

void RunnerCore::send_cancel(const std::string& exec_id) {
  // The older generation has no Cancel: cancelling the Exec RPC was all there was to do.
  if (config_.cancel_timeout.count() == 0 || legacy_stub_) return;
  const auto deadline = std::chrono::system_clock::now() + config_.cancel_timeout;
  bool probe = false;
  {
    std::lock_guard lock(mutex_);
    if (cancel_support_ == CancelSupport::unsupported) return;
    // Counted before the calling Exec call leaves calls_, so the runner never looks idle.
    ++cancels_;
    if (cancel_support_ == CancelSupport::unknown) {
      if (probing_) {
        deferred_cancels_.push_back({exec_id, deadline});
        return;
      }
      probing_ = probe = true;
    }
  }
  start_cancel(exec_id, deadline, probe);
}

void RunnerCore::start_cancel(std::string exec_id, std::chrono::system_clock::time_point deadline,
                              bool probe) {
  auto* call = new CancelCall;
  prepare_context(call->context, deadline);
  call->request.set_exec_id(std::move(exec_id));
  call->request.set_signal(v1::CANCEL_SIGNAL_TERM);
  // The callback may run inline (gRPC completes a call that cannot start at once), so
  // nothing here touches `call` after this line. A plain pointer: std::function must be
  // copyable, and the callback runs exactly once.
  stub_->async()->Cancel(&call->context, &call->request, &call->response,
                         [this, call, probe](const grpc::Status& status) {
                           // The context goes first: it must not outlive the channel, and
                           // the runner may be destroyed as soon as the count drops.
                           delete call;
                           cancel_answered(status.error_code(), probe);
                         });
}

void RunnerCore::cancel_answered(grpc::StatusCode code, bool probe) {
  std::vector<DeferredCancel> release;
  {
    std::lock_guard lock(mutex_);
    if (code == grpc::StatusCode::UNIMPLEMENTED) {
      // An agent of the older generation: cancelling the Exec RPC is all it understands.
      cancel_support_ = CancelSupport::unsupported;
    } else if (code == grpc::StatusCode::OK && cancel_support_ == CancelSupport::unknown) {
      cancel_support_ = CancelSupport::supported;
    }
    // Any other failure says nothing about support, and is otherwise ignored (best effort).
    if (probe) {
      probing_ = false;
      if (cancel_support_ == CancelSupport::unsupported) {
        cancels_ -= deferred_cancels_.size();
        deferred_cancels_.clear();
      } else {
        // Also when still unknown after a transport failure: one probe after another could
        // keep the last Cancel waiting far past its own deadline.
        release.swap(deferred_cancels_);
      }
    }
  }
  // This Cancel stays counted until the ones it released were started: the core (and its
  // channel) must outlive these calls.
  for (auto& deferred : release) {
    start_cancel(std::move(deferred.exec_id), deferred.deadline, false);
  }
  std::lock_guard lock(mutex_);
  --cancels_;
  // Notified under the lock: the waiter may destroy the core as soon as it wakes.
  if (idle_locked()) idle_.notify_all();
}

namespace {

/// `exec()`: one call whose output is collected into an ExecResult, completed once.
class ExecOperation final : public Operation, public CallBase {
 public:
  ExecOperation(RunnerCore* core, Command&& command, ExecCompletion done)
      : CallBase(core, std::move(command)), done_(std::move(done)) {}

  void start() override {
    std::error_code error;
    std::string message;
    if (!prepare(OutputUse::collect, error, message)) return complete(error, std::move(message));
    cap_ = request_.max_output_bytes();
    if (!start_call(0)) complete(errc::runner_closed, "the runner is closed");
  }

  void cancel() noexcept override { cancel_with(CancelReason::user); }

 private:
  // The reactions of one attempt at a time; a retry's attempt continues at the offsets
  // collected so far, so the parts below never overlap.
  void on_read(Attempt& attempt, bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    if (completed_) {
      // A message after the exit: the agent keeps the stream open, the client ends it.
      cancel_with(CancelReason::exited);
      return;
    }
    v1::ExecResponse& response = attempt.response;
    switch (attempt.sequence.accept(response)) {
      case ResponseKind::started:
        info_ = attempt.sequence.info();
        break;
      case ResponseKind::chunk:
        if (response.has_stdout()) {
          stdout_.add(std::move(*response.mutable_stdout()), cap_, result_.status.stdout_truncated);
        } else {
          stderr_.add(std::move(*response.mutable_stderr()), cap_, result_.status.stderr_truncated);
        }
        break;
      case ResponseKind::exit: {
        // The first exit_code ends the call, even if the agent kept the stream open.
        const bool stdout_cut = result_.status.stdout_truncated;
        const bool stderr_cut = result_.status.stderr_truncated;
        result_.status = attempt.sequence.exit_status();
        result_.status.stdout_truncated |= stdout_cut;
        result_.status.stderr_truncated |= stderr_cut;
        info_ = attempt.sequence.info();
        complete({}, {});
        // One more read, which the agent's status ends at once (bounded: end_after_exit):
        // cancelling the RPC here instead cost a cancellation through gRPC's stack, and an
        // RST_STREAM to the agent, for every exec.
        core_->end_after_exit(this);
        attempt.read_next();
        return;
      }
      case ResponseKind::violation:
        cancel_with(CancelReason::violation);
        return;
    }
    attempt.read_next();
  }

  void finish(std::error_code error, std::string message) override {
    if (!completed_) complete(error, std::move(message));
  }

  void complete(std::error_code error, std::string message) {
    completed_ = true;
    result_.info = std::move(info_);
    // Before any `started` (or before any attempt): the id the request carries.
    if (result_.info.exec_id.empty()) result_.info.exec_id = request_.exec_id();
    result_.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - started_at_);
    result_.error_message = std::move(message);
    result_.stdout_data = stdout_.join();
    result_.stderr_data = stderr_.join();
    result_.retries = history();
    done_(error, std::move(result_));
  }

  // One stream's output as the messages' own strings (moved out of the responses), joined
  // once at the end into an exactly sized string: appending to one growing string made
  // exec() of 64 MiB pay a reallocation chain (about 19,000 extra page faults). The first
  // part is kept apart: most execs' output is one message, which then needs no vector.
  class Collected {
   public:
    void add(std::string bytes, std::uint64_t cap, bool& truncated) {
      const std::uint64_t room = cap > size_ ? cap - size_ : 0;
      if (bytes.size() > room) {
        truncated = true;
        bytes.resize(static_cast<std::size_t>(room));
      }
      if (bytes.empty()) return;
      size_ += bytes.size();
      if (first_.empty()) {
        first_ = std::move(bytes);
      } else {
        more_.push_back(std::move(bytes));
      }
    }
    std::string join() {
      if (more_.empty()) return std::move(first_);
      std::string all;
      all.reserve(static_cast<std::size_t>(size_));
      all += first_;
      for (const auto& part : more_) all += part;
      return all;
    }

   private:
    std::string first_;
    std::vector<std::string> more_;
    std::uint64_t size_ = 0;
  };

  ExecCompletion done_;
  ExecResult result_;
  ExecInfo info_;
  Collected stdout_;
  Collected stderr_;
  std::uint64_t cap_ = 0;
  // Touched by start() before any attempt, then by one attempt's reactions or one wait's
  // end at a time (the call's lock orders them).
  bool completed_ = false;
};

}  // namespace

std::shared_ptr<Operation> make_exec_operation(const std::shared_ptr<RunnerCore>& core,
                                               Command&& cmd, ExecCompletion done) {
  return std::make_shared<ExecOperation>(core.get(), std::move(cmd), std::move(done));
}

}  // namespace detail

RemoteRunner::RemoteRunner(executor_type executor, RemoteRunnerConfig config)
    : executor_(std::move(executor)),
      core_(std::make_shared<detail::RunnerCore>(std::move(config))) {}

RemoteRunner::~RemoteRunner() {
  core_->close();
  core_->wait_until_idle();
}

ExecStream RemoteRunner::stream(Command cmd) {
  auto stream = std::make_shared<detail::StreamCore>(core_->config().stream_read_ahead);
  detail::StreamRpc::start(core_.get(), std::move(cmd), stream);
  return {std::move(stream), executor_};
}

void RemoteRunner::close() noexcept { core_->close(); }

bool RemoteRunner::closed() const noexcept { return core_->closed(); }

const RemoteRunnerConfig& RemoteRunner::config() const noexcept { return core_->config(); }

}  // namespace sandbox
