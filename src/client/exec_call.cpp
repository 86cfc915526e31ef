#include "client/detail/exec_call.hpp"

#include <asio/error.hpp>
#include <charconv>
#include <functional>

#include "client/detail/status_mapping.hpp"
#include "client/detail/tls_probe.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {
namespace {

// The server's `grpc-retry-pushback-ms` trailer (gRFC A6); a value that is not a
// non-negative integer means "do not retry", as A6 says.
std::optional<std::chrono::milliseconds> pushback_of(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  const auto found = trailers.find("grpc-retry-pushback-ms");
  if (found == trailers.end()) return std::nullopt;
  const grpc::string_ref text = found->second;
  long long value = -1;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size() || value < 0) {
    return std::chrono::milliseconds(-1);
  }
  return std::chrono::milliseconds(value);
}

// How long a call whose new connection the agent closed may probe why (tls_probe.hpp).
constexpr std::chrono::milliseconds kTlsProbeTimeout{1000};

// What a TSan build orders an alarm's callback after (tsan_annotations.hpp): the alarm
// runs it on a libgrpc thread, an ordering TSan cannot see.
[[maybe_unused]] char alarm_token;

// Whether a call the client gave up for `reason` while no attempt was in flight abandons
// its exec: the one Cancel policy, asked as for an attempt that ended that way.
bool abandons(CancelReason reason) {
  return should_send_cancel(reason, grpc::StatusCode::CANCELLED, false);
}

std::pair<std::error_code, const char*> error_of(CancelReason reason) {
  if (reason == CancelReason::closed) {
    return {errc::runner_closed, "the runner was closed while the call was in flight"};
  }
  return {asio::error::operation_aborted, "cancelled by the caller"};
}

}  // namespace

CallBase::CallBase(RunnerCore* core, Command&& command)
    : RunnerMembership(core), command_(std::move(command)), trace_(core->trace()) {}

bool CallBase::prepare(OutputUse use, std::error_code& error, std::string& message) {
  auto validation = validate(command_, core_->config().protocol, use);
  if (!validation) {
    error = validation.error;
    message = std::move(validation.message);
    return false;
  }
  build_request(core_->config(), command_, use, request_);
  if (auto size = validate_size(request_); !size) {
    error = size.error;
    message = std::move(size.message);
    return false;
  }
  return true;
}

bool CallBase::start_call(int holds) {
  holds_ = holds;
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (auto timeout = rpc_timeout(core_->config(), command_)) deadline = now + *timeout;
  const RetryPolicy& policy = command_.retry ? *command_.retry : core_->config().retry;
  RetryStep first;
  {
    std::lock_guard lock(mutex_);
    // The exec id is a random UUID (or the caller's): a per-call jitter seed for free.
    fsm_.emplace(policy, now, deadline, core_->agent_reattaches(),
                 std::hash<std::string>{}(request_.exec_id()));
    first = fsm_->start(now);
  }
  // Registered before the first attempt: from here on close() may cancel concurrently.
  if (!join(shared_from_this())) return false;
  run(std::move(first));
  return true;
}

void CallBase::run(RetryStep step) {
  switch (step.kind) {
    case RetryStep::Kind::complete:
      return conclude(std::move(step), false);
    case RetryStep::Kind::wait: {
      std::lock_guard lock(mutex_);
      if (fsm_->done()) return;  // cancelled since the FSM decided to wait
      alarm_ = std::make_unique<grpc::Alarm>();
      // The callback runs on a gRPC thread, never inline; it holds the call alive.
      std::function<void(bool)> callback = [self = shared_from_this()](bool) {
        ordered_after(&alarm_token);
        self->wait_done();
        // libgrpc drops `self` afterwards, a release TSan does not see (~CallBase).
        ordered_before(self.get());
      };
      ordered_before(&alarm_token);  // before Set: the alarm may fire at once
      alarm_->Set(to_system(step.until), std::move(callback));
      return;
    }
    case RetryStep::Kind::attempt:
      break;
  }
  auto attempt =
      std::make_shared<Attempt>(shared_from_this(), step.resume_stdout, step.resume_stderr);
  std::optional<RetryStep> refused;
  bool sent = false;
  {
    std::lock_guard lock(mutex_);
    if (const auto reason = cancel_reason(); reason != CancelReason::none) {
      // Cancelled between the decision and now: this attempt ends before it began.
      AttemptEnd end;
      end.request_sent = false;
      const auto [error, message] = error_of(reason);
      end.error = error;
      end.message = message;
      refused = fsm_->attempt_ended(end, std::chrono::steady_clock::now());
      sent = request_sent_;
    } else {
      if (step.resume_stdout != 0 || step.resume_stderr != 0) {  // never on a first attempt
        auto& resume = *request_.mutable_resume();
        resume.set_stdout_offset(step.resume_stdout);
        resume.set_stderr_offset(step.resume_stderr);
      }
      request_.set_attach_only(step.attach_only);
      std::optional<std::chrono::system_clock::time_point> deadline;
      if (auto overall = fsm_->deadline()) deadline = to_system(*overall);
      core_->prepare_context(attempt->context, deadline);
      attempt->span = trace_.start_attempt(step, request_, attempt->context);
      attempt->bind(attempt, *core_, request_, holds_);
      attempt_ = attempt;
      on_attempt_starting();
    }
  }
  if (refused) return conclude(std::move(*refused), sent && abandons(cancel_reason()));
  attempt->start();
}

