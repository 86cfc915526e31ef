// RemoteRunner::exec against a scripted fake agent (a real gRPC server on a unix socket):
// what the client sends, and how it treats what a misbehaving agent answers.

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "fakes/fake_agent.hpp"
#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;

TEST(RunnerFakeAgentTest, ForwardsArgvProfileImageWorkdirAndEnvVerbatim) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  auto config = runner_config(agent);
  config.profile = "strict";
  config.image = "ghcr.io/acme/tools:1.2";
  config.workdir = "repo";
  config.sandbox_id = "sb-42";
  RemoteRunner runner(io.get_executor(), config);
  Command cmd{"pytest", "-q", "tests/ with space"};
  cmd.env["MODE"] = "ci";
  cmd.exec_id = "6f1c2a9e-3b7d-4c1e-9a53-0c9b8e2f4d11";

  auto [ec, result] = run_bounded(io, runner.exec(cmd, as_tuple(asio::use_awaitable)));

  ASSERT_FALSE(ec) << result.error_message;
  auto calls = agent.calls();
  ASSERT_EQ(calls.size(), 1u);
  const auto& request = calls[0].request;
  ASSERT_EQ(request.command_size(), 3);
  EXPECT_EQ(request.command(0), "pytest");
  EXPECT_EQ(request.command(2), "tests/ with space");
  EXPECT_EQ(request.profile(), "strict");
  EXPECT_EQ(request.image(), "ghcr.io/acme/tools:1.2");
  EXPECT_EQ(request.workdir(), "repo");
  EXPECT_EQ(request.env().at("MODE"), "ci");
  EXPECT_EQ(request.exec_id(), cmd.exec_id);
  EXPECT_EQ(result.info.exec_id, cmd.exec_id);
  auto sandbox_id = calls[0].metadata.find("sandbox-id");
  ASSERT_NE(sandbox_id, calls[0].metadata.end());
  EXPECT_EQ(sandbox_id->second, "sb-42");
}

TEST(RunnerFakeAgentTest, SecretReferenceReachesTheAgentUnresolved) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  Command cmd{"deploy"};
  cmd.env["DB_PASSWORD"] = "secret://db/password";

  auto [ec, result] = run_bounded(io, runner.exec(cmd, as_tuple(asio::use_awaitable)));

  ASSERT_FALSE(ec);
  EXPECT_EQ(agent.calls().at(0).request.env().at("DB_PASSWORD"), "secret://db/password");
}

TEST(RunnerFakeAgentTest, OversizedRequestFailsBeforeAnyRpcCountingTheRunnersEnv) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunnerConfig config = runner_config(agent);
  for (int i = 0; i < 1000; ++i) config.env["RUNNER_" + std::to_string(i)] = "x";
  RemoteRunner runner(io.get_executor(), config);
  Command cmd{"true"};
  for (int i = 0; i < 25; ++i) cmd.env["CALL_" + std::to_string(i)] = "y";
  auto [ec, result] = run_bounded(io, runner.exec(cmd, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_EQ(result.error_message, "env: 1025 entries, at most 1024");
  auto stream = runner.stream(cmd);
  auto [stream_ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  EXPECT_EQ(stream_ec, errc::invalid_argument);
  EXPECT_TRUE(agent.calls().empty()) << "an oversized request reached the agent";
}

TEST(RunnerFakeAgentTest, GeneratesAUuidExecIdWhenNoneIsGiven) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec);
  EXPECT_EQ(agent.calls().at(0).request.exec_id().size(), 36u);
  EXPECT_EQ(result.info.exec_id, agent.calls().at(0).request.exec_id());
}

TEST(RunnerFakeAgentTest, NonZeroExitIsAResultNotAnError) {
  FakeAgent agent(replying("out", "err", 42));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto result = run_bounded(io, runner.exec({"false"}));
  EXPECT_EQ(result.exit_code(), 42);
  EXPECT_EQ(result.stdout_data, "out");
  EXPECT_EQ(result.stderr_data, "err");
  EXPECT_TRUE(result.error_message.empty());
}

