// The one place that decides whether an ExecRequest may run, and how.
#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <filesystem>

#include "agent/confinement.hpp"
#include "agent/process.hpp"
#include "agent/secret_store.hpp"
#include "common/request_limits.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

/// The largest ExecRequest the server accepts from gRPC (its default is 4 MiB). Every request
/// within the limits of common/request_limits.hpp fits with room to spare (4 + 1 + 1 MiB of
/// payload, plus per-field framing: at most ~50 KiB for 4096 arguments and 1024 entries), so an
/// oversized field gets its own INVALID_ARGUMENT message; gRPC refuses anything larger with
/// RESOURCE_EXHAUSTED before it reaches validation.
inline constexpr int kMaxRequestBytes = 8 << 20;

/// Validates `request` against this agent and, when it may run, fills `spec`.
///
/// @param workspace  canonical absolute path of the workspace root: the default workdir and
///   the directory every workdir must resolve into (after symlinks).
/// @param secrets  the agent's secret store, or null when it has none: an env value
///   `secret://NAME` is replaced by the secret NAME (docs/behavior.md §11), whose value is
///   also added to `spec.secrets`.
/// @param confinement  how commands are confined (`Confinement::plan` fills `spec.wrapper`
///   and `spec.effective_profile`); null means unconfined, as `--sandbox none`.
/// @returns OK, or INVALID_ARGUMENT with a message that names the field and the rule
///   (`command: must not be empty`, `command: 5000 arguments, at most 4096`,
///   `env[FOO]: value contains a NUL byte`, `env[DB]: secret 'db/pw' not found in the agent's
///   secret store`, a `secret://` reference without a store), or FAILED_PRECONDITION for a
///   confinement it does not enforce. (Whether a resume can be served is the registry's and
///   the output log's decision.) Messages never contain environment values or secret
///   values. `spec` is unspecified unless OK.
///
/// The child environment is not the agent's: PATH, HOME (= workspace) and LANG=C.UTF-8,
/// overlaid with the request's env. Touches the filesystem (workdir resolution, secret
/// files); thread-safe.
grpc::Status validate_exec_request(const v1::ExecRequest& request,
                                   const std::filesystem::path& workspace, LaunchSpec& spec,
                                   const SecretStore* secrets = nullptr,
                                   const Confinement* confinement = nullptr);

/// Validates a Cancel: `exec_id` non-empty and well-formed (as in ExecRequest), `signal` a
/// known value. INVALID_ARGUMENT naming the field otherwise.
grpc::Status validate_cancel_request(const v1::CancelRequest& request);

}  // namespace sandbox::agent
