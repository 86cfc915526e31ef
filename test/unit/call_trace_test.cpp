// The client span's peer attributes (server.address, server.port, network.transport) for
// every target form, through trace_peer_of and through an attempt's span on a recording
// tracer: no OpenTelemetry, no I/O.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <grpcpp/client_context.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "client/detail/call_trace.hpp"
#include "common/trace_message.hpp"
#include "sandbox/error.hpp"
#include "sandbox/tracing.hpp"

namespace sandbox::detail {
namespace {

using ::testing::Contains;
using ::testing::Key;
using ::testing::Not;
using ::testing::Pair;

// An attribute value the recorder owns.
using Value = std::variant<bool, std::int64_t, std::string>;

Value owned(const AttributeValue& value) {
  if (const auto* text = std::get_if<std::string_view>(&value)) return std::string(*text);
  if (const auto* number = std::get_if<std::int64_t>(&value)) return *number;
  return std::get<bool>(value);
}

struct RecordedSpan {
  std::string name;
  SpanKind kind = SpanKind::internal;
  std::map<std::string, Value> attributes;
  std::vector<std::pair<std::string, std::string>> injected;
  bool ended = false;
  std::optional<std::string> error;    // set_error's description
  const SpanParent* parent = nullptr;  // what start_span was given
  // What as_parent() hands out: the identity of this span as a parent.
  std::shared_ptr<const SpanParent> as_parent = std::make_shared<const SpanParent>();
};

// Records what the SDK asks of its spans; injects a fixed traceparent.
class RecordingTracer final : public Tracer {
 public:
  class RecordingSpan final : public Span {
   public:
    explicit RecordingSpan(RecordedSpan& record) : record_(record) {}
    void set_attribute(std::string_view key, AttributeValue value) noexcept override {
      record_.attributes[std::string(key)] = owned(value);
    }
    void add_event(std::string_view, std::span<const Attribute>) noexcept override {}
    void set_error(std::string_view description) noexcept override {
      record_.error = std::string(description);
    }
    void inject(const MetadataWriter& write) const noexcept override {
      write("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      record_.injected.emplace_back("traceparent", "set");
    }
    std::shared_ptr<const SpanParent> as_parent() const override { return record_.as_parent; }
    void end() noexcept override { record_.ended = true; }

   private:
    RecordedSpan& record_;
  };

  /// A caller's active span (`caller`), unless `without_caller`.
  std::shared_ptr<const SpanParent> current() const override {
    return without_caller ? nullptr : caller;
  }
  std::shared_ptr<const SpanParent> extract(const MetadataReader&) const override {
    return nullptr;
  }
  std::unique_ptr<Span> start_span(std::string_view name, SpanKind kind, const SpanParent* parent,
                                   std::span<const Attribute> attributes) override {
    RecordedSpan& record = spans.emplace_back();
    record.name = std::string(name);
    record.kind = kind;
    record.parent = parent;
    for (const Attribute& attribute : attributes) {
      record.attributes[std::string(attribute.key)] = owned(attribute.value);
    }
    return std::make_unique<RecordingSpan>(record);
  }

