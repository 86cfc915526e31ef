#pragma once
// The attempt logic of one Exec call, sans-io (no gRPC, no clock, no timer): when to try
// again, how long to wait, what the next attempt asks for (attach only, resume offsets),
// the overall deadline, and cancellation while waiting. The I/O glue (exec_call.cpp) feeds
// it what happened and does what it answers; tests drive it with a fake clock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <system_error>

#include "sandbox/retry.hpp"

namespace sandbox::detail {

using RetryClock = std::chrono::steady_clock;

/// The pure backoff calculator: the wait after failed attempt `retry` (1 = after the first
/// attempt), before jitter: `initial * multiplier^(retry-1)`, capped at `max_backoff`;
/// then spread by `jitter` with `unit` in [0, 1) (0.5 = no spread).
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, unsigned retry, double unit);

/// Checks a policy; empty when valid, otherwise the field and the rule.
std::string retry_policy_violation(const RetryPolicy& policy);

/// Whether an attempt's error is worth another attempt under `policy` (the never-retried
/// list in RetryPolicy's contract wins over `retryable_codes`).
bool retryable(const RetryPolicy& policy, std::error_code error);

/// How one attempt ended, as the glue observed it.
struct AttemptEnd {
  /// Empty: the exit arrived and the call succeeded. Otherwise the attempt's error through
  /// the one mapping (the caller's cancellation is `asio::error::operation_aborted`).
  std::error_code error;
  std::string message;
  /// This attempt received `started` (the agent can reattach to this exec).
  bool started = false;
  /// False only when the request certainly never left the client (no connection was
  /// established for it): then even an agent that cannot reattach never saw it.
  bool request_sent = true;
  /// Output bytes the client holds after this attempt, per stream (the next resume offsets).
  std::uint64_t stdout_received = 0;
  std::uint64_t stderr_received = 0;
  /// The server's `grpc-retry-pushback-ms`, when it sent one (negative: do not retry).
  std::optional<std::chrono::milliseconds> pushback;
};

/// What the glue does next.
struct RetryStep {
  enum class Kind {
    attempt,   ///< start attempt `attempt` now, with `attach_only` and the resume offsets
    wait,      ///< wait until `until` (a timer), then call `wait_ended`
    complete,  ///< the call is over: `error` (empty: success) and `message`
  };
  Kind kind = Kind::complete;
  unsigned attempt = 0;
  bool attach_only = false;
  std::uint64_t resume_stdout = 0;
  std::uint64_t resume_stderr = 0;
  RetryClock::time_point until{};
  std::error_code error;
  std::string message;
};

/// One call's attempts. Not thread-safe: the glue serialises its calls (one attempt or one
/// wait at a time, under the call's lock).
class RetryFsm {
 public:
  /// `call_deadline`: the call's own deadline (none: nullopt); the policy's deadline, counted
  /// from `now`, may shorten it. `agent_reattaches`: the runner already knows the agent
  /// sends `started` (so a failure before this call's `started` is still safe to retry).
  /// `seed` drives the jitter. `policy` is not copied: it must outlive the FSM (the call's
  /// command or the runner's configuration holds it).
  RetryFsm(const RetryPolicy& policy, RetryClock::time_point now,
           std::optional<RetryClock::time_point> call_deadline, bool agent_reattaches,
           std::uint64_t seed);
  RetryFsm(RetryPolicy&&, RetryClock::time_point, std::optional<RetryClock::time_point>, bool,
           std::uint64_t) = delete;  // the policy must outlive the FSM

  /// The first step: the first attempt, or the deadline error when it already passed.
  RetryStep start(RetryClock::time_point now);
  /// The current attempt ended: complete, or wait before the next one.
  RetryStep attempt_ended(const AttemptEnd& end, RetryClock::time_point now);
  /// The wait ended: the next attempt, or the deadline error.
  RetryStep wait_ended(RetryClock::time_point now);
  /// The caller gave up (`error`: operation_aborted, runner_closed) while waiting: complete
  /// at once. During an attempt it returns nullopt: the glue cancels the attempt, whose end
  /// reports the same error (non-retryable).
  std::optional<RetryStep> cancel(std::error_code error, std::string message);

  /// The overall deadline every attempt carries (nullopt: none).
  [[nodiscard]] std::optional<RetryClock::time_point> deadline() const noexcept {
    return deadline_;
  }
  [[nodiscard]] const RetryHistory& history() const noexcept { return history_; }
  [[nodiscard]] bool waiting() const noexcept { return state_ == State::waiting; }
  [[nodiscard]] bool done() const noexcept { return state_ == State::done; }

 private:
  enum class State { idle, attempting, waiting, done };

  RetryStep next_attempt();
  RetryStep finish(std::error_code error, std::string message);
  RetryStep deadline_error();

  const RetryPolicy& policy_;
  std::optional<RetryClock::time_point> deadline_;
  bool agent_reattaches_;
  std::minstd_rand random_;  // 8 bytes of state: jitter needs no better
  State state_ = State::idle;
  RetryHistory history_;
  bool seen_started_ = false;
  unsigned retries_ = 0;  // backoffs taken; the exponent of the next computed backoff
  std::uint64_t resume_stdout_ = 0;
  std::uint64_t resume_stderr_ = 0;
  std::string last_message_;
};

}  // namespace sandbox::detail
