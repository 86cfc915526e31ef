// The SDK's CLIENT spans (docs/behavior.md §15) through sandbox::opentelemetry into
// opentelemetry-cpp's in-memory exporter: the real sandbox-agent binary behind a FaultProxy
// for names, kinds, parents, §15's exact attribute sets, errors and retries; the scripted
// fake agent for what reaches the agent's metadata (traceparent on every attempt).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "fakes/fake_agent.hpp"
#include "fakes/io_harness.hpp"
#include "integration/in_memory_tracing.hpp"
#include "integration/span_record.hpp"
#include "opentelemetry/context/propagation/global_propagator.h"
#include "opentelemetry/exporters/memory/in_memory_span_exporter.h"
#include "opentelemetry/sdk/trace/simple_processor_factory.h"
#include "opentelemetry/sdk/trace/span_data.h"
#include "opentelemetry/sdk/trace/tracer_provider.h"
#include "opentelemetry/trace/context.h"
#include "opentelemetry/trace/default_span.h"
#include "opentelemetry/trace/scope.h"
#include "opentelemetry/trace/trace_state.h"
#include "sandbox/opentelemetry.hpp"
#include "sandbox/sandbox.hpp"
#include "support/agent_process.hpp"
#include "support/fault_proxy.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::Not;

namespace api = opentelemetry::trace;
namespace sdktrace = opentelemetry::sdk::trace;
namespace memory = opentelemetry::exporter::memory;
namespace nostd = opentelemetry::nostd;

// A value no span should hold: random, so no attribute holds it by chance.
std::string distinctive(std::string_view prefix) {
  static std::mt19937_64 random{std::random_device{}()};
  return std::string(prefix) + std::to_string(random());
}

// The real agent binary (unconfined, sandbox id "trace-box", secret store in its temporary
// directory), a FaultProxy in front of it (TCP), and the in-memory pipeline. Members are
// destroyed io_context first: runners live in the tests' scopes.
class TracingAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    secrets_ = dir_.path() / "secrets";
    std::filesystem::create_directories(secrets_);
    std::filesystem::create_directories(dir_.path() / "ws");
    agent_ = std::make_unique<AgentProcess>(std::vector<std::string>{
        "--allow-unauthenticated", "--workspace", (dir_.path() / "ws").string(), "--sandbox",
        "none", "--sandbox-id", "trace-box", "--secrets-dir", secrets_.string()});
    proxy_ = std::make_unique<FaultProxy>(agent_->address());
  }

  RemoteRunnerConfig config() {
    RemoteRunnerConfig config;
    config.address = proxy_->address();
    config.profile = "none";
    config.tracer = tracing_.sdk_tracer();
    config.default_deadline = 30s;
    return config;
  }

  std::tuple<std::error_code, ExecResult> exec(RemoteRunner& runner, Command command) {
    return run_bounded(
        io_, runner.exec(std::move(command), asio::experimental::as_tuple(asio::use_awaitable)),
        30s);
  }

  // `exec` with a span of the test's active around it (as an application's request span
  // would be); the span ends after the call. Returns the exec's outcome and the span.
  struct UnderParent {
    std::error_code error;
    ExecResult result;
    std::string trace_id;
    std::string span_id;
  };
  UnderParent exec_under_parent(RemoteRunner& runner, Command command) {
    auto parent = tracing_.app_tracer()->StartSpan("caller");
    UnderParent out;
    {
      api::Scope active(parent);
      std::tie(out.error, out.result) = exec(runner, std::move(command));
    }
    out.trace_id = hex(parent->GetContext().trace_id());
    out.span_id = hex(parent->GetContext().span_id());
    parent->End();
    return out;
  }

  std::uint16_t port() const { return proxy_->port(); }

  InMemoryTracing tracing_;
  TempDir dir_;
  std::filesystem::path secrets_;
  std::unique_ptr<AgentProcess> agent_;
  std::unique_ptr<FaultProxy> proxy_;
  asio::io_context io_;
};

