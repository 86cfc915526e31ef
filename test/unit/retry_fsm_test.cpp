// The attempt state machine, driven with a fake clock: every decision of docs/behavior.md
// "Retries" without gRPC, timers or sleeps.
#include "client/detail/retry_fsm.hpp"

#include <gtest/gtest.h>
#include <asio/error.hpp>

namespace sandbox::detail {
namespace {

using namespace std::chrono_literals;
using Kind = RetryStep::Kind;

const RetryClock::time_point t0 = RetryClock::time_point{} + 1000h;

RetryPolicy no_jitter() {
  RetryPolicy policy;
  policy.jitter = 0;
  return policy;
}

AttemptEnd failed(errc code, bool started = true) {
  AttemptEnd end;
  end.error = make_error_code(code);
  end.message = "attempt failed";
  end.started = started;
  return end;
}

TEST(BackoffDelay, GrowsByTheMultiplierUpToTheCap) {
  const RetryPolicy policy = no_jitter();
  EXPECT_EQ(backoff_delay(policy, 1, 0.5), 100ms);
  EXPECT_EQ(backoff_delay(policy, 2, 0.5), 200ms);
  EXPECT_EQ(backoff_delay(policy, 3, 0.5), 400ms);
  EXPECT_EQ(backoff_delay(policy, 6, 0.5), 3200ms);
  EXPECT_EQ(backoff_delay(policy, 7, 0.5), 5000ms);
  EXPECT_EQ(backoff_delay(policy, 4000, 0.5), 5000ms);  // pow overflows to inf: still the cap
}

TEST(BackoffDelay, JitterSpreadsAroundTheBase) {
  RetryPolicy policy;  // jitter 0.2
  EXPECT_EQ(backoff_delay(policy, 1, 0.0), 80ms);
  EXPECT_EQ(backoff_delay(policy, 1, 0.5), 100ms);
  EXPECT_EQ(backoff_delay(policy, 1, 1.0), 120ms);
  EXPECT_EQ(backoff_delay(policy, 10, 0.0), 4000ms);  // the cap is spread too
  EXPECT_EQ(backoff_delay(policy, 10, 1.0), 6000ms);
}

TEST(RetryPolicyViolation, NamesTheFieldAndTheRule) {
  EXPECT_EQ(retry_policy_violation(RetryPolicy{}), "");
  RetryPolicy policy;
  policy.max_attempts = 0;
  EXPECT_EQ(retry_policy_violation(policy), "retry.max_attempts: must be at least 1");
  policy = {};
  policy.multiplier = 0.5;
  EXPECT_NE(retry_policy_violation(policy).find("retry.multiplier"), std::string::npos);
  policy = {};
  policy.max_backoff = 10ms;
  EXPECT_NE(retry_policy_violation(policy).find("retry.max_backoff"), std::string::npos);
  policy = {};
  policy.jitter = 1.0;
  EXPECT_NE(retry_policy_violation(policy).find("retry.jitter"), std::string::npos);
  policy = {};
  policy.initial_backoff = -1ms;
  EXPECT_NE(retry_policy_violation(policy).find("retry.initial_backoff"), std::string::npos);
  policy = {};
  policy.deadline = -1ms;
  EXPECT_NE(retry_policy_violation(policy).find("retry.deadline"), std::string::npos);
}

TEST(Retryable, OnlyListedCodesAndNeverTheAnswers) {
  RetryPolicy policy;
  EXPECT_TRUE(retryable(policy, errc::unavailable));
  EXPECT_FALSE(retryable(policy, errc::resource_exhausted));
  EXPECT_FALSE(retryable(policy, asio::error::operation_aborted));
  policy.retryable_codes = {
      errc::unavailable,     errc::resource_exhausted, errc::invalid_argument,
      errc::unauthenticated, errc::permission_denied,  errc::failed_precondition,
      errc::data_loss,       errc::deadline_exceeded,  errc::runner_closed,
      errc::protocol_error,  errc::missing_exit_code};
  EXPECT_TRUE(retryable(policy, errc::resource_exhausted));
  for (errc never : {errc::invalid_argument, errc::unauthenticated, errc::permission_denied,
                     errc::failed_precondition, errc::data_loss, errc::deadline_exceeded,
                     errc::runner_closed, errc::protocol_error, errc::missing_exit_code}) {
    EXPECT_FALSE(retryable(policy, never)) << make_error_code(never).message();
  }
}

TEST(RetryFsm, FirstAttemptRunsAtOnceAndSuccessCompletes) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, false, 1);
  const RetryStep first = fsm.start(t0);
  ASSERT_EQ(first.kind, Kind::attempt);
  EXPECT_EQ(first.attempt, 1U);
  EXPECT_FALSE(first.attach_only);
  EXPECT_EQ(first.resume_stdout, 0U);
  AttemptEnd end;
  end.started = true;
  const RetryStep done = fsm.attempt_ended(end, t0 + 5ms);
  EXPECT_EQ(done.kind, Kind::complete);
  EXPECT_FALSE(done.error);
  EXPECT_TRUE(fsm.done());
  EXPECT_EQ(fsm.history().attempts, 1U);
  EXPECT_TRUE(fsm.history().failures.empty());
}

