// No zombies, no orphans, no descriptor leaks: many cancelled and timed-out execs leave
// nothing behind in the agent (which runs in this process, so its fds are ours).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "integration/agent_exec_fixture.hpp"
#include "support/process_watch.hpp"

namespace sandbox::agent {
namespace {

using namespace std::chrono_literals;

constexpr int kExecs = 1000;
constexpr int kInFlight = 16;

std::vector<std::string> open_fds() {
  std::vector<std::string> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    fds.push_back(entry.path().filename().string() + " -> " +
                  std::filesystem::read_symlink(entry.path(), ec).string());
  }
  return fds;
}

std::string describe(const std::vector<std::string>& fds) {
  std::string text;
  for (const std::string& fd : fds) text += "\n  " + fd;
  return text;
}

// A zombie child of this process (the agent's children are ours): its pid, or 0.
pid_t zombie_child() {
  siginfo_t info{};
  if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return 0;  // ECHILD: none
  return info.si_pid;
}

struct Outcome {
  pid_t pid = 0;
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  int exit_code = -1;
  bool timed_out = false;
};

class AgentLeakTest : public AgentExecTest {
 protected:
  void SetUp() override {
    // Cancelled execs finish dying after their call ended: leave room so the limit never
    // refuses one here (the limit is tested elsewhere).
    options_.max_concurrent = 4 * kInFlight;
    start();
  }

  // Even i: cancelled by the client (no exec_id: killed at once); odd i: timeout_ms = 50.
  Outcome exec_one(int i) {
    v1::ExecRequest request = exec_request({"sh", "-c", "sleep 1000 & sleep 1000"});
    const bool by_timeout = i % 2 == 1;
    if (by_timeout) request.set_timeout_ms(50);
    OpenCall call(*stub_, request);
    Outcome outcome;
    v1::ExecResponse message;
    if (!call.reader->Read(&message) || !message.has_started()) return outcome;
    outcome.pid = static_cast<pid_t>(message.started().pid());
    if (!by_timeout) {
      outcome.code = call.cancel().error_code();
      return outcome;
    }
    std::string out;
    std::optional<v1::ExecResponse> exit;
    outcome.code = call.finish(out, exit).error_code();
    if (exit) {
      outcome.exit_code = exit->exit_code();
      outcome.timed_out = exit->exit().timed_out();
    }
    return outcome;
  }
};

TEST_F(AgentLeakTest, ThousandCancelledOrTimedOutExecsLeaveNoProcessZombieOrDescriptor) {
  // Whatever the agent and the channel open once (connection, pollers) is open after one exec.
  expect_well_formed(run({"true"}));
  const std::vector<std::string> before = open_fds();

  std::vector<Outcome> outcomes(kExecs);
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kInFlight; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < kExecs; i = next++) outcomes[i] = exec_one(i);
    });
  }
  for (std::thread& worker : workers) worker.join();

  for (int i = 0; i < kExecs; ++i) {
    const Outcome& o = outcomes[i];
    ASSERT_GT(o.pid, 0) << "exec " << i << " sent no started";
    if (i % 2 == 0) {
      EXPECT_EQ(o.code, grpc::StatusCode::CANCELLED) << "exec " << i;
    } else {
      EXPECT_EQ(o.code, grpc::StatusCode::OK) << "exec " << i;
      EXPECT_EQ(o.exit_code, 124) << "exec " << i;
      EXPECT_TRUE(o.timed_out) << "exec " << i;
    }
  }
  for (const Outcome& o : outcomes) {
    ASSERT_TRUE(sandbox::test::wait_until_group_gone(o.pid, kGroupGoneTimeout))
        << "process group " << o.pid << " still has live members (an orphan survived)";
  }
  // No event says when the agent closed a cancelled exec's descriptors (after its call
  // ended): poll, bounded. Each exec closes its pidfd right after reaping its child.
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  std::vector<std::string> after = open_fds();
  while (after.size() > before.size() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);
    after = open_fds();
  }
  EXPECT_EQ(after.size(), before.size())
      << "descriptors before:" << describe(before) << "\nafter:" << describe(after);
  for (const Outcome& o : outcomes) {
    EXPECT_FALSE(sandbox::test::process_exists(o.pid)) << "pid " << o.pid << " was not reaped";
  }
  EXPECT_EQ(zombie_child(), 0) << "a child of the agent is a zombie";
}

}  // namespace
}  // namespace sandbox::agent
