#include "cli/local_agent.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "sandbox/error.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX declares it nowhere

namespace sandbox::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::string_view listening_prefix = "listening on ";
/// Enough of the agent's output to explain a failed start.
constexpr std::size_t tail_limit = 4096;

[[noreturn]] void fail(const std::string& message) {
  throw std::system_error(make_error_code(errc::unavailable), message);
}

/// poll() on one fd for at most `timeout`, restarting after signals. True when ready.
bool poll_one(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

/// Reads the agent's stdout+stderr pipe on its own thread until EOF or `stop()`: the agent
/// must never block on a full pipe, and the first `listening on ADDR` line is the readiness
/// signal. Keeps only a bounded tail of what it read.
class LocalAgent::OutputDrain {
 public:
  explicit OutputDrain(int fd) : fd_(fd), wake_(::eventfd(0, EFD_CLOEXEC)) {
    if (wake_ < 0) {
      ::close(fd_);
      throw std::system_error(errno, std::system_category(), "eventfd");
    }
    thread_ = std::thread([this] { run(); });
  }
  OutputDrain(const OutputDrain&) = delete;
  OutputDrain& operator=(const OutputDrain&) = delete;
  ~OutputDrain() { stop(); }

  /// Waits until the agent printed its address, closed its output, or `timeout` passed.
  std::optional<std::string> wait_for_address(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return address_.has_value() || eof_; });
    return address_;
  }

  /// True once the agent's output reached EOF.
  bool closed() const {
    std::lock_guard lock(mutex_);
    return eof_;
  }

  std::string tail() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

  void stop() noexcept {
    if (!thread_.joinable()) return;
    std::uint64_t one = 1;
    // An eventfd write of 1 cannot block or fail short; the thread wakes from poll().
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
    thread_.join();
    ::close(fd_);
    ::close(wake_);
  }

 private:
  void run() {
    std::vector<char> buffer(4096);
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_, POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[1].revents != 0) break;
      ssize_t n = ::read(fd_, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      append(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    }
    std::lock_guard lock(mutex_);
    eof_ = true;
    cv_.notify_all();
  }

  void append(std::string_view data) {
    std::lock_guard lock(mutex_);
    text_.append(data);
    if (!address_) {
      // Only complete lines count: the address may arrive split across reads.
      if (auto at = text_.find(listening_prefix); at != std::string::npos) {
        auto begin = at + listening_prefix.size();
        if (auto end = text_.find('\n', begin); end != std::string::npos) {
          address_ = text_.substr(begin, end - begin);
          cv_.notify_all();
        }
      }
    }
    if (text_.size() > 2 * tail_limit) text_.erase(0, text_.size() - tail_limit);
  }

  int fd_;
  int wake_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string text_;                    // guarded by mutex_
  std::optional<std::string> address_;  // guarded by mutex_
  bool eof_ = false;                    // guarded by mutex_
};

std::optional<std::string> find_agent_binary() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto candidate = self.parent_path() / "sandbox-agent";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "";
  while (!dirs.empty()) {
    auto colon = dirs.find(':');
    auto dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    if (dir.empty()) continue;
    auto candidate = fs::path(dir) / "sandbox-agent";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

std::unique_ptr<LocalAgent> LocalAgent::start(const Options& options) {
  std::unique_ptr<LocalAgent> agent(new LocalAgent());
  agent->stop_timeout_ = options.stop_timeout;

  // mkdtemp makes the directory 0700: only this user can reach the unauthenticated socket.
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sandbox-run.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    fail("cannot create a private directory for the local agent (" + pattern +
         "): " + std::strerror(errno));
  }
  agent->dir_ = pattern;
  const std::string socket = agent->dir_ + "/agent.sock";
  if (socket.size() >= sizeof(sockaddr_un::sun_path)) {
    fail("the local agent's socket path is too long for a unix socket (" + socket +
         "); set TMPDIR to a shorter directory");
  }
  // From here on, the destructor (via `agent`) cleans up whatever was made.

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) fail(std::string("pipe2: ") + std::strerror(errno));

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  // This program may ignore SIGPIPE or have signals blocked; the agent starts clean.
  sigset_t defaults;
  sigset_t none;
  ::sigemptyset(&none);
  ::sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::sigaddset(&defaults, sig);
  ::posix_spawnattr_setsigdefault(&attr, &defaults);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  const std::string listen = "unix:" + socket;
  std::vector<std::string> args = {options.binary, "--listen", listen, "--workspace",
                                   options.workspace};
  // The agent needs --allow-unauthenticated only when it has no way to authenticate; with
  // one it is harmless but reads as if the agent admitted everyone.
  const bool authenticated = std::any_of(
      options.extra_flags.begin(), options.extra_flags.end(),
      [](const std::string& flag) { return flag == "--token-file" || flag == "--client-ca"; });
  if (!authenticated) args.emplace_back("--allow-unauthenticated");
  args.insert(args.end(), options.extra_flags.begin(), options.extra_flags.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, options.binary.c_str(), &actions, &attr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  ::close(pipe_fds[1]);
  if (rc != 0) {
    ::close(pipe_fds[0]);
    fail("cannot start the local agent " + options.binary + ": " + std::strerror(rc));
  }
  agent->pid_ = pid;
  agent->pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  agent->drain_ = std::make_unique<OutputDrain>(pipe_fds[0]);

  auto address = agent->drain_->wait_for_address(options.startup_timeout);
  if (!address) {
    auto tail = agent->output_tail();
    fail("the local agent " + options.binary +
         (agent->drain_->closed() ? " exited before reporting 'listening on'"
                                  : " did not report 'listening on' within " +
                                        std::to_string(options.startup_timeout.count()) + "ms") +
         (tail.empty() ? std::string() : "; its output: " + tail));
  }
  agent->address_ = *address;
  return agent;
}

LocalAgent::~LocalAgent() { stop(); }

std::string LocalAgent::output_tail() const {
  std::string tail = drain_ ? drain_->tail() : std::string();
  if (tail.size() > 512) tail.erase(0, tail.size() - 512);
  return tail;
}

void LocalAgent::stop() noexcept {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    // A pidfd turns "wait at most N ms for the exit" into one poll(). Without one (kernel
    // < 5.3) there is no bounded wait to do: go straight to SIGKILL.
    bool exited = pidfd_ >= 0 && poll_one(pidfd_, stop_timeout_);
    if (!exited) {
      // The agent's process group: the agent plus anything it left in it. The pid is not
      // reaped yet, so the group id cannot have been reused.
      ::killpg(pid_, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  if (pidfd_ >= 0) {
    ::close(pidfd_);
    pidfd_ = -1;
  }
  if (drain_) drain_->stop();
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
}

}  // namespace sandbox::cli
