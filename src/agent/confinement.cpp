#include "agent/confinement.hpp"

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <variant>

#include "agent/process.hpp"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kWorkspaceRoot = ":workspace";
constexpr std::string_view kTmpRoot = ":tmp";

grpc::Status unenforceable(std::string message) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, std::move(message));
}

// `name` as the shell would find it on the agent's own PATH; empty when it is nowhere.
std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string_view search = path != nullptr ? path : "/usr/bin:/bin";
  while (!search.empty()) {
    const std::size_t colon = search.find(':');
    const std::string dir(search.substr(0, colon));
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    search.remove_prefix(colon + 1);
  }
  return {};
}

// Runs `argv` to its end; empty when it exited 0, else what it printed on stderr.
std::string run_probe(std::vector<std::string> argv) {
  LaunchSpec spec;
  spec.argv = std::move(argv);
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.workdir = "/";
  auto spawned = spawn_process(spec);
  if (auto* failure = std::get_if<SpawnFailure>(&spawned)) return failure->message;
  ChildProcess& child = std::get<ChildProcess>(spawned);
  child.stdin_fd = UniqueFd();
  std::string err;
  char buffer[512];
  for (ssize_t n; (n = ::read(child.stderr_fd.get(), buffer, sizeof buffer)) > 0;) {
    if (err.size() < 4096) err.append(buffer, static_cast<std::size_t>(n));
  }
  const ExitStatus status = reap_process(child.pid);
  if (status.exit_code == 0) return {};
  while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
  return err.empty() ? "exit status " + std::to_string(status.exit_code) : err;
}

std::vector<std::string> base_options(const std::string& bwrap) {
  return {bwrap,
          "--die-with-parent",
          "--new-session",
          "--unshare-pid",
          "--unshare-ipc",
          "--unshare-uts",
          "--ro-bind",
          "/",
          "/",
          "--dev",
          "/dev",
          "--proc",
          "/proc",
          "--tmpfs",
          "/tmp"};
}

}  // namespace

std::string_view profile_name(Profile profile) noexcept {
  return profile == Profile::strict ? "strict" : "standard";
}

Profile clamp_profile(std::string_view requested, Profile max) noexcept {
  const Profile wanted = requested == "strict" ? Profile::strict : Profile::standard;
  // strict < standard: the less permissive of the two wins.
  return wanted == Profile::strict || max == Profile::strict ? Profile::strict : Profile::standard;
}

Confinement::Confinement(SandboxKind kind, std::string bwrap_path, Profile max_profile)
    : kind_(kind), max_profile_(max_profile) {
  if (kind_ == SandboxKind::none) return;
  bwrap_ = find_program(bwrap_path);
  if (bwrap_.empty()) {
    unavailable_ = "bubblewrap ('" + bwrap_path + "') is not installed or not executable";
    return;
  }
  std::vector<std::string> probe = base_options(bwrap_);
  probe.insert(probe.end(), {"--", "/bin/true"});
  if (std::string error = run_probe(probe); !error.empty()) {
    unavailable_ = "bubblewrap cannot create namespaces here: " + error;
    return;
  }
  probe = base_options(bwrap_);
  probe.insert(probe.end(), {"--unshare-net", "--", "/bin/true"});
  if (std::string error = run_probe(probe); !error.empty()) {
    net_unavailable_ = "bubblewrap cannot create a network namespace here: " + error;
  }
}

grpc::Status Confinement::plan(const v1::ExecRequest& request, const fs::path& workspace,
                               const fs::path& workdir, ConfinementPlan& out) const {
  const v1::SandboxPolicy& policy = request.policy();
  if (kind_ == SandboxKind::none) {
    // Unconfined by the operator's choice: anything that asks for confinement is refused.
    if (!request.profile().empty() && request.profile() != "none") {
      return unenforceable("profile: '" + request.profile() +
                           "' cannot be enforced: this agent runs commands unconfined "
                           "(--sandbox none)");
    }
    if (policy.network() == v1::SandboxPolicy::NETWORK_NONE) {
      return unenforceable("policy.network: NETWORK_NONE cannot be enforced (--sandbox none)");
    }
    if (!policy.workspace_roots().empty() || !policy.writable_roots().empty()) {
      return unenforceable("policy: roots cannot be enforced (--sandbox none)");
    }
    out.effective_profile = "none";
    out.wrapper.clear();
    return grpc::Status::OK;
  }

  bool workspace_writable = policy.writable_roots().empty();
  for (const std::string& root : policy.writable_roots()) {
    if (root == kWorkspaceRoot) {
      workspace_writable = true;
    } else if (root != kTmpRoot) {  // /tmp is a private tmpfs: always writable
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "policy.writable_roots: '" + root +
                              "' is not a symbolic root (:workspace, :tmp); paths of the "
                              "client's machine mean nothing here");
    }
  }
  for (const std::string& root : policy.workspace_roots()) {
    if (root != kWorkspaceRoot && root != kTmpRoot) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "policy.workspace_roots: '" + root + "' is not a symbolic root (:workspace, :tmp)");
    }
  }
  if (!unavailable_.empty()) return unenforceable("sandbox: " + unavailable_);
  const Profile profile = clamp_profile(request.profile(), max_profile_);
  const bool no_network =
      profile == Profile::strict || policy.network() == v1::SandboxPolicy::NETWORK_NONE;
  if (no_network && !net_unavailable_.empty()) {
    return unenforceable("sandbox: " + net_unavailable_ + " (needed for " +
                         (profile == Profile::strict ? "profile strict" : "NETWORK_NONE") + ")");
  }
  out.effective_profile = std::string(profile_name(profile));
  out.wrapper = base_options(bwrap_);
  if (no_network) out.wrapper.emplace_back("--unshare-net");
  // After the tmpfs on /tmp, so a workspace below /tmp is bound on top of it.
  out.wrapper.insert(out.wrapper.end(),
                     {workspace_writable ? "--bind" : "--ro-bind", workspace.string(),
                      workspace.string(), "--chdir", workdir.string()});
  return grpc::Status::OK;
}

std::string Confinement::describe() const {
  if (kind_ == SandboxKind::none) {
    return "none: no confinement, commands run with the agent's own user and privileges";
  }
  std::string text = "bubblewrap (" + (bwrap_.empty() ? std::string("not found") : bwrap_) +
                     "), max profile " + std::string(profile_name(max_profile_));
  if (!unavailable_.empty()) text += "; every exec is refused: " + unavailable_;
  if (unavailable_.empty() && !net_unavailable_.empty()) {
    text += "; strict is refused: " + net_unavailable_;
  }
  return text;
}

}  // namespace sandbox::agent
