#include "agent/exec_session.hpp"

#include "agent/execution.hpp"

namespace sandbox::agent {

ExecSession::ExecSession(std::shared_ptr<Execution> execution) : execution_(std::move(execution)) {}

ExecSession::Room ExecSession::room() {
  std::lock_guard lock(mutex_);
  if (finish_status_ || staged_.size() >= kStagedMessages) return Room::none;
  return writing_ ? Room::stage : Room::write;
}

void ExecSession::offer(v1::ExecResponse message) {
  trace.sending(message);
  {
    std::lock_guard lock(mutex_);
    if (writing_) {
      staged_.push_back(std::move(message));
      return;
    }
    message_ = std::move(message);
    writing_ = true;
  }
  // Outside the lock: OnWriteDone of this write may run before StartWrite returns.
  StartWrite(&message_);
}

void ExecSession::finish(grpc::Status status) {
  {
    std::lock_guard lock(mutex_);
    if (finish_status_) return;
    finish_status_ = status;
    trace.end(status);
    staged_.clear();
    // A write in flight must complete first; OnWriteDone finishes then.
    if (writing_) return;
    finish_called_ = true;
  }
  Finish(std::move(status));
}

void ExecSession::OnWriteDone(bool ok) {
  bool exit_written = false;
  bool write_next = false;
  bool tell_execution = true;
  std::optional<grpc::Status> finish_now;
  {
    std::lock_guard lock(mutex_);
    writing_ = false;
    exit_written = ok && message_.event_case() == v1::ExecResponse::kExitCode;
    if (finish_status_) {
      if (!finish_called_) {
        finish_called_ = true;
        finish_now = finish_status_;
      }
    } else if (ok && !staged_.empty()) {
      message_ = std::move(staged_.front());
      staged_.pop_front();
      writing_ = write_next = true;
      // The strand refills the queue when it is half empty, not after every write: one
      // wake-up of the strand per two messages while output streams. (It stages more on
      // its own whenever output arrives and there is room.)
      tell_execution = staged_.size() < kStagedMessages / 2;
    }
  }
  if (finish_now) {
    Finish(std::move(*finish_now));
    return;  // the execution already let this call go
  }
  if (write_next) StartWrite(&message_);
  if (!tell_execution) return;
  execution_->dispatch([self = shared_from_this(), ok, exit_written] {
    self->execution_->on_write_done(self, ok, exit_written);
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
