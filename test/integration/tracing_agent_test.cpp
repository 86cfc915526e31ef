// The agent's side of the trace (docs/behavior.md §15): the reference agent in-process,
// tracing into the same in-memory pipeline as the SDK, so its SERVER span, sandbox.setup and
// sandbox.process are checked against the CLIENT span across the RPC. The client spans on
// their own are tracing_test.cpp's.

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "integration/in_memory_tracing.hpp"
#include "integration/proxied_agent_fixture.hpp"
#include "opentelemetry/trace/scope.h"

namespace sandbox::test {
namespace {

using asio::experimental::as_tuple;
using namespace std::chrono_literals;

std::vector<SpanRecord> of_kind(const std::vector<SpanRecord>& spans, const std::string& kind) {
  std::vector<SpanRecord> found;
  std::copy_if(spans.begin(), spans.end(), std::back_inserter(found),
               [&](const SpanRecord& span) { return span.kind == kind; });
  return found;
}

std::vector<SpanRecord> named(const std::vector<SpanRecord>& spans, const std::string& name) {
  std::vector<SpanRecord> found;
  std::copy_if(spans.begin(), spans.end(), std::back_inserter(found),
               [&](const SpanRecord& span) { return span.name == name; });
  return found;
}

class TracingAgentSpansTest : public ProxiedAgent, public ::testing::Test {
 protected:
  /// Agent and runner both trace into `tracing_`; the runner dials the agent through the
  /// fault proxy unless `via_proxy` is false.
  void start(bool via_proxy, const std::filesystem::path& secrets_dir = {},
             RemoteRunnerConfig config = {}) {
    config.tracer = tracing_.sdk_tracer();
    start_agent(
        config,
        [&](agent::AgentOptions& options) {
          options.tracer = tracing_.sdk_tracer();
          options.sandbox_id = "agent-sandbox";
          options.secrets_dir = secrets_dir;
        },
        via_proxy);
  }

  /// Every span, once `rpcs` RPCs ended on both sides (CLIENT and SERVER spans share the
  /// RPC's name). The agent ends its span when its call is over, which may be after the
  /// caller saw the exit; its setup and process spans end before it.
  std::vector<SpanRecord> settled_spans(std::size_t rpcs = 1) {
    tracing_.wait_for(2 * rpcs);
    return tracing_.spans();
  }

  /// `cmd` under a span of the test's own, which becomes the caller's active span.
  ExecResult exec_under(const std::string& parent_name, Command cmd) {
    auto parent = tracing_.app_tracer()->StartSpan(parent_name);
    ExecResult result;
    {
      api::Scope scope(parent);
      result = run_bounded(io_, runner_->exec(std::move(cmd)), 20s);
    }
    parent->End();
    return result;
  }

