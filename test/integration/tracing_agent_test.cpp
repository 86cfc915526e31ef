// The trace across the RPC boundary: the SDK's CLIENT span per attempt and the reference
// agent's SERVER span with its sandbox.setup and sandbox.process children, all through
// sandbox::opentelemetry into one in-memory exporter (docs/behavior.md §15).

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "integration/proxied_agent_fixture.hpp"
#include "opentelemetry/exporters/memory/in_memory_span_data.h"
#include "opentelemetry/exporters/memory/in_memory_span_exporter_factory.h"
#include "opentelemetry/sdk/trace/processor.h"
#include "opentelemetry/sdk/trace/simple_processor_factory.h"
#include "opentelemetry/sdk/trace/span_data.h"
#include "opentelemetry/sdk/trace/tracer_provider.h"
#include "opentelemetry/sdk/trace/tracer_provider_factory.h"
#include "opentelemetry/trace/scope.h"
#include "sandbox/opentelemetry.hpp"

namespace sandbox::test {
namespace {

namespace sdktrace = opentelemetry::sdk::trace;
namespace trace_api = opentelemetry::trace;
using asio::experimental::as_tuple;
using namespace std::chrono_literals;

/// One ended span, as the exporter got it, with attribute values as text or integers.
struct SpanRecord {
  std::string name;
  trace_api::SpanKind kind;
  std::string trace_id;
  std::string span_id;
  std::string parent_id;
  trace_api::StatusCode status;
  std::string description;
  std::map<std::string, std::string> text;
  std::map<std::string, std::int64_t> numbers;
  std::vector<std::string> events;
};

template <class Id>
std::string hex(const Id& id) {
  char buffer[2 * Id::kSize];
  id.ToLowerBase16(buffer);
  return {buffer, sizeof buffer};
}

/// Counts ended CLIENT and SERVER spans, so a test can wait for both sides: each ends its
/// span when its RPC is over, which may be after the caller saw the exit. Added after the
/// exporter's processor, so a span counted here is already in the exporter.
class RpcSpanCounter final : public sdktrace::SpanProcessor {
 public:
  std::unique_ptr<sdktrace::Recordable> MakeRecordable() noexcept override {
    return std::make_unique<sdktrace::SpanData>();
  }
  void OnStart(sdktrace::Recordable&, const trace_api::SpanContext&) noexcept override {}
  void OnEnd(std::unique_ptr<sdktrace::Recordable>&& span) noexcept override {
    const auto kind = static_cast<const sdktrace::SpanData*>(span.get())->GetSpanKind();
    std::lock_guard lock(mutex_);
    if (kind == trace_api::SpanKind::kClient) ++clients_;
    if (kind == trace_api::SpanKind::kServer) ++servers_;
    changed_.notify_all();
  }
  bool ForceFlush(std::chrono::microseconds) noexcept override { return true; }
  bool Shutdown(std::chrono::microseconds) noexcept override { return true; }

  /// Whether `clients` CLIENT and `servers` SERVER spans ended within `timeout`.
  bool wait_for(std::size_t clients, std::size_t servers, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return clients_ >= clients && servers_ >= servers; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t clients_ = 0;
  std::size_t servers_ = 0;
};

/// Every span the provider ended, through opentelemetry-cpp's in-memory exporter.
class SpanCapture {
 public:
  SpanCapture() {
    auto exporter = opentelemetry::exporter::memory::InMemorySpanExporterFactory::Create(data_);
    std::vector<std::unique_ptr<sdktrace::SpanProcessor>> processors;
    processors.push_back(sdktrace::SimpleSpanProcessorFactory::Create(std::move(exporter)));
    auto counter = std::make_unique<RpcSpanCounter>();
    rpc_spans_ = counter.get();
    processors.push_back(std::move(counter));
    provider_ = sdktrace::TracerProviderFactory::Create(std::move(processors));
  }

  /// A sandbox::Tracer recording here.
  std::shared_ptr<Tracer> tracer() { return otel::make_tracer(provider_->GetTracer("test")); }
  /// An OTel tracer of the same provider, for the test's own parent spans.
  auto native() { return provider_->GetTracer("test"); }
  /// Waits (bounded) until `clients` CLIENT and `servers` SERVER spans ended; false if not.
  bool wait_for_rpc_spans(std::size_t clients, std::size_t servers) {
    return rpc_spans_->wait_for(clients, servers, std::chrono::seconds(10));
  }

