#include "support/process_watch.hpp"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace sandbox::test {
namespace {

struct ProcStat {
  char state = '?';
  pid_t pgid = 0;
};

// Parses /proc/<pid>/stat; false when the process does not exist.
bool read_stat(pid_t pid, ProcStat& stat) {
  std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!file || !std::getline(file, line)) return false;
  // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
  const std::size_t close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  pid_t ppid = 0;
  rest >> stat.state >> ppid >> stat.pgid;
  return static_cast<bool>(rest);
}

}  // namespace

bool process_exists(pid_t pid) {
  ProcStat stat;
  return read_stat(pid, stat);
}

bool process_alive(pid_t pid) {
  ProcStat stat;
  return read_stat(pid, stat) && stat.state != 'Z' && stat.state != 'X';
}

std::vector<pid_t> live_group_members(pid_t pgid) {
  std::vector<pid_t> members;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    ProcStat stat;
    if (read_stat(pid, stat) && stat.pgid == pgid && stat.state != 'Z' && stat.state != 'X') {
      members.push_back(pid);
    }
  }
  return members;
}

bool wait_until_not_alive(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH || !process_alive(pid);
  bool gone = false;
  for (;;) {
    // A pidfd polls readable once the process has exited (zombie or reaped).
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd fd{pidfd, POLLIN, 0};
    const int ready = ::poll(&fd, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (ready > 0) gone = true;
    if (ready >= 0 || errno != EINTR) break;
  }
  ::close(pidfd);
  return gone || !process_alive(pid);
}

bool wait_until_group_gone(pid_t pgid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::vector<pid_t> members = live_group_members(pgid);
    if (members.empty()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    wait_until_not_alive(members.front(), left);
  }
}

}  // namespace sandbox::test
