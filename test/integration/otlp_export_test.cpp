// End to end over the wire: the SDK exports its spans through sandbox::otel::OtlpExport
// (OTLP/gRPC, batched) to a collector in the test (OtlpReceiver), running execs on the
// agent binary, which exports its SERVER spans there too; the spans must arrive whole: names,
// kinds, ids, parents across the RPC, §15's attributes, resource and scope.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "fakes/io_harness.hpp"
#include "integration/otlp_receiver.hpp"
#include "integration/span_record.hpp"
#include "opentelemetry/trace/scope.h"
#include "sandbox/opentelemetry.hpp"
#include "sandbox/sandbox.hpp"
#include "support/agent_process.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
namespace api = opentelemetry::trace;

constexpr const char* kExecSpanName = "sandbox.v1.SandboxExecService/Exec";
constexpr const char* kAppService = "traced-app";

std::string hex(api::TraceId id) {
  std::array<char, 32> digits{};
  id.ToLowerBase16(digits);
  return std::string(digits.data(), digits.size());
}
std::string hex(api::SpanId id) {
  std::array<char, 16> digits{};
  id.ToLowerBase16(digits);
  return std::string(digits.data(), digits.size());
}

bool is_client_exec(const SpanRecord& span) {
  return span.service == kAppService && span.name == kExecSpanName && span.kind == "client";
}

// The collector, the agent binary on loopback TCP (unconfined, sandbox id "otlp-box"), an
// io_context for the runners the tests make.
class OtlpExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() / "ws");
    agent_ = std::make_unique<AgentProcess>(agent_flags());
  }

  // The agent's flags: it exports its own spans to the same receiver.
  std::vector<std::string> agent_flags() const {
    return {"--allow-unauthenticated",
            "--listen",
            "127.0.0.1:0",
            "--workspace",
            (dir_.path() / "ws").string(),
            "--sandbox",
            "none",
            "--sandbox-id",
            "otlp-box",
            "--otlp-endpoint",
            receiver_.endpoint()};
  }

  RemoteRunnerConfig config(std::shared_ptr<Tracer> tracer) const {
    RemoteRunnerConfig config;
    config.address = agent_->address();
    config.tracer = std::move(tracer);
    config.default_deadline = 30s;
    return config;
  }

  std::tuple<std::error_code, ExecResult> exec(RemoteRunner& runner, Command command) {
    return run_bounded(
        io_, runner.exec(std::move(command), asio::experimental::as_tuple(asio::use_awaitable)),
        30s);
  }

  OtlpReceiver receiver_;
  TempDir dir_;
  std::unique_ptr<AgentProcess> agent_;
  asio::io_context io_;
};