TEST(RetryFsm, RetriesUnavailableWithTheDocumentedBackoffAndResumeOffsets) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, false, 1);
  auto now = t0;
  ASSERT_EQ(fsm.start(now).kind, Kind::attempt);
  const std::chrono::milliseconds expected[] = {100ms, 200ms, 400ms, 800ms};
  for (unsigned i = 0; i < 4; ++i) {
    AttemptEnd end = failed(errc::unavailable);
    end.stdout_received = 10 * (i + 1);
    end.stderr_received = i;
    const RetryStep wait = fsm.attempt_ended(end, now);
    ASSERT_EQ(wait.kind, Kind::wait) << i;
    EXPECT_EQ(wait.until - now, expected[i]) << i;
    EXPECT_TRUE(fsm.waiting());
    now = wait.until;
    const RetryStep next = fsm.wait_ended(now);
    ASSERT_EQ(next.kind, Kind::attempt);
    EXPECT_EQ(next.attempt, i + 2);
    EXPECT_TRUE(next.attach_only);  // `started` was seen
    EXPECT_EQ(next.resume_stdout, 10 * (i + 1));
    EXPECT_EQ(next.resume_stderr, i);
  }
  // The fifth attempt was the last one the policy allows.
  const RetryStep last = fsm.attempt_ended(failed(errc::unavailable), now);
  ASSERT_EQ(last.kind, Kind::complete);
  EXPECT_EQ(last.error, errc::unavailable);
  EXPECT_NE(last.message.find("after 5 attempts"), std::string::npos) << last.message;
  ASSERT_EQ(fsm.history().failures.size(), 5U);
  EXPECT_EQ(fsm.history().failures[0].backoff, 100ms);
  EXPECT_EQ(fsm.history().failures[4].backoff, 0ms);
  EXPECT_EQ(fsm.history().attempts, 5U);
}

TEST(RetryFsm, JitterStaysWithinItsSpreadAndIsReproducibleFromTheSeed) {
  RetryPolicy policy;
  policy.max_attempts = 1000;
  policy.max_backoff = 100ms;  // every backoff has base 100 ms
  std::vector<std::chrono::nanoseconds> first_run;
  for (int run = 0; run < 2; ++run) {
    RetryFsm fsm(policy, t0, std::nullopt, true, 42);
    auto now = t0;
    fsm.start(now);
    bool spread_below = false;
    bool spread_above = false;
    for (int i = 0; i < 200; ++i) {
      const RetryStep wait = fsm.attempt_ended(failed(errc::unavailable), now);
      ASSERT_EQ(wait.kind, Kind::wait);
      const auto delay = wait.until - now;
      EXPECT_GE(delay, 80ms);
      EXPECT_LE(delay, 120ms);
      spread_below = spread_below || delay < 95ms;
      spread_above = spread_above || delay > 105ms;
      if (run == 0) {
        first_run.push_back(delay);
      } else {
        EXPECT_EQ(delay, first_run[static_cast<std::size_t>(i)]);
      }
      now = wait.until;
      fsm.wait_ended(now);
    }
    EXPECT_TRUE(spread_below && spread_above);
  }
}

TEST(RetryFsm, NeverRetriesTheAgentsAnswers) {
  for (errc code : {errc::invalid_argument, errc::unauthenticated, errc::permission_denied,
                    errc::failed_precondition, errc::data_loss, errc::deadline_exceeded,
                    errc::not_found, errc::resource_exhausted, errc::protocol_error,
                    errc::missing_exit_code, errc::runner_closed}) {
    const RetryPolicy plain = no_jitter();
    RetryFsm fsm(plain, t0, std::nullopt, true, 1);
    fsm.start(t0);
    const RetryStep step = fsm.attempt_ended(failed(code), t0);
    EXPECT_EQ(step.kind, Kind::complete) << make_error_code(code).message();
    EXPECT_EQ(step.error, code);
    EXPECT_EQ(fsm.history().attempts, 1U);
  }
}

