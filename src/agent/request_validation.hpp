// The one place that decides whether an ExecRequest may run, and how.
#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <filesystem>

#include "agent/process.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

/// Limits of one request (docs/behavior.md, "Limits"). Sizes count the bytes of the strings
/// themselves (argv elements; env names plus values), not terminators or encoding.
inline constexpr std::size_t kMaxArgvEntries = 4096;
inline constexpr std::size_t kMaxArgvBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxEnvEntries = 1024;
inline constexpr std::size_t kMaxEnvBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxStdinBytes = std::size_t{4} << 20;
/// The largest ExecRequest the server accepts from gRPC (its default is 4 MiB). Every request
/// within the limits above fits with room to spare (4 + 1 + 1 MiB of payload, plus per-field
/// framing: at most ~50 KiB for 4096 arguments and 1024 entries), so an oversized field gets
/// its own INVALID_ARGUMENT message; gRPC refuses anything larger with RESOURCE_EXHAUSTED
/// before it reaches validation.
inline constexpr int kMaxRequestBytes = 8 << 20;

/// Validates `request` against this agent and, when it may run, fills `spec`.
///
/// @param workspace  canonical absolute path of the workspace root: the default workdir and
///   the directory every workdir must resolve into (after symlinks).
/// @returns OK, or INVALID_ARGUMENT with a message that names the field and the rule
///   (`command: must not be empty`, `command: 5000 arguments, at most 4096`,
///   `env[FOO]: value contains a NUL byte`, a `secret://`
///   reference: this agent has no secret store), or FAILED_PRECONDITION for a confinement it
///   does not enforce. (Whether a resume can be served is the registry's and the output
///   log's decision.) Messages never contain environment
///   values. `spec` is unspecified unless OK.
///
/// The child environment is not the agent's: PATH, HOME (= workspace) and LANG=C.UTF-8,
/// overlaid with the request's env. Touches the filesystem (workdir resolution); thread-safe.
grpc::Status validate_exec_request(const v1::ExecRequest& request,
                                   const std::filesystem::path& workspace, LaunchSpec& spec);

/// Validates a Cancel: `exec_id` non-empty and well-formed (as in ExecRequest), `signal` a
/// known value. INVALID_ARGUMENT naming the field otherwise.
grpc::Status validate_cancel_request(const v1::CancelRequest& request);

}  // namespace sandbox::agent
