#pragma once
// The error message a span's status may carry (docs/behavior.md §15, "Never traced").

#include <grpcpp/support/status_code_enum.h>

#include <string>
#include <string_view>

namespace sandbox {

/// What a span says of a failed RPC whose error has gRPC code `code` (the SDK's `errc` values
/// are the same numbers) and message `message`.
/// A refusal of the request's content (INVALID_ARGUMENT, FAILED_PRECONDITION) names what
/// the request held: env names, secret references, the workdir. Those messages keep only
/// the field they start with (`env[DB_PASSWORD]: secret 'db/password' not found...` gives
/// `env: refused (the message names request content, which is not traced)`); every other
/// message is kept whole.
[[nodiscard]] std::string trace_message(grpc::StatusCode code, std::string_view message);

}  // namespace sandbox
