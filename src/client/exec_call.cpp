#include "client/detail/exec_call.hpp"

#include <asio/error.hpp>

#include "client/detail/status_mapping.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {

CallBase::CallBase(RunnerCore* core, Command command)
    : RunnerMembership(core), command_(std::move(command)) {}

void CallBase::cancel_with(CancelReason reason) noexcept {
  auto expected = CancelReason::none;
  if (!cancel_reason_.compare_exchange_strong(expected, reason)) return;
  context_.TryCancel();
  on_cancelled();
}

bool CallBase::prepare(OutputUse use, std::error_code& error, std::string& message) {
  auto validation = validate(command_);
  if (!validation) {
    error = validation.error;
    message = std::move(validation.message);
    return false;
  }
  build_request(core_->config(), command_, use, request_);
  if (auto size = validate_size(request_); !size) {
    error = size.error;
    message = std::move(size.message);
    return false;
  }
  sequence_.info().exec_id = request_.exec_id();
  return true;
}

bool CallBase::start_rpc(const std::shared_ptr<CallBase>& self, int holds) {
  // gRPC takes deadlines only as system_clock time points.
  std::optional<std::chrono::system_clock::time_point> deadline;
  if (auto timeout = rpc_timeout(core_->config(), command_)) {
    deadline = std::chrono::system_clock::now() + *timeout;
  }
  core_->prepare_context(context_, deadline);
  // Registered last: from here on close() may cancel the context concurrently.
  if (!join(self)) return false;
  core_->stub().async()->Exec(&context_, &request_, this);
  if (holds > 0) AddMultipleHolds(holds);
  StartRead(&response_);
  StartCall();
  return true;
}

bool CallBase::abandoned(const grpc::Status& status) const {
  // OnDone runs after every other reaction, so the sequence is no longer written to.
  return should_send_cancel(cancel_reason(), status.error_code(), sequence_.exited());
}

void CallBase::send_cancel() { core_->send_cancel(request_.exec_id()); }

std::error_code CallBase::error_for(const grpc::Status& status, std::string& message) const {
  switch (cancel_reason()) {
    case CancelReason::user:
      message = "cancelled by the caller";
      return asio::error::operation_aborted;
    case CancelReason::closed:
      message = "the runner was closed while the call was in flight";
      return errc::runner_closed;
    case CancelReason::violation:
      message = "protocol error: " + sequence_.violation();
      return errc::protocol_error;
    case CancelReason::none:
    case CancelReason::exited:
      break;
  }
  if (status.ok()) {
    message = "the stream ended without an exit_code: the command's outcome is unknown";
    return errc::missing_exit_code;
  }
  message = status.error_message();
  if (message.empty()) message = "gRPC status " + std::to_string(status.error_code());
  return error_from_grpc_code(status.error_code());
}

}  // namespace sandbox::detail