TEST(RetryFsm, TheCallersCancellationEndsAnAttemptForGood) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  fsm.start(t0);
  EXPECT_FALSE(fsm.cancel(asio::error::operation_aborted, "cancelled"));  // the glue cancels
  AttemptEnd end;
  end.error = asio::error::operation_aborted;
  const RetryStep step = fsm.attempt_ended(end, t0);
  EXPECT_EQ(step.kind, Kind::complete);
  EXPECT_EQ(step.error, asio::error::operation_aborted);
}

TEST(RetryFsm, CancellationDuringABackoffCompletesAtOnce) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  fsm.start(t0);
  ASSERT_EQ(fsm.attempt_ended(failed(errc::unavailable), t0).kind, Kind::wait);
  const auto step = fsm.cancel(make_error_code(errc::runner_closed), "closed");
  ASSERT_TRUE(step);
  EXPECT_EQ(step->kind, Kind::complete);
  EXPECT_EQ(step->error, errc::runner_closed);
  EXPECT_TRUE(fsm.done());
  EXPECT_FALSE(fsm.cancel(asio::error::operation_aborted, "again"));  // already over
}

TEST(RetryFsm, BeforeStartedOnlyAnUnsentRequestIsRetried) {
  // The agent may be of the older generation (no `started`, no reattach).
  const RetryPolicy plain = no_jitter();
  RetryFsm sent(plain, t0, std::nullopt, false, 1);
  sent.start(t0);
  const RetryStep refused = sent.attempt_ended(failed(errc::unavailable, false), t0);
  EXPECT_EQ(refused.kind, Kind::complete);
  EXPECT_NE(refused.message.find("not retried"), std::string::npos);

  RetryFsm unsent(plain, t0, std::nullopt, false, 1);
  unsent.start(t0);
  AttemptEnd end = failed(errc::unavailable, false);
  end.request_sent = false;  // e.g. connection refused
  ASSERT_EQ(unsent.attempt_ended(end, t0).kind, Kind::wait);
  const RetryStep next = unsent.wait_ended(t0 + 100ms);
  ASSERT_EQ(next.kind, Kind::attempt);
  EXPECT_FALSE(next.attach_only);  // nothing started yet: the agent may run it
}

TEST(RetryFsm, AnAgentKnownToReattachIsRetriedBeforeStarted) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  fsm.start(t0);
  ASSERT_EQ(fsm.attempt_ended(failed(errc::unavailable, false), t0).kind, Kind::wait);
  const RetryStep next = fsm.wait_ended(t0 + 100ms);
  ASSERT_EQ(next.kind, Kind::attempt);
  // Not attach-only: the first attempt may not have reached the agent at all.
  EXPECT_FALSE(next.attach_only);
}

TEST(RetryFsm, OnceStartedEveryLaterAttemptOnlyReattaches) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, false, 1);
  fsm.start(t0);
  fsm.attempt_ended(failed(errc::unavailable, true), t0);
  EXPECT_TRUE(fsm.wait_ended(t0 + 100ms).attach_only);
  // A later attempt without `started` (it failed early) keeps the rule.
  fsm.attempt_ended(failed(errc::unavailable, false), t0 + 100ms);
  EXPECT_TRUE(fsm.wait_ended(t0 + 300ms).attach_only);
}

TEST(RetryFsm, TheOverallDeadlineCutsTheLastBackoffAndIsReported) {
  RetryPolicy policy = no_jitter();
  policy.max_attempts = 100;
  RetryFsm fsm(policy, t0, t0 + 1000ms, true, 1);
  ASSERT_EQ(fsm.deadline(), t0 + 1000ms);
  auto now = t0;
  fsm.start(now);
  // Attempts at 0, 100, 300, 700 ms; the next backoff (800 ms) would end past the deadline.
  std::vector<RetryClock::time_point> attempts{now};
  RetryStep step;
  for (;;) {
    step = fsm.attempt_ended(failed(errc::unavailable), now);
    ASSERT_EQ(step.kind, Kind::wait);
    now = step.until;
    step = fsm.wait_ended(now);
    if (step.kind != Kind::attempt) break;
    attempts.push_back(now);
  }
  EXPECT_EQ(attempts.size(), 4U);
  EXPECT_EQ(attempts.back(), t0 + 700ms);
  EXPECT_EQ(now, t0 + 1000ms);  // the wait ended at the deadline, not later
  EXPECT_EQ(step.kind, Kind::complete);
  EXPECT_EQ(step.error, errc::deadline_exceeded);
  EXPECT_NE(step.message.find("after 4 attempts; last error: attempt failed"), std::string::npos)
      << step.message;
  EXPECT_EQ(fsm.history().failures.back().backoff, 300ms);
}

