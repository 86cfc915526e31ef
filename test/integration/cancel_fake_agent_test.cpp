// The Cancel RPC against a scripted fake agent: the SDK asks the agent to kill a command
// exactly when the client abandoned it (the caller's cancellation, close(), destroying an
// unfinished stream, the deadline), never after an exit or a lost connection, never makes
// the caller wait for it, and gives up after one attempt on an agent without Cancel.
//
// "No Cancel" assertions read the record only after the call completed and the runner was
// destroyed: ~RemoteRunner waits for every Cancel in flight, so the count is final then.

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "fakes/fake_agent.hpp"
#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;

// An exec whose outcome outlives the test's stack frame if the test gives up early: the
// handler may still run when the runner is destroyed.
struct PendingExec {
  asio::cancellation_signal signal;
  std::optional<std::error_code> outcome;
};

// Starts a command that never exits, waits until the agent has it, cancels it through its
// cancellation slot (terminal) and waits for its completion. Returns the outcome, or
// nullopt (with a test failure saying what did not happen).
std::optional<std::error_code> exec_cancelled_by_caller(asio::io_context& io, RemoteRunner& runner,
                                                        const FakeAgent& agent) {
  const auto calls_before = agent.calls().size();
  auto pending = std::make_shared<PendingExec>();
  runner.exec({"sleep", "300"},
              asio::bind_cancellation_slot(
                  pending->signal.slot(),
                  [pending](std::error_code ec, ExecResult) { pending->outcome = ec; }));
  if (!eventually([&] { return agent.calls().size() > calls_before; }, 10s, &io)) {
    ADD_FAILURE() << "the agent never received the call";
    return std::nullopt;
  }
  asio::post(io, [pending] { pending->signal.emit(asio::cancellation_type::terminal); });
  if (!eventually([&] { return pending->outcome.has_value(); }, 10s, &io)) {
    ADD_FAILURE() << "the cancelled exec never completed";
    return std::nullopt;
  }
  return pending->outcome;
}

std::set<std::string> exec_ids_of(const std::vector<RecordedCall>& calls) {
  std::set<std::string> ids;
  for (const auto& call : calls) ids.insert(call.request.exec_id());
  return ids;
}

std::set<std::string> exec_ids_of(const std::vector<RecordedCancel>& cancels) {
  std::set<std::string> ids;
  for (const auto& cancel : cancels) ids.insert(cancel.request.exec_id());
  return ids;
}

// Holds a Cancel handler until the test opens it. Opening is idempotent; a waiter gives up
// after 30 s, so a test that never opens the gate fails instead of hanging the suite.
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    opened_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex_);
    return opened_.wait_for(lock, 30s, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

// Starts `calls` exec()s on `runner`, waits until the agent holds them all, closes the
// runner and waits until each completed; their errors (test failures when a wait ran out).
std::vector<std::error_code> close_with_calls_in_flight(FakeAgent& agent, asio::io_context& io,
                                                        RemoteRunner& runner, int calls) {
  auto outcomes = std::make_shared<std::vector<std::error_code>>();
  for (int i = 0; i < calls; ++i) {
    runner.exec({"sleep", "300"},
                [outcomes](std::error_code ec, ExecResult) { outcomes->push_back(ec); });
  }
  EXPECT_TRUE(
      eventually([&] { return agent.calls().size() == static_cast<std::size_t>(calls); }, 10s, &io))
      << "the agent never received every call";
  runner.close();
  EXPECT_TRUE(
      eventually([&] { return outcomes->size() == static_cast<std::size_t>(calls); }, 10s, &io))
      << "not every closed call completed";
  return *outcomes;
}

TEST(CancelFakeAgentTest, TerminalCancellationOfExecSendsOneCancelWithItsExecId) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen), answering_cancel());
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    EXPECT_TRUE(agent.wait_for_cancels(1, 10s)) << "the agent never received Cancel";
  }
  auto cancels = agent.cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].request.exec_id(), agent.calls().at(0).request.exec_id());
  EXPECT_EQ(cancels[0].request.signal(), v1::CANCEL_SIGNAL_TERM);
}

