// RemoteRunner::exec against the real agent (in-process, unix socket, real processes).

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <fstream>

#include "fakes/agent_fixture.hpp"
#include "fakes/io_harness.hpp"
#include "support/process_watch.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using RunnerAgentTest = RealAgentTest;

TEST_F(RunnerAgentTest, ResultHasStdoutStderrAndExitCode42) {
  auto result = run_bounded(io_, runner_->exec({"sh", "-c", "echo out; echo err >&2; exit 42"}));
  EXPECT_EQ(result.exit_code(), 42);
  EXPECT_EQ(result.stdout_data, "out\n");
  EXPECT_EQ(result.stderr_data, "err\n");
  EXPECT_EQ(result.status.signal, 0);
  EXPECT_FALSE(result.status.timed_out);
  EXPECT_EQ(result.status.stdout_total, 4u);
  EXPECT_EQ(result.info.exec_id.size(), 36u);
  EXPECT_FALSE(result.info.effective_profile.empty());
}

TEST_F(RunnerAgentTest, SignalDeathIsReportedAs128PlusSignal) {
  auto result = run_bounded(io_, runner_->exec({"sh", "-c", "kill -KILL $$"}));
  EXPECT_EQ(result.exit_code(), 137);
  EXPECT_EQ(result.status.signal, 9);
}

TEST_F(RunnerAgentTest, StdinReachesTheCommandThenEof) {
  Command cmd{"cat"};
  cmd.stdin_data = std::string("line one\n\0binary\xff", 17);
  auto result = run_bounded(io_, runner_->exec(cmd));
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_EQ(result.stdout_data, cmd.stdin_data);
}

TEST_F(RunnerAgentTest, CommandTimeoutKillsWithExit124AndKeepsOutput) {
  Command cmd{"sh", "-c", "echo started; exec sleep 30"};
  cmd.timeout = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto [ec, result] = run_bounded(io_, runner_->exec(cmd, as_tuple(asio::use_awaitable)));
  EXPECT_FALSE(ec) << "the agent's timeout must win over the RPC deadline: " << ec.message();
  EXPECT_EQ(result.exit_code(), 124);
  EXPECT_TRUE(result.status.timed_out);
  EXPECT_EQ(result.stdout_data, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(RunnerAgentTest, NotFoundIs127WithAReason) {
  auto result = run_bounded(io_, runner_->exec({"no-such-program-xyz"}));
  EXPECT_EQ(result.exit_code(), 127);
  EXPECT_NE(result.stderr_data.find("no-such-program-xyz"), std::string::npos);
}

TEST_F(RunnerAgentTest, OutputCapTruncatesAndSaysSo) {
  Command cmd{"head", "-c", "100000", "/dev/zero"};
  cmd.max_output_bytes = 1000;
  auto result = run_bounded(io_, runner_->exec(cmd));
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_EQ(result.stdout_data.size(), 1000u);
  EXPECT_TRUE(result.status.stdout_truncated);
  EXPECT_EQ(result.status.stdout_total, 100000u);
}

TEST_F(RunnerAgentTest, DeadlineOnASilentCommandReturnsOnTimeAndKillsIt) {
  // Connected first, so that the 500 ms go to starting the command, not the channel.
  ASSERT_EQ(run_bounded(io_, runner_->exec({"true"})).exit_code(), 0);
  Command cmd{"sh", "-c", "echo $$ > pid; exec sleep 300"};
  cmd.deadline = 500ms;
  const auto start = std::chrono::steady_clock::now();
  auto [ec, result] = run_bounded(io_, runner_->exec(cmd, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::deadline_exceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  std::ifstream pid_file(workspace_.path() / "pid");
  pid_t pid = 0;
  ASSERT_TRUE(pid_file >> pid) << "the command never started";
  EXPECT_TRUE(wait_until_group_gone(pid, 5s)) << "the agent left the command running";
}

TEST_F(RunnerAgentTest, TerminalCancellationKillsTheRemoteProcessGroup) {
  asio::cancellation_signal signal;
  std::optional<std::error_code> outcome;
  runner_->exec({"sh", "-c", "echo $$ > pid; sleep 300 & sleep 300"},
                asio::bind_cancellation_slot(
                    signal.slot(), [&](std::error_code ec, ExecResult) { outcome = ec; }));
  pid_t pid = 0;
  ASSERT_TRUE(eventually(
      [&] {
        std::ifstream pid_file(workspace_.path() / "pid");
        return static_cast<bool>(pid_file >> pid);
      },
      10s, &io_))
      << "the command never started";
  ASSERT_FALSE(live_group_members(pid).empty());
  asio::post(io_, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(eventually([&] { return outcome.has_value(); }, 10s, &io_));
  EXPECT_EQ(*outcome, asio::error::operation_aborted);
  EXPECT_TRUE(wait_until_group_gone(pid, 5s)) << "the process group outlived the cancel";
}

TEST_F(RunnerAgentTest, SixteenConcurrentExecsGetTheirOwnResults) {
  std::vector<ExecResult> results(16);
  int finished = 0;
  for (int i = 0; i < 16; ++i) {
    asio::co_spawn(
        io_,
        [&, i]() -> asio::awaitable<void> {
          results[i] = co_await runner_->exec({"sh", "-c", "echo $0; exit $0", std::to_string(i)});
          ++finished;
        },
        asio::detached);
  }
  ASSERT_TRUE(eventually([&] { return finished == 16; }, 30s, &io_)) << finished << " of 16 done";
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(results[i].exit_code(), i);
    EXPECT_EQ(results[i].stdout_data, std::to_string(i) + "\n");
  }
}

}  // namespace
}  // namespace sandbox::test