void CallBase::wait_done() {
  RetryStep step;
  bool sent = false;
  // The alarm keeps its callback (which holds this call) until the alarm is destroyed:
  // destroyed here, after its callback ran, the cycle breaks. gRPC holds its own reference
  // to the alarm while the callback runs.
  std::unique_ptr<grpc::Alarm> fired;
  {
    std::lock_guard lock(mutex_);
    fired = std::move(alarm_);
    if (fsm_->done()) return;  // cancelled: whoever cancelled concluded the call
    step = fsm_->wait_ended(std::chrono::steady_clock::now());
    sent = request_sent_;
  }
  // The deadline passed while waiting: the user's own limit, so an exec an earlier attempt
  // may have started is abandoned.
  if (step.kind == RetryStep::Kind::complete) {
    return conclude(
        std::move(step),
        sent && should_send_cancel(cancel_reason(), grpc::StatusCode::DEADLINE_EXCEEDED, false));
  }
  run(std::move(step));
}

void CallBase::cancel_with(CancelReason reason) noexcept {
  auto expected = CancelReason::none;
  if (!cancel_reason_.compare_exchange_strong(expected, reason)) return;
  std::shared_ptr<Attempt> attempt;
  std::optional<RetryStep> ended;
  std::unique_ptr<grpc::Alarm> alarm;
  bool sent = false;
  {
    std::lock_guard lock(mutex_);
    attempt = attempt_;
    // `exited` never comes during a wait: only an attempt in flight receives the exit.
    if (!attempt && fsm_ && fsm_->waiting()) {
      auto [error, message] = error_of(reason);
      ended = fsm_->cancel(error, message);
      alarm = std::move(alarm_);  // null when run() has not set it yet: it sees the FSM done
      sent = request_sent_;
    }
  }
  if (attempt) attempt->cancel();
  on_cancelled(attempt.get());
  if (!ended) return;
  // Its callback still runs (gRPC keeps what it needs) and finds the call over.
  if (alarm) alarm->Cancel();
  conclude(std::move(*ended), sent && abandons(reason));
}

void CallBase::agent_sent_started() noexcept { core_->note_agent_reattaches(); }

std::shared_ptr<Attempt> CallBase::current_attempt() const {
  std::lock_guard lock(mutex_);
  return attempt_;
}

RetryHistory CallBase::history() const {
  std::lock_guard lock(mutex_);
  return fsm_ ? fsm_->history() : RetryHistory{};
}

