// The SDK's retries against a scripted fake agent, for the protocol faults a real agent
// cannot be made to produce on demand: trailers-only UNAVAILABLE, failure after N bytes,
// pushback, a missing exit code, a huge message, a slow server, an agent of the older
// generation, and gRPC's own retry settings.
#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <thread>

#include "fakes/fake_agent.hpp"
#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;

std::string numbered_lines(int count) {
  std::string out;
  for (int i = 0; i < count; ++i) out += "line " + std::to_string(i) + "\n";
  return out;
}

// Quick retries: the tests are about what is retried, not how long the waits are.
RemoteRunnerConfig quick_config(const FakeAgent& agent) {
  auto config = runner_config(agent);
  config.retry.initial_backoff = 1ms;
  config.retry.max_backoff = 5ms;
  return config;
}

// Teaches `runner` that the agent sends `started` (a runner learns it from its first
// call), so a failure before a call's own `started` is safe to retry.
void warm_up(asio::io_context& io, RemoteRunner& runner) {
  auto [ec, result] = run_bounded(io, runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
}

TEST(RetryFakeAgentTest, TrailersOnlyUnavailableOnAFreshRunnerIsNotRetried) {
  // Nothing says this agent can reattach: if it is of the older generation, it may have
  // started the command before failing, and a second request would run it again.
  FakeAgent agent(unavailable_then(1, replying("ok", "", 0)));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_NE(result.error_message.find("not retried"), std::string::npos) << result.error_message;
  EXPECT_EQ(result.retries.attempts, 1U);
  EXPECT_EQ(agent.calls().size(), 1U);
}

TEST(RetryFakeAgentTest, TrailersOnlyUnavailableIsRetriedOnceTheAgentIsKnownToReattach) {
  std::atomic<int> calls{0};
  ExecScript ok = replying("done\n", "", 0);
  FakeAgent agent(
      [&](grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
        const int call = calls++;
        if (call == 1 || call == 2) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
        return ok(context, request, writer);
      });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  warm_up(io, runner);
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
  EXPECT_EQ(result.stdout_data, "done\n");
  EXPECT_EQ(result.retries.attempts, 3U);
  ASSERT_EQ(result.retries.failures.size(), 2U);
  EXPECT_EQ(result.retries.failures[0].error, errc::unavailable);
  EXPECT_EQ(result.retries.failures[0].message, "draining");
  const auto recorded = agent.calls();
  ASSERT_EQ(recorded.size(), 4U);
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(recorded[i].request.exec_id(), recorded[1].request.exec_id());
    // No attempt of this call saw `started`: the agent may never have received it.
    EXPECT_FALSE(recorded[i].request.attach_only()) << i;
  }
}

TEST(RetryFakeAgentTest, StreamResumesAtTheOffsetsDeliveredAndSeesEveryByteOnce) {
  const std::string out = numbered_lines(2000);  // ~17 KB
  FakeAgent agent(resuming_after_failures(out, 3, 5000, 700));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto stream = runner.stream({"make"});
  std::string seen;
  for (;;) {
    auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    ASSERT_FALSE(ec) << ec.message() << ": " << stream.error_message();
    if (!chunk) break;
    ASSERT_EQ(chunk->offset, seen.size()) << "a gap or a duplicate across attempts";
    seen += chunk->data;
  }
  EXPECT_EQ(seen, out);
  EXPECT_EQ(stream.exit_status().exit_code, 0);
  EXPECT_EQ(stream.retries().attempts, 4U);
  EXPECT_EQ(stream.retries().failures.size(), 3U);
  const auto recorded = agent.calls();
  ASSERT_EQ(recorded.size(), 4U);
  for (std::size_t i = 0; i < recorded.size(); ++i) {
    const auto& request = recorded[i].request;
    EXPECT_EQ(request.exec_id(), recorded[0].request.exec_id());
    EXPECT_EQ(request.resume().stdout_offset(), 5000 * i) << i;
    EXPECT_EQ(request.attach_only(), i > 0) << i;
  }
}

TEST(RetryFakeAgentTest, ExecCollectsEveryByteOnceAcrossAttempts) {
  const std::string out = numbered_lines(3000);
  FakeAgent agent(resuming_after_failures(out, 2, 9000, 1024));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
  EXPECT_EQ(result.stdout_data, out);
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_EQ(result.retries.attempts, 3U);
}