  std::vector<SpanRecord> take() {
    std::vector<SpanRecord> records;
    for (auto& span : data_->GetSpans()) {
      SpanRecord record{std::string(span->GetName()),
                        span->GetSpanKind(),
                        hex(span->GetTraceId()),
                        hex(span->GetSpanId()),
                        hex(span->GetParentSpanId()),
                        span->GetStatus(),
                        std::string(span->GetDescription()),
                        {},
                        {},
                        {}};
      for (const auto& [key, value] : span->GetAttributes()) {
        if (const auto* text = opentelemetry::nostd::get_if<std::string>(&value)) {
          record.text[key] = *text;
        } else if (const auto* number = opentelemetry::nostd::get_if<std::int64_t>(&value)) {
          record.numbers[key] = *number;
        } else if (const auto* flag = opentelemetry::nostd::get_if<bool>(&value)) {
          record.numbers[key] = *flag ? 1 : 0;
        } else {
          record.text[key] = "<other type>";
        }
      }
      for (const auto& event : span->GetEvents()) record.events.emplace_back(event.GetName());
      records.push_back(std::move(record));
    }
    return records;
  }

 private:
  std::shared_ptr<opentelemetry::exporter::memory::InMemorySpanData> data_;
  RpcSpanCounter* rpc_spans_ = nullptr;  // owned by provider_
  std::unique_ptr<sdktrace::TracerProvider> provider_;
};

std::vector<SpanRecord> of_kind(const std::vector<SpanRecord>& spans, trace_api::SpanKind kind) {
  std::vector<SpanRecord> found;
  std::copy_if(spans.begin(), spans.end(), std::back_inserter(found),
               [kind](const SpanRecord& span) { return span.kind == kind; });
  return found;
}

const SpanRecord* named(const std::vector<SpanRecord>& spans, const std::string& name) {
  auto found = std::find_if(spans.begin(), spans.end(),
                            [&](const SpanRecord& span) { return span.name == name; });
  return found == spans.end() ? nullptr : &*found;
}

std::vector<std::string> keys_of(const SpanRecord& span) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : span.text) keys.push_back(key);
  for (const auto& [key, value] : span.numbers) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

class TracingAgentTest : public ProxiedAgent, public ::testing::Test {
 protected:
  /// Agent and runner both trace into `capture_`; the runner dials the agent through the
  /// fault proxy unless `via_proxy` is false.
  void start(bool via_proxy, RemoteRunnerConfig config = {}) {
    config.tracer = capture_.tracer();
    config.sandbox_id = "configured-sandbox";
    start_agent(
        config,
        [this](agent::AgentOptions& options) {
          options.tracer = capture_.tracer();
          options.sandbox_id = "agent-sandbox";
        },
        via_proxy);
  }

  /// The spans, once `rpcs` CLIENT and SERVER spans each ended: an RPC may still be
  /// reading its trailers after the caller saw the exit (closing the runner then would
  /// cancel it).
  std::vector<SpanRecord> settled_spans(std::size_t rpcs = 1) {
    EXPECT_TRUE(capture_.wait_for_rpc_spans(rpcs, rpcs))
        << "not every RPC's CLIENT and SERVER span ended (" << rpcs << " each expected)";
    return capture_.take();
  }

