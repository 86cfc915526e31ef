#include "agent/exec_session.hpp"

#include "agent/execution.hpp"

namespace sandbox::agent {

ExecSession::ExecSession(std::shared_ptr<Execution> execution) : execution_(std::move(execution)) {}

void ExecSession::write(v1::ExecResponse message) {
  message_ = std::move(message);
  writing_ = true;
  StartWrite(&message_);
}

void ExecSession::finish(grpc::Status status) {
  if (finish_status_) return;
  finish_status_ = std::move(status);
  // A write in flight must complete first; write_done() finishes then.
  if (!writing_) {
    finish_called_ = true;
    Finish(*finish_status_);
  }
}

bool ExecSession::write_done() {
  writing_ = false;
  if (!finish_status_) return true;
  if (!finish_called_) {
    finish_called_ = true;
    Finish(*finish_status_);
  }
  return false;
}

void ExecSession::OnWriteDone(bool ok) {
  execution_->dispatch([self = shared_from_this(), ok] {
    if (self->write_done()) self->execution_->on_write_done(self, ok);
  });
}

void ExecSession::OnCancel() {
  execution_->dispatch([self = shared_from_this()] { self->execution_->on_cancel(self); });
}

void ExecSession::OnDone() {
  // OnDone runs after every other reaction; handlers they posted hold their own reference.
  self_.reset();  // may destroy this: nothing may follow
}

}  // namespace sandbox::agent
