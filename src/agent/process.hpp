// Starting, signalling and reaping the command's process.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace sandbox::agent {

/// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const noexcept { return fd_; }
  /// Gives up ownership: the caller closes the returned descriptor.
  int release() noexcept { return std::exchange(fd_, -1); }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Everything needed to start a command; produced by validate_exec_request.
struct LaunchSpec {
  std::vector<std::string> argv;  ///< non-empty, argv[0] non-empty, no NUL bytes
  std::vector<std::string> env;   ///< the child's whole environment, "KEY=VALUE"
  std::filesystem::path workdir;  ///< absolute, existing directory
  /// `workdir` held open (O_PATH): the child fchdir()s to it, so a rename or a new symlink
  /// between validation and spawn cannot move the command elsewhere. Unset: chdir by path.
  UniqueFd workdir_fd;
  /// The sandbox's argv prefix (bwrap and its options, see confinement.hpp); empty: the
  /// command is started directly, unconfined.
  std::vector<std::string> wrapper;
  /// The profile `wrapper` enforces ("strict", "standard"), or "none".
  std::string effective_profile = "none";
  /// The resolved values of the `secret://` references in `env`: redacted from the output.
  /// Never logged. Not used to start the command.
  std::vector<std::string> secrets;
};

/// A started command. It leads its own process group (pgid == pid); the descriptors are the
/// parent's ends of its stdio pipes and a pidfd, all close-on-exec. The caller must reap
/// `pid` (waitpid) exactly once.
struct ChildProcess {
  pid_t pid = -1;
  UniqueFd stdin_fd;
  UniqueFd stdout_fd;
  UniqueFd stderr_fd;
  UniqueFd pidfd;  ///< readable once the child has terminated (it stays a zombie until reaped)
};

/// A command that could not start, reported the way a shell does.
struct SpawnFailure {
  int exit_code;        ///< 127: not found; 126: found but not executable
  std::string message;  ///< one line, "sandbox-agent: <argv0>: <reason>\n"
};

/// Starts `spec` with posix_spawn (the agent is multi-threaded: no fork). With a
/// `spec.wrapper`, what is started is the wrapper, which runs argv (resolved the same way);
/// the wrapper then leads the process group and its pid is the child's. The child gets its
/// own process group, default dispositions for every signal, an empty signal mask, stdio
/// pipes, `spec.workdir` as its cwd, exactly `spec.env`, and no other descriptor of the
/// agent. argv[0] without a '/' is resolved through the PATH in `spec.env` (relative PATH
/// entries and relative programs are relative to `spec.workdir`), not the agent's PATH.
///
/// @returns the child, or a SpawnFailure when the program is missing or not executable.
/// @throws std::system_error when the agent itself fails (pipes, pidfd_open); no child is
///   left behind in that case.
std::variant<ChildProcess, SpawnFailure> spawn_process(const LaunchSpec& spec);

/// Sends `sig` to process group `pgid`. Callers guarantee the group still exists or its
/// leader is not yet reaped (so the id cannot have been reused). No-op for pgid <= 0.
void signal_process_group(pid_t pgid, int sig) noexcept;

/// How a reaped process ended.
struct ExitStatus {
  int exit_code = 0;  ///< the exit status, or 128 + signal for a signal death (as a shell)
  int signal = 0;     ///< the terminating signal, 0 for a normal exit
};

/// Reaps `pid` (blocking waitpid, retried on EINTR) and decodes its status. Call it only when
/// the child is known to have terminated (its pidfd is readable), so it does not block.
ExitStatus reap_process(pid_t pid) noexcept;

}  // namespace sandbox::agent