TEST(CancelFakeAgentTest, CancelCarriesTheSandboxIdAndTokenOfTheExec) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen), answering_cancel());
  asio::io_context io;
  auto config = runner_config(agent);
  config.sandbox_id = "sb-42";
  config.token = "t0k3n-value";
  config.allow_insecure = true;
  {
    RemoteRunner runner(io.get_executor(), config);
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    ASSERT_TRUE(agent.wait_for_cancels(1, 10s)) << "the agent never received Cancel";
  }
  const auto metadata = agent.cancels().at(0).metadata;
  auto sandbox_id = metadata.find("sandbox-id");
  ASSERT_NE(sandbox_id, metadata.end());
  EXPECT_EQ(sandbox_id->second, "sb-42");
  auto auth = metadata.find("authorization");
  ASSERT_NE(auth, metadata.end());
  EXPECT_EQ(auth->second, "Bearer t0k3n-value");
}

TEST(CancelFakeAgentTest, DestroyingAnUnfinishedStreamSendsCancel) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen, "tick"), answering_cancel());
  asio::io_context io;
  std::string exec_id;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    {
      auto stream = runner.stream({"tail", "-f", "log"});
      exec_id = stream.info().exec_id;
      auto chunk = run_bounded(io, stream.next());
      ASSERT_TRUE(chunk.has_value()) << "the agent's first output never arrived";
    }
    EXPECT_TRUE(agent.wait_for_cancels(1, 10s)) << "destroying the stream sent no Cancel";
  }
  auto cancels = agent.cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].request.exec_id(), exec_id);
}

TEST(CancelFakeAgentTest, ExecStreamCancelSendsCancel) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen, "tick"), answering_cancel());
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    auto stream = runner.stream({"tail", "-f", "log"});
    auto chunk = run_bounded(io, stream.next());
    ASSERT_TRUE(chunk.has_value()) << "the agent's first output never arrived";
    stream.cancel();
    auto [ec, none] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    EXPECT_EQ(ec, asio::error::operation_aborted);
    EXPECT_TRUE(agent.wait_for_cancels(1, 10s)) << "ExecStream::cancel() sent no Cancel";
  }
  auto cancels = agent.cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].request.exec_id(), agent.calls().at(0).request.exec_id());
}

TEST(CancelFakeAgentTest, CloseWithCallsInFlightSendsOneCancelPerCall) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen), answering_cancel());
  asio::io_context io;
  constexpr int calls = 3;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    for (auto ec : close_with_calls_in_flight(agent, io, runner, calls)) {
      EXPECT_EQ(ec, errc::runner_closed);
    }
    EXPECT_TRUE(agent.wait_for_cancels(calls, 10s))
        << agent.cancels().size() << " of " << calls << " Cancels arrived";
  }
  auto cancels = agent.cancels();
  EXPECT_EQ(cancels.size(), static_cast<std::size_t>(calls)) << "one Cancel per call, no more";
  EXPECT_EQ(exec_ids_of(cancels), exec_ids_of(agent.calls()));
}

TEST(CancelFakeAgentTest, DeadlineExpirySendsCancel) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(after_warm_up(waiting_for_cancel(cancels_seen)), answering_cancel());
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    // Connected first: a call whose deadline passes before its request is sent has nothing
    // to cancel.
    auto [warm_ec, warm] =
        run_bounded(io, runner.exec({warm_up_command}, as_tuple(asio::use_awaitable)));
    ASSERT_FALSE(warm_ec) << warm_ec.message();
    Command cmd{"sleep", "300"};
    cmd.deadline = 300ms;
    auto [ec, result] = run_bounded(io, runner.exec(cmd, as_tuple(asio::use_awaitable)), 10s);
    EXPECT_EQ(ec, errc::deadline_exceeded);
    EXPECT_TRUE(agent.wait_for_cancels(1, 10s)) << "the deadline's expiry sent no Cancel";
  }
  auto cancels = agent.cancels();
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].request.exec_id(), agent.calls().at(1).request.exec_id());
}

TEST(CancelFakeAgentTest, NormalExitSendsNoCancel) {
  FakeAgent agent(replying("out", "", 3), answering_cancel());
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    auto result = run_bounded(io, runner.exec({"true"}));
    EXPECT_EQ(result.exit_code(), 3);
  }
  EXPECT_EQ(agent.calls().size(), 1u);
  EXPECT_TRUE(agent.cancels().empty()) << "Cancel sent for an exec that exited";
}

TEST(CancelFakeAgentTest, EndingTheRpcAfterTheExitSendsNoCancel) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(exiting_then_holding_open(cancels_seen, 5), answering_cancel());
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    auto result = run_bounded(io, runner.exec({"true"}), 10s);
    EXPECT_EQ(result.exit_code(), 5);
  }
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 1; }))
      << "the client never ended the RPC after the exit";
  EXPECT_TRUE(agent.cancels().empty()) << "ending the RPC after the exit sent Cancel";
}

