// Where a command runs: the request's workdir, resolved inside the workspace and held open.
#pragma once

#include <grpcpp/support/status.h>

#include <filesystem>
#include <string_view>

#include "agent/process.hpp"

namespace sandbox::agent {

/// The longest workdir accepted, in bytes (PATH_MAX less its terminator).
inline constexpr std::size_t kMaxWorkdirBytes = 4095;

/// A directory inside the workspace, opened once: the child fchdir()s to `fd`, so a swap of
/// the path between the check and the spawn (a rename, a new symlink) cannot move it.
struct ResolvedWorkdir {
  std::filesystem::path path;  ///< what `fd` was resolved to (for PATH lookups and logs)
  UniqueFd fd;                 ///< O_PATH | O_DIRECTORY, close-on-exec
};

/// Resolves `workdir` against `workspace` (canonical, absolute): empty means the workspace;
/// relative is below it; absolute must name a path inside it. The walk is the kernel's
/// (openat2 with RESOLVE_BENEATH from the workspace), so `..`, absolute symlinks and
/// symlinks whose target lies outside are refused wherever they occur, atomically.
///
/// @returns OK, or INVALID_ARGUMENT naming the rule: a NUL byte, more than
///   kMaxWorkdirBytes, outside the workspace (lexically, or through a symlink), does not
///   exist, not a directory, too many symbolic links, a name too long, permission denied;
///   FAILED_PRECONDITION when the kernel cannot confine the walk (no openat2: Linux < 5.6).
grpc::Status resolve_workdir(std::string_view workdir, const std::filesystem::path& workspace,
                             ResolvedWorkdir& out);

}  // namespace sandbox::agent
