#pragma once
// The one mapping from gRPC status codes to the SDK's errors. Kept free of gRPC types so the
// table is unit-tested without a channel.

#include <string_view>
#include <system_error>

namespace sandbox::detail {

/// How the SDK's token plugin begins the message of a token provider's failure, so the
/// call's error can say it was the provider.
inline constexpr std::string_view kTokenProviderFailure = "token_provider: ";

/// Maps a gRPC status code (the numeric `grpc::StatusCode`) to an SDK error. OK maps to an
/// empty error code; unknown numbers to `errc::unknown`.
std::error_code error_from_grpc_code(int grpc_code) noexcept;

/// What only asking the agent can explain about a failure (tls_probe.hpp).
enum class Probe {
  none,
  /// The agent closed a new connection without a word: a TLS mismatch, a rejected client
  /// certificate, or an agent that is down behind a proxy.
  closed_connection,
  /// The agent's certificate failed verification: unknown CA, expired, ...
  untrusted_agent,
};

/// What a failed call's status means to the user.
struct StatusMeaning {
  std::error_code error;
  /// gRPC's own text, prefixed with what it means for a TLS failure ("TLS: ...").
  std::string message;
  Probe probe = Probe::none;
};

/// The SDK error of a failed call's status: `error_from_grpc_code`, except where gRPC 1.51
/// reports as UNAVAILABLE what no retry heals: a TLS failure becomes `errc::tls_error` and
/// the token provider's refusal `errc::unauthenticated`.
StatusMeaning meaning_of_status(int grpc_code, std::string_view grpc_message);

/// True when a call certainly never left the client: it failed UNAVAILABLE with no answer
/// from any server (no initial metadata) because gRPC found no connection to send it on
/// (refused, unreachable, DNS, TLS handshake: the channel's "failed to connect to all
/// addresses" and name-resolution failures). Conservative: false when unsure.
bool failed_before_sending(int grpc_code, std::string_view message, bool answered) noexcept;

}  // namespace sandbox::detail