TEST_F(OtlpExportTest, ClientSpansArriveWholeWithTheCallersSpanAndTheResource) {
  std::string trace_id, parent_span_id;
  std::vector<std::string> exec_ids;
  {
    otel::OtlpExport otlp(receiver_.endpoint(), kAppService);
    RemoteRunner runner(io_.get_executor(), config(otlp.tracer()));
    auto parent = otlp.provider()->GetTracer("otlp-export-test")->StartSpan("request");
    {
      api::Scope active(parent);
      for (const char* script : {"echo one", "echo two >&2; exit 4"}) {
        auto [ec, result] = exec(runner, Command{"sh", "-c", script});
        ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message;
        exec_ids.push_back(result.info.exec_id);
      }
    }
    trace_id = hex(parent->GetContext().trace_id());
    parent_span_id = hex(parent->GetContext().span_id());
    parent->End();
    EXPECT_TRUE(otlp.force_flush()) << "the export did not finish within 5 s";
  }

  auto spans = receiver_.wait_for(2, is_client_exec, 10s);
  ASSERT_EQ(spans.size(), 2u) << receiver_.spans().size() << " spans arrived in all";
  // In the order the execs ran: spans are exported as they end, and an exec's RPC may end
  // after the next exec's (the SDK reads the status after the exit).
  std::sort(spans.begin(), spans.end(), [&](const SpanRecord& a, const SpanRecord& b) {
    return std::find(exec_ids.begin(), exec_ids.end(), a.text("sandbox.exec_id")) <
           std::find(exec_ids.begin(), exec_ids.end(), b.text("sandbox.exec_id"));
  });
  std::set<std::string> keys = client_span_keys_of_an_exit();
  keys.erase("sandbox.profile.requested");  // none requested
  for (std::size_t i = 0; i < spans.size(); ++i) {
    const SpanRecord& span = spans[i];
    SCOPED_TRACE("exec " + std::to_string(i + 1));
    EXPECT_EQ(span.scope, "sandbox-exec");
    EXPECT_EQ(span.trace_id, trace_id);
    EXPECT_EQ(span.parent_span_id, parent_span_id);
    EXPECT_EQ(span.keys(), keys);
    EXPECT_EQ(span.text("rpc.system"), "grpc");
    EXPECT_EQ(span.text("server.address"), "127.0.0.1");
    EXPECT_EQ(span.text("sandbox.id"), "otlp-box");
    EXPECT_EQ(span.text("sandbox.exec_id"), exec_ids[i]);
    EXPECT_EQ(span.number("sandbox.retry.attempt"), 1);
    EXPECT_FALSE(span.error);
    ASSERT_EQ(span.events.size(), 1u);
    EXPECT_EQ(span.events[0].name, "sandbox.started");
  }
  EXPECT_EQ(spans[0].number("sandbox.exit_code"), 0);
  EXPECT_EQ(spans[0].number("sandbox.stdout.bytes_received"), 4);
  EXPECT_EQ(spans[1].number("sandbox.exit_code"), 4);
  EXPECT_EQ(spans[1].number("sandbox.stderr.bytes_received"), 4);
  EXPECT_NE(spans[0].span_id, spans[1].span_id);
  // The agent exported its side of each exec to the same collector: a SERVER span whose
  // parent is that exec's CLIENT span, with the setup and process spans under it.
  const auto servers = receiver_.wait_for(
      2,
      [](const SpanRecord& span) {
        return span.service == "sandbox-agent" && span.kind == "server";
      },
      10s);
  ASSERT_EQ(servers.size(), 2u);
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const auto client = std::find_if(spans.begin(), spans.end(), [&](const SpanRecord& span) {
      return span.span_id == servers[i].parent_span_id;
    });
    ASSERT_NE(client, spans.end()) << "a SERVER span whose parent is no client span";
    EXPECT_EQ(servers[i].trace_id, trace_id);
    EXPECT_EQ(servers[i].name, client->name);
    EXPECT_EQ(servers[i].text("sandbox.exec_id"), client->text("sandbox.exec_id"));
    EXPECT_EQ(servers[i].number("sandbox.exit_code"), client->number("sandbox.exit_code"));
  }
  const auto children = receiver_.wait_for(
      4,
      [](const SpanRecord& span) {
        return span.service == "sandbox-agent" &&
               (span.name == "sandbox.setup" || span.name == "sandbox.process");
      },
      10s);
  ASSERT_EQ(children.size(), 4u);
  for (const SpanRecord& child : children) {
    EXPECT_TRUE(child.parent_span_id == servers[0].span_id ||
                child.parent_span_id == servers[1].span_id)
        << child.name << " is not a child of a SERVER span";
  }
  // The caller's span went the same way.
  const auto parents = receiver_.wait_for(
      1, [](const SpanRecord& span) { return span.name == "request"; }, 10s);
  ASSERT_EQ(parents.size(), 1u);
  EXPECT_EQ(parents[0].span_id, parent_span_id);
  EXPECT_EQ(parents[0].service, kAppService);
}

TEST_F(OtlpExportTest, DestroyingTheExportFlushesWhatIsQueued) {
  {
    otel::OtlpExport otlp(receiver_.endpoint(), kAppService);
    RemoteRunner runner(io_.get_executor(), config(otlp.tracer()));
    auto [ec, result] = exec(runner, Command{"true"});
    ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message;
  }  // no force_flush: the destructor's

  EXPECT_EQ(receiver_.wait_for(1, is_client_exec, 10s).size(), 1u);
}

TEST_F(OtlpExportTest, ACollectorThatIsDownNeitherFailsNorDelaysAnExec) {
  std::string unreachable;
  {
    OtlpReceiver gone;  // a port that was just listening, closed again
    unreachable = gone.endpoint();
  }
  const auto begin = std::chrono::steady_clock::now();
  {
    otel::OtlpExport otlp(unreachable, kAppService);
    RemoteRunner runner(io_.get_executor(), config(otlp.tracer()));
    for (int i = 0; i < 3; ++i) {
      const auto exec_begin = std::chrono::steady_clock::now();
      auto [ec, result] = exec(runner, Command{"true"});
      ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message;
      EXPECT_LT(std::chrono::steady_clock::now() - exec_begin, 2s);
    }
    otlp.force_flush(2s);  // true all the same: OTel reports failed exports in its log only
  }
  // Flush and shutdown are bounded (5 s each) even when every export fails.
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 15s);
}

}  // namespace
}  // namespace sandbox::test