TEST(CancelFakeAgentTest, MidStreamUnavailableSendsNoCancel) {
  FakeAgent agent(
      [](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
        writer.Write(started_message(request.exec_id()));
        writer.Write(stdout_message("partial", 0));
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection to the sandbox lost");
      },
      answering_cancel());
  asio::io_context io;
  {
    auto config = runner_config(agent);
    config.retry.max_attempts = 1;  // the call ends with the lost connection
    RemoteRunner runner(io.get_executor(), config);
    auto stream = runner.stream({"make"});
    auto [first_ec, first] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    EXPECT_FALSE(first_ec);
    EXPECT_TRUE(first.has_value());
    auto [ec, none] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    EXPECT_EQ(ec, errc::unavailable);
  }
  EXPECT_TRUE(agent.cancels().empty())
      << "a lost connection sent Cancel: the command could not be reattached";
}

TEST(CancelFakeAgentTest, BlockingCancelHandlerDoesNotDelayTheCancelledOperation) {
  std::atomic<int> cancels_seen{0};
  Gate gate;
  FakeAgent agent(waiting_for_cancel(cancels_seen),
                  [&gate](const v1::CancelRequest&, v1::CancelResponse& response) {
                    gate.wait();
                    response.set_state(v1::CancelResponse::STATE_RUNNING);
                    return grpc::Status::OK;
                  });
  asio::io_context io;
  auto config = runner_config(agent);
  // Far longer than the wait for the completion below: a completion that waited for the
  // Cancel's answer (or its deadline) could not arrive in time.
  config.cancel_timeout = 60s;
  {
    RemoteRunner runner(io.get_executor(), config);
    // Declared after the runner, so a test that fails early opens the gate before the
    // runner's destructor waits for the Cancel's answer.
    struct OpenOnExit {
      Gate& gate;
      ~OpenOnExit() { gate.open(); }
    } open_on_exit{gate};

    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    EXPECT_TRUE(agent.wait_for_cancels(1, 10s))
        << "the Cancel never reached the agent's blocked handler";
  }  // opens the gate, then waits for the Cancel's answer
  EXPECT_EQ(agent.cancels().size(), 1u);
}

TEST(CancelFakeAgentTest, AgentWithoutCancelGetsOneAttemptPerRunner) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen));  // Cancel: UNIMPLEMENTED
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 2; }))
        << "the RPCs were not cancelled at the agent";
  }
  EXPECT_EQ(agent.calls().size(), 2u);
  EXPECT_EQ(agent.cancels().size(), 1u) << "an agent without Cancel got repeated attempts";
}

TEST(CancelFakeAgentTest, CloseAgainstAnAgentWithoutCancelMakesOneAttempt) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen));  // Cancel: UNIMPLEMENTED
  asio::io_context io;
  constexpr int calls = 4;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    close_with_calls_in_flight(agent, io, runner, calls);
  }
  EXPECT_EQ(agent.cancels().size(), 1u)
      << "the Cancels waiting for the first answer were sent anyway";
}

TEST(CancelFakeAgentTest, FailedCancelIsIgnoredAndLaterCallsStillSendIt) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen),
                  [](const v1::CancelRequest&, v1::CancelResponse&) {
                    return grpc::Status(grpc::StatusCode::INTERNAL, "the sandbox backend failed");
                  });
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
    EXPECT_TRUE(agent.wait_for_cancels(2, 10s)) << "a failed Cancel stopped later ones";
  }
  EXPECT_EQ(agent.cancels().size(), 2u);
}

TEST(CancelFakeAgentTest, ZeroCancelTimeoutSendsNoCancel) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen), answering_cancel());
  asio::io_context io;
  auto config = runner_config(agent);
  config.cancel_timeout = 0ms;
  {
    RemoteRunner runner(io.get_executor(), config);
    EXPECT_EQ(exec_cancelled_by_caller(io, runner, agent), asio::error::operation_aborted);
  }
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 1; }))
      << "the RPC was not cancelled at the agent";
  EXPECT_TRUE(agent.cancels().empty()) << "cancel_timeout = 0 must disable Cancel";
}

TEST(CancelFakeAgentTest, NegativeCancelTimeoutFailsConstruction) {
  asio::io_context io;
  RemoteRunnerConfig config;
  config.address = "unix:/tmp/none.sock";
  config.cancel_timeout = -1ms;
  try {
    RemoteRunner runner(io.get_executor(), config);
    FAIL() << "constructed a runner with a negative cancel_timeout";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_config);
    EXPECT_NE(std::string(e.what()).find("cancel_timeout"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sandbox::test
