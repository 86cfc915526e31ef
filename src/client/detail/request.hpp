#pragma once
// The one place a call is validated and turned into an ExecRequest.

#include <chrono>
#include <optional>
#include <string>
#include <system_error>

#include "sandbox/command.hpp"
#include "sandbox/runner_config.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::detail {

/// Outcome of validating a command: an error naming the field and the rule, or success.
struct Validation {
  std::error_code error;
  std::string message;
  explicit operator bool() const noexcept { return !error; }
};

/// How a call consumes output, which decides the default output cap.
enum class OutputUse {
  collect,  ///< exec(): capped at `RemoteRunnerConfig::max_output_bytes` by default
  stream,   ///< stream(): the consumer bounds memory; no cap unless the command sets one
};

/// Checks `cmd` against the rules of docs/behavior.md (argv non-empty, no NUL bytes, env
/// names, exec_id shape), and against what an agent speaking `protocol` can honour
/// (AgentProtocol::legacy: no stdin, timeout, exec id, or a stream's output cap). No I/O.
Validation validate(const Command& cmd, AgentProtocol protocol = AgentProtocol::v1,
                    OutputUse use = OutputUse::collect);

/// Fills `out` from the runner's defaults and `cmd`'s overrides. `cmd` must be valid.
/// Generates a UUID v4 exec_id when `cmd.exec_id` is empty. Env values (including
/// `secret://` references) are passed verbatim. Moves `cmd`'s strings (argv, env, workdir,
/// stdin_data, exec_id) into `out` and leaves them empty: a call owns its command, and
/// copying them cost an allocation per string per call. The rest of `cmd` is left as it was.
void build_request(const RemoteRunnerConfig& config, Command& cmd, OutputUse use,
                   v1::ExecRequest& out);

/// Checks the request built from a command (runner defaults merged) against the size limits
/// every agent enforces (argv, env, stdin; docs/behavior.md section 2), so an oversized
/// request fails here, before any I/O, with the agent's own wording.
Validation validate_size(const v1::ExecRequest& request);

/// The RPC deadline relative to the call's start: the call's own deadline, else the command
/// timeout plus the runner's grace, else the runner's default; nullopt for none.
std::optional<std::chrono::milliseconds> rpc_timeout(const RemoteRunnerConfig& config,
                                                     const Command& cmd);

}  // namespace sandbox::detail
