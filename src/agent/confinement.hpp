// How the agent confines a command: the profile clamp and the bubblewrap sandbox.
#pragma once

#include <grpcpp/support/status.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

/// The sandbox backend.
enum class SandboxKind {
  bubblewrap,  ///< every exec in fresh namespaces via bwrap (the default)
  none,        ///< development only: commands run unconfined, effective profile "none"
};

/// The profiles this agent enforces, least permissive first.
enum class Profile { strict, standard };

/// "strict" or "standard".
std::string_view profile_name(Profile profile) noexcept;

/// The clamp table: "strict" stays strict; every other request ("", "standard", "none",
/// "permissive", "root", anything unknown) becomes standard; the result is at most `max`.
/// Never refuses: a client cannot ask its way out of the sandbox.
Profile clamp_profile(std::string_view requested, Profile max) noexcept;

/// The confinement of one exec: its effective profile and the argv prefix that applies it.
struct ConfinementPlan {
  std::string effective_profile;     ///< "strict", "standard", or "none" when unconfined
  std::vector<std::string> wrapper;  ///< bwrap and its options (no "--"); empty: unconfined
};

/// The agent's confinement, probed once at construction.
///
/// bubblewrap, per exec: new pid, ipc, uts (and, for strict or `NETWORK_NONE`, network)
/// namespaces; `--die-with-parent`, `--new-session`, no new privileges (bwrap always sets
/// it); the host's filesystem read-only, a private `/dev`, `/proc` and an empty `/tmp`
/// (tmpfs); the workspace bound read-write at its own path (read-only when the policy's
/// writable roots leave `:workspace` out). Thread-safe after construction.
class Confinement {
 public:
  /// For bubblewrap, finds `bwrap_path` (searched on the agent's PATH unless it has a '/')
  /// and runs it once with and once without a network namespace; what fails is remembered
  /// and each exec that needs it is refused (fail closed), never run with less.
  Confinement(SandboxKind kind, std::string bwrap_path, Profile max_profile);

  /// Decides how `request` runs in `workspace`/`workdir`: OK with the plan, or
  /// FAILED_PRECONDITION naming what this agent cannot enforce (no bwrap, namespaces refused,
  /// any profile or policy while unconfined), or INVALID_ARGUMENT for a policy root that is
  /// not a symbolic name (`:workspace`, `:tmp`).
  grpc::Status plan(const v1::ExecRequest& request, const std::filesystem::path& workspace,
                    const std::filesystem::path& workdir, ConfinementPlan& out) const;

  /// One line for the startup log: the backend, the maximum profile, what is unavailable.
  [[nodiscard]] std::string describe() const;

 private:
  SandboxKind kind_;
  Profile max_profile_;
  std::string bwrap_;            // absolute path; empty when not found
  std::string unavailable_;      // why bwrap cannot run at all; empty when it can
  std::string net_unavailable_;  // why it cannot make a network namespace
};

}  // namespace sandbox::agent
