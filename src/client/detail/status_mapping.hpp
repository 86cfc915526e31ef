#pragma once
// The one mapping from gRPC status codes to the SDK's errors. Kept free of gRPC types so the
// table is unit-tested without a channel.

#include <system_error>

namespace sandbox::detail {

/// Maps a gRPC status code (the numeric `grpc::StatusCode`) to an SDK error. OK maps to an
/// empty error code; unknown numbers to `errc::unknown`.
std::error_code error_from_grpc_code(int grpc_code) noexcept;

}  // namespace sandbox::detail