  InMemoryTracing tracing_;
};

TEST_F(TracingAgentSpansTest, ServerSpanIsTheClientSpansChildWithSetupAndProcessUnderIt) {
  start(false);
  Command cmd{"sh", "-c", "printf abc; printf de >&2; exit 3"};
  cmd.exec_id = "7c1f0c4e-0000-4000-8000-000000000001";
  const ExecResult result = exec_under("caller", cmd);
  ASSERT_EQ(result.exit_code(), 3);

  const auto spans = settled_spans();
  const auto clients = of_kind(spans, "client");
  const auto servers = of_kind(spans, "server");
  const auto setups = named(spans, "sandbox.setup");
  const auto processes = named(spans, "sandbox.process");
  ASSERT_EQ(clients.size(), 1u);
  ASSERT_EQ(servers.size(), 1u);
  ASSERT_EQ(setups.size(), 1u);
  ASSERT_EQ(processes.size(), 1u);
  const SpanRecord& server = servers[0];

  for (const SpanRecord* span : {&server, &setups[0], &processes[0]}) {
    EXPECT_EQ(span->trace_id, clients[0].trace_id) << span->name;
  }
  EXPECT_EQ(server.parent_span_id, clients[0].span_id);
  EXPECT_EQ(setups[0].parent_span_id, server.span_id);
  EXPECT_EQ(processes[0].parent_span_id, server.span_id);
  EXPECT_EQ(setups[0].kind, "internal");
  EXPECT_EQ(processes[0].kind, "internal");

  EXPECT_EQ(server.name, kExecSpanName);
  EXPECT_FALSE(server.error) << "a non-zero exit is a result, not a failure";
  EXPECT_EQ(server.keys(), (std::set<std::string>{
                               "rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
                               "sandbox.id", "sandbox.exec_id", "sandbox.profile.effective",
                               "sandbox.resumed", "sandbox.exit_code", "sandbox.timed_out",
                               "sandbox.stdout.bytes_sent", "sandbox.stderr.bytes_sent"}));
  EXPECT_EQ(server.text("rpc.system"), "grpc");
  EXPECT_EQ(server.text("rpc.service"), "sandbox.v1.SandboxExecService");
  EXPECT_EQ(server.text("rpc.method"), "Exec");
  EXPECT_EQ(server.number("rpc.grpc.status_code"), 0);
  EXPECT_EQ(server.text("sandbox.id"), "agent-sandbox");
  EXPECT_EQ(server.text("sandbox.exec_id"), "7c1f0c4e-0000-4000-8000-000000000001");
  EXPECT_EQ(server.text("sandbox.profile.effective"), result.info.effective_profile);
  ASSERT_NE(server.find("sandbox.resumed"), nullptr);
  EXPECT_FALSE(std::get<bool>(*server.find("sandbox.resumed")));
  EXPECT_EQ(server.number("sandbox.exit_code"), 3);
  EXPECT_EQ(server.number("sandbox.stdout.bytes_sent"), 3);
  EXPECT_EQ(server.number("sandbox.stderr.bytes_sent"), 2);
  EXPECT_EQ(processes[0].number("sandbox.exit_code"), 3);
  // `started` names the agent's sandbox to the client as well.
  EXPECT_EQ(clients[0].text("sandbox.id"), "agent-sandbox");
}

TEST_F(TracingAgentSpansTest, AStreamsParentIsTheSpanActiveWhenStreamWasCalled) {
  start(false);
  auto parent = tracing_.app_tracer()->StartSpan("caller");
  std::optional<ExecStream> stream;
  {
    api::Scope scope(parent);
    stream.emplace(runner_->stream({"sh", "-c", "head -c 200000 /dev/zero"}));
  }
  // Consumed outside the scope: the parent is the one captured by stream().
  std::uint64_t received = 0;
  for (;;) {
    auto [ec, chunk] = run_bounded(io_, stream->next(as_tuple(asio::use_awaitable)));
    ASSERT_FALSE(ec) << ec.message();
    if (!chunk) break;
    received += chunk->data.size();
  }
  parent->End();
  ASSERT_EQ(received, 200000u);

  const auto spans = settled_spans();
  const auto callers = named(spans, "caller");
  const auto clients = of_kind(spans, "client");
  const auto servers = of_kind(spans, "server");
  ASSERT_EQ(callers.size(), 1u);
  ASSERT_EQ(clients.size(), 1u);
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(clients[0].parent_span_id, callers[0].span_id);
  EXPECT_EQ(servers[0].parent_span_id, clients[0].span_id);
  EXPECT_EQ(clients[0].number("sandbox.stdout.bytes_received"), 200000);
  EXPECT_EQ(servers[0].number("sandbox.stdout.bytes_sent"), 200000);
}

TEST_F(TracingAgentSpansTest, AnAgentRefusalIsAnErrorServerSpanWithoutAProcessSpan) {
  start(false);
  Command cmd{"true"};
  cmd.workdir = "../outside";
  auto [ec, result] = run_bounded(io_, runner_->exec(cmd, as_tuple(asio::use_awaitable)));
  ASSERT_EQ(ec, errc::invalid_argument);

  const auto spans = settled_spans();
  const auto clients = of_kind(spans, "client");
  const auto servers = of_kind(spans, "server");
  ASSERT_EQ(clients.size(), 1u);
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(servers[0].parent_span_id, clients[0].span_id);
  EXPECT_TRUE(servers[0].error);
  // The caller's message names the workdir; the span only the field (§15).
  EXPECT_EQ(servers[0].status_description,
            "workdir: refused (the message names request content, which is not traced)");
  EXPECT_EQ(servers[0].text("error.type"), "invalid_argument");
  EXPECT_EQ(servers[0].number("rpc.grpc.status_code"), 3);
  EXPECT_EQ(servers[0].find("sandbox.exit_code"), nullptr);
  EXPECT_TRUE(named(spans, "sandbox.process").empty());
  const auto setups = named(spans, "sandbox.setup");
  ASSERT_EQ(setups.size(), 1u);
  EXPECT_TRUE(setups[0].error);
}

TEST_F(TracingAgentSpansTest, EachAttemptReachesTheAgentAsTheParentOfItsOwnServerSpan) {
  start(true);
  // The first attempt's connection breaks after `started` and part of the output; the
  // retry reattaches: two CLIENT spans, two SERVER spans, one process.
  proxy_->reset_after(100000);
  Command cmd{"sh", "-c", "head -c 300000 /dev/zero; printf end"};
  cmd.exec_id = "7c1f0c4e-0000-4000-8000-000000000002";
  const ExecResult result = exec_under("caller", cmd);
  ASSERT_EQ(result.exit_code(), 0) << result.error_message;
  ASSERT_EQ(result.retries.attempts, 2u);

  const auto spans = settled_spans(2);
  auto clients = of_kind(spans, "client");
  const auto servers = of_kind(spans, "server");
  ASSERT_EQ(clients.size(), 2u);
  ASSERT_EQ(servers.size(), 2u);
  std::sort(clients.begin(), clients.end(), [](const SpanRecord& a, const SpanRecord& b) {
    return a.number("sandbox.retry.attempt") < b.number("sandbox.retry.attempt");
  });
  for (std::size_t attempt = 0; attempt < 2; ++attempt) {
    const auto server = std::find_if(servers.begin(), servers.end(), [&](const SpanRecord& s) {
      return s.parent_span_id == clients[attempt].span_id;
    });
    ASSERT_NE(server, servers.end()) << "attempt " << attempt + 1 << " has no SERVER span";
    const SpanValue* resumed = server->find("sandbox.resumed");
    ASSERT_NE(resumed, nullptr);
    EXPECT_EQ(std::get<bool>(*resumed), attempt == 1) << "attempt " << attempt + 1;
  }
  EXPECT_EQ(named(spans, "sandbox.process").size(), 1u);
}

TEST_F(TracingAgentSpansTest, NoSpanCarriesAnEnvValueArgvOrSecretNorARefusalNamingThem) {
  TempDir secrets;
  std::ofstream(secrets.path() / "api_key") << "s3cr3t-value-4711\n";
  RemoteRunnerConfig config;
  config.env = {{"CONFIG_ENV", "config-env-value-0815"}};
  start(false, secrets.path(), config);
  Command cmd{"sh", "-c", "echo argv-value-1234 $API_KEY $CALL_ENV"};
  cmd.env = {{"API_KEY", "secret://api_key"}, {"CALL_ENV", "call-env-value-2342"}};
  const ExecResult result = run_bounded(io_, runner_->exec(cmd));
  ASSERT_EQ(result.exit_code(), 0) << result.error_message;
  // A refusal whose message (for the caller) names the key and the missing reference.
  Command missing{"true"};
  missing.env = {{"MISSING_KEY", "secret://no_such_secret"}};
  auto [refusal_error, refused] =
      run_bounded(io_, runner_->exec(missing, as_tuple(asio::use_awaitable)));
  ASSERT_EQ(refusal_error, errc::invalid_argument) << refused.error_message;
  ASSERT_NE(refused.error_message.find("no_such_secret"), std::string::npos)
      << "the caller is told which reference: " << refused.error_message;

  // Without a caller's span each call has its own root; it ends last on the client side.
  tracing_.wait_for(2, "sandbox.exec");
  const auto spans = settled_spans(2);
  std::size_t agent_spans = 0;
  for (const auto& span : spans) {
    if (span.kind == "server" || span.name == "sandbox.setup" || span.name == "sandbox.process") {
      ++agent_spans;
    }
    for (const std::string& text : span.strings()) {
      for (const char* forbidden :
           {"s3cr3t", "secret://", "api_key", "API_KEY", "config-env-value", "CONFIG_ENV",
            "call-env-value", "CALL_ENV", "argv-value", "echo", "MISSING_KEY", "no_such_secret"}) {
        EXPECT_EQ(text.find(forbidden), std::string::npos)
            << span.name << " carries '" << forbidden << "' in " << text;
      }
    }
  }
  // SERVER, sandbox.setup and sandbox.process; SERVER and sandbox.setup of the refusal.
  EXPECT_EQ(agent_spans, 5u);
  const auto servers = of_kind(spans, "server");
  ASSERT_EQ(servers.size(), 2u);
  const auto refusal = std::find_if(servers.begin(), servers.end(),
                                    [](const SpanRecord& span) { return span.error; });
  ASSERT_NE(refusal, servers.end());
  EXPECT_EQ(refusal->status_description,
            "env: refused (the message names request content, which is not traced)");
}

}  // namespace
}  // namespace sandbox::test