TEST_F(TracingAgentTest, ExecIsOneClientSpanChildOfTheCallersSpanWithSection15sKeys) {
  RemoteRunner runner(io_.get_executor(), config());

  const UnderParent call =
      exec_under_parent(runner, Command{"sh", "-c", "printf hello; printf oops >&2; exit 3"});

  ASSERT_FALSE(call.error) << call.error.message() << ": " << call.result.error_message;
  ASSERT_EQ(call.result.exit_code(), 3);
  const auto spans = tracing_.wait_for(1);
  ASSERT_EQ(spans.size(), 1u);
  const SpanRecord& span = spans[0];
  EXPECT_EQ(span.kind, "client");
  EXPECT_EQ(span.trace_id, call.trace_id);
  EXPECT_EQ(span.parent_span_id, call.span_id);
  EXPECT_EQ(span.keys(), client_span_keys_of_an_exit());
  EXPECT_EQ(span.text("rpc.system"), "grpc");
  EXPECT_EQ(span.text("rpc.service"), "sandbox.v1.SandboxExecService");
  EXPECT_EQ(span.text("rpc.method"), "Exec");
  EXPECT_EQ(span.number("rpc.grpc.status_code"), 0);
  EXPECT_EQ(span.text("server.address"), "127.0.0.1");
  EXPECT_EQ(span.number("server.port"), port());
  EXPECT_EQ(span.text("sandbox.id"), "trace-box");
  EXPECT_EQ(span.text("sandbox.exec_id"), call.result.info.exec_id);
  EXPECT_FALSE(call.result.info.exec_id.empty());
  EXPECT_EQ(span.text("sandbox.profile.requested"), "none");
  EXPECT_EQ(span.text("sandbox.profile.effective"), "none");
  EXPECT_EQ(span.number("sandbox.exit_code"), 3);
  EXPECT_EQ(span.attributes.at("sandbox.timed_out"), SpanValue(false));
  EXPECT_EQ(span.number("sandbox.retry.attempt"), 1);
  EXPECT_EQ(span.number("sandbox.stdout.bytes_received"), 5);
  EXPECT_EQ(span.number("sandbox.stderr.bytes_received"), 4);
  // A non-zero exit is a result, not a failure.
  EXPECT_FALSE(span.error) << span.status_description;
  ASSERT_EQ(span.events.size(), 1u);
  EXPECT_EQ(span.events[0].name, "sandbox.started");
}

TEST_F(TracingAgentTest, WithoutAnActiveSpanTheCallHasItsOwnRootSpan) {
  RemoteRunner runner(io_.get_executor(), config());
  Command command{"true"};
  command.exec_id = "7c1f0c4e-0000-4000-8000-00000000000a";

  auto [ec, result] = exec(runner, command);

  ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message;
  const auto roots = tracing_.wait_for(1, "sandbox.exec");
  const auto spans = tracing_.wait_for(1);
  ASSERT_EQ(roots.size(), 1u);
  ASSERT_EQ(spans.size(), 1u);
  const SpanRecord& root = roots[0];
  EXPECT_EQ(root.parent_span_id, "");
  EXPECT_EQ(root.trace_id.size(), 32u);
  EXPECT_EQ(root.kind, "internal");
  EXPECT_FALSE(root.error);
  EXPECT_EQ(root.keys(), (std::set<std::string>{"sandbox.exec_id"}));
  EXPECT_EQ(root.text("sandbox.exec_id"), "7c1f0c4e-0000-4000-8000-00000000000a");
  EXPECT_EQ(spans[0].trace_id, root.trace_id);
  EXPECT_EQ(spans[0].parent_span_id, root.span_id);
}

