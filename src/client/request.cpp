#include "client/detail/request.hpp"

#include <cstdint>
#include <string_view>

#include "client/detail/retry_fsm.hpp"
#include "common/request_limits.hpp"
#include "common/utf8.hpp"
#include "common/uuid.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {
namespace {

constexpr std::size_t max_exec_id_length = 36;

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

Validation invalid(std::string message) {
  return {make_error_code(errc::invalid_argument), std::move(message)};
}

}  // namespace

Validation validate(const Command& cmd, AgentProtocol protocol, OutputUse use) {
  if (cmd.argv.empty()) return invalid("command: argv must not be empty");
  if (cmd.argv.front().empty()) return invalid("command[0]: the program name must not be empty");
  for (std::size_t i = 0; i < cmd.argv.size(); ++i) {
    if (has_nul(cmd.argv[i])) {
      return invalid("command[" + std::to_string(i) + "]: must not contain a NUL byte");
    }
    if (!is_utf8(cmd.argv[i])) {
      return invalid("command[" + std::to_string(i) + "]: must be UTF-8 (a protobuf string)");
    }
  }
  for (const auto& [key, value] : cmd.env) {
    if (key.empty()) return invalid("env: a variable name must not be empty");
    // A name that is not UTF-8 is not echoed either: it would make the message unprintable.
    if (!is_utf8(key)) return invalid("env: a variable name is not UTF-8 (a protobuf string)");
    if (key.find('=') != std::string::npos || has_nul(key)) {
      return invalid("env[" + key + "]: a variable name must not contain '=' or NUL");
    }
    // The value is never echoed: it may be a secret.
    if (has_nul(value)) return invalid("env[" + key + "]: the value must not contain a NUL byte");
    if (!is_utf8(value)) return invalid("env[" + key + "]: the value must be UTF-8");
  }
  if (cmd.workdir && has_nul(*cmd.workdir)) {
    return invalid("workdir: must not contain a NUL byte");
  }
  if (cmd.workdir && !is_utf8(*cmd.workdir)) return invalid("workdir: must be UTF-8");
  if (cmd.exec_id.size() > max_exec_id_length) {
    return invalid("exec_id: at most 36 characters");
  }
  for (unsigned char c : cmd.exec_id) {
    if (c <= 0x20 || c >= 0x7f) return invalid("exec_id: printable ASCII only, no spaces");
  }
  if (cmd.timeout.count() < 0) return invalid("timeout: must not be negative");
  if (cmd.deadline && cmd.deadline->count() <= 0) return invalid("deadline: must be positive");
  if (cmd.retry) {
    if (auto violation = retry_policy_violation(*cmd.retry); !violation.empty()) {
      return invalid(std::move(violation));
    }
  }
  if (protocol == AgentProtocol::legacy) {
    // The older agent generation reads request fields 1-5 only: anything else would be
    // dropped without a word.
    constexpr std::string_view needs_v1 = ": needs a v1 agent (protocol legacy)";
    if (!cmd.stdin_data.empty()) return invalid(std::string("stdin_data").append(needs_v1));
    if (cmd.timeout.count() != 0) {
      return invalid(std::string("timeout").append(needs_v1).append("; use deadline"));
    }
    if (!cmd.exec_id.empty()) return invalid(std::string("exec_id").append(needs_v1));
    if (use == OutputUse::stream && cmd.max_output_bytes) {
      return invalid(std::string("max_output_bytes").append(needs_v1).append(" for a stream"));
    }
  }
  return {};
}

void build_request(const RemoteRunnerConfig& config, Command& cmd, OutputUse use,
                   v1::ExecRequest& out) {
  // Empty strings are left unset: setting one allocates a string object per field, per call.
  if (!config.profile.empty()) out.set_profile(config.profile);
  if (!config.image.empty()) out.set_image(config.image);
  auto& command = *out.mutable_command();
  command.Reserve(static_cast<int>(cmd.argv.size()));
  for (auto& arg : cmd.argv) command.Add(std::move(arg));
  cmd.argv.clear();
  if (!config.env.empty() || !cmd.env.empty()) {
    auto& env = *out.mutable_env();
    for (const auto& [key, value] : config.env) env[key] = value;
    for (auto& [key, value] : cmd.env) env[key] = std::move(value);
    cmd.env.clear();
  }
  if (cmd.workdir) {
    out.set_workdir(std::move(*cmd.workdir));
    cmd.workdir.reset();
  } else if (!config.workdir.empty()) {
    out.set_workdir(config.workdir);
  }
  out.set_exec_id(cmd.exec_id.empty() ? random_uuid() : std::move(cmd.exec_id));
  cmd.exec_id.clear();
  if (!cmd.stdin_data.empty()) out.set_stdin(std::move(cmd.stdin_data));
  cmd.stdin_data.clear();
  out.set_timeout_ms(static_cast<std::uint64_t>(cmd.timeout.count()));
  const std::uint64_t default_cap = use == OutputUse::collect ? config.max_output_bytes : 0;
  out.set_max_output_bytes(cmd.max_output_bytes.value_or(default_cap));
}

Validation validate_size(const v1::ExecRequest& request) {
  std::string violation = request_size_violation(request);
  if (violation.empty()) return {};
  return invalid(std::move(violation));
}

std::optional<std::chrono::milliseconds> rpc_timeout(const RemoteRunnerConfig& config,
                                                     const Command& cmd) {
  if (cmd.deadline) return *cmd.deadline;
  if (cmd.timeout.count() > 0) return cmd.timeout + config.timeout_grace;
  if (config.default_deadline.count() > 0) return config.default_deadline;
  return std::nullopt;
}

}  // namespace sandbox::detail
