#pragma once
/// @file
/// The SDK's error codes: one category, one mapping from gRPC status codes.

#include <string_view>
#include <system_error>

namespace sandbox {

/// Every error the SDK reports, in `sandbox::error_category()`.
///
/// Values mirror gRPC status codes where one exists (same number), so an error read off the
/// wire keeps its meaning; SDK-only conditions start at 100. A non-zero exit code of the
/// remote command is never an error: it is `ExecResult::exit_code`.
/// A user's cancellation is reported as `asio::error::operation_aborted`, not as a value here.
enum class errc {
  /// The agent cancelled the call (gRPC CANCELLED not caused by this client).
  cancelled = 1,
  /// An error the agent did not classify (gRPC UNKNOWN).
  unknown = 2,
  /// A request field broke a rule: empty argv, bad env name, bad path... The message names
  /// the field and the rule. Raised by the SDK before any I/O, or by the agent.
  invalid_argument = 3,
  /// The call's deadline passed before the command finished (gRPC DEADLINE_EXCEEDED).
  deadline_exceeded = 4,
  /// Something the request names does not exist on the agent (gRPC NOT_FOUND).
  not_found = 5,
  /// gRPC ALREADY_EXISTS.
  already_exists = 6,
  /// The caller is authenticated but not allowed (gRPC PERMISSION_DENIED).
  permission_denied = 7,
  /// The agent is at a limit, e.g. its concurrent exec limit (gRPC RESOURCE_EXHAUSTED).
  resource_exhausted = 8,
  /// The agent cannot run this request in its current state, e.g. it cannot enforce the
  /// profile (gRPC FAILED_PRECONDITION).
  failed_precondition = 9,
  /// gRPC ABORTED.
  aborted = 10,
  /// gRPC OUT_OF_RANGE.
  out_of_range = 11,
  /// The agent does not implement the call (gRPC UNIMPLEMENTED).
  unimplemented = 12,
  /// The agent or the transport failed internally (gRPC INTERNAL).
  internal = 13,
  /// The agent could not be reached or the connection broke (gRPC UNAVAILABLE). TLS
  /// failures are `tls_error` instead.
  unavailable = 14,
  /// Output the client needed is gone, e.g. evicted before a reattach (gRPC DATA_LOSS).
  data_loss = 15,
  /// Missing or wrong credentials (gRPC UNAUTHENTICATED).
  unauthenticated = 16,

  /// The response stream ended without an `exit_code`: the command's outcome is unknown.
  /// Output received so far is kept, but never presented as a complete result.
  missing_exit_code = 100,
  /// The agent broke the stream contract (e.g. a chunk before `started`, a second
  /// `started`); the message says which rule.
  protocol_error = 101,
  /// `RemoteRunner::close()` was called before or while the operation ran.
  runner_closed = 102,
  /// The runner configuration is invalid (e.g. an empty address, unreadable TLS files).
  invalid_config = 103,
  /// A bearer token was configured for a channel without TLS, which would send it in
  /// cleartext; set `allow_insecure` to accept that explicitly.
  token_requires_tls = 104,
  /// The TLS handshake with the agent failed, or one side spoke TLS and the other did not.
  /// The message says which (unknown CA, name mismatch, client certificate missing,
  /// rejected or expired, TLS against a cleartext agent or the reverse). Never retried.
  tls_error = 105,
};

/// The category of `sandbox::errc`; its name is "sandbox".
const std::error_category& error_category() noexcept;

/// Makes an error code of the SDK's category (found by ADL).
std::error_code make_error_code(errc e) noexcept;

/// A stable, log-friendly name of an error: the `errc` enumerator name for the SDK's
/// category ("deadline_exceeded"), "cancelled" for `operation_aborted`, otherwise
/// the category name. Used by `sandbox-run` in its error line.
std::string_view error_name(std::error_code ec) noexcept;

}  // namespace sandbox

template <>
struct std::is_error_code_enum<sandbox::errc> : std::true_type {};