// Retries of a call nobody traces around still share one trace, as siblings (§15).
TEST_F(TracingAgentTest, WithoutAnActiveSpanRetriesAreSiblingsUnderTheCallsRootSpan) {
  RemoteRunnerConfig unreachable = config();
  unreachable.address = "unix:" + (dir_.path() / "nobody-listens.sock").string();
  unreachable.retry.max_attempts = 3;
  unreachable.retry.initial_backoff = 10ms;
  unreachable.sandbox_id = "configured-box";
  RemoteRunner runner(io_.get_executor(), unreachable);

  auto [ec, result] = exec(runner, Command{"true"});

  ASSERT_EQ(ec, errc::unavailable) << ec.message();
  const auto roots = tracing_.wait_for(1, "sandbox.exec");
  const auto attempts = tracing_.wait_for(3);
  ASSERT_EQ(roots.size(), 1u);
  ASSERT_EQ(attempts.size(), 3u);
  for (const SpanRecord& attempt : attempts) {
    EXPECT_EQ(attempt.trace_id, roots[0].trace_id);
    EXPECT_EQ(attempt.parent_span_id, roots[0].span_id);
  }
  EXPECT_TRUE(roots[0].error);
  EXPECT_EQ(roots[0].text("error.type"), "unavailable");
  EXPECT_EQ(roots[0].text("sandbox.id"), "configured-box");
  EXPECT_EQ(roots[0].status_description, result.error_message);
}

TEST_F(TracingAgentTest, CommandTimeoutIsTimedOutAndExit124NotAnError) {
  RemoteRunner runner(io_.get_executor(), config());
  Command command{"sleep", "30"};
  command.timeout = 300ms;

  const UnderParent call = exec_under_parent(runner, command);

  ASSERT_FALSE(call.error) << call.error.message() << ": " << call.result.error_message;
  ASSERT_TRUE(call.result.status.timed_out);
  const auto spans = tracing_.wait_for(1);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].keys(), client_span_keys_of_an_exit());
  EXPECT_EQ(spans[0].attributes.at("sandbox.timed_out"), SpanValue(true));
  EXPECT_EQ(spans[0].number("sandbox.exit_code"), 124);
  EXPECT_FALSE(spans[0].error);
}

TEST_F(TracingAgentTest, ExecRefusedByTheAgentIsAnErrorSpanWithErrorType) {
  RemoteRunner runner(io_.get_executor(), config());
  Command command{"true"};
  command.workdir = "../outside";

  const UnderParent call = exec_under_parent(runner, command);

  ASSERT_EQ(call.error, errc::invalid_argument)
      << call.error.message() << ": " << call.result.error_message;
  const auto spans = tracing_.wait_for(1);
  ASSERT_EQ(spans.size(), 1u);
  const SpanRecord& span = spans[0];
  EXPECT_EQ(span.parent_span_id, call.span_id);
  EXPECT_TRUE(span.error);
  // The caller is told what was wrong with the workdir; the span only which field (§15).
  EXPECT_THAT(call.result.error_message, HasSubstr("workdir"));
  EXPECT_NE(span.status_description, call.result.error_message);
  EXPECT_EQ(span.status_description,
            "workdir: refused (the message names request content, which is not traced)");
  EXPECT_EQ(span.text("error.type"), "invalid_argument");
  EXPECT_EQ(span.number("rpc.grpc.status_code"), 3);  // INVALID_ARGUMENT
  // Refused before `started`: nothing the agent would have told is there.
  EXPECT_EQ(
      span.keys(),
      (std::set<std::string>{
          "rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code", "server.address",
          "server.port", "sandbox.exec_id", "sandbox.profile.requested", "sandbox.retry.attempt",
          "sandbox.stdout.bytes_received", "sandbox.stderr.bytes_received", "error.type"}));
}

