#include "client/detail/call_trace.hpp"

#include <array>
#include <charconv>

#include "common/trace_message.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {
namespace {

constexpr std::string_view kService = "sandbox.v1.SandboxExecService";
constexpr std::string_view kLegacyService = "workflow.plugin.external.sandbox.SandboxExecService";

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// `host:port` (or `[v6]:port`, or a bare host) into `peer`.
void split_host_port(std::string_view hostport, TracePeer& peer) {
  std::string_view host = hostport;
  std::string_view port;
  if (starts_with(hostport, "[")) {
    const auto close = hostport.find(']');
    host = hostport.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
    if (close != std::string_view::npos && close + 1 < hostport.size() &&
        hostport[close + 1] == ':') {
      port = hostport.substr(close + 2);
    }
  } else if (const auto colon = hostport.rfind(':');
             colon != std::string_view::npos && hostport.find(':') == colon) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  peer.address = std::string(host);
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (!port.empty() && error == std::errc{} && end == port.data() + port.size() && value > 0 &&
      value <= 65535) {
    peer.port = value;
  }
}

}  // namespace

TracePeer trace_peer_of(std::string_view target) {
  TracePeer peer;
  if (starts_with(target, "unix:") || starts_with(target, "unix-abstract:")) {
    auto path = target.substr(target.find(':') + 1);
    if (starts_with(path, "//")) path.remove_prefix(2);  // unix:///path
    peer.address = std::string(path);
    peer.transport = "unix";
    return peer;
  }
  // A URI scheme with an authority (dns:///host:port, dns://resolver/host:port): the path.
  if (const auto scheme = target.find("://"); scheme != std::string_view::npos) {
    auto rest = target.substr(scheme + 3);
    const auto slash = rest.find('/');
    target = slash == std::string_view::npos ? rest : rest.substr(slash + 1);
  } else if (starts_with(target, "dns:") || starts_with(target, "ipv4:") ||
             starts_with(target, "ipv6:")) {
    target = target.substr(target.find(':') + 1);
    target = target.substr(0, target.find(','));  // the first of an address list
  }
  split_host_port(target, peer);
  return peer;
}

TraceTarget trace_target_of(const RemoteRunnerConfig& config) {
  TraceTarget target;
  target.tracer = config.tracer;
  if (!target.tracer) return target;
  target.peer = trace_peer_of(config.address);
  target.service = config.protocol == AgentProtocol::legacy ? kLegacyService : kService;
  target.span_name = std::string(target.service) + "/Exec";
  target.sandbox_id = config.sandbox_id;
  return target;
}

CallTrace::~CallTrace() {
  if (root_) root_->end();
}

std::unique_ptr<Span> CallTrace::start_attempt(const RetryStep& step,
                                               const v1::ExecRequest& request,
                                               grpc::ClientContext& context) {
  if (!target_->tracer) return nullptr;
  const TraceTarget& target = *target_;
  if (!parent_ && !root_) {
    std::array<Attribute, 2> attributes{{{"sandbox.exec_id", std::string_view(request.exec_id())}}};
    std::size_t count = 1;
    if (!target.sandbox_id.empty()) {
      attributes[count++] = {"sandbox.id", std::string_view(target.sandbox_id)};
    }
    root_ = target.tracer->start_span("sandbox.exec", SpanKind::internal, nullptr,
                                      std::span(attributes.data(), count));
    parent_ = root_->as_parent();
  }
  std::array<Attribute, 11> attributes{{
      {"rpc.system", std::string_view("grpc")},
      {"rpc.service", target.service},
      {"rpc.method", std::string_view("Exec")},
      {"server.address", std::string_view(target.peer.address)},
      {"sandbox.exec_id", std::string_view(request.exec_id())},
      {"sandbox.retry.attempt", static_cast<std::int64_t>(step.attempt)},
  }};
  std::size_t count = 6;
  if (target.peer.port != 0) attributes[count++] = {"server.port", target.peer.port};
  if (!target.peer.transport.empty()) {
    attributes[count++] = {"network.transport", target.peer.transport};
  }
  // The configured sandbox until `started` names the agent's own.
  if (!target.sandbox_id.empty()) {
    attributes[count++] = {"sandbox.id", std::string_view(target.sandbox_id)};
  }
  if (!request.profile().empty()) {
    attributes[count++] = {"sandbox.profile.requested", std::string_view(request.profile())};
  }
  if (step.attach_only) attributes[count++] = {"sandbox.retry.attach_only", true};
  auto span = target.tracer->start_span(target.span_name, SpanKind::client, parent_.get(),
                                        std::span(attributes.data(), count));
  span->inject([&context](std::string_view key, std::string_view value) {
    context.AddMetadata(std::string(key), std::string(value));
  });
  return span;
}

void CallTrace::end_call(const std::error_code& error, std::string_view message) noexcept {
  if (!root_) return;
  if (error) trace_error(*root_, error, message);
  root_->end();
  root_.reset();
}

void trace_error(Span& span, const std::error_code& error, std::string_view message) noexcept {
  span.set_attribute("error.type", error_name(error));
  // The SDK's own codes share gRPC's numbers; asio's and others never name the request.
  const auto code = error.category() == error_category()
                        ? static_cast<grpc::StatusCode>(error.value())
                        : grpc::StatusCode::UNKNOWN;
  span.set_error(trace_message(code, message));
}

void trace_started(Span& span, const v1::Started& started) noexcept {
  span.add_event("sandbox.started", {});
  if (!started.sandbox_id().empty()) {
    span.set_attribute("sandbox.id", std::string_view(started.sandbox_id()));
  }
}

void trace_attempt_end(Span& span, const ResponseSequence& sequence, std::uint64_t resumed_stdout,
                       std::uint64_t resumed_stderr, const grpc::Status& status,
                       const AttemptEnd& end) noexcept {
  // The first exit_code ends the call: the SDK cancels an RPC whose status does not follow
  // the exit (behavior.md §3), so an attempt that received the exit reports OK either way
  // (as the agent's span of it does).
  const grpc::StatusCode code =
      sequence.exited() && status.error_code() == grpc::StatusCode::CANCELLED ? grpc::StatusCode::OK
                                                                              : status.error_code();
  span.set_attribute("rpc.grpc.status_code", static_cast<std::int64_t>(code));
  if (const ExecInfo& info = sequence.info(); !info.effective_profile.empty()) {
    span.set_attribute("sandbox.profile.effective", std::string_view(info.effective_profile));
  }
  span.set_attribute(
      "sandbox.stdout.bytes_received",
      static_cast<std::int64_t>(sequence.received(OutputStream::out) - resumed_stdout));
  span.set_attribute(
      "sandbox.stderr.bytes_received",
      static_cast<std::int64_t>(sequence.received(OutputStream::err) - resumed_stderr));
  if (sequence.exited()) {
    const ExitStatus& exit = sequence.exit_status();
    span.set_attribute("sandbox.exit_code", static_cast<std::int64_t>(exit.exit_code));
    span.set_attribute("sandbox.timed_out", exit.timed_out);
  }
  if (end.error) trace_error(span, end.error, end.message);
  span.end();
}

}  // namespace sandbox::detail
