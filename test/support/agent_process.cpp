#include "support/agent_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace sandbox::test {
namespace {

using Clock = std::chrono::steady_clock;

int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(left.count(), 0));
}

// Waits (bounded) for our child `pid` to exit and reaps it. Returns the wait status, or
// nothing on timeout (the child is left running).
std::optional<int> wait_child(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    pollfd fd{pidfd, POLLIN, 0};
    while (::poll(&fd, 1, millis_until(deadline)) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  }
  int status = 0;
  pid_t reaped;
  while ((reaped = ::waitpid(pid, &status, WNOHANG)) < 0 && errno == EINTR) {
  }
  if (reaped == pid) return status;
  return std::nullopt;
}

int decode(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, int stderr_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
  if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  return pid;
}

}  // namespace

std::string agent_binary_path() {
#ifdef SANDBOX_AGENT_PATH
  return SANDBOX_AGENT_PATH;
#else
  throw std::runtime_error("sandbox-agent is not built (SANDBOX_BUILD_AGENT=OFF)");
#endif
}

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  const pid_t pid = spawn(argv, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  const auto deadline = Clock::now() + timeout;
  ProcessResult result;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.stdout_text, &result.stderr_text};
  int open_pipes = 2;
  while (open_pipes > 0 && Clock::now() < deadline) {
    if (::poll(fds, 2, millis_until(deadline)) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  std::optional<int> status = wait_child(pid, std::chrono::milliseconds(millis_until(deadline)));
  if (!status) {
    ::kill(pid, SIGKILL);
    wait_child(pid, std::chrono::seconds(10));
    throw std::runtime_error(argv[0] + " did not exit within " + std::to_string(timeout.count()) +
                             " ms");
  }
  result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  result.signal = WIFSIGNALED(*status) ? WTERMSIG(*status) : 0;
  return result;
}

AgentProcess::AgentProcess(std::vector<std::string> flags,
                           std::chrono::milliseconds ready_timeout) {
  std::vector<std::string> argv{agent_binary_path()};
  if (std::find(flags.begin(), flags.end(), "--listen") == flags.end()) {
    argv.push_back("--listen");
    argv.push_back("unix:" + (dir_.path() / "agent.sock").string());
  }
  argv.insert(argv.end(), flags.begin(), flags.end());

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_ = spawn(argv, out[1], -1);
  ::close(out[1]);
  stdout_fd_ = out[0];

  // Read up to the first newline, bounded: the agent prints exactly one line when ready.
  const auto deadline = Clock::now() + ready_timeout;
  std::string line;
  std::string failure;
  for (;;) {
    pollfd fd{stdout_fd_, POLLIN, 0};
    const int ready = ::poll(&fd, 1, millis_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      failure = "sandbox-agent printed no 'listening on' line within " +
                std::to_string(ready_timeout.count()) + " ms";
      break;
    }
    char c;
    const ssize_t n = ::read(stdout_fd_, &c, 1);
    if (n <= 0) {
      failure = "sandbox-agent exited before printing 'listening on' (see its stderr above)";
      break;
    }
    if (c == '\n') break;
    line += c;
  }
  constexpr std::string_view kPrefix = "listening on ";
  if (failure.empty() && !line.starts_with(kPrefix)) {
    failure = "sandbox-agent printed '" + line + "' instead of 'listening on ADDR'";
  }
  if (!failure.empty()) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, std::chrono::seconds(10));
    ::close(stdout_fd_);
    throw std::runtime_error(failure);
  }
  address_ = line.substr(kPrefix.size());
}

AgentProcess::~AgentProcess() {
  try {
    stop();
  } catch (const std::exception&) {
    // stop() already killed and reaped it; a destructor cannot report more.
  }
  ::close(stdout_fd_);
}

int AgentProcess::stop(std::chrono::milliseconds timeout) {
  if (exit_status_) return *exit_status_;
  ::kill(pid_, SIGTERM);
  std::optional<int> status = wait_child(pid_, timeout);
  if (!status) {
    ::kill(pid_, SIGKILL);
    status = wait_child(pid_, std::chrono::seconds(10));
    exit_status_ = status ? decode(*status) : 128 + SIGKILL;
    throw std::runtime_error("sandbox-agent did not exit within " +
                             std::to_string(timeout.count()) + " ms of SIGTERM");
  }
  exit_status_ = decode(*status);
  return *exit_status_;
}

}  // namespace sandbox::test
