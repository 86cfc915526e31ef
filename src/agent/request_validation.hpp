// The one place that decides whether an ExecRequest may run, and how.
#pragma once

#include <grpcpp/support/status.h>

#include <filesystem>

#include "agent/process.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

/// Validates `request` against this agent and, when it may run, fills `spec`.
///
/// @param workspace  canonical absolute path of the workspace root: the default workdir and
///   the directory every workdir must resolve into (after symlinks).
/// @returns OK, or INVALID_ARGUMENT with a message that names the field and the rule
///   (`command: must not be empty`, `env[FOO]: value contains a NUL byte`, a `secret://`
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
