// The spans of one Exec RPC in the agent (docs/behavior.md §15): a SERVER span continuing
// the caller's trace, its `sandbox.setup` child until `started` is sent, and the
// `sandbox.process` child of the call that started the process. Without a tracer every
// member is a no-op that allocates nothing.
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "sandbox/tracing.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

/// Not thread-safe: the call's strand (or the gRPC thread that refuses it) drives it.
class ExecTrace {
 public:
  /// Tracing off.
  ExecTrace() = default;
  /// Starts the SERVER span of `request`, child of the context in `context`'s metadata,
  /// and its `sandbox.setup` child. Off when `tracer` is null.
  ExecTrace(Tracer* tracer, const grpc::CallbackServerContext& context,
            const v1::ExecRequest& request, std::string_view sandbox_id);
  ExecTrace(ExecTrace&&) noexcept = default;
  ExecTrace& operator=(ExecTrace&&) noexcept = default;
  /// Ends what is still open (as an error: the call went without an end()).
  ~ExecTrace();

  /// The exec id the call runs under (the client's or the one the agent assigned).
  void exec_id(std::string_view id) noexcept;
  /// The call is about to send `message`: `started` ends setup; chunks count; the exit is
  /// recorded.
  void sending(const v1::ExecResponse& message) noexcept;
  /// A `sandbox.process` span, child of this call's SERVER span; null when off.
  [[nodiscard]] std::unique_ptr<Span> start_process() const;
  /// Ends the spans with the RPC's `status`. Idempotent.
  void end(const grpc::Status& status) noexcept;

 private:
  Tracer* tracer_ = nullptr;
  std::unique_ptr<Span> server_;
  std::unique_ptr<Span> setup_;
  std::uint64_t stdout_sent_ = 0;
  std::uint64_t stderr_sent_ = 0;
  bool exit_sent_ = false;
};

/// Ends a `sandbox.process` span with the exit the agent reports (`exit` holds `exit_code`).
void end_process_span(Span& span, const v1::ExecResponse& exit) noexcept;

}  // namespace sandbox::agent
