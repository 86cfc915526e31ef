#include "common/request_limits.hpp"

#include <cstdint>
#include <string_view>

namespace sandbox {
namespace {

// "command: 5000 arguments, at most 4096": the field, what was found, the rule's limit.
std::string over_limit(std::string_view field, std::size_t found, std::uint64_t limit,
                       std::string_view unit) {
  return std::string(field) + ": " + std::to_string(found) + " " + std::string(unit) +
         ", at most " + std::to_string(limit);
}

}  // namespace

std::string request_size_violation(const v1::ExecRequest& request) {
  const auto argv_count = static_cast<std::size_t>(request.command_size());
  if (argv_count > kMaxArgvEntries) {
    return over_limit("command", argv_count, kMaxArgvEntries, "arguments");
  }
  std::size_t argv_bytes = 0;
  for (const std::string& arg : request.command()) argv_bytes += arg.size();
  if (argv_bytes > kMaxArgvBytes) {
    return over_limit("command", argv_bytes, kMaxArgvBytes, "bytes in total");
  }
  if (request.env().size() > kMaxEnvEntries) {
    return over_limit("env", request.env().size(), kMaxEnvEntries, "entries");
  }
  // Sizes only: a message never carries a value (it may be a secret).
  std::size_t env_bytes = 0;
  for (const auto& [key, value] : request.env()) env_bytes += key.size() + value.size();
  if (env_bytes > kMaxEnvBytes) {
    return over_limit("env", env_bytes, kMaxEnvBytes, "bytes in total (names and values)");
  }
  if (request.stdin().size() > kMaxStdinBytes) {
    return over_limit("stdin", request.stdin().size(), kMaxStdinBytes, "bytes");
  }
  return {};
}

}  // namespace sandbox
