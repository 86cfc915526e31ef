// Checks on processes that are not the test's children (a command run by an agent).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>

namespace sandbox::test {

/// True while `pid` exists at all, running or zombie (/proc/<pid> is present). After an
/// agent reaped its child this is false (barring pid reuse).
bool process_exists(pid_t pid);

/// True when `pid` exists and is not a zombie.
bool process_alive(pid_t pid);

/// The live (non-zombie) processes whose process group is `pgid`.
std::vector<pid_t> live_group_members(pid_t pgid);

/// Waits until `pid` is no longer alive (exited: zombie or reaped), event-driven via a
/// pidfd. Returns false if it is still alive after `timeout`.
bool wait_until_not_alive(pid_t pid, std::chrono::milliseconds timeout);

/// Waits until no live process is left in process group `pgid`. Returns false if some
/// member is still alive after `timeout`.
bool wait_until_group_gone(pid_t pgid, std::chrono::milliseconds timeout);

}  // namespace sandbox::test
