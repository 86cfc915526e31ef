#pragma once
/// @file
/// `RetryPolicy`: when the SDK tries an Exec call again, and what the caller learns about
/// the attempts it made.

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "sandbox/error.hpp"

namespace sandbox {

/// How one call retries a failed attempt (docs/behavior.md, "Retries").
///
/// Every attempt of a call carries the same exec id and the output offsets the client
/// already holds, so the agent reattaches to the running command instead of starting it
/// again; once an attempt has seen `started`, later attempts may only reattach. An
/// attempt is retried only when its error is in `retryable_codes`, the attempt budget and
/// the call's overall deadline allow it, and the command cannot run twice: against an
/// agent not known to reattach (none of the runner's calls has seen `started` yet) only
/// failures before the request left the client are retried.
///
/// Never retried whatever `retryable_codes` says: `invalid_argument`, `unauthenticated`,
/// `permission_denied`, `failed_precondition`, `data_loss`, the caller's cancellation,
/// `runner_closed`, `protocol_error`, `missing_exit_code` and `deadline_exceeded` (the
/// overall deadline).
struct RetryPolicy {
  /// Attempts in all, the first included; 1 disables retries. Must be at least 1.
  unsigned max_attempts = 5;
  /// Backoff before the second attempt.
  std::chrono::milliseconds initial_backoff{100};
  /// Factor applied to the backoff after each retry (at least 1).
  double multiplier = 2.0;
  /// Upper bound of the backoff, before jitter.
  std::chrono::milliseconds max_backoff{5000};
  /// Relative random spread of each backoff: 0.2 waits between 80 % and 120 % of it.
  /// In [0, 1).
  double jitter = 0.2;
  /// Errors worth another attempt. AIP-194 advises UNAVAILABLE only: every other status
  /// means the agent decided, and asking again gets the same answer.
  std::vector<errc> retryable_codes{errc::unavailable};
  /// One deadline over every attempt and every backoff of a call, counted from the call's
  /// start; zero: none of its own. The call ends at the earliest of this, the call's own
  /// deadline (`Command::deadline`, else the command timeout plus `timeout_grace`, else
  /// `RemoteRunnerConfig::default_deadline`), with `errc::deadline_exceeded`.
  std::chrono::milliseconds deadline{0};
  /// Whether a server's `grpc-retry-pushback-ms` trailer replaces the computed backoff (a
  /// negative value stops retrying), as gRPC's own retry design (A6) specifies.
  bool honour_pushback = true;
};

/// One failed attempt of a call.
struct AttemptFailure {
  /// The attempt's error, in the SDK's category.
  std::error_code error;
  /// Its message (the agent's status message, or the transport's).
  std::string message;
  /// How long the SDK waited after it before the next attempt; zero for the last one.
  std::chrono::milliseconds backoff{0};
};

/// The attempts one call made.
struct RetryHistory {
  /// Attempts started, the first included (0 when the call failed before any I/O).
  unsigned attempts = 0;
  /// Each failed attempt's error, in order. A successful call that needed two attempts has
  /// one entry; a failed call's last entry is the error it reported (or the attempt that
  /// ran into the deadline, which the call reports as `deadline_exceeded`).
  std::vector<AttemptFailure> failures;
};

}  // namespace sandbox
