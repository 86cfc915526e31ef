#pragma once
// The spans of one Exec call: one CLIENT span per attempt, children of the span that was
// active where the call began, each injected into its attempt's metadata. Keys and names:
// docs/behavior.md §15. Without a tracer every member is a no-op that allocates nothing.

#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "client/detail/response_sequence.hpp"
#include "client/detail/retry_fsm.hpp"
#include "sandbox/runner_config.hpp"
#include "sandbox/tracing.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::detail {

/// `server.address` / `server.port` / `network.transport` of a gRPC target, as OTel's RPC
/// conventions want them: `host:port` and `dns:///host:port` give host and port, `[v6]:port`
/// the bare address, `unix:/path` the path with transport `unix`. Port 0: none known.
struct TracePeer {
  std::string address;
  std::int64_t port = 0;
  std::string_view transport;  // "unix" or empty (TCP, OTel's default)
};
[[nodiscard]] TracePeer trace_peer_of(std::string_view target);

/// What every attempt span of a runner shares, computed once per runner.
struct TraceTarget {
  std::shared_ptr<Tracer> tracer;  // null: tracing off
  TracePeer peer;
  std::string_view service;  // rpc.service of the agent's generation
  std::string span_name;     // "<service>/Exec"
  std::string sandbox_id;    // the configured one, until `started` names the agent's
};
[[nodiscard]] TraceTarget trace_target_of(const RemoteRunnerConfig& config);

/// One call's parent and its attempts' spans. Not thread-safe: the call's attempts run one
/// at a time, and each attempt's span is touched by that attempt's reactions only.
///
/// Attempts are siblings under the span active where the call began. Without one, the call
/// gets its own root span (`sandbox.exec`, §15), so that its retries still share a trace.
class CallTrace {
 public:
  /// On the thread that begins the call: captures its active span as the parent.
  explicit CallTrace(const TraceTarget& target)
      : target_(&target), parent_(target.tracer ? target.tracer->current() : nullptr) {}
  CallTrace(const CallTrace&) = delete;
  CallTrace& operator=(const CallTrace&) = delete;
  /// Ends the call's root span if `end_call` did not (a call that never concluded).
  ~CallTrace();

  /// Starts the span of attempt `step.attempt` of `request` and injects it into `context`
  /// (before the RPC starts). Null without a tracer.
  [[nodiscard]] std::unique_ptr<Span> start_attempt(const RetryStep& step,
                                                    const v1::ExecRequest& request,
                                                    grpc::ClientContext& context);
  /// The call is over with `error` (empty: it received the exit): ends its root span, if
  /// it has one. After the last attempt's span ended.
  void end_call(const std::error_code& error, std::string_view message) noexcept;

 private:
  const TraceTarget* target_;  // the runner's: outlives every call
  std::shared_ptr<const SpanParent> parent_;
  std::unique_ptr<Span> root_;  // without a caller's span, from the first attempt on
};

/// Marks `span` failed with `error` and its message as §15 allows it (`error.type`, and a
/// status that names no request content).
void trace_error(Span& span, const std::error_code& error, std::string_view message) noexcept;
/// The agent's `started` arrived on this attempt.
void trace_started(Span& span, const v1::Started& started) noexcept;
/// Ends an attempt's span: what the attempt received, its status, its exit or its error.
void trace_attempt_end(Span& span, const ResponseSequence& sequence, std::uint64_t resumed_stdout,
                       std::uint64_t resumed_stderr, const grpc::Status& status,
                       const AttemptEnd& end) noexcept;

}  // namespace sandbox::detail