  SpanCapture capture_;
};

TEST_F(TracingAgentTest, ClientSpanIsTheParentOfTheAgentsServerSpanAndItsChildren) {
  start(false);
  auto parent = capture_.native()->StartSpan("caller");
  ExecResult result;
  {
    trace_api::Scope scope(parent);
    Command cmd{"sh", "-c", "printf abc; printf de >&2; exit 3"};
    cmd.exec_id = "7c1f0c4e-0000-4000-8000-000000000001";
    result = run_bounded(io_, runner_->exec(cmd));
  }
  parent->End();
  ASSERT_EQ(result.exit_code(), 3);

  const auto spans = settled_spans();
  const SpanRecord* caller = named(spans, "caller");
  ASSERT_NE(caller, nullptr);
  const auto clients = of_kind(spans, trace_api::SpanKind::kClient);
  const auto servers = of_kind(spans, trace_api::SpanKind::kServer);
  ASSERT_EQ(clients.size(), 1u);
  ASSERT_EQ(servers.size(), 1u);
  const SpanRecord& client = clients[0];
  const SpanRecord& server = servers[0];
  const SpanRecord* setup = named(spans, "sandbox.setup");
  const SpanRecord* process = named(spans, "sandbox.process");
  ASSERT_NE(setup, nullptr);
  ASSERT_NE(process, nullptr);

  // One trace: caller -> CLIENT -> SERVER -> {setup, process}.
  for (const SpanRecord* span : {&client, &server, setup, process}) {
    EXPECT_EQ(span->trace_id, caller->trace_id) << span->name;
  }
  EXPECT_EQ(client.parent_id, caller->span_id);
  EXPECT_EQ(server.parent_id, client.span_id);
  EXPECT_EQ(setup->parent_id, server.span_id);
  EXPECT_EQ(process->parent_id, server.span_id);
  EXPECT_EQ(setup->kind, trace_api::SpanKind::kInternal);
  EXPECT_EQ(process->kind, trace_api::SpanKind::kInternal);

  EXPECT_EQ(client.name, "sandbox.v1.SandboxExecService/Exec");
  EXPECT_EQ(server.name, "sandbox.v1.SandboxExecService/Exec");
  // A non-zero exit is a result, not a failure.
  EXPECT_EQ(client.status, trace_api::StatusCode::kUnset);
  EXPECT_EQ(server.status, trace_api::StatusCode::kUnset) << server.description;

  // The client's key set of §15, exactly (a unix socket: no port, transport unix).
  EXPECT_EQ(
      keys_of(client),
      (std::vector<std::string>{"network.transport", "rpc.grpc.status_code", "rpc.method",
                                "rpc.service", "rpc.system", "sandbox.exec_id", "sandbox.exit_code",
                                "sandbox.id", "sandbox.profile.effective", "sandbox.retry.attempt",
                                "sandbox.stderr.bytes_received", "sandbox.stdout.bytes_received",
                                "sandbox.timed_out", "server.address"}));
  EXPECT_EQ(client.text.at("rpc.system"), "grpc");
  EXPECT_EQ(client.text.at("rpc.service"), "sandbox.v1.SandboxExecService");
  EXPECT_EQ(client.text.at("rpc.method"), "Exec");
  EXPECT_EQ(client.text.at("network.transport"), "unix");
  EXPECT_EQ("unix:" + client.text.at("server.address"), agent_->address());
  EXPECT_EQ(client.text.at("sandbox.id"), "agent-sandbox");  // `started` wins over config
  EXPECT_EQ(client.text.at("sandbox.exec_id"), "7c1f0c4e-0000-4000-8000-000000000001");
  EXPECT_EQ(client.text.at("sandbox.profile.effective"), result.info.effective_profile);
  EXPECT_EQ(client.numbers.at("rpc.grpc.status_code"), 0);
  EXPECT_EQ(client.numbers.at("sandbox.exit_code"), 3);
  EXPECT_EQ(client.numbers.at("sandbox.timed_out"), 0);
  EXPECT_EQ(client.numbers.at("sandbox.retry.attempt"), 1);
  EXPECT_EQ(client.numbers.at("sandbox.stdout.bytes_received"), 3);
  EXPECT_EQ(client.numbers.at("sandbox.stderr.bytes_received"), 2);
  EXPECT_EQ(client.events, std::vector<std::string>{"sandbox.started"});

  EXPECT_EQ(
      keys_of(server),
      (std::vector<std::string>{
          "rpc.grpc.status_code", "rpc.method", "rpc.service", "rpc.system", "sandbox.exec_id",
          "sandbox.exit_code", "sandbox.id", "sandbox.profile.effective", "sandbox.resumed",
          "sandbox.stderr.bytes_sent", "sandbox.stdout.bytes_sent", "sandbox.timed_out"}));
  EXPECT_EQ(server.text.at("sandbox.id"), "agent-sandbox");
  EXPECT_EQ(server.text.at("sandbox.exec_id"), "7c1f0c4e-0000-4000-8000-000000000001");
  EXPECT_EQ(server.numbers.at("sandbox.exit_code"), 3);
  EXPECT_EQ(server.numbers.at("sandbox.resumed"), 0);
  EXPECT_EQ(server.numbers.at("sandbox.stdout.bytes_sent"), 3);
  EXPECT_EQ(server.numbers.at("sandbox.stderr.bytes_sent"), 2);
  EXPECT_EQ(process->numbers.at("sandbox.exit_code"), 3);
}

TEST_F(TracingAgentTest, AStreamIsTracedLikeAnExecAndItsParentIsTheSpanActiveAtStream) {
  start(false);
  auto parent = capture_.native()->StartSpan("caller");
  std::optional<ExecStream> stream;
  {
    trace_api::Scope scope(parent);
    stream.emplace(runner_->stream({"sh", "-c", "head -c 200000 /dev/zero"}));
  }
  // Consumed outside the scope: the parent is the one captured when stream() was called.
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
  const SpanRecord* caller = named(spans, "caller");
  ASSERT_NE(caller, nullptr);
  const auto clients = of_kind(spans, trace_api::SpanKind::kClient);
  const auto servers = of_kind(spans, trace_api::SpanKind::kServer);
  ASSERT_EQ(clients.size(), 1u);
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(clients[0].parent_id, caller->span_id);
  EXPECT_EQ(servers[0].parent_id, clients[0].span_id);
  EXPECT_EQ(clients[0].numbers.at("sandbox.stdout.bytes_received"), 200000);
  EXPECT_EQ(servers[0].numbers.at("sandbox.stdout.bytes_sent"), 200000);
  EXPECT_EQ(clients[0].numbers.at("sandbox.exit_code"), 0);
}

TEST_F(TracingAgentTest, AnAgentRefusalIsAnErrorSpanOnBothSidesWithoutAProcessSpan) {
  start(false);
  Command cmd{"true"};
  cmd.workdir = "../outside";
  auto [ec, result] = run_bounded(io_, runner_->exec(cmd, as_tuple(asio::use_awaitable)));
  ASSERT_EQ(ec, errc::invalid_argument);

  const auto spans = settled_spans();
  const auto clients = of_kind(spans, trace_api::SpanKind::kClient);
  const auto servers = of_kind(spans, trace_api::SpanKind::kServer);
  ASSERT_EQ(clients.size(), 1u);
  ASSERT_EQ(servers.size(), 1u);
  EXPECT_EQ(clients[0].parent_id, std::string(16, '0'));  // no active span: a new trace
  EXPECT_EQ(servers[0].parent_id, clients[0].span_id);
  for (const SpanRecord* span : {&clients[0], &servers[0]}) {
    EXPECT_EQ(span->status, trace_api::StatusCode::kError) << span->name;
    EXPECT_NE(span->description.find("workdir"), std::string::npos) << span->description;
    EXPECT_EQ(span->text.at("error.type"), "invalid_argument");
    EXPECT_EQ(span->numbers.at("rpc.grpc.status_code"), 3);
    EXPECT_EQ(span->numbers.count("sandbox.exit_code"), 0u);
  }
  EXPECT_EQ(named(spans, "sandbox.process"), nullptr);
  const SpanRecord* setup = named(spans, "sandbox.setup");
  ASSERT_NE(setup, nullptr);
  EXPECT_EQ(setup->status, trace_api::StatusCode::kError);
}

TEST_F(TracingAgentTest, EachAttemptIsItsOwnClientSpanAndEachReachesTheAgentAsItsParent) {
  start(true);
  // The first attempt's connection breaks after `started` and part of the output, the
  // retry reattaches: two CLIENT spans, two SERVER spans, one process.
  proxy_->reset_after(100000);
  auto parent = capture_.native()->StartSpan("caller");
  ExecResult result;
  {
    trace_api::Scope scope(parent);
    Command cmd{"sh", "-c", "head -c 300000 /dev/zero; printf end"};
    cmd.exec_id = "7c1f0c4e-0000-4000-8000-000000000002";
    result = run_bounded(io_, runner_->exec(cmd), 20s);
  }
  parent->End();
  ASSERT_EQ(result.exit_code(), 0) << result.error_message;
  ASSERT_EQ(result.retries.attempts, 2u);

  const auto spans = settled_spans(2);
  const SpanRecord* caller = named(spans, "caller");
  ASSERT_NE(caller, nullptr);
  auto clients = of_kind(spans, trace_api::SpanKind::kClient);
  const auto servers = of_kind(spans, trace_api::SpanKind::kServer);
  ASSERT_EQ(clients.size(), 2u);
  std::sort(clients.begin(), clients.end(), [](const SpanRecord& a, const SpanRecord& b) {
    return a.numbers.at("sandbox.retry.attempt") < b.numbers.at("sandbox.retry.attempt");
  });
  EXPECT_EQ(clients[0].numbers.at("sandbox.retry.attempt"), 1);
  EXPECT_EQ(clients[1].numbers.at("sandbox.retry.attempt"), 2);
  EXPECT_NE(clients[0].span_id, clients[1].span_id);
  for (const auto& client : clients) {
    EXPECT_EQ(client.trace_id, caller->trace_id);
    EXPECT_EQ(client.parent_id, caller->span_id) << "a retry is a sibling, not a child";
  }
  EXPECT_EQ(clients[0].status, trace_api::StatusCode::kError);
  EXPECT_EQ(clients[0].text.at("error.type"), "unavailable");
  EXPECT_EQ(clients[1].status, trace_api::StatusCode::kUnset);
  EXPECT_EQ(clients[1].numbers.at("sandbox.retry.attach_only"), 1);
  EXPECT_EQ(clients[0].numbers.at("sandbox.stdout.bytes_received") +
                clients[1].numbers.at("sandbox.stdout.bytes_received"),
            300003);

  // Each attempt that reached the agent is the parent of one SERVER span there; the
  // reattaching one says so.
  std::vector<std::string> server_parents;
  for (const auto& server : servers) server_parents.push_back(server.parent_id);
  EXPECT_NE(std::find(server_parents.begin(), server_parents.end(), clients[1].span_id),
            server_parents.end());
  for (const auto& server : servers) {
    EXPECT_TRUE(server.parent_id == clients[0].span_id || server.parent_id == clients[1].span_id);
    if (server.parent_id == clients[1].span_id) EXPECT_EQ(server.numbers.at("sandbox.resumed"), 1);
  }
  EXPECT_EQ(std::count_if(spans.begin(), spans.end(),
                          [](const SpanRecord& span) { return span.name == "sandbox.process"; }),
            1);
}

TEST_F(TracingAgentTest, NoSpanCarriesAnEnvValueArgvOrSecret) {
  TempDir secrets;
  std::ofstream(secrets.path() / "api_key") << "s3cr3t-value-4711\n";
  RemoteRunnerConfig config;
  config.tracer = capture_.tracer();
  config.env = {{"CONFIG_ENV", "config-env-value-0815"}};
  start_agent(config, [&](agent::AgentOptions& options) {
    options.tracer = capture_.tracer();
    options.secrets_dir = secrets.path();
  });
  Command cmd{"sh", "-c", "echo argv-value-1234 $API_KEY $CALL_ENV"};
  cmd.env = {{"API_KEY", "secret://api_key"}, {"CALL_ENV", "call-env-value-2342"}};
  auto result = run_bounded(io_, runner_->exec(cmd));
  ASSERT_EQ(result.exit_code(), 0) << result.error_message;

  const auto spans = settled_spans();
  ASSERT_GE(spans.size(), 4u);
  for (const auto& span : spans) {
    std::vector<std::string> texts{span.name, span.description};
    for (const auto& [key, value] : span.text) texts.push_back(key + "=" + value);
    for (const auto& event : span.events) texts.push_back(event);
    for (const auto& text : texts) {
      for (const char* forbidden :
           {"s3cr3t", "secret://", "api_key", "API_KEY", "config-env-value", "CONFIG_ENV",
            "call-env-value", "CALL_ENV", "argv-value", "echo"}) {
        EXPECT_EQ(text.find(forbidden), std::string::npos)
            << span.name << " carries '" << forbidden << "' in " << text;
      }
    }
  }
}

}  // namespace
}  // namespace sandbox::test