TEST(RetryFakeAgentTest, MaxAttemptsBoundsTheRetriesAndReportsTheLastError) {
  FakeAgent agent(resuming_after_failures(numbered_lines(100), 100, 10));
  asio::io_context io;
  auto config = quick_config(agent);
  config.retry.max_attempts = 3;
  RemoteRunner runner(io.get_executor(), config);
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_NE(result.error_message.find("after 3 attempts"), std::string::npos)
      << result.error_message;
  EXPECT_EQ(result.exit_code(), -1) << "a partial result presented as complete";
  EXPECT_EQ(result.stdout_data, numbered_lines(100).substr(0, 30));
  EXPECT_EQ(agent.calls().size(), 3U);
}

TEST(RetryFakeAgentTest, PerCallPolicyOverridesTheRunners) {
  FakeAgent agent(resuming_after_failures(numbered_lines(100), 100, 10));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  Command command{"make"};
  command.retry = runner.config().retry;
  command.retry->max_attempts = 2;
  auto [ec, result] = run_bounded(io, runner.exec(command, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(agent.calls().size(), 2U);
}

TEST(RetryFakeAgentTest, AnInvalidPerCallPolicyIsRefusedBeforeAnyIo) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  Command command{"make"};
  command.retry = RetryPolicy{};
  command.retry->jitter = 2;
  auto [ec, result] = run_bounded(io, runner.exec(command, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_NE(result.error_message.find("retry.jitter"), std::string::npos);
  EXPECT_TRUE(agent.calls().empty());
}

TEST(RetryFakeAgentTest, AnInvalidRunnerPolicyIsAConfigError) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  auto config = quick_config(agent);
  config.retry.max_attempts = 0;
  try {
    RemoteRunner runner(io.get_executor(), config);
    ADD_FAILURE() << "no error for max_attempts 0";
  } catch (const std::system_error& error) {
    EXPECT_EQ(error.code(), errc::invalid_config);
    EXPECT_NE(std::string(error.what()).find("retry.max_attempts"), std::string::npos);
  }
}

TEST(RetryFakeAgentTest, AgentAnswersAreNeverRetried) {
  for (auto code : {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::UNAUTHENTICATED,
                    grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::FAILED_PRECONDITION,
                    grpc::StatusCode::DATA_LOSS, grpc::StatusCode::RESOURCE_EXHAUSTED}) {
    FakeAgent agent(
        [code](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
          writer.Write(started_message(request.exec_id()));
          return grpc::Status(code, "no");
        });
    asio::io_context io;
    RemoteRunner runner(io.get_executor(), quick_config(agent));
    auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
    EXPECT_EQ(ec.value(), static_cast<int>(code));
    EXPECT_EQ(result.retries.attempts, 1U);
    EXPECT_EQ(agent.calls().size(), 1U) << "status " << code;
  }
}

TEST(RetryFakeAgentTest, DataLossOnAReattachEndsTheCall) {
  std::atomic<int> calls{0};
  FakeAgent agent([&](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    if (calls++ > 0) return grpc::Status(grpc::StatusCode::DATA_LOSS, "evicted");
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message("abc", 0));
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "lost");
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::data_loss);
  EXPECT_EQ(result.error_message, "evicted");
  EXPECT_EQ(result.retries.attempts, 2U);
  EXPECT_EQ(result.stdout_data, "abc");
  EXPECT_EQ(agent.calls().size(), 2U);
}

TEST(RetryFakeAgentTest, AStreamWithoutExitCodeIsNotRetried) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message("x", 0));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::missing_exit_code);
  EXPECT_EQ(agent.calls().size(), 1U);
}

TEST(RetryFakeAgentTest, AHugeSingleMessageIsRefusedAndNotRetried) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message(std::string((17U << 20U), 'x'), 0));  // over the 16 MiB limit
    writer.Write(exit_message(0));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::resource_exhausted) << result.error_message;
  EXPECT_EQ(result.exit_code(), -1);
  EXPECT_EQ(agent.calls().size(), 1U);
}

TEST(RetryFakeAgentTest, PushbackSetsTheWaitBeforeTheNextAttempt) {
  FakeAgent agent(resuming_after_failures("hello\n", 1, 3, 1000, "300"));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));  // backoff 1 ms otherwise
  const auto begin = std::chrono::steady_clock::now();
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  ASSERT_FALSE(ec) << result.error_message;
  EXPECT_EQ(result.stdout_data, "hello\n");
  ASSERT_EQ(result.retries.failures.size(), 1U);
  EXPECT_EQ(result.retries.failures[0].backoff, 300ms);
  EXPECT_GE(elapsed, 300ms);
}

