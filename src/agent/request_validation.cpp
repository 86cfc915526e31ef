#include "agent/request_validation.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <system_error>

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSecretScheme = "secret://";
constexpr std::size_t kMaxExecIdLength = 36;

// "command: 5000 arguments, at most 4096": the field, what was found, the rule's limit.
grpc::Status over_limit(std::string_view field, std::size_t found, std::uint64_t limit,
                        std::string_view unit) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      std::string(field) + ": " + std::to_string(found) + " " + std::string(unit) +
                          ", at most " + std::to_string(limit));
}

grpc::Status invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

grpc::Status unsupported(std::string message) {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, std::move(message));
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// True when `path` is `root` or below it; both absolute and normalised.
bool is_within(const fs::path& path, const fs::path& root) {
  auto [root_end, path_it] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  // A trailing empty component ("/ws/") matches anything below it.
  return root_end == root.end() || (std::next(root_end) == root.end() && root_end->empty());
}

grpc::Status check_command(const v1::ExecRequest& request) {
  if (request.command().empty()) return invalid("command: must not be empty");
  if (static_cast<std::size_t>(request.command_size()) > kMaxArgvEntries) {
    return over_limit("command", request.command_size(), kMaxArgvEntries, "arguments");
  }
  std::size_t argv_bytes = 0;
  for (const std::string& arg : request.command()) argv_bytes += arg.size();
  if (argv_bytes > kMaxArgvBytes) {
    return over_limit("command", argv_bytes, kMaxArgvBytes, "bytes in total");
  }
  if (request.command(0).empty()) return invalid("command[0]: must not be empty");
  for (int i = 0; i < request.command_size(); ++i) {
    if (has_nul(request.command(i))) {
      return invalid("command[" + std::to_string(i) + "]: contains a NUL byte");
    }
  }
  return grpc::Status::OK;
}

grpc::Status check_env(const v1::ExecRequest& request) {
  if (request.env().size() > kMaxEnvEntries) {
    return over_limit("env", request.env().size(), kMaxEnvEntries, "entries");
  }
  // Sizes only: a message never carries a value (it may be a secret).
  std::size_t env_bytes = 0;
  for (const auto& [key, value] : request.env()) env_bytes += key.size() + value.size();
  if (env_bytes > kMaxEnvBytes) {
    return over_limit("env", env_bytes, kMaxEnvBytes, "bytes in total (names and values)");
  }
  // Sorted so that the first error reported does not depend on map iteration order.
  const std::map<std::string_view, std::string_view> env(request.env().begin(),
                                                         request.env().end());
  for (const auto& [key, value] : env) {
    if (key.empty()) return invalid("env: key must not be empty");
    if (has_nul(key)) return invalid("env: a key contains a NUL byte");
    if (key.find('=') != std::string_view::npos) {
      return invalid("env[" + std::string(key) + "]: key must not contain '='");
    }
    if (has_nul(value)) return invalid("env[" + std::string(key) + "]: value contains a NUL byte");
    if (value.starts_with(kSecretScheme)) {
      return invalid("env[" + std::string(key) +
                     "]: secret references need a secret store on the agent (not configured)");
    }
  }
  return grpc::Status::OK;
}

grpc::Status check_stdin(const v1::ExecRequest& request) {
  if (request.stdin().size() > kMaxStdinBytes) {
    return over_limit("stdin", request.stdin().size(), kMaxStdinBytes, "bytes");
  }
  return grpc::Status::OK;
}

grpc::Status check_exec_id(const std::string& exec_id) {
  if (exec_id.size() > kMaxExecIdLength) {
    return invalid("exec_id: must be at most 36 characters");
  }
  for (unsigned char c : exec_id) {
    if (c < 0x21 || c > 0x7e) return invalid("exec_id: must be printable ASCII without spaces");
  }
  return grpc::Status::OK;
}

// This agent confines nothing (effective profile "none"): a request for confinement fails
// closed instead of running unconfined.
grpc::Status check_confinement(const v1::ExecRequest& request) {
  if (!request.profile().empty() && request.profile() != "none") {
    return unsupported("profile: '" + request.profile() +
                       "' cannot be enforced: this agent runs commands unconfined (profile "
                       "'none')");
  }
  if (request.has_policy()) {
    const v1::SandboxPolicy& policy = request.policy();
    if (policy.network() == v1::SandboxPolicy::NETWORK_NONE) {
      return unsupported("policy.network: NETWORK_NONE cannot be enforced by this agent");
    }
    if (!policy.workspace_roots().empty()) {
      return unsupported("policy.workspace_roots: cannot be enforced by this agent");
    }
    if (!policy.writable_roots().empty()) {
      return unsupported("policy.writable_roots: cannot be enforced by this agent");
    }
  }
  return grpc::Status::OK;
}

grpc::Status resolve_workdir(const std::string& workdir, const fs::path& workspace,
                             fs::path& resolved) {
  if (workdir.empty()) {
    resolved = workspace;
    return grpc::Status::OK;
  }
  if (has_nul(workdir)) return invalid("workdir: contains a NUL byte");
  const fs::path lexical = (workspace / workdir).lexically_normal();
  if (!is_within(lexical, workspace)) return invalid("workdir: must be inside the workspace");
  std::error_code ec;
  const fs::path real = fs::canonical(lexical, ec);
  if (ec) return invalid("workdir: does not exist");
  if (!is_within(real, workspace)) {
    return invalid("workdir: resolves outside the workspace (through a symlink)");
  }
  if (!fs::is_directory(real, ec)) return invalid("workdir: is not a directory");
  resolved = real;
  return grpc::Status::OK;
}

}  // namespace

grpc::Status validate_cancel_request(const v1::CancelRequest& request) {
  if (request.exec_id().empty()) return invalid("exec_id: must not be empty");
  if (grpc::Status status = check_exec_id(request.exec_id()); !status.ok()) return status;
  if (!v1::CancelSignal_IsValid(request.signal())) {
    return invalid("signal: unknown value " + std::to_string(request.signal()) +
                   " (CANCEL_SIGNAL_TERM or CANCEL_SIGNAL_KILL)");
  }
  return grpc::Status::OK;
}

grpc::Status validate_exec_request(const v1::ExecRequest& request, const fs::path& workspace,
                                   LaunchSpec& spec) {
  for (grpc::Status status : {check_command(request), check_env(request), check_stdin(request),
                              check_exec_id(request.exec_id()), check_confinement(request)}) {
    if (!status.ok()) return status;
  }
  fs::path workdir;
  if (grpc::Status status = resolve_workdir(request.workdir(), workspace, workdir); !status.ok()) {
    return status;
  }

  std::map<std::string, std::string> env{
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", workspace.string()},
      {"LANG", "C.UTF-8"},
  };
  for (const auto& [key, value] : request.env()) env[key] = value;

  spec.argv.assign(request.command().begin(), request.command().end());
  spec.env.clear();
  spec.env.reserve(env.size());
  for (const auto& [key, value] : env) spec.env.push_back(key + "=" + value);
  spec.workdir = std::move(workdir);
  return grpc::Status::OK;
}

}  // namespace sandbox::agent