TEST_F(TracingAgentTest, UnreachableAgentIsOneErrorSpanPerAttemptSiblingsInTheCallersTrace) {
  RemoteRunnerConfig unreachable = config();
  unreachable.address = "unix:" + (dir_.path() / "nobody-listens.sock").string();
  unreachable.profile.clear();
  unreachable.retry.max_attempts = 2;
  unreachable.retry.initial_backoff = 10ms;
  RemoteRunner runner(io_.get_executor(), unreachable);

  const UnderParent call = exec_under_parent(runner, Command{"true"});

  ASSERT_EQ(call.error, errc::unavailable) << call.error.message();
  const auto spans = tracing_.wait_for(2);
  ASSERT_EQ(spans.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const SpanRecord& span = spans[i];
    SCOPED_TRACE("attempt " + std::to_string(i + 1));
    EXPECT_EQ(span.trace_id, call.trace_id);
    EXPECT_EQ(span.parent_span_id, call.span_id);
    EXPECT_TRUE(span.error);
    EXPECT_EQ(span.text("error.type"), "unavailable");
    EXPECT_EQ(span.number("rpc.grpc.status_code"), 14);  // UNAVAILABLE
    EXPECT_EQ(span.number("sandbox.retry.attempt"), i + 1);
    EXPECT_EQ(span.text("server.address"), (dir_.path() / "nobody-listens.sock").string());
    EXPECT_EQ(span.text("network.transport"), "unix");
    EXPECT_EQ(span.keys(),
              (std::set<std::string>{
                  "rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
                  "server.address", "network.transport", "sandbox.exec_id", "sandbox.retry.attempt",
                  "sandbox.stdout.bytes_received", "sandbox.stderr.bytes_received", "error.type"}));
  }
  EXPECT_NE(spans[0].span_id, spans[1].span_id);
}

TEST_F(TracingAgentTest, ResetFirstAttemptGivesTwoSiblingSpansThatShareTheOutput) {
  RemoteRunner runner(io_.get_executor(), config());
  // ~2 MB of output; the proxy resets the connection after its first 300 000 bytes.
  proxy_->reset_after(300000);

  const UnderParent call = exec_under_parent(runner, Command{"seq", "1", "300000"});

  ASSERT_FALSE(call.error) << call.error.message() << ": " << call.result.error_message;
  ASSERT_EQ(call.result.retries.attempts, 2u);
  const auto spans = tracing_.wait_for(2);
  ASSERT_EQ(spans.size(), 2u);
  const SpanRecord& first = spans[0];
  const SpanRecord& second = spans[1];
  for (const SpanRecord* span : {&first, &second}) {
    EXPECT_EQ(span->trace_id, call.trace_id);
    EXPECT_EQ(span->parent_span_id, call.span_id) << "a retry is a sibling, never a child";
    EXPECT_EQ(span->text("sandbox.exec_id"), call.result.info.exec_id);
  }
  EXPECT_NE(first.span_id, second.span_id);
  EXPECT_EQ(first.number("sandbox.retry.attempt"), 1);
  EXPECT_EQ(second.number("sandbox.retry.attempt"), 2);

  std::set<std::string> first_keys = client_span_keys_of_an_exit();
  first_keys.erase("sandbox.exit_code");
  first_keys.erase("sandbox.timed_out");
  first_keys.insert("error.type");
  EXPECT_EQ(first.keys(), first_keys);
  EXPECT_TRUE(first.error);
  EXPECT_EQ(first.text("error.type"), "unavailable");

  std::set<std::string> second_keys = client_span_keys_of_an_exit();
  second_keys.insert("sandbox.retry.attach_only");
  EXPECT_EQ(second.keys(), second_keys);
  EXPECT_EQ(second.attributes.at("sandbox.retry.attach_only"), SpanValue(true));
  EXPECT_FALSE(second.error);
  EXPECT_EQ(second.number("sandbox.exit_code"), 0);

  // Each byte was received by exactly one attempt.
  const std::int64_t first_bytes = first.number("sandbox.stdout.bytes_received");
  EXPECT_GT(first_bytes, 0);
  EXPECT_LT(first_bytes, 300000);
  EXPECT_EQ(first_bytes + second.number("sandbox.stdout.bytes_received"),
            static_cast<std::int64_t>(call.result.stdout_data.size()));
}

