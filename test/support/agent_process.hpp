// The real sandbox-agent binary as a subprocess of a test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/temp_dir.hpp"

namespace sandbox::test {

/// Absolute path of the sandbox-agent binary built with the tests.
/// @throws std::runtime_error when the build has no agent (SANDBOX_BUILD_AGENT=OFF).
std::string agent_binary_path();

/// How a program run by run_process ended.
struct ProcessResult {
  int exit_code = -1;  ///< exit status, or -1 when killed by a signal
  int signal = 0;      ///< terminating signal, 0 for a normal exit
  std::string stdout_text;
  std::string stderr_text;
};

/// Runs `argv` (argv[0] a path) to completion, capturing stdout and stderr, with stdin from
/// /dev/null. @throws std::runtime_error when it has not exited after `timeout` (it is
/// killed and reaped first) or cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// A running sandbox-agent: started with `flags` plus, unless they contain `--listen`,
/// `--listen unix:<own temporary directory>/agent.sock`. The constructor returns once the
/// agent printed `listening on ADDR`. Its stderr (logs) goes to the test's stderr.
/// Not copyable or movable; use from one thread.
class AgentProcess {
 public:
  /// @throws std::runtime_error when the agent exits or prints nothing within
  ///   `ready_timeout`, naming what did not happen (the agent is killed and reaped first).
  explicit AgentProcess(std::vector<std::string> flags = {"--allow-unauthenticated"},
                        std::chrono::milliseconds ready_timeout = std::chrono::seconds(30));
  /// stop(), ignoring its result; SIGKILL if the agent does not exit in time.
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  /// The address the agent printed: "unix:/tmp/.../agent.sock" or "127.0.0.1:PORT".
  const std::string& address() const noexcept { return address_; }
  pid_t pid() const noexcept { return pid_; }
  /// The agent's own temporary directory (holds the default socket).
  const std::filesystem::path& directory() const noexcept { return dir_.path(); }

  /// Sends SIGTERM and waits for the agent to exit. Returns its exit status (128 + N for a
  /// death by signal N). Idempotent: later calls return the same status.
  /// @throws std::runtime_error when it has not exited after `timeout` (then SIGKILLed).
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::optional<int> exit_status_;
};

}  // namespace sandbox::test