  std::deque<RecordedSpan> spans;  // deque: spans keep their address
  bool without_caller = false;
  std::shared_ptr<const SpanParent> caller = std::make_shared<const SpanParent>();
};

constexpr const char* kExecId = "0b5c3c62-5d86-4b8e-9a3f-0f4a1b2c3d4e";

// Starts attempt `attempt` of exec kExecId on `trace`.
std::unique_ptr<Span> start_attempt(CallTrace& trace, std::uint32_t attempt) {
  v1::ExecRequest request;
  request.set_exec_id(kExecId);
  RetryStep step;
  step.kind = RetryStep::Kind::attempt;
  step.attempt = attempt;
  grpc::ClientContext context;
  return trace.start_attempt(step, request, context);
}

// The first attempt's span of a call to `address`, on a recording tracer.
RecordedSpan first_attempt_span(const std::string& address) {
  auto tracer = std::make_shared<RecordingTracer>();
  RemoteRunnerConfig config;
  config.address = address;
  config.tracer = tracer;
  const TraceTarget target = trace_target_of(config);
  CallTrace trace(target);
  auto span = start_attempt(trace, 1);
  EXPECT_NE(span, nullptr);
  EXPECT_EQ(tracer->spans.size(), 1u);
  return tracer->spans.empty() ? RecordedSpan{} : tracer->spans.front();
}

TEST(TracePeerTest, HostPortGivesHostAndPort) {
  const TracePeer peer = trace_peer_of("agent.example:7070");
  EXPECT_EQ(peer.address, "agent.example");
  EXPECT_EQ(peer.port, 7070);
  EXPECT_EQ(peer.transport, "");
}

TEST(TracePeerTest, BracketedIpv6GivesTheBareAddress) {
  const TracePeer peer = trace_peer_of("[::1]:50051");
  EXPECT_EQ(peer.address, "::1");
  EXPECT_EQ(peer.port, 50051);
  EXPECT_EQ(peer.transport, "");
}

TEST(TracePeerTest, DnsUriGivesItsPathsHostAndPort) {
  const TracePeer peer = trace_peer_of("dns:///agent.internal:443");
  EXPECT_EQ(peer.address, "agent.internal");
  EXPECT_EQ(peer.port, 443);
  EXPECT_EQ(peer.transport, "");
}

TEST(TracePeerTest, DnsUriWithAResolverAuthoritySkipsTheResolver) {
  const TracePeer peer = trace_peer_of("dns://8.8.8.8/agent.internal:443");
  EXPECT_EQ(peer.address, "agent.internal");
  EXPECT_EQ(peer.port, 443);
}

TEST(TracePeerTest, UnixPathGivesThePathAndTransportUnix) {
  const TracePeer peer = trace_peer_of("unix:/run/sandbox/agent.sock");
  EXPECT_EQ(peer.address, "/run/sandbox/agent.sock");
  EXPECT_EQ(peer.port, 0);
  EXPECT_EQ(peer.transport, "unix");
}

TEST(TracePeerTest, UnixUriWithEmptyAuthorityGivesThePath) {
  const TracePeer peer = trace_peer_of("unix:///run/sandbox/agent.sock");
  EXPECT_EQ(peer.address, "/run/sandbox/agent.sock");
  EXPECT_EQ(peer.port, 0);
  EXPECT_EQ(peer.transport, "unix");
}

TEST(TracePeerTest, Ipv4SchemeGivesTheFirstAddressOfItsList) {
  const TracePeer peer = trace_peer_of("ipv4:10.0.0.7:7070,10.0.0.8:7070");
  EXPECT_EQ(peer.address, "10.0.0.7");
  EXPECT_EQ(peer.port, 7070);
  EXPECT_EQ(peer.transport, "");
}

TEST(TracePeerTest, HostWithoutPortHasNoPort) {
  const TracePeer peer = trace_peer_of("agent.example");
  EXPECT_EQ(peer.address, "agent.example");
  EXPECT_EQ(peer.port, 0);
}

TEST(TracePeerTest, PortOutOfRangeIsNoPort) {
  EXPECT_EQ(trace_peer_of("agent.example:70000").port, 0);
  EXPECT_EQ(trace_peer_of("agent.example:http").port, 0);
}

TEST(CallTraceTest, AttemptSpanOfATcpTargetHasServerAddressAndPort) {
  const RecordedSpan span = first_attempt_span("[::1]:50051");
  EXPECT_EQ(span.name, "sandbox.v1.SandboxExecService/Exec");
  EXPECT_EQ(span.kind, SpanKind::client);
  EXPECT_THAT(span.attributes, Contains(Pair("server.address", Value(std::string("::1")))));
  EXPECT_THAT(span.attributes, Contains(Pair("server.port", Value(std::int64_t{50051}))));
  EXPECT_THAT(span.attributes, Not(Contains(Key("network.transport"))));
}

TEST(CallTraceTest, AttemptSpanOfAUnixTargetHasThePathTransportUnixAndNoPort) {
  const RecordedSpan span = first_attempt_span("unix:///tmp/agent.sock");
  EXPECT_THAT(span.attributes,
              Contains(Pair("server.address", Value(std::string("/tmp/agent.sock")))));
  EXPECT_THAT(span.attributes, Contains(Pair("network.transport", Value(std::string("unix")))));
  EXPECT_THAT(span.attributes, Not(Contains(Key("server.port"))));
}

TEST(CallTraceTest, AttemptSpanOfADnsTargetHasHostAndPort) {
  const RecordedSpan span = first_attempt_span("dns:///agent.internal:7070");
  EXPECT_THAT(span.attributes,
              Contains(Pair("server.address", Value(std::string("agent.internal")))));
  EXPECT_THAT(span.attributes, Contains(Pair("server.port", Value(std::int64_t{7070}))));
}

TEST(CallTraceTest, AttemptSpanIsInjectedIntoTheAttemptsMetadata) {
  const RecordedSpan span = first_attempt_span("127.0.0.1:7070");
  EXPECT_EQ(span.injected.size(), 1u);
  EXPECT_THAT(span.attributes, Contains(Pair("sandbox.retry.attempt", Value(std::int64_t{1}))));
  EXPECT_THAT(span.attributes, Not(Contains(Key("sandbox.retry.attach_only"))));
}

TEST(CallTraceTest, WithoutATracerNoSpanStarts) {
  RemoteRunnerConfig config;
  config.address = "127.0.0.1:7070";
  const TraceTarget target = trace_target_of(config);
  CallTrace trace(target);
  EXPECT_EQ(start_attempt(trace, 1), nullptr);
}

TEST(CallTraceTest, WithoutACallersSpanTheCallHasARootSpanThatParentsEveryAttempt) {
  auto tracer = std::make_shared<RecordingTracer>();
  tracer->without_caller = true;
  RemoteRunnerConfig config;
  config.address = "127.0.0.1:7070";
  config.tracer = tracer;
  config.sandbox_id = "box-1";
  const TraceTarget target = trace_target_of(config);
  CallTrace trace(target);
  for (std::uint32_t attempt = 1; attempt <= 2; ++attempt) {
    auto span = start_attempt(trace, attempt);
    ASSERT_NE(span, nullptr);
    span->end();
  }
  ASSERT_EQ(tracer->spans.size(), 3u) << "one root and two attempts";
  const RecordedSpan& root = tracer->spans.front();
  EXPECT_EQ(root.parent, nullptr) << "a root: a new trace";
  EXPECT_EQ(tracer->spans[1].parent, root.as_parent.get()) << "attempt 1 under the root";
  EXPECT_EQ(tracer->spans[2].parent, root.as_parent.get()) << "attempt 2 under the root";
  EXPECT_EQ(root.name, "sandbox.exec");
  EXPECT_EQ(root.kind, SpanKind::internal);
  EXPECT_THAT(root.attributes, Contains(Pair("sandbox.exec_id", Value(std::string(kExecId)))));
  EXPECT_THAT(root.attributes, Contains(Pair("sandbox.id", Value(std::string("box-1")))));
  EXPECT_FALSE(root.ended) << "the root lives as long as the call";

  trace.end_call(make_error_code(errc::unavailable), "failed to connect to all addresses");
  EXPECT_TRUE(root.ended);
  EXPECT_THAT(root.attributes, Contains(Pair("error.type", Value(std::string("unavailable")))));
  EXPECT_EQ(root.error, "failed to connect to all addresses");
}

TEST(CallTraceTest, UnderACallersSpanAttemptsAreItsChildrenAndNoRootSpanStarts) {
  auto tracer = std::make_shared<RecordingTracer>();
  RemoteRunnerConfig config;
  config.address = "127.0.0.1:7070";
  config.tracer = tracer;
  const TraceTarget target = trace_target_of(config);
  CallTrace trace(target);
  for (std::uint32_t attempt = 1; attempt <= 2; ++attempt) start_attempt(trace, attempt)->end();
  trace.end_call({}, {});
  ASSERT_EQ(tracer->spans.size(), 2u) << "the two attempts, no root";
  for (const RecordedSpan& span : tracer->spans) {
    EXPECT_EQ(span.name, "sandbox.v1.SandboxExecService/Exec");
    EXPECT_EQ(span.parent, tracer->caller.get());
  }
}

TEST(CallTraceTest, AnErrorThatNamesRequestContentKeepsOnlyItsFieldInTheSpan) {
  auto tracer = std::make_shared<RecordingTracer>();
  RemoteRunnerConfig config;
  config.address = "127.0.0.1:7070";
  config.tracer = tracer;
  auto span = tracer->start_span("s", SpanKind::client, nullptr, {});
  trace_error(*span, make_error_code(errc::invalid_argument),
              "env[DB_PASSWORD]: secret 'db/password' not found in the agent's secret store");
  EXPECT_EQ(tracer->spans.front().error,
            "env: refused (the message names request content, which is not traced)");
  EXPECT_THAT(tracer->spans.front().attributes,
              Contains(Pair("error.type", Value(std::string("invalid_argument")))));
}

TEST(TraceMessageTest, RefusalsOfRequestContentKeepTheirLeadingField) {
  constexpr std::string_view kRefused =
      ": refused (the message names request content, which is not traced)";
  EXPECT_EQ(trace_message(grpc::StatusCode::INVALID_ARGUMENT, "env[KEY]: key must not contain '='"),
            "env" + std::string(kRefused));
  EXPECT_EQ(trace_message(grpc::StatusCode::FAILED_PRECONDITION,
                          "workdir: '/etc' is outside the workspace"),
            "workdir" + std::string(kRefused));
  EXPECT_EQ(
      trace_message(grpc::StatusCode::INVALID_ARGUMENT, "exec_id: must be at most 36 characters"),
      "exec_id" + std::string(kRefused));
  EXPECT_EQ(trace_message(grpc::StatusCode::INVALID_ARGUMENT, "[odd] message"),
            "request" + std::string(kRefused));
}

TEST(TraceMessageTest, OtherErrorsKeepTheirWholeMessage) {
  EXPECT_EQ(trace_message(grpc::StatusCode::UNAVAILABLE, "failed to connect to all addresses"),
            "failed to connect to all addresses");
  EXPECT_EQ(trace_message(grpc::StatusCode::UNKNOWN, "cancelled by the caller"),
            "cancelled by the caller");
  EXPECT_EQ(trace_message(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"),
            "Deadline Exceeded");
}

}  // namespace
}  // namespace sandbox::detail
