#include "agent/exec_trace.hpp"

#include <grpcpp/server_context.h>

#include <array>
#include <string>

#include "common/trace_message.hpp"

namespace sandbox::agent {
namespace {

constexpr std::string_view kSpanName = "sandbox.v1.SandboxExecService/Exec";

// OTel's `error.type` for an agent's status: the gRPC code's name.
std::string_view code_name(grpc::StatusCode code) {
  static constexpr std::array<std::string_view, 17> names{"ok",
                                                          "cancelled",
                                                          "unknown",
                                                          "invalid_argument",
                                                          "deadline_exceeded",
                                                          "not_found",
                                                          "already_exists",
                                                          "permission_denied",
                                                          "resource_exhausted",
                                                          "failed_precondition",
                                                          "aborted",
                                                          "out_of_range",
                                                          "unimplemented",
                                                          "internal",
                                                          "unavailable",
                                                          "data_loss",
                                                          "unauthenticated"};
  const auto index = static_cast<std::size_t>(code);
  return index < names.size() ? names[index] : "unknown";
}

void set_exit(Span& span, const v1::ExecResponse& exit) {
  span.set_attribute("sandbox.exit_code", static_cast<std::int64_t>(exit.exit_code()));
  span.set_attribute("sandbox.timed_out", exit.exit().timed_out());
}

}  // namespace

ExecTrace::ExecTrace(Tracer* tracer, const grpc::CallbackServerContext& context,
                     const v1::ExecRequest& request, std::string_view sandbox_id)
    : tracer_(tracer) {
  if (!tracer_) return;
  const auto& metadata = context.client_metadata();
  auto parent = tracer_->extract([&metadata](std::string_view key) -> std::string_view {
    // Metadata keys are lower case on the wire; W3C's are too.
    const auto found = metadata.find(grpc::string_ref(key.data(), key.size()));
    if (found == metadata.end()) return {};
    return {found->second.data(), found->second.size()};
  });
  std::array<Attribute, 6> attributes{{
      {"rpc.system", std::string_view("grpc")},
      {"rpc.service", std::string_view("sandbox.v1.SandboxExecService")},
      {"rpc.method", std::string_view("Exec")},
      {"sandbox.id", sandbox_id},
  }};
  std::size_t count = 4;
  if (!request.exec_id().empty()) {  // else the agent assigns one: exec_id()
    attributes[count++] = {"sandbox.exec_id", std::string_view(request.exec_id())};
  }
  if (!request.profile().empty()) {
    attributes[count++] = {"sandbox.profile.requested", std::string_view(request.profile())};
  }
  server_ = tracer_->start_span(kSpanName, SpanKind::server, parent.get(),
                                std::span(attributes.data(), count));
  const auto as_parent = server_->as_parent();
  setup_ = tracer_->start_span("sandbox.setup", SpanKind::internal, as_parent.get(), {});
}

ExecTrace::~ExecTrace() {
  if (server_) end(grpc::Status(grpc::StatusCode::INTERNAL, "the call ended without a status"));
}

void ExecTrace::exec_id(std::string_view id) noexcept {
  if (server_) server_->set_attribute("sandbox.exec_id", id);
}

void ExecTrace::sending(const v1::ExecResponse& message) noexcept {
  if (!server_) return;
  switch (message.event_case()) {
    case v1::ExecResponse::kStarted:
      if (!message.started().effective_profile().empty()) {
        server_->set_attribute("sandbox.profile.effective",
                               std::string_view(message.started().effective_profile()));
      }
      server_->set_attribute("sandbox.resumed", message.started().resumed());
      if (setup_) {
        setup_->end();
        setup_.reset();
      }
      break;
    case v1::ExecResponse::kStdout:
      stdout_sent_ += message.stdout().size();
      break;
    case v1::ExecResponse::kStderr:
      stderr_sent_ += message.stderr().size();
      break;
    case v1::ExecResponse::kExitCode:
      set_exit(*server_, message);
      exit_sent_ = true;
      break;
    default:
      break;
  }
}

std::unique_ptr<Span> ExecTrace::start_process() const {
  if (!server_) return nullptr;
  const auto parent = server_->as_parent();
  return tracer_->start_span("sandbox.process", SpanKind::internal, parent.get(), {});
}

void ExecTrace::end(const grpc::Status& given) noexcept {
  if (!server_) return;
  // A client may end the RPC itself once it holds the exit (behavior.md §3): the call did what it
  // was for.
  const grpc::Status status =
      exit_sent_ && given.error_code() == grpc::StatusCode::CANCELLED ? grpc::Status::OK : given;
  const std::string message = trace_message(status.error_code(), status.error_message());
  if (setup_) {
    if (!status.ok()) setup_->set_error(message);
    setup_->end();
    setup_.reset();
  }
  server_->set_attribute("rpc.grpc.status_code", static_cast<std::int64_t>(status.error_code()));
  server_->set_attribute("sandbox.stdout.bytes_sent", static_cast<std::int64_t>(stdout_sent_));
  server_->set_attribute("sandbox.stderr.bytes_sent", static_cast<std::int64_t>(stderr_sent_));
  if (!status.ok()) {
    server_->set_attribute("error.type", code_name(status.error_code()));
    server_->set_error(message);
  }
  server_->end();
  server_.reset();
}

void end_process_span(Span& span, const v1::ExecResponse& exit) noexcept {
  set_exit(span, exit);
  span.end();
}

}  // namespace sandbox::agent
