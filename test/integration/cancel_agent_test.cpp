// A user's cancellation versus a lost connection, against the real agent: the first kills
// the remote command at once (the SDK sends Cancel), the second leaves it running for a
// reattach within the agent's grace.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>

#include "agent/agent_server.hpp"
#include "common/uuid.hpp"
#include "fakes/io_harness.hpp"
#include "integration/proxied_agent_fixture.hpp"
#include "sandbox/sandbox.hpp"
#include "support/fault_proxy.hpp"
#include "support/fifo_gate.hpp"
#include "support/process_watch.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;

class CancelAgentTest : public ::testing::Test, protected ProxiedAgent {
 protected:
  // The agent on a unix socket; `via_proxy` puts a FaultProxy (TCP) in front of it.
  void start(bool via_proxy, std::chrono::milliseconds reattach_grace = 30s) {
    RemoteRunnerConfig config;
    // A dropped connection must end the stream here: these tests are about what the agent
    // does with a lost call; the SDK's own reattach is tested in retry_agent_test.cpp.
    config.retry.max_attempts = 1;
    start_agent(
        config, [&](agent::AgentOptions& options) { options.reattach_grace = reattach_grace; },
        via_proxy);
  }

  // Prints its pid, then "first"; waits for a line on the workspace fifo `gate`, echoes it,
  // prints "second"; appends to `runs` each time it runs.
  Command gated_command() {
    gate_.emplace(workspace_.path());
    Command command{"sh", "-c", "echo run >> runs; echo $$; echo first; cat gate; echo second"};
    command.exec_id = random_uuid();
    return command;
  }
  void open_gate() { gate_->open(); }

  // Reads on until the stream fails (chunks read ahead before a fault still arrive first);
  // the error, or a test failure if the stream ended normally instead.
  std::error_code next_error(ExecStream& stream) {
    for (;;) {
      auto [ec, chunk] =
          run_bounded(io_, stream.next(asio::experimental::as_tuple(asio::use_awaitable)), 10s);
      if (ec) return ec;
      if (!chunk) {
        ADD_FAILURE() << "the stream ended with an exit instead of failing";
        return {};
      }
    }
  }

  std::optional<FifoGate> gate_;
};

TEST_F(CancelAgentTest, UserCancelOfAStreamWithAnExecIdLeavesNoProcessWithinTwoSeconds) {
  start(false);  // the agent's reattach grace is 30 s: only Cancel can be this quick
  Command command{"sh", "-c", "echo $$; sleep 300 & sleep 300"};
  command.exec_id = random_uuid();
  auto stream = runner_->stream(command);
  const pid_t pid = std::stoi(next_data(stream));
  ASSERT_FALSE(live_group_members(pid).empty()) << "the command is not running";

  stream.cancel();
  auto [ec, chunk] =
      run_bounded(io_, stream.next(asio::experimental::as_tuple(asio::use_awaitable)), 10s);

  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_TRUE(wait_until_group_gone(pid, 2s)) << "the process group outlived the cancel by 2 s";
}

TEST_F(CancelAgentTest, UserCancelOfExecThroughItsSlotLeavesNoProcessWithinTwoSeconds) {
  start(false);
  const auto fifo = workspace_.path() / "pid";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Command command{"sh", "-c", "echo $$ > pid; sleep 300 & sleep 300"};
  command.exec_id = random_uuid();
  asio::cancellation_signal cancel;
  std::optional<std::error_code> result;
  runner_->exec(command, asio::bind_cancellation_slot(
                             cancel.slot(), [&](std::error_code ec, ExecResult) { result = ec; }));
  // Opening the fifo blocks until the command opens it: then it runs.
  auto pid_line = std::async(std::launch::async, [&] {
    std::string line;
    std::getline(std::ifstream(fifo), line);
    return line;
  });
  if (pid_line.wait_for(10s) != std::future_status::ready) {
    ::close(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK));  // unblocks the reader
    FAIL() << "the command did not start within 10 s";
  }
  const pid_t pid = std::stoi(pid_line.get());

  cancel.emit(asio::cancellation_type::terminal);

  ASSERT_TRUE(eventually([&] { return result.has_value(); }, 10s, &io_))
      << "the cancelled exec() did not complete";
  EXPECT_EQ(*result, asio::error::operation_aborted);
  EXPECT_TRUE(wait_until_group_gone(pid, 2s)) << "the process group outlived the cancel by 2 s";
}

TEST_F(CancelAgentTest, DroppedConnectionLeavesTheCommandRunningForAReattach) {
  start(true);
  const Command command = gated_command();
  auto stream = runner_->stream(command);
  const pid_t pid = std::stoi(next_data(stream));  // the first line; "first" may follow

  proxy_->reset_all();
  const std::error_code ec = next_error(stream);
  ASSERT_TRUE(ec) << "the stream did not see the connection drop";
  EXPECT_NE(ec, asio::error::operation_aborted) << "a lost connection is not a cancellation";
  EXPECT_TRUE(process_alive(pid)) << "the agent killed the command of a lost connection";

  // A reattach within the grace, from a second runner (as after an orchestrator restart; a
  // retry on the first runner's channel may still meet the dead transport, which is the
  // SDK retry's business). Its own subchannel pool: a fresh connection through the proxy.
  RemoteRunnerConfig config = runner_->config();
  config.channel_args["grpc.use_local_subchannel_pool"] = 1;
  RemoteRunner second_runner(io_.get_executor(), config);
  auto again = second_runner.stream(command);
  std::string out;
  bool gate_opened = false;
  for (;;) {
    auto [next_ec, next] =
        run_bounded(io_, again.next(asio::experimental::as_tuple(asio::use_awaitable)), 10s);
    ASSERT_FALSE(next_ec) << next_ec.message() << ": " << again.error_message();
    if (!next) break;
    out += next->data;
    if (!gate_opened && out.find("first\n") != std::string::npos) {
      gate_opened = true;
      open_gate();
    }
  }
  EXPECT_EQ(out, std::to_string(pid) + "\nfirst\ngo\nsecond\n");
  EXPECT_EQ(again.exit_status().exit_code, 0);
  EXPECT_EQ(runs(), 1) << "the reattach ran the command again";
}

TEST_F(CancelAgentTest, DroppedConnectionWithoutReattachIsGoneAfterTheGrace) {
  start(true, 300ms);
  auto stream = runner_->stream(gated_command());
  const pid_t pid = std::stoi(next_data(stream));
  proxy_->reset_all();
  ASSERT_TRUE(next_error(stream)) << "the stream did not see the connection drop";
  EXPECT_TRUE(wait_until_group_gone(pid, 10s)) << "the command outlived the reattach grace";
}

}  // namespace
}  // namespace sandbox::test