TEST(RetryFsm, ThePolicysDeadlineAndTheCallsTheEarlierWins) {
  RetryPolicy policy = no_jitter();
  policy.deadline = 500ms;
  EXPECT_EQ(RetryFsm(policy, t0, t0 + 2s, true, 1).deadline(), t0 + 500ms);
  EXPECT_EQ(RetryFsm(policy, t0, t0 + 200ms, true, 1).deadline(), t0 + 200ms);
  EXPECT_EQ(RetryFsm(policy, t0, std::nullopt, true, 1).deadline(), t0 + 500ms);
  const RetryPolicy plain = no_jitter();
  EXPECT_EQ(RetryFsm(plain, t0, std::nullopt, true, 1).deadline(), std::nullopt);
}

TEST(RetryFsm, AnExpiredDeadlineFailsBeforeAnyAttempt) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, t0, true, 1);
  const RetryStep step = fsm.start(t0);
  EXPECT_EQ(step.kind, Kind::complete);
  EXPECT_EQ(step.error, errc::deadline_exceeded);
  EXPECT_EQ(fsm.history().attempts, 0U);
}

TEST(RetryFsm, PushbackReplacesTheBackoffAndRestartsIt) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  auto now = t0;
  fsm.start(now);
  RetryStep step = fsm.attempt_ended(failed(errc::unavailable), now);  // 100 ms
  now = step.until;
  fsm.wait_ended(now);
  step = fsm.attempt_ended(failed(errc::unavailable), now);  // 200 ms
  now = step.until;
  fsm.wait_ended(now);
  AttemptEnd pushed = failed(errc::unavailable);
  pushed.pushback = 1234ms;
  step = fsm.attempt_ended(pushed, now);
  ASSERT_EQ(step.kind, Kind::wait);
  EXPECT_EQ(step.until - now, 1234ms);
  now = step.until;
  fsm.wait_ended(now);
  step = fsm.attempt_ended(failed(errc::unavailable), now);
  EXPECT_EQ(step.until - now, 100ms);  // starts over
}

TEST(RetryFsm, NegativePushbackStopsRetrying) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  fsm.start(t0);
  AttemptEnd end = failed(errc::unavailable);
  end.pushback = -1ms;
  const RetryStep step = fsm.attempt_ended(end, t0);
  EXPECT_EQ(step.kind, Kind::complete);
  EXPECT_EQ(step.error, errc::unavailable);
}

TEST(RetryFsm, PushbackIsIgnoredWhenThePolicySaysSo) {
  RetryPolicy policy = no_jitter();
  policy.honour_pushback = false;
  RetryFsm fsm(policy, t0, std::nullopt, true, 1);
  fsm.start(t0);
  AttemptEnd end = failed(errc::unavailable);
  end.pushback = -1ms;
  const RetryStep step = fsm.attempt_ended(end, t0);
  ASSERT_EQ(step.kind, Kind::wait);
  EXPECT_EQ(step.until - t0, 100ms);
}

TEST(RetryFsm, PushbackNeverRetriesANonRetryableError) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  fsm.start(t0);
  AttemptEnd end = failed(errc::invalid_argument);
  end.pushback = 10ms;
  EXPECT_EQ(fsm.attempt_ended(end, t0).kind, Kind::complete);
}

TEST(RetryFsm, OneAttemptPolicyNeverWaits) {
  RetryPolicy policy = no_jitter();
  policy.max_attempts = 1;
  RetryFsm fsm(policy, t0, std::nullopt, true, 1);
  fsm.start(t0);
  const RetryStep step = fsm.attempt_ended(failed(errc::unavailable), t0);
  EXPECT_EQ(step.kind, Kind::complete);
  EXPECT_NE(step.message.find("after 1 attempt)"), std::string::npos) << step.message;
}

TEST(RetryFsm, SuccessAfterRetriesKeepsTheFailuresInTheHistory) {
  const RetryPolicy plain = no_jitter();
  RetryFsm fsm(plain, t0, std::nullopt, true, 1);
  fsm.start(t0);
  AttemptEnd first = failed(errc::unavailable);
  first.message = "reset";
  const RetryStep wait = fsm.attempt_ended(first, t0);
  fsm.wait_ended(wait.until);
  EXPECT_FALSE(fsm.attempt_ended(AttemptEnd{}, wait.until).error);
  ASSERT_EQ(fsm.history().failures.size(), 1U);
  EXPECT_EQ(fsm.history().failures[0].message, "reset");
  EXPECT_EQ(fsm.history().failures[0].backoff, 100ms);
  EXPECT_EQ(fsm.history().attempts, 2U);
}

}  // namespace
}  // namespace sandbox::detail