TEST(RunnerFakeAgentTest, StreamWithoutExitCodeIsAnErrorKeepingPartialOutput) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message("partial", 0));
    return grpc::Status::OK;  // ends the stream with no exit_code
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));

  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));

  EXPECT_EQ(ec, errc::missing_exit_code);
  EXPECT_NE(result.error_message.find("exit_code"), std::string::npos) << result.error_message;
  EXPECT_EQ(result.stdout_data, "partial");
  EXPECT_EQ(result.exit_code(), -1) << "a partial result must never look like an exit";
}

TEST(RunnerFakeAgentTest, FirstExitCodeEndsTheCallEvenIfTheAgentKeepsTheStreamOpen) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(exiting_then_holding_open(cancels_seen, 5));
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    auto result = run_bounded(io, runner.exec({"true"}), 10s);
    EXPECT_EQ(result.exit_code(), 5);
  }  // the runner's destructor waits for the RPC to end
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 1; }))
      << "the client must end the RPC after the exit";
}

// behavior.md §3: the client waits a bounded time (kExitStatusWait, 100 ms) for the status
// after the exit, then cancels; the runner stays alive here, so its close() cannot be what
// ends the RPC. Both exec() and stream().
TEST(RunnerFakeAgentTest, AnAgentThatKeepsTheStreamOpenAfterTheExitIsCancelledWhileTheRunnerLives) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(exiting_then_holding_open(cancels_seen, 5));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));

  const auto result = run_bounded(io, runner.exec({"true"}), 10s);
  ASSERT_EQ(result.exit_code(), 5);
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 1; }))
      << "exec(): the client never ended the RPC the agent kept open after the exit";

  auto stream = runner.stream({"true"});
  auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)), 10s);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(chunk.has_value());
  EXPECT_EQ(stream.exit_status().exit_code, 5);
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 2; }))
      << "stream(): the client never ended the RPC the agent kept open after the exit";
}

// An agent that ends the RPC a little after the exit (well within the client's wait) sees
// no cancellation: the RPC ends with the agent's status, as the reference agent's do. A
// cancellation costs both sides a trip through gRPC's stack and an RST_STREAM.
TEST(RunnerFakeAgentTest, AnAgentThatEndsTheRpcAfterTheExitIsNotCancelled) {
  std::atomic<int> cancelled{0};
  std::atomic<int> ended{0};
  std::mutex mutex;
  std::condition_variable client_has_exit_cv;
  bool client_has_exit = false;
  FakeAgent agent(
      [&](grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
        writer.Write(started_message(request.exec_id()));
        writer.Write(exit_message(0));
        {
          std::unique_lock lock(mutex);
          client_has_exit_cv.wait_for(lock, 10s, [&] { return client_has_exit; });
          client_has_exit = false;
        }
        // A cancellation sent on receiving the exit would arrive within this; the client's
        // bounded wait (100 ms from its receiving the exit) ends later.
        const auto until = std::chrono::steady_clock::now() + 30ms;
        while (!context.IsCancelled() && std::chrono::steady_clock::now() < until) {
          std::this_thread::sleep_for(1ms);
        }
        if (context.IsCancelled()) ++cancelled;
        ++ended;
        return grpc::Status::OK;
      });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  const auto told = [&] {
    std::lock_guard lock(mutex);
    client_has_exit = true;
    client_has_exit_cv.notify_all();
  };

  const auto result = run_bounded(io, runner.exec({"true"}), 10s);
  told();
  ASSERT_EQ(result.exit_code(), 0);
  ASSERT_TRUE(eventually([&] { return ended.load() == 1; }));

  auto stream = runner.stream({"true"});
  auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)), 10s);
  told();
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(chunk.has_value());
  ASSERT_TRUE(eventually([&] { return ended.load() == 2; }));

  EXPECT_EQ(cancelled.load(), 0) << "the client cancelled RPCs that the agent was ending";
}

