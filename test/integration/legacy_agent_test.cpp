// The older agent generation (AgentProtocol::legacy): a fake serving only
// /workflow.plugin.external.sandbox.SandboxExecService/Exec, with the v1 messages but
// neither `started` nor offsets nor Cancel.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>

#include "fakes/fake_agent.hpp"
#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using ::testing::HasSubstr;

// What the first agent generation sends: chunks without offsets, a bare exit code.
grpc::Status old_agent(grpc::ServerContext& /*context*/, const v1::ExecRequest& /*request*/,
                       ExecWriter& writer) {
  v1::ExecResponse message;
  message.set_stdout("hello ");
  writer.Write(message);
  message.set_stderr("warn\n");
  writer.Write(message);
  message.set_stdout("world\n");
  writer.Write(message);
  message.set_exit_code(3);
  writer.Write(message);
  return grpc::Status::OK;
}

RemoteRunnerConfig legacy_config(const FakeAgent& agent) {
  RemoteRunnerConfig config = runner_config(agent);
  config.protocol = AgentProtocol::legacy;
  return config;
}

TEST(LegacyAgentTest, ExecCollectsWhatAnAgentWithoutStartedOrOffsetsSends) {
  FakeAgent agent(old_agent, {}, FakeGeneration::legacy);
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), legacy_config(agent));
  auto [ec, result] =
      run_bounded(io, runner.exec({"sh", "-c", "x"}, as_tuple(asio::use_awaitable)));
  ASSERT_FALSE(ec) << result.error_message;
  EXPECT_EQ(result.exit_code(), 3);
  EXPECT_EQ(result.stdout_data, "hello world\n");
  EXPECT_EQ(result.stderr_data, "warn\n");
  EXPECT_EQ(result.status.stdout_total, 12u) << "totals are what was received";
  EXPECT_TRUE(result.info.sandbox_id.empty()) << "no started: nothing but the exec id is known";
  ASSERT_EQ(agent.calls().size(), 1u);
  EXPECT_EQ(agent.calls()[0].request.command(0), "sh") << "fields 1-5 as v1 sends them";
}

TEST(LegacyAgentTest, AStreamDeliversTheChunksInOrder) {
  FakeAgent agent(old_agent, {}, FakeGeneration::legacy);
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), legacy_config(agent));
  ExecStream stream = runner.stream({"true"});
  std::string seen;
  for (;;) {
    auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    ASSERT_FALSE(ec) << stream.error_message();
    if (!chunk) break;
    seen += (chunk->stream == OutputStream::out ? "o:" : "e:") + chunk->data;
  }
  EXPECT_EQ(seen, "o:hello e:warn\no:world\n");
  EXPECT_EQ(stream.exit_status().exit_code, 3);
}

TEST(LegacyAgentTest, TheOtherGenerationsPathIsNotServed) {
  // Each protocol reaches its own service: a v1 runner finds nothing at an old agent, and a
  // legacy runner nothing at a v1 agent.
  FakeAgent old(old_agent, {}, FakeGeneration::legacy);
  FakeAgent current(replying("x", "", 0));
  asio::io_context io;
  RemoteRunner v1_runner(io.get_executor(), runner_config(old));
  RemoteRunner legacy_runner(io.get_executor(), legacy_config(current));
  auto [v1_error, v1_result] =
      run_bounded(io, v1_runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(v1_error, errc::unimplemented);
  auto [legacy_error, legacy_result] =
      run_bounded(io, legacy_runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(legacy_error, errc::unimplemented);
  EXPECT_TRUE(current.calls().empty());
}

TEST(LegacyAgentTest, FeaturesTheOldAgentWouldDropAreRefusedNamingTheField) {
  FakeAgent agent(old_agent, {}, FakeGeneration::legacy);
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), legacy_config(agent));
  Command with_stdin{"cat"};
  with_stdin.stdin_data = "input";
  Command with_timeout{"sleep", "1"};
  with_timeout.timeout = 5s;
  Command with_exec_id{"true"};
  with_exec_id.exec_id = "6f1c2a9e-3b7d-4c1e-9a53-0c9b8e2f4d11";
  for (const auto& [command, field] :
       {std::pair{with_stdin, "stdin_data"}, std::pair{with_timeout, "timeout"},
        std::pair{with_exec_id, "exec_id"}}) {
    auto [ec, result] = run_bounded(io, runner.exec(command, as_tuple(asio::use_awaitable)));
    EXPECT_EQ(ec, errc::invalid_argument) << field;
    EXPECT_THAT(result.error_message, HasSubstr(std::string(field) + ": needs a v1 agent"));
  }
  Command capped{"true"};
  capped.max_output_bytes = 10;
  ExecStream stream = runner.stream(capped);
  auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_THAT(stream.error_message(), HasSubstr("max_output_bytes"));
  EXPECT_TRUE(agent.calls().empty()) << "refused before any RPC";
  // exec() caps on its own side, so its cap stays usable.
  auto [capped_error, capped_result] =
      run_bounded(io, runner.exec(capped, as_tuple(asio::use_awaitable)));
  EXPECT_FALSE(capped_error) << capped_result.error_message;
  EXPECT_EQ(capped_result.stdout_data, "hello worl");
  EXPECT_TRUE(capped_result.status.stdout_truncated);
}

TEST(LegacyAgentTest, AFailureAfterTheRequestWasSentIsNotRetried) {
  // The old agent runs every request it receives: a retry could run the command twice.
  FakeAgent agent(
      [](grpc::ServerContext&, const v1::ExecRequest&, ExecWriter& writer) {
        v1::ExecResponse message;
        message.set_stdout("partial");
        writer.Write(message);
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection lost");
      },
      {}, FakeGeneration::legacy);
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), legacy_config(agent));
  auto [ec, result] = run_bounded(io, runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(agent.calls().size(), 1u);
  EXPECT_EQ(result.retries.attempts, 1u);
  EXPECT_EQ(result.stdout_data, "partial") << "what arrived is kept";
  EXPECT_EQ(result.exit_code(), -1) << "never presented as complete";
}

TEST(LegacyAgentTest, AnUnsentRequestIsRetried) {
  // Nothing listens: every attempt fails before the request leaves the client.
  asio::io_context io;
  RemoteRunnerConfig config;
  config.address = "unix:/nonexistent/sandbox-legacy.sock";
  config.protocol = AgentProtocol::legacy;
  config.retry.max_attempts = 3;
  config.retry.initial_backoff = 10ms;
  RemoteRunner runner(io.get_executor(), config);
  auto [ec, result] = run_bounded(io, runner.exec({"true"}, as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(result.retries.attempts, 3u);
}

TEST(LegacyAgentTest, CancellingEndsTheRpcTheOnlyWayTheOldAgentUnderstands) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(
      [&](grpc::ServerContext& context, const v1::ExecRequest&, ExecWriter& writer) {
        v1::ExecResponse message;
        message.set_stdout("tick");
        writer.Write(message);
        if (wait_for_client_cancel(context)) cancels_seen.fetch_add(1);
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      },
      {}, FakeGeneration::legacy);
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), legacy_config(agent));
    ExecStream stream = runner.stream({"sleep", "60"});
    auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    ASSERT_FALSE(ec) << stream.error_message();
    stream.cancel();
    auto [cancelled, none] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
    EXPECT_EQ(cancelled, asio::error::operation_aborted);
  }
  EXPECT_TRUE(eventually([&] { return cancels_seen.load() == 1; }))
      << "the agent did not see its RPC cancelled";
}

}  // namespace
}  // namespace sandbox::test
