#include "agent/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

namespace sandbox::agent {
namespace {

std::system_error errno_error(const char* what) {
  return std::system_error(errno, std::generic_category(), what);
}

SpawnFailure failure(const std::string& argv0, int exit_code, std::string_view reason) {
  return SpawnFailure{exit_code, "sandbox-agent: " + argv0 + ": " + std::string(reason) + "\n"};
}

std::string_view env_value(const std::vector<std::string>& env, std::string_view key) {
  for (const std::string& entry : env) {
    if (entry.size() > key.size() && entry[key.size()] == '=' && entry.starts_with(key)) {
      return std::string_view(entry).substr(key.size() + 1);
    }
  }
  return {};
}

// Where the shell would find argv[0]: the program path, or why it cannot run.
std::variant<std::string, SpawnFailure> resolve_program(const LaunchSpec& spec) {
  const std::string& argv0 = spec.argv.front();
  auto absolute = [&](std::string_view path) {
    return path.starts_with('/') ? std::string(path) : (spec.workdir / path).string();
  };
  if (argv0.find('/') != std::string::npos) {
    std::string path = absolute(argv0);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return failure(argv0, errno == ENOENT ? 127 : 126, std::strerror(errno));
    if (S_ISDIR(st.st_mode)) return failure(argv0, 126, "Is a directory");
    if (::access(path.c_str(), X_OK) != 0) return failure(argv0, 126, std::strerror(errno));
    return path;
  }
  bool found_not_executable = false;
  std::string_view search = env_value(spec.env, "PATH");
  for (;;) {
    const std::size_t colon = search.find(':');
    std::string_view dir = search.substr(0, colon);
    if (dir.empty()) dir = ".";  // POSIX: an empty PATH entry is the current directory
    std::string path = absolute(std::string(dir) + "/" + argv0);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(path.c_str(), X_OK) == 0) return path;
      found_not_executable = true;
    }
    if (colon == std::string_view::npos) break;
    search.remove_prefix(colon + 1);
  }
  if (found_not_executable) return failure(argv0, 126, "Permission denied");
  return failure(argv0, 127, "command not found");
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  // O_CLOEXEC: a concurrent spawn must never inherit another command's pipe ends.
  if (::pipe2(fds, O_CLOEXEC) != 0) throw errno_error("pipe2");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// Output pipes of 256 KiB: a command that writes fast blocks, and wakes the agent, 4 times
// less often than with the 64 KiB default (1 MiB, Linux's unprivileged maximum, measured no
// faster: docs/performance.md). Capacity counts against the user's pipe-user-pages-soft
// (64 MiB by default, for every pipe of that user, commands' own included): 256 KiB keeps 64
// concurrent execs at half of it. Best effort: the default size still works.
constexpr int kOutputPipeBytes = 256 << 10;

Pipe make_output_pipe() {
  Pipe pipe = make_pipe();
  (void)::fcntl(pipe.write.get(), F_SETPIPE_SZ, kOutputPipeBytes);
  return pipe;
}

// RAII for the posix_spawn attribute objects.
struct SpawnAttributes {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnAttributes() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
};

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> result;
  result.reserve(strings.size() + 1);
  for (const std::string& s : strings) result.push_back(const_cast<char*>(s.c_str()));
  result.push_back(nullptr);
  return result;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

std::variant<ChildProcess, SpawnFailure> spawn_process(const LaunchSpec& spec) {
  auto resolved = resolve_program(spec);
  if (auto* failed = std::get_if<SpawnFailure>(&resolved)) return std::move(*failed);
  const std::string& program = std::get<std::string>(resolved);

  Pipe in = make_pipe();
  Pipe out = make_output_pipe();
  Pipe err = make_output_pipe();

  SpawnAttributes sa;
  // dup2 clears close-on-exec on the target, so exactly these three reach the child;
  // closefrom(3) also drops any descriptor a library opened without O_CLOEXEC.
  posix_spawn_file_actions_adddup2(&sa.actions, in.read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&sa.actions, out.write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&sa.actions, err.write.get(), STDERR_FILENO);
  // Before closefrom(3), which closes the workdir's descriptor too.
  if (spec.workdir_fd) {
    posix_spawn_file_actions_addfchdir_np(&sa.actions, spec.workdir_fd.get());
  } else {
    posix_spawn_file_actions_addchdir_np(&sa.actions, spec.workdir.c_str());
  }
  posix_spawn_file_actions_addclosefrom_np(&sa.actions, 3);

  // Own process group (pgid = pid) so the whole tree can be signalled at once; default
  // dispositions because the agent ignores SIGPIPE and a child must not inherit that.
  sigset_t all_signals;
  sigset_t no_signals;
  sigfillset(&all_signals);
  sigemptyset(&no_signals);
  posix_spawnattr_setflags(&sa.attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&sa.attr, 0);
  posix_spawnattr_setsigdefault(&sa.attr, &all_signals);
  posix_spawnattr_setsigmask(&sa.attr, &no_signals);

  std::vector<std::string> wrapped;
  if (!spec.wrapper.empty()) {
    // bwrap execvp()s argv[0] itself, with spec.env's PATH and from spec.workdir, as the
    // resolution above did (bubblewrap 0.8 has no --argv0 to pass `program` instead).
    wrapped = spec.wrapper;
    wrapped.emplace_back("--");
    wrapped.insert(wrapped.end(), spec.argv.begin(), spec.argv.end());
  }
  const std::vector<std::string>& full_argv = spec.wrapper.empty() ? spec.argv : wrapped;
  const std::string& executable = spec.wrapper.empty() ? program : spec.wrapper.front();
  std::vector<char*> argv = c_strings(full_argv);
  std::vector<char*> envp = c_strings(spec.env);
  pid_t pid = -1;
  // glibc's posix_spawn reports exec and chdir failures of the child as its return value.
  const int rc =
      ::posix_spawn(&pid, executable.c_str(), &sa.actions, &sa.attr, argv.data(), envp.data());
  if (rc != 0) {
    return failure(spec.argv.front(), rc == ENOENT ? 127 : 126, std::strerror(rc));
  }

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int saved = errno;
    signal_process_group(pid, SIGKILL);
    reap_process(pid);
    throw std::system_error(saved, std::generic_category(), "pidfd_open");
  }
  ChildProcess child;
  child.pid = pid;
  child.pidfd = UniqueFd(pidfd);
  child.stdin_fd = std::move(in.write);
  child.stdout_fd = std::move(out.read);
  child.stderr_fd = std::move(err.read);
  return child;
}

void signal_process_group(pid_t pgid, int sig) noexcept {
  if (pgid > 0) ::kill(-pgid, sig);
}

ExitStatus reap_process(pid_t pid) noexcept {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ExitStatus{};
  }
  if (WIFSIGNALED(status)) return ExitStatus{128 + WTERMSIG(status), WTERMSIG(status)};
  return ExitStatus{WEXITSTATUS(status), 0};
}

}  // namespace sandbox::agent