TEST(RunnerFakeAgentTest, AgentStatusMessageIsKept) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest&, ExecWriter&) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "bubblewrap is not installed");
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"ls"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::failed_precondition);
  EXPECT_EQ(result.error_message, "bubblewrap is not installed");
}

TEST(RunnerFakeAgentTest, OffsetGapIsAProtocolError) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message("abc", 0));
    writer.Write(stdout_message("xyz", 10));
    writer.Write(exit_message(0));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"ls"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::protocol_error);
  EXPECT_NE(result.error_message.find("offset"), std::string::npos) << result.error_message;
}

TEST(RunnerFakeAgentTest, EmptyArgvFailsBeforeAnyRpc) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec(Command{}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_NE(result.error_message.find("argv"), std::string::npos);
  EXPECT_TRUE(agent.calls().empty());
}

TEST(RunnerFakeAgentTest, EmptyAddressFailsConstruction) {
  asio::io_context io;
  try {
    RemoteRunner runner(io.get_executor(), RemoteRunnerConfig{});
    FAIL() << "constructed a runner without an address";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_config);
    EXPECT_NE(std::string(e.what()).find("address"), std::string::npos);
  }
}

TEST(RunnerFakeAgentTest, TokenWithoutTlsFailsConstructionSayingInsecure) {
  asio::io_context io;
  RemoteRunnerConfig config;
  config.address = "unix:/tmp/none.sock";
  config.token = "t0k3n-value";
  try {
    RemoteRunner runner(io.get_executor(), config);
    FAIL() << "accepted a token over a cleartext channel";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::token_requires_tls);
    EXPECT_NE(std::string(e.what()).find("insecure"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("t0k3n-value"), std::string::npos);
  }
}

TEST(RunnerFakeAgentTest, TokenWithAllowInsecureTravelsAsBearerCallCredentials) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  auto config = runner_config(agent);
  config.token = "t0k3n-value";
  config.allow_insecure = true;
  RemoteRunner runner(io.get_executor(), config);
  auto [ec, result] = run_bounded(io, runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
  auto metadata = agent.calls().at(0).metadata;
  auto auth = metadata.find("authorization");
  ASSERT_NE(auth, metadata.end());
  EXPECT_EQ(auth->second, "Bearer t0k3n-value");
}

TEST(RunnerFakeAgentTest, CloseTwiceIsHarmlessAndLaterCallsFailClearly) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  runner.close();
  runner.close();
  EXPECT_TRUE(runner.closed());
  auto [ec, result] = run_bounded(io, runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::runner_closed);
  EXPECT_TRUE(agent.calls().empty());
}

TEST(RunnerFakeAgentTest, SixteenConcurrentExecsAllComplete) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message(request.command(1), 0));
    writer.Write(exit_message(std::stoi(request.command(1))));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  std::vector<std::future<ExecResult>> results;
  for (int i = 0; i < 16; ++i) {
    results.push_back(runner.exec({"echo", std::to_string(i)}, asio::use_future));
  }
  std::thread driver([&] { io.run_for(30s); });
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(results[i].wait_for(30s), std::future_status::ready) << "exec " << i;
    auto result = results[i].get();
    EXPECT_EQ(result.exit_code(), i);
    EXPECT_EQ(result.stdout_data, std::to_string(i));
  }
  io.stop();
  driver.join();
}

TEST(RunnerFakeAgentTest, SixteenConcurrentExecsRacingCloseEachCompleteOnce) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen));
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread driver([&] { io.run(); });
  std::atomic<int> completions{0};
  std::promise<void> all_done;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    std::vector<std::thread> callers;
    for (int i = 0; i < 16; ++i) {
      callers.emplace_back([&] {
        runner.exec({"sleep", "300"}, [&](std::error_code ec, ExecResult) {
          EXPECT_TRUE(ec == errc::runner_closed) << ec.message();
          if (++completions == 16) all_done.set_value();
        });
      });
    }
    std::thread closer([&] { runner.close(); });
    for (auto& caller : callers) caller.join();
    closer.join();
    runner.close();
  }  // destructor: every RPC has ended
  auto done = all_done.get_future();
  EXPECT_EQ(done.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(completions.load(), 16);
  // Every call that reached the agent was cancelled there, none left running.
  EXPECT_TRUE(eventually([&] {
    return cancels_seen.load() == static_cast<int>(agent.calls().size());
  })) << cancels_seen.load()
      << " of " << agent.calls().size() << " calls cancelled at the agent";
  work.reset();
  driver.join();
}

