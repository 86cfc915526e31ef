#include "client/detail/retry_fsm.hpp"

#include <algorithm>
#include <cmath>

namespace sandbox::detail {

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, unsigned retry, double unit) {
  const auto initial = static_cast<double>(policy.initial_backoff.count());
  const auto cap = static_cast<double>(policy.max_backoff.count());
  // pow() of a large exponent is inf, which min() turns into the cap: no overflow.
  const double base =
      std::min(cap, initial * std::pow(policy.multiplier, static_cast<double>(retry) - 1.0));
  const double spread = 1.0 + policy.jitter * (2.0 * std::clamp(unit, 0.0, 1.0) - 1.0);
  return std::chrono::milliseconds(std::llround(std::max(0.0, base * spread)));
}

std::string retry_policy_violation(const RetryPolicy& policy) {
  if (policy.max_attempts < 1) return "retry.max_attempts: must be at least 1";
  if (policy.initial_backoff.count() < 0) return "retry.initial_backoff: must not be negative";
  if (!(policy.multiplier >= 1.0) || !std::isfinite(policy.multiplier)) {
    return "retry.multiplier: must be a finite number of at least 1";
  }
  if (policy.max_backoff < policy.initial_backoff) {
    return "retry.max_backoff: must not be less than retry.initial_backoff";
  }
  if (!(policy.jitter >= 0.0 && policy.jitter < 1.0)) return "retry.jitter: must be in [0, 1)";
  if (policy.deadline.count() < 0) return "retry.deadline: must not be negative";
  return {};
}

bool retryable(const RetryPolicy& policy, std::error_code error) {
  // Whatever the policy lists: these are answers, not accidents, or the caller's own end.
  if (error.category() != error_category()) return false;  // e.g. operation_aborted
  const auto code = static_cast<errc>(error.value());
  switch (code) {
    case errc::invalid_argument:
    case errc::unauthenticated:
    case errc::permission_denied:
    case errc::failed_precondition:
    case errc::data_loss:
    case errc::deadline_exceeded:
    case errc::runner_closed:
    case errc::protocol_error:
    case errc::missing_exit_code:
    case errc::invalid_config:
    case errc::token_requires_tls:
      return false;
    default:
      break;
  }
  return std::find(policy.retryable_codes.begin(), policy.retryable_codes.end(), code) !=
         policy.retryable_codes.end();
}

RetryFsm::RetryFsm(const RetryPolicy& policy, RetryClock::time_point now,
                   std::optional<RetryClock::time_point> call_deadline, bool agent_reattaches,
                   std::uint64_t seed)
    : policy_(policy),
      deadline_(call_deadline),
      agent_reattaches_(agent_reattaches),
      random_(static_cast<std::minstd_rand::result_type>(seed % std::minstd_rand::modulus)) {
  if (policy_.deadline.count() > 0) {
    const auto own = now + policy_.deadline;
    deadline_ = deadline_ ? std::min(*deadline_, own) : own;
  }
}

RetryStep RetryFsm::start(RetryClock::time_point now) {
  if (deadline_ && now >= *deadline_) return deadline_error();
  return next_attempt();
}

RetryStep RetryFsm::next_attempt() {
  state_ = State::attempting;
  RetryStep step;
  step.kind = RetryStep::Kind::attempt;
  step.attempt = ++history_.attempts;
  // After `started` the agent knows this exec: a later attempt that found it unknown
  // (an agent restarted in between) must fail rather than run the command again.
  step.attach_only = seen_started_;
  step.resume_stdout = resume_stdout_;
  step.resume_stderr = resume_stderr_;
  return step;
}

RetryStep RetryFsm::finish(std::error_code error, std::string message) {
  state_ = State::done;
  RetryStep step;
  step.kind = RetryStep::Kind::complete;
  step.error = error;
  step.message = std::move(message);
  return step;
}

RetryStep RetryFsm::deadline_error() {
  std::string message = "the call's deadline passed";
  if (history_.attempts > 0) {
    message += " after " + std::to_string(history_.attempts) +
               (history_.attempts == 1 ? " attempt" : " attempts");
    if (!last_message_.empty()) message += "; last error: " + last_message_;
  }
  return finish(make_error_code(errc::deadline_exceeded), std::move(message));
}

RetryStep RetryFsm::attempt_ended(const AttemptEnd& end, RetryClock::time_point now) {
  resume_stdout_ = end.stdout_received;
  resume_stderr_ = end.stderr_received;
  seen_started_ = seen_started_ || end.started;
  if (!end.error) return finish({}, {});

  history_.failures.push_back({end.error, end.message, std::chrono::milliseconds{0}});
  last_message_ = end.message;
  if (!retryable(policy_, end.error)) return finish(end.error, end.message);
  if (!seen_started_ && !agent_reattaches_ && end.request_sent) {
    // Possibly an agent of the older generation, which runs every request it receives.
    return finish(end.error, end.message +
                                 " (not retried: the request may have reached an agent that "
                                 "cannot reattach, and a retry could run the command twice)");
  }
  if (history_.attempts >= policy_.max_attempts) {
    return finish(end.error, end.message + " (after " + std::to_string(history_.attempts) +
                                 (history_.attempts == 1 ? " attempt)" : " attempts)"));
  }
  std::chrono::milliseconds delay;
  if (policy_.honour_pushback && end.pushback) {
    if (end.pushback->count() < 0) {
      return finish(end.error, end.message + " (not retried: the agent asked not to)");
    }
    delay = *end.pushback;
    retries_ = 0;  // A6: after a pushback, backoff starts over from the initial value
  } else {
    const double unit = std::uniform_real_distribution<double>(0.0, 1.0)(random_);
    delay = backoff_delay(policy_, ++retries_, unit);
  }
  RetryStep step;
  step.kind = RetryStep::Kind::wait;
  step.until = now + delay;
  // Waiting past the deadline only to fail: wait until it and report it then.
  if (deadline_ && step.until > *deadline_) step.until = *deadline_;
  history_.failures.back().backoff =
      std::chrono::duration_cast<std::chrono::milliseconds>(step.until - now);
  state_ = State::waiting;
  return step;
}

RetryStep RetryFsm::wait_ended(RetryClock::time_point now) {
  if (deadline_ && now >= *deadline_) return deadline_error();
  return next_attempt();
}

std::optional<RetryStep> RetryFsm::cancel(std::error_code error, std::string message) {
  if (state_ == State::attempting || state_ == State::done) return std::nullopt;
  return finish(error, std::move(message));
}

}  // namespace sandbox::detail