TEST(RetryFakeAgentTest, NegativePushbackStopsRetrying) {
  FakeAgent agent(resuming_after_failures("hello\n", 1, 3, 1000, "-1"));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_NE(result.error_message.find("asked not to"), std::string::npos) << result.error_message;
  EXPECT_EQ(agent.calls().size(), 1U);
}

TEST(RetryFakeAgentTest, TheOverallDeadlineSpansAttempts) {
  std::atomic<int> calls{0};
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(
      [&](grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
        writer.Write(started_message(request.exec_id()));
        if (calls++ == 0) {
          std::this_thread::sleep_for(500ms);  // a slow agent, then a lost connection
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "lost");
        }
        if (wait_for_client_cancel(context)) ++cancels_seen;  // the reattach hangs
        return grpc::Status::CANCELLED;
      },
      answering_cancel());
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  Command command{"make"};
  command.deadline = 1500ms;
  const auto begin = std::chrono::steady_clock::now();
  auto [ec, result] = run_bounded(io, runner.exec(command, as_tuple(asio::use_awaitable)));
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  EXPECT_EQ(ec, errc::deadline_exceeded) << result.error_message;
  EXPECT_EQ(result.retries.attempts, 2U);
  // One deadline for both attempts: not 1.5 s for each (which would end at 2 s).
  EXPECT_GE(elapsed, 1450ms);
  EXPECT_LT(elapsed, 1900ms);
  // The deadline is the caller's own limit: the command is abandoned, not left to a grace.
  EXPECT_TRUE(agent.wait_for_cancels(1, 5s)) << "no Cancel after the overall deadline";
}

TEST(RetryFakeAgentTest, ASlowServerIsNotAFailure) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(40ms);
      writer.Write(stdout_message("x", static_cast<std::uint64_t>(i)));
    }
    writer.Write(exit_message(0));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
  EXPECT_EQ(result.stdout_data, "xxxxx");
  EXPECT_EQ(result.retries.attempts, 1U);
}

TEST(RetryFakeAgentTest, AnOlderAgentResetMidStreamKeepsThePartialOutputAndIsNotRetried) {
  // The first agent generation sends no `started`: it cannot reattach, so a second request
  // would run the command again.
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest&, ExecWriter& writer) {
    writer.Write(stdout_message("partial", 0));
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection reset");
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(result.stdout_data, "partial");
  EXPECT_EQ(result.exit_code(), -1);
  EXPECT_NE(result.error_message.find("not retried"), std::string::npos) << result.error_message;
  EXPECT_EQ(agent.calls().size(), 1U);
}

// Starts a stream whose first attempt fails with a 30 s pushback, and waits until the SDK
// is in that wait.
ExecStream stream_in_backoff(asio::io_context& io, RemoteRunner& runner, FakeAgent& agent) {
  auto stream = runner.stream({"make"});
  EXPECT_TRUE(eventually([&] { return stream.retries().failures.size() == 1; }, 10s, &io))
      << "the first attempt did not fail";
  EXPECT_EQ(agent.calls().size(), 1U);
  return stream;
}

TEST(RetryFakeAgentTest, CancellingDuringTheWaitEndsTheStreamAtOnceAndSendsCancel) {
  FakeAgent agent(resuming_after_failures("hello\n", 1, 3, 1000, "30000"), answering_cancel());
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto stream = stream_in_backoff(io, runner, agent);
  auto [first_ec, first] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(first_ec);
  EXPECT_EQ(first->data, "hel");
  const auto begin = std::chrono::steady_clock::now();
  stream.cancel();
  auto [ec, none] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)), 5s);
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 1s) << "the wait was not cut short";
  // The first attempt reached the agent, which keeps the command for a reattach.
  EXPECT_TRUE(agent.wait_for_cancels(1, 5s));
  EXPECT_EQ(agent.calls().size(), 1U);
}