TEST(RunnerFakeAgentTest, TerminalCancellationAbortsTheCallAfterGrpcEndsIt) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  asio::cancellation_signal signal;
  std::optional<std::error_code> outcome;
  runner.exec({"sleep", "300"},
              asio::bind_cancellation_slot(signal.slot(),
                                           [&](std::error_code ec, ExecResult) { outcome = ec; }));
  // Cancel once the agent has the call, from the io thread.
  ASSERT_TRUE(eventually([&] { return !agent.calls().empty(); }, 10s, &io))
      << "the agent never received the call";
  asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(eventually([&] { return outcome.has_value(); }, 10s, &io))
      << "the cancelled exec never completed";
  EXPECT_EQ(*outcome, asio::error::operation_aborted);
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 1; }))
      << "the agent never saw the cancellation";
}

TEST(RunnerFakeAgentTest, HandlerRunsOnItsExecutorNeverInsideTheInitiatingCall) {
  FakeAgent agent(replying("x", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  bool initiating = true;
  bool ran_inline = false;
  bool on_io_thread = false;
  runner.exec(Command{}, [&](std::error_code, ExecResult) {  // fails validation at once
    ran_inline = initiating;
    on_io_thread = io.get_executor().running_in_this_thread();
  });
  initiating = false;
  io.run_for(10s);
  EXPECT_FALSE(ran_inline);
  EXPECT_TRUE(on_io_thread);
}

TEST(RunnerFakeAgentTest, WorksWithCallbacksFuturesDeferredAndAsTuple) {
  FakeAgent agent(replying("hi", "", 3));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  int callback_code = -1;
  runner.exec({"a"}, [&](std::error_code, ExecResult r) { callback_code = r.exit_code(); });
  auto future = runner.exec({"b"}, asio::use_future);
  auto deferred = runner.exec({"c"}, asio::experimental::deferred);
  int deferred_code = -1;
  std::move(deferred)([&](std::error_code, ExecResult r) { deferred_code = r.exit_code(); });
  io.run_for(10s);
  EXPECT_EQ(callback_code, 3);
  // use_future completes on asio's system executor, not on io.
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(future.get().exit_code(), 3);
  EXPECT_EQ(deferred_code, 3);
}

TEST(RunnerFakeAgentTest, CallDeadlineOnASilentAgentReturnsOnTime) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(after_warm_up(waiting_for_cancel(cancels_seen)));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  // Connected first, so that the 300 ms go to the call and not to a loaded machine's
  // connection setup (in which the call would never reach the agent).
  auto [warm_ec, warm] =
      run_bounded(io, runner.exec({warm_up_command}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(warm_ec) << warm_ec.message();
  Command cmd{"sleep", "300"};
  cmd.deadline = 300ms;
  const auto start = std::chrono::steady_clock::now();
  auto [ec, result] = run_bounded(io, runner.exec(cmd, as_tuple(asio::use_awaitable)), 10s);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ec, errc::deadline_exceeded) << ec.message();
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 3s) << "the deadline was not enforced";
  // Every call that reached the agent's handler saw its deadline there (one, unless the
  // handler was not scheduled within the 300 ms).
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() + 1 == std::ssize(agent.calls()); }))
      << cancels_seen.load() << " cancellations seen by the agent for " << agent.calls().size() - 1
      << " calls with a deadline";
}

}  // namespace
}  // namespace sandbox::test
