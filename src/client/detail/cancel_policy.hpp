#pragma once
// When a finished Exec call asks the agent to kill its command (the Cancel RPC). The agent
// keeps the command of a cancelled or lost Exec call running for a reattach grace, because
// a gRPC server cannot tell the two apart; only the client knows that its user gave up.
// Sans-io: a pure function of how the call ended, unit-tested row by row.

#include <grpcpp/support/status_code_enum.h>

namespace sandbox::detail {

/// Why a call was cancelled; the first reason wins and decides the error reported.
enum class CancelReason : int {
  none = 0,
  user,       ///< the caller's cancellation: asio::error::operation_aborted
  closed,     ///< RemoteRunner::close(): errc::runner_closed
  exited,     ///< the exit arrived; ending the RPC is housekeeping, not an error
  violation,  ///< the agent broke the protocol: errc::protocol_error
};

/// True when the client abandoned the exec, so the agent must kill the command now instead
/// of keeping it for a reattach: the caller cancelled, the runner was closed, the client
/// dropped a stream that broke the protocol, or the call's deadline (the user's own limit)
/// passed before the exit arrived.
///
/// False once the exit was received (the command is over), and for every other ending
/// without a client-side reason: OK, UNAVAILABLE and the other transport statuses leave
/// the command running so a retry with the same exec_id can reattach; an agent-side error
/// status means the agent already ended (or never started) the exec.
constexpr bool should_send_cancel(CancelReason reason, grpc::StatusCode status,
                                  bool exit_received) noexcept {
  if (exit_received) return false;
  switch (reason) {
    case CancelReason::user:
    case CancelReason::closed:
    case CancelReason::violation:
      return true;
    case CancelReason::exited:
      return false;
    case CancelReason::none:
      break;
  }
  return status == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace sandbox::detail
