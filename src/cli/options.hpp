#pragma once
/// @file
/// `sandbox-run`'s command line: parsing and validation, no I/O.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/quantities.hpp"
#include "sandbox/runner_config.hpp"

namespace sandbox::cli {

/// Everything the command line of `sandbox-run` asks for, validated.
struct Options {
  /// `--address`: the agent's gRPC target. Empty: start a private local agent.
  std::string address;
  /// `--token-file`: file holding the bearer token (only with `--address`).
  std::string token_file;
  /// `--ca`, `--cert`, `--key`, `--server-name`: TLS / mTLS (only with `--address`).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
  /// `--allow-insecure`: a token may travel over a channel without TLS.
  bool allow_insecure = false;
  /// `--protocol v1|legacy`: the agent's generation (legacy only with `--address`).
  AgentProtocol protocol = AgentProtocol::v1;
  /// `--profile`, `--image`, `--workdir`, `--sandbox-id`: passed to the runner's config.
  std::string profile;
  std::string image;
  std::string workdir;
  std::string sandbox_id;
  /// `--env KEY=VALUE` (repeatable, the last value of a key wins); values verbatim.
  std::map<std::string, std::string> env;
  /// `--stdin`: send this process's whole stdin to the command.
  bool forward_stdin = false;
  /// `--json`: report as JSON lines on stdout (see `usage_text()`) instead of the raw bytes.
  bool json = false;
  /// `--timeout`: the command timeout; zero means the agent's default.
  std::chrono::milliseconds timeout{0};
  /// `--max-output`: per-stream output cap.
  std::optional<std::uint64_t> max_output_bytes;
  /// The command after `--`: non-empty.
  std::vector<std::string> argv;

  /// True when any TLS flag was given.
  [[nodiscard]] bool uses_tls() const noexcept {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty() || !server_name.empty();
  }
};

/// What the command line asks `sandbox-run` to do.
enum class Action {
  run,      ///< run `Options::argv`
  help,     ///< print `usage_text()`, exit 0
  version,  ///< print the version, exit 0
  error,    ///< print `ParsedArgs::error`, exit 125
};

/// The outcome of `parse_args`.
struct ParsedArgs {
  Action action = Action::error;
  Options options;
  /// For `Action::error`: one line naming the flag and the rule it broke, e.g.
  /// `--timeout: expected a duration such as 500ms, 30s, 5m, 1h or whole seconds, got "abc"`.
  std::string error;
};

/// Parses `sandbox-run`'s arguments (without the program name). `--help` and `--version`
/// win over any other flag before `--`; nothing after `--` is ever read as a flag.
/// `options.json` is set whenever `--json` appears before `--`, even for `Action::error`,
/// so that a command-line error is reported as a JSON line too.
ParsedArgs parse_args(std::span<const std::string_view> args);

/// Every flag `parse_args` accepts before `--`, `-h` included. The parser reads its flags
/// from this list, so a flag cannot be accepted without being listed (and documented).
std::span<const std::string_view> accepted_flags() noexcept;

/// The `--help` text.
std::string_view usage_text() noexcept;

}  // namespace sandbox::cli