TEST(RetryFakeAgentTest, CancellingAnExecThroughItsSlotDuringTheWait) {
  FakeAgent agent(resuming_after_failures("hello\n", 1, 3, 1000, "30000"), answering_cancel());
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  asio::cancellation_signal signal;
  std::optional<std::error_code> outcome;
  runner.exec({"make"}, asio::bind_cancellation_slot(
                            signal.slot(), [&](std::error_code ec, ExecResult) { outcome = ec; }));
  ASSERT_TRUE(eventually([&] { return agent.calls().size() == 1; }, 10s, &io));
  // In the attempt or in the 30 s wait after it: either way the call ends now.
  signal.emit(asio::cancellation_type::terminal);
  ASSERT_TRUE(eventually([&] { return outcome.has_value(); }, 5s, &io));
  EXPECT_EQ(*outcome, asio::error::operation_aborted);
  EXPECT_EQ(agent.calls().size(), 1U);
}

TEST(RetryFakeAgentTest, ClosingTheRunnerDuringTheWaitEndsTheStream) {
  FakeAgent agent(resuming_after_failures("hello\n", 1, 3, 1000, "30000"), answering_cancel());
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), quick_config(agent));
  auto stream = stream_in_backoff(io, runner, agent);
  runner.close();
  auto [first_ec, first] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(first_ec);  // what was received is still delivered after close()
  auto [ec, none] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)), 5s);
  EXPECT_EQ(ec, errc::runner_closed);
}

TEST(RetryFakeAgentTest, DestroyingTheRunnerDuringTheWaitDoesNotWaitForIt) {
  FakeAgent agent(resuming_after_failures("hello\n", 1, 3, 1000, "30000"), answering_cancel());
  asio::io_context io;
  const auto begin = std::chrono::steady_clock::now();
  {
    RemoteRunner runner(io.get_executor(), quick_config(agent));
    auto stream = stream_in_backoff(io, runner, agent);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
}

TEST(RetryFakeAgentTest, GrpcsOwnRetriesStayOffWhateverTheChannelArgumentsSay) {
  std::atomic<int> calls{0};
  FakeAgent agent([&](grpc::ServerContext&, const v1::ExecRequest&, ExecWriter&) {
    ++calls;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
  });
  asio::io_context io;
  auto config = quick_config(agent);
  config.retry.max_attempts = 1;
  // Everything that would make gRPC re-send Exec by itself.
  config.channel_args["grpc.enable_retries"] = 1;
  config.channel_args["grpc.service_config"] = std::string(R"({"methodConfig": [{
      "name": [{"service": "sandbox.v1.SandboxExecService"}],
      "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.01s",
                      "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]})");
  RemoteRunner runner(io.get_executor(), config);
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(calls.load(), 1) << "gRPC re-sent the Exec behind the SDK's back";
}

// A command that prints nothing for 3.5 s between `started` and its output: long enough
// for four pings (gRPC 1.51's client sends at most one per second), which a default
// server answers with GOAWAY too_many_pings (its third strike).
ExecScript silent_for_a_while() {
  return [](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    std::this_thread::sleep_for(3500ms);
    writer.Write(stdout_message("late\n", 0));
    writer.Write(exit_message(0));
    return grpc::Status::OK;
  };
}

// The fake is a gRPC server with the default ping policy (one ping per 5 minutes while it
// sends nothing, two strikes forgiven). Keepalive as often as gRPC allows (every second):
// gRPC stops after `max_pings_without_data` pings, so no GOAWAY.
TEST(KeepaliveFakeAgentTest, TheDefaultPingLimitNeverEarnsTooManyPingsFromADefaultServer) {
  FakeAgent agent(silent_for_a_while());
  asio::io_context io;
  auto config = quick_config(agent);
  config.retry.max_attempts = 1;
  config.keepalive.time = 100ms;
  config.keepalive.timeout = 1000ms;
  ASSERT_EQ(config.keepalive.max_pings_without_data, 2);  // the default under test
  RemoteRunner runner(io.get_executor(), config);
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
  EXPECT_EQ(result.stdout_data, "late\n");
}

// The same pings without the limit do earn the GOAWAY: the test above can fail.
TEST(KeepaliveFakeAgentTest, UnlimitedPingsAgainstADefaultServerAreRefused) {
  FakeAgent agent(silent_for_a_while());
  asio::io_context io;
  auto config = quick_config(agent);
  config.retry.max_attempts = 1;
  config.keepalive.time = 100ms;
  config.keepalive.timeout = 1000ms;
  config.keepalive.max_pings_without_data = 0;
  RemoteRunner runner(io.get_executor(), config);
  auto [ec, result] = run_bounded(io, runner.exec({"make"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable) << result.error_message;
}

}  // namespace
}  // namespace sandbox::test
