#include "agent/request_validation.hpp"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "agent/workdir.hpp"
#include "common/request_limits.hpp"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSecretScheme = "secret://";
constexpr std::size_t kMaxExecIdLength = 36;

grpc::Status invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

grpc::Status check_command(const v1::ExecRequest& request) {
  if (request.command().empty()) return invalid("command: must not be empty");
  if (request.command(0).empty()) return invalid("command[0]: must not be empty");
  for (int i = 0; i < request.command_size(); ++i) {
    if (has_nul(request.command(i))) {
      return invalid("command[" + std::to_string(i) + "]: contains a NUL byte");
    }
  }
  return grpc::Status::OK;
}

grpc::Status check_env(const v1::ExecRequest& request, const SecretStore* secrets) {
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
    if (value.starts_with(kSecretScheme) && secrets == nullptr) {
      return invalid("env[" + std::string(key) +
                     "]: secret references need a secret store on the agent (not configured)");
    }
  }
  return grpc::Status::OK;
}

// Replaces every `secret://NAME` value of `env` by the secret and records it in `resolved`.
// Keys in sorted order (`env` is a std::map), so the first error does not depend on the
// request's map order. Messages name the key and the reference, never a value.
grpc::Status resolve_secrets(std::map<std::string, std::string>& env,
                             const v1::ExecRequest& request, const SecretStore& secrets,
                             std::vector<std::string>& resolved) {
  resolved.clear();
  for (auto& [key, value] : env) {
    const auto requested = request.env().find(key);
    if (requested == request.env().end() || !value.starts_with(kSecretScheme)) continue;
    const std::string name = value.substr(kSecretScheme.size());
    std::string secret;
    const SecretStore::Lookup result = secrets.lookup(name, secret);
    if (result != SecretStore::Lookup::found) {
      return invalid("env[" + key + "]: " + lookup_failure_message(name, result));
    }
    value = secret;
    resolved.push_back(std::move(secret));
  }
  // The resolved environment is bounded like the request's (sizes only in the message).
  std::size_t env_bytes = 0;
  for (const auto& [key, value] : env) {
    if (request.env().contains(key)) env_bytes += key.size() + value.size();
  }
  if (env_bytes > kMaxEnvBytes) {
    return invalid("env: " + std::to_string(env_bytes) +
                   " bytes in total with secrets resolved (names and values), at most " +
                   std::to_string(kMaxEnvBytes));
  }
  return grpc::Status::OK;
}

// argv, env and stdin sizes: the limits and words the SDK checks too (common/).
grpc::Status check_sizes(const v1::ExecRequest& request) {
  std::string violation = request_size_violation(request);
  return violation.empty() ? grpc::Status::OK : invalid(std::move(violation));
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
                                   LaunchSpec& spec, const SecretStore* secrets,
                                   const Confinement* confinement) {
  for (grpc::Status status : {check_command(request), check_env(request, secrets),
                              check_sizes(request), check_exec_id(request.exec_id())}) {
    if (!status.ok()) return status;
  }
  ResolvedWorkdir workdir;
  if (grpc::Status status = resolve_workdir(request.workdir(), workspace, workdir); !status.ok()) {
    return status;
  }
  ConfinementPlan confinement_plan;
  const Confinement unconfined(SandboxKind::none, {}, Profile::standard);
  if (grpc::Status status = (confinement ? *confinement : unconfined)
                                .plan(request, workspace, workdir.path, confinement_plan);
      !status.ok()) {
    return status;
  }

  std::map<std::string, std::string> env{
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
      {"HOME", workspace.string()},
      {"LANG", "C.UTF-8"},
  };
  for (const auto& [key, value] : request.env()) env[key] = value;
  spec.secrets.clear();
  if (secrets != nullptr) {
    if (grpc::Status status = resolve_secrets(env, request, *secrets, spec.secrets); !status.ok()) {
      return status;
    }
  }

  spec.argv.assign(request.command().begin(), request.command().end());
  spec.env.clear();
  spec.env.reserve(env.size());
  for (const auto& [key, value] : env) spec.env.push_back(key + "=" + value);
  spec.workdir = std::move(workdir.path);
  spec.workdir_fd = std::move(workdir.fd);
  spec.wrapper = std::move(confinement_plan.wrapper);
  spec.effective_profile = std::move(confinement_plan.effective_profile);
  return grpc::Status::OK;
}

}  // namespace sandbox::agent