void CallBase::attempt_done(Attempt& attempt, const grpc::Status& status) {
  // OnDone runs after every other reaction, so the sequence is no longer written to.
  const bool exited = attempt.sequence.exited();
  AttemptEnd end;
  Probe probe = Probe::none;
  if (!exited) end.error = error_for(attempt, status, end.message, probe);
  end.started = attempt.sequence.started();
  end.request_sent =
      !failed_before_sending(status.error_code(), status.error_message(), attempt.answered());
  if (probe != Probe::none && !end.request_sent) explain(probe, status.error_message(), end);
  end.stdout_received = attempt.sequence.received(OutputStream::out);
  end.stderr_received = attempt.sequence.received(OutputStream::err);
  end.pushback = pushback_of(attempt.context);
  if (attempt.span) {
    trace_attempt_end(*attempt.span, attempt.sequence, attempt.resumed_stdout,
                      attempt.resumed_stderr, status, end);
    attempt.span.reset();
  }
  // Decided before the outcome is handed over: what the user does on seeing it (destroy
  // the runner, which closes it) must not turn a call that already ended into an
  // abandoned one.
  const bool abandoned = should_send_cancel(cancel_reason(), status.error_code(), exited);
  RetryStep step;
  {
    std::lock_guard lock(mutex_);
    attempt_.reset();  // the attempt owns itself until its OnDone returns
    request_sent_ = request_sent_ || end.request_sent;
    step = fsm_->attempt_ended(end, std::chrono::steady_clock::now());
  }
  if (step.kind == RetryStep::Kind::complete) return conclude(std::move(step), abandoned);
  run(std::move(step));
}

void CallBase::explain(Probe probe, const std::string& grpc_message, AttemptEnd& end) const {
  // Asked on this gRPC thread, blocking it for one loopback or LAN round trip on this
  // failure path only; bounded by the call's deadline.
  auto timeout = kTlsProbeTimeout;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  {
    std::lock_guard lock(mutex_);
    deadline = fsm_->deadline();
  }
  if (deadline) {
    timeout = std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    *deadline - std::chrono::steady_clock::now()));
  }
  if (timeout.count() <= 0) return;
  const RemoteRunnerConfig& config = core_->config();
  std::string meaning = explain_failure(probe, config.address, config.tls, timeout);
  if (meaning.empty()) return;
  end.error = errc::tls_error;
  end.message = "TLS: " + meaning + " (" + grpc_message + ")";
}

void CallBase::conclude(RetryStep step, bool abandoned) {
  trace_.end_call(step.error, step.message);
  finish(step.error, std::move(step.message));
  // After the outcome was handed over (the user never waits for the Cancel), and while
  // this call is still registered, so the runner never looks idle in between. gRPC
  // confirmed the last attempt ended, so the Cancel cannot overtake it.
  if (abandoned) core_->send_cancel(request_.exec_id());
}

std::error_code CallBase::error_for(const Attempt& attempt, const grpc::Status& status,
                                    std::string& message, Probe& probe) const {
  switch (cancel_reason()) {
    case CancelReason::user:
    case CancelReason::closed: {
      auto [error, text] = error_of(cancel_reason());
      message = text;
      return error;
    }
    case CancelReason::violation:
      message = "protocol error: " + attempt.sequence.violation();
      return errc::protocol_error;
    case CancelReason::none:
    case CancelReason::exited:
      break;
  }
  if (status.ok()) {
    message = "the stream ended without an exit_code: the command's outcome is unknown";
    return errc::missing_exit_code;
  }
  StatusMeaning meaning = meaning_of_status(status.error_code(), status.error_message());
  message = std::move(meaning.message);
  probe = meaning.probe;
  return meaning.error;
}

// ---------------------------------------------------------------- Attempt

void Attempt::bind(const std::shared_ptr<Attempt>& self, RunnerCore& core,
                   const v1::ExecRequest& request, int holds) {
  self_ = self;
  sequence.info().exec_id = request.exec_id();  // what `started` may confirm
  core.start_exec(&context, &request, this);
  if (holds > 0) AddMultipleHolds(holds);
}

void Attempt::start() {
  ordered_before(this);
  StartRead(&response);
  StartCall();
}

void Attempt::OnReadDone(bool ok) {
  ordered_after(this);
  // Learnt before the message is handled: handling an exit that follows may hand the
  // outcome over, and the caller's next call must already know.
  if (ok && response.event_case() == v1::ExecResponse::kStarted) {
    call_->agent_sent_started();
    if (span) trace_started(*span, response.started());
  }
  call_->on_read(*this, ok);
  ordered_before(this);
}

void Attempt::OnDone(const grpc::Status& status) {
  // Keeps this attempt alive through the call's decision (which may start the next attempt
  // on this thread), then lets it go: nothing may touch `this` afterwards.
  ordered_after(this);
  const auto keep = std::move(self_);
  call_->attempt_done(*this, status);
}

}  // namespace sandbox::detail
