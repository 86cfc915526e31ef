#pragma once
/// @file
/// A private `sandbox-agent` for one run of a program: on a unix socket in its own 0700
/// temporary directory, stopped and cleaned up with the object.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sandbox::cli {

/// Finds the `sandbox-agent` binary: next to this program's own executable
/// (`/proc/self/exe`), else on `PATH`. `std::nullopt` when neither has one.
std::optional<std::string> find_agent_binary();

/// A running private agent.
///
/// Started with `--listen unix:<dir>/agent.sock --allow-unauthenticated --workspace <dir>`
/// plus `Options::extra_flags` (without `--allow-unauthenticated` when those name a
/// `--token-file` or `--client-ca`), in a fresh 0700 directory under `$TMPDIR` (else
/// `/tmp`), in its own process group (so a terminal's Ctrl-C reaches only this program,
/// which then stops the agent in order). Its stdout and stderr go to a pipe this object
/// drains, keeping the last few KiB for error messages. The destructor stops it: SIGTERM, a bounded
/// wait, then SIGKILL; then it removes the directory. Not copyable or movable: one object, one
/// process.
class LocalAgent {
 public:
  struct Options {
    /// Path of the `sandbox-agent` binary.
    std::string binary;
    /// The agent's workspace root.
    std::string workspace;
    /// Bound on the wait for the `listening on ADDR` line.
    std::chrono::milliseconds startup_timeout{10'000};
    /// Bound on the wait for the agent to exit after SIGTERM, before SIGKILL.
    std::chrono::milliseconds stop_timeout{5'000};
    /// More flags for the agent, after the ones above (e.g. `--tls-cert FILE --tls-key FILE
    /// --client-ca FILE --token-file FILE`). A `--token-file` or `--client-ca` among them
    /// drops `--allow-unauthenticated`, which an agent that authenticates does not need.
    std::vector<std::string> extra_flags{};
  };

  /// Starts the agent and waits (bounded) until it printed `listening on ADDR`.
  ///
  /// @throws std::system_error (`sandbox::errc::unavailable`) when it cannot be spawned,
  ///   exits or stays silent past `startup_timeout`; the message has its last output.
  ///   Nothing is left behind then.
  static std::unique_ptr<LocalAgent> start(const Options& options);

  LocalAgent(const LocalAgent&) = delete;
  LocalAgent& operator=(const LocalAgent&) = delete;
  /// `stop()`.
  ~LocalAgent();

  /// The gRPC target the agent reported (`unix:/.../agent.sock`).
  [[nodiscard]] const std::string& address() const noexcept { return address_; }
  /// The agent's process id (until `stop()`).
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  /// The agent's recent output (bounded), for error messages.
  [[nodiscard]] std::string output_tail() const;

  /// Stops the agent (SIGTERM, bounded wait, SIGKILL), reaps it and removes its directory.
  /// Idempotent; never throws; bounded by `stop_timeout` plus the SIGKILL.
  void stop() noexcept;

 private:
  class OutputDrain;
  LocalAgent() = default;

  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::string dir_;
  std::string address_;
  std::chrono::milliseconds stop_timeout_{0};
  std::unique_ptr<OutputDrain> drain_;
};

}  // namespace sandbox::cli
