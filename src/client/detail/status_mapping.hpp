#pragma once
// The one mapping from gRPC status codes to the SDK's errors. Kept free of gRPC types so the
// table is unit-tested without a channel.

#include <string_view>
#include <system_error>

namespace sandbox::detail {

/// Maps a gRPC status code (the numeric `grpc::StatusCode`) to an SDK error. OK maps to an
/// empty error code; unknown numbers to `errc::unknown`.
std::error_code error_from_grpc_code(int grpc_code) noexcept;

/// True when a call certainly never left the client: it failed UNAVAILABLE with no answer
/// from any server (no initial metadata) because gRPC found no connection to send it on
/// (refused, unreachable, DNS, TLS handshake: the channel's "failed to connect to all
/// addresses" and name-resolution failures). Conservative: false when unsure.
bool failed_before_sending(int grpc_code, std::string_view message, bool answered) noexcept;

}  // namespace sandbox::detail