TEST_F(TracingAgentTest, NoArgvEnvStdinOutputOrSecretInAnySpan) {
  const std::string secret = distinctive("secret-value-");
  std::ofstream(secrets_ / "api_key") << secret;
  const std::string plain = distinctive("plain-value-");
  const std::string arg = distinctive("argv-");
  const std::string input = distinctive("stdin-");
  const std::string output = distinctive("output-");
  RemoteRunner runner(io_.get_executor(), config());
  Command uses{"sh", "-c", "test -n \"$API_KEY\" && cat >/dev/null && echo " + output, arg};
  uses.env = {{"API_KEY", "secret://api_key"}, {"PLAIN_VALUE", plain}};
  uses.stdin_data = input;
  // And a refusal, whose message names the missing reference's key.
  Command missing{"true"};
  missing.env = {{"API_KEY", "secret://no_such_secret"}, {"PLAIN_VALUE", plain}};

  const UnderParent used = exec_under_parent(runner, uses);
  const UnderParent refused = exec_under_parent(runner, missing);

  ASSERT_FALSE(used.error) << used.error.message() << ": " << used.result.error_message;
  ASSERT_THAT(used.result.stdout_data, HasSubstr(output));
  ASSERT_EQ(refused.error, errc::invalid_argument) << refused.result.error_message;
  ASSERT_THAT(refused.result.error_message, HasSubstr("no_such_secret")) << "the caller is told";
  const auto spans = tracing_.wait_for(2);
  ASSERT_EQ(spans.size(), 2u);
  // In the order they ended: the first call's RPC may end after the second's refusal.
  const auto refusal = std::find_if(spans.begin(), spans.end(), [&](const SpanRecord& span) {
    return span.text("sandbox.exec_id") == refused.result.info.exec_id;
  });
  ASSERT_NE(refusal, spans.end());
  EXPECT_TRUE(refusal->error);
  for (const SpanRecord& span : spans) {
    for (const std::string& text : span.strings()) {
      for (const std::string& value :
           {secret, plain, arg, input, output, std::string("secret://"), std::string("PLAIN_VALUE"),
            std::string("API_KEY"), std::string("no_such_secret")}) {
        EXPECT_THAT(text, Not(HasSubstr(value))) << "span " << span.span_id << " carries " << value;
      }
    }
  }
}

// One exec traced into `tracing` with `caller` active where it begins, against a fake agent
// scripted as resuming_after_failures(6000 bytes, 1, 3000): started, 3000 bytes,
// UNAVAILABLE; then the rest and exit 0, so two attempts. What each attempt's span and the
// agent's record of each call say, once both attempts' spans ended.
struct TwoAttempts {
  std::vector<SpanRecord> spans;  // in attempt order: each ends before the next starts
  std::vector<RecordedCall> calls;
};
TwoAttempts exec_twice_under(InMemoryTracing& tracing, nostd::shared_ptr<api::Span> caller) {
  FakeAgent agent(resuming_after_failures(std::string(6000, 'x'), 1, 3000));
  RemoteRunnerConfig config = runner_config(agent);
  config.tracer = tracing.sdk_tracer();
  asio::io_context io;
  {
    RemoteRunner runner(io.get_executor(), config);
    api::Scope active(caller);
    auto [ec, result] = run_bounded(
        io, runner.exec(Command{"anything"}, asio::experimental::as_tuple(asio::use_awaitable)),
        30s);
    EXPECT_FALSE(ec) << ec.message() << ": " << result.error_message;
  }
  TwoAttempts out{tracing.wait_for(2), agent.calls()};
  EXPECT_EQ(out.spans.size(), 2u);
  EXPECT_EQ(out.calls.size(), 2u);
  return out;
}

// The scripted agent records each call's metadata: what the agent's SERVER span continues.
TEST(TracingFakeAgentTest, EveryAttemptCarriesItsOwnSpansTraceparent) {
  InMemoryTracing tracing;
  auto parent = tracing.app_tracer()->StartSpan("caller");
  const auto [spans, calls] = exec_twice_under(tracing, parent);
  parent->End();
  ASSERT_EQ(spans.size(), 2u);
  ASSERT_EQ(calls.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("attempt " + std::to_string(i + 1));
    const auto [begin, end] = calls[i].metadata.equal_range("traceparent");
    ASSERT_EQ(std::distance(begin, end), 1) << "one traceparent per attempt";
    // W3C: version 00, the attempt span's trace and span id, sampled.
    EXPECT_EQ(begin->second, "00-" + spans[i].trace_id + "-" + spans[i].span_id + "-01");
    EXPECT_EQ(calls[i].metadata.count("baggage"), 0u);
  }
  EXPECT_EQ(spans[0].trace_id, hex(parent->GetContext().trace_id()));
  EXPECT_NE(spans[0].span_id, spans[1].span_id);
}

