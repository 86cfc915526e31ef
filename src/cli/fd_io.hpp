#pragma once
/// @file
/// Unbuffered whole-buffer I/O on file descriptors: what `sandbox-run` needs to pass the
/// remote streams through byte for byte, with no stdio buffer between chunks.

#include <string>
#include <string_view>
#include <system_error>

namespace sandbox::cli {

/// Writes all of `data` to `fd`, retrying partial writes and EINTR. Blocks while `fd` is
/// full, which is the backpressure the remote stream wants. Returns the first error
/// (`EPIPE` when the reader went away, as SIGPIPE must be ignored by the caller).
std::error_code write_all(int fd, std::string_view data) noexcept;

/// Reads `fd` to its end into `out`, retrying EINTR.
std::error_code read_all(int fd, std::string& out);

}  // namespace sandbox::cli
