#pragma once
// The size limits of one ExecRequest (docs/behavior.md section 2, "Limits"): checked by the
// SDK before it sends a request and by the agent before it runs one, with the same words.

#include <cstddef>
#include <string>

#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox {

/// Sizes count the bytes of the strings themselves (argv elements; env names plus values),
/// not terminators or encoding.
inline constexpr std::size_t kMaxArgvEntries = 4096;
inline constexpr std::size_t kMaxArgvBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxEnvEntries = 1024;
inline constexpr std::size_t kMaxEnvBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxStdinBytes = std::size_t{4} << 20;

/// The first limit `request` breaks, as a message naming the field, what it holds and the
/// limit (`command: 5000 arguments, at most 4096`); empty when it breaks none. Never
/// mentions an env value.
std::string request_size_violation(const v1::ExecRequest& request);

}  // namespace sandbox