// A caller's context that carries a W3C tracestate (a vendor's entry from upstream) passes
// it on to every attempt, unchanged, next to that attempt's own traceparent.
TEST(TracingFakeAgentTest, TheCallersTracestateReachesEveryAttempt) {
  InMemoryTracing tracing;
  const std::uint8_t trace_bytes[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                        0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
  const std::uint8_t span_bytes[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
  const api::SpanContext upstream(api::TraceId(trace_bytes), api::SpanId(span_bytes),
                                  api::TraceFlags(api::TraceFlags::kIsSampled), true,
                                  api::TraceState::FromHeader("congo=t61rcWkgMzE,rojo=00f067aa"));
  const auto [spans, calls] =
      exec_twice_under(tracing, nostd::shared_ptr<api::Span>(new api::DefaultSpan(upstream)));
  ASSERT_EQ(spans.size(), 2u);
  ASSERT_EQ(calls.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE("attempt " + std::to_string(i + 1));
    EXPECT_EQ(spans[i].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_EQ(spans[i].parent_span_id, "00f067aa0ba902b7");
    const auto [begin, end] = calls[i].metadata.equal_range("tracestate");
    ASSERT_EQ(std::distance(begin, end), 1) << "one tracestate per attempt";
    EXPECT_EQ(begin->second, "congo=t61rcWkgMzE,rojo=00f067aa");
    const auto parent = calls[i].metadata.find("traceparent");
    ASSERT_NE(parent, calls[i].metadata.end());
    EXPECT_EQ(parent->second, "00-4bf92f3577b34da6a3ce929d0e0e4736-" + spans[i].span_id + "-01");
  }
}

// The first exit_code ends the call and the SDK cancels the RPC: the attempt's status is
// CANCELLED on the wire (or OK when the agent's trailers won the race), yet the call is a
// success, and its span says OK. An agent that never finishes the stream makes it certain.
TEST(TracingFakeAgentTest, AnAttemptThatReceivedTheExitHasStatusCodeOkThoughTheSdkCancelledIt) {
  InMemoryTracing tracing;
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(exiting_then_holding_open(cancels_seen, 5));
  RemoteRunnerConfig config = runner_config(agent);
  config.tracer = tracing.sdk_tracer();
  asio::io_context io;
  std::error_code ec;
  ExecResult result;
  {
    RemoteRunner runner(io.get_executor(), config);
    std::tie(ec, result) = run_bounded(
        io, runner.exec(Command{"anything"}, asio::experimental::as_tuple(asio::use_awaitable)),
        30s);
  }

  ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message;
  ASSERT_TRUE(eventually([&] { return cancels_seen.load() > 0; }))
      << "the agent never saw the SDK cancel the RPC after the exit";
  const auto spans = tracing.wait_for(1);
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].number("rpc.grpc.status_code"), 0);
  EXPECT_EQ(spans[0].number("sandbox.exit_code"), 5);
  EXPECT_FALSE(spans[0].error) << spans[0].status_description;
}

TEST(TracingFakeAgentTest, WithoutATracerNoTraceparentIsSent) {
  FakeAgent agent(replying("ok", "", 0));
  asio::io_context io;
  std::error_code ec;
  {
    RemoteRunner runner(io.get_executor(), runner_config(agent));
    std::tie(ec, std::ignore) = run_bounded(
        io, runner.exec(Command{"anything"}, asio::experimental::as_tuple(asio::use_awaitable)),
        30s);
  }
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(agent.calls().size(), 1u);
  EXPECT_EQ(agent.calls()[0].metadata.count("traceparent"), 0u);
}

// One RPC's propagation through `tracer`: a CLIENT span ("client") injected into metadata,
// and a SERVER span ("server") started from what extract() reads back (a new trace when it
// found nothing: `extracted` false); both ended. Returns the metadata.
std::map<std::string, std::string> propagate_once(Tracer& tracer, bool& extracted) {
  auto client = tracer.start_span("client", SpanKind::client, nullptr, {});
  std::map<std::string, std::string> metadata;
  client->inject([&](std::string_view key, std::string_view value) {
    metadata[std::string(key)] = std::string(value);
  });
  const auto parent = tracer.extract([&](std::string_view key) -> std::string_view {
    const auto it = metadata.find(std::string(key));
    return it == metadata.end() ? std::string_view() : std::string_view(it->second);
  });
  extracted = parent != nullptr;
  auto server = tracer.start_span("server", SpanKind::server, parent.get(), {});
  server->end();
  client->end();
  return metadata;
}

// Extraction, as the agent uses it: the traceparent a client sent becomes the parent.
TEST(TracingAdapterTest, ExtractReadsTheTraceparentAClientInjected) {
  InMemoryTracing tracing;
  bool extracted = false;
  propagate_once(*tracing.sdk_tracer(), extracted);
  ASSERT_TRUE(extracted);

  const auto servers = tracing.wait_for(1, "server");
  const auto clients = tracing.wait_for(1, "client");
  ASSERT_EQ(servers.size(), 1u);
  ASSERT_EQ(clients.size(), 1u);
  EXPECT_EQ(servers[0].kind, "server");
  EXPECT_EQ(servers[0].trace_id, clients[0].trace_id);
  EXPECT_EQ(servers[0].parent_span_id, clients[0].span_id);
}

// A program that set a global propagator (B3, its vendor's) gets it, on both sides.
class SpanIdPropagator final : public opentelemetry::context::propagation::TextMapPropagator {
 public:
  void Inject(opentelemetry::context::propagation::TextMapCarrier& carrier,
              const opentelemetry::context::Context& context) noexcept override {
    const api::SpanContext span = api::GetSpan(context)->GetContext();
    carrier.Set("x-test-trace", hex(span.trace_id()) + "/" + hex(span.span_id()));
  }
  opentelemetry::context::Context Extract(
      const opentelemetry::context::propagation::TextMapCarrier& carrier,
      opentelemetry::context::Context& context) noexcept override {
    const std::string value(carrier.Get("x-test-trace"));
    if (value.size() != 49) return context;
    std::uint8_t trace[16];
    std::uint8_t span[8];
    for (std::size_t i = 0; i < 16; ++i) trace[i] = std::stoi(value.substr(2 * i, 2), nullptr, 16);
    for (std::size_t i = 0; i < 8; ++i)
      span[i] = std::stoi(value.substr(33 + 2 * i, 2), nullptr, 16);
    const api::SpanContext remote(api::TraceId(trace), api::SpanId(span),
                                  api::TraceFlags(api::TraceFlags::kIsSampled), true);
    return api::SetSpan(context, nostd::shared_ptr<api::Span>(new api::DefaultSpan(remote)));
  }
  bool Fields(nostd::function_ref<bool(nostd::string_view)> callback) const noexcept override {
    return callback("x-test-trace");
  }
};

TEST(TracingAdapterTest, AGlobalPropagatorReplacesW3cOnBothSides) {
  namespace propagation = opentelemetry::context::propagation;
  const auto previous = propagation::GlobalTextMapPropagator::GetGlobalPropagator();
  propagation::GlobalTextMapPropagator::SetGlobalPropagator(
      nostd::shared_ptr<propagation::TextMapPropagator>(new SpanIdPropagator));
  InMemoryTracing tracing;
  bool extracted = false;
  auto metadata = propagate_once(*tracing.sdk_tracer(), extracted);
  propagation::GlobalTextMapPropagator::SetGlobalPropagator(previous);
  ASSERT_TRUE(extracted);

  EXPECT_EQ(metadata.count("traceparent"), 0u);
  ASSERT_EQ(metadata.count("x-test-trace"), 1u);
  const auto servers = tracing.wait_for(1, "server");
  const auto clients = tracing.wait_for(1, "client");
  ASSERT_EQ(servers.size(), 1u);
  ASSERT_EQ(clients.size(), 1u);
  EXPECT_EQ(metadata["x-test-trace"], clients[0].trace_id + "/" + clients[0].span_id);
  EXPECT_EQ(servers[0].trace_id, clients[0].trace_id);
  EXPECT_EQ(servers[0].parent_span_id, clients[0].span_id);
}

TEST(TracingAdapterTest, ExtractWithoutATraceparentIsNull) {
  InMemoryTracing tracing;
  EXPECT_EQ(tracing.sdk_tracer()->extract([](std::string_view) { return std::string_view(); }),
            nullptr);
  EXPECT_EQ(tracing.sdk_tracer()->extract([](std::string_view key) {
    return key == "traceparent" ? std::string_view("00-not-a-trace-01") : std::string_view();
  }),
            nullptr);
}

TEST(TracingAdapterTest, CurrentIsNullWithoutAnActiveSpan) {
  InMemoryTracing tracing;
  EXPECT_EQ(tracing.sdk_tracer()->current(), nullptr);
}

TEST(TracingAdapterTest, AsParentMakesChildrenAndEventsAndErrorsAreRecorded) {
  InMemoryTracing tracing;
  const auto tracer = tracing.sdk_tracer();
  const Attribute attributes[] = {{"sandbox.exec_id", std::string_view("e1")},
                                  {"sandbox.retry.attempt", std::int64_t{1}},
                                  {"sandbox.retry.attach_only", true}};
  auto outer = tracer->start_span("outer", SpanKind::server, nullptr, attributes);
  auto inner = tracer->start_span("inner", SpanKind::internal, outer->as_parent().get(), {});
  inner->add_event("sandbox.started", attributes);
  inner->set_error("it broke");
  inner->end();
  outer->end();

  const auto inners = tracing.wait_for(1, "inner");
  const auto outers = tracing.wait_for(1, "outer");
  ASSERT_EQ(inners.size(), 1u);
  ASSERT_EQ(outers.size(), 1u);
  EXPECT_EQ(inners[0].kind, "internal");
  EXPECT_EQ(inners[0].parent_span_id, outers[0].span_id);
  EXPECT_TRUE(inners[0].error);
  EXPECT_EQ(inners[0].status_description, "it broke");
  ASSERT_EQ(inners[0].events.size(), 1u);
  EXPECT_EQ(inners[0].events[0].attributes.size(), 3u);
  EXPECT_EQ(outers[0].text("sandbox.exec_id"), "e1");
  EXPECT_EQ(outers[0].number("sandbox.retry.attempt"), 1);
  EXPECT_EQ(outers[0].attributes.at("sandbox.retry.attach_only"), SpanValue(true));
}

TEST(TracingAdapterTest, NullTracerGivesSpansThatRecordNothing) {
  const auto tracer = otel::make_tracer(nostd::shared_ptr<api::Tracer>());
  auto span = tracer->start_span("nothing", SpanKind::client, nullptr, {});
  std::map<std::string, std::string> metadata;
  span->inject([&](std::string_view key, std::string_view value) {
    metadata[std::string(key)] = std::string(value);
  });
  span->set_attribute("sandbox.exit_code", std::int64_t{0});
  span->end();
  EXPECT_EQ(metadata.count("traceparent"), 0u) << "a span that records nothing has no context";
}

TEST(TracingAdapterTest, OtlpEndpointFromEnvironmentPrefersTheTracesVariable) {
  ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317", 1);
  ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  EXPECT_EQ(otel::otlp_endpoint_from_environment(), "http://general:4317");
  ::setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317", 1);
  EXPECT_EQ(otel::otlp_endpoint_from_environment(), "http://traces:4317");
  ::unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  ::unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  EXPECT_EQ(otel::otlp_endpoint_from_environment(), "");
  EXPECT_EQ(otel::OtlpExport::from_environment("test"), nullptr);
}

}  // namespace
}  // namespace sandbox::test
