#include "sandbox/exec_stream.hpp"

#include <asio/error.hpp>
#include <cassert>

#include "client/detail/stream_core.hpp"
#include "sandbox/error.hpp"

namespace sandbox {
namespace detail {

StreamCore::StreamCore(RunnerCore* core, Command command, std::size_t read_ahead)
    : CallBase(core, std::move(command)), read_ahead_(std::max<std::size_t>(1, read_ahead)) {}

void StreamCore::start() {
  std::error_code error;
  std::string message;
  if (!prepare(error, message)) {
    std::lock_guard lock(mutex_);
    ended_ = true;
    outcome_ = error;
    message_ = std::move(message);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    info_ = sequence_.info();
    holding_ = true;  // reads are also started by next(), outside reactions
    reading_ = true;  // start_rpc issues the first read
  }
  self_ = shared_from_this();
  if (!start_rpc(self_, 1)) {
    self_.reset();
    std::lock_guard lock(mutex_);
    holding_ = reading_ = false;
    ended_ = true;
    outcome_ = make_error_code(errc::runner_closed);
    message_ = "the runner is closed";
  }
}

bool StreamCore::take_hold_locked() noexcept { return std::exchange(holding_, false); }

bool StreamCore::take_read_locked() noexcept {
  if (ended_ || reading_ || !holding_ || ready_.size() >= read_ahead_) return false;
  reading_ = true;
  return true;
}

void StreamCore::OnReadDone(bool ok) {
  NextCompletion deliver;
  std::optional<OutputChunk> chunk;
  bool release = false;
  bool read_more = false;
  auto end_reason = CancelReason::none;
  {
    std::lock_guard lock(mutex_);
    reading_ = false;
    if (!ok || ended_) {
      // The call is over (OnDone brings the status), or a cancellation made this read moot.
      ended_ = true;
      release = take_hold_locked();
    } else {
      switch (sequence_.accept(response_)) {
        case ResponseKind::started:
          info_ = sequence_.info();
          break;
        case ResponseKind::chunk: {
          OutputChunk next;
          next.stream = response_.has_stdout() ? OutputStream::out : OutputStream::err;
          next.data = std::move(next.stream == OutputStream::out ? *response_.mutable_stdout()
                                                                 : *response_.mutable_stderr());
          next.offset = sequence_.received(next.stream) - next.data.size();
          if (waiting_ && ready_.empty()) {
            deliver = std::move(waiting_);
            chunk = std::move(next);
          } else {
            ready_.push_back(std::move(next));
          }
          break;
        }
        case ResponseKind::exit:
          // The first exit_code ends the stream, even if the agent keeps it open.
          exit_ = sequence_.exit_status();
          info_ = sequence_.info();
          outcome_ = std::error_code{};
          ended_ = true;
          release = take_hold_locked();
          end_reason = CancelReason::exited;
          if (waiting_ && ready_.empty()) deliver = std::move(waiting_);
          break;
        case ResponseKind::violation:
          ended_ = true;
          release = take_hold_locked();
          end_reason = CancelReason::violation;
          break;
      }
      read_more = !ended_ && ready_.size() < read_ahead_;
      reading_ = read_more;
    }
  }
  if (deliver) deliver({}, std::move(chunk));
  if (end_reason != CancelReason::none) cancel_with(end_reason);
  if (release) RemoveHold();
  if (read_more) StartRead(&response_);
}

void StreamCore::OnDone(const grpc::Status& status) {
  leave_runner();
  NextCompletion deliver;
  std::error_code error;
  {
    std::lock_guard lock(mutex_);
    ended_ = true;
    if (!outcome_) {
      outcome_ = error_for(status, message_);
      if (waiting_ && ready_.empty()) {
        deliver = std::move(waiting_);
        error = *outcome_;
      }
    }
  }
  if (deliver) deliver(error, std::nullopt);
  self_.reset();  // may destroy this: nothing may follow
}

void StreamCore::cancel() noexcept { cancel_with(CancelReason::user); }

void StreamCore::on_cancelled() noexcept {
  bool release = false;
  {
    std::lock_guard lock(mutex_);
    ended_ = true;
    // A caller's cancellation is terminal: what was read ahead is dropped. After close()
    // the chunks already received are still delivered before the error.
    if (cancel_reason() == CancelReason::user) ready_.clear();
    release = take_hold_locked();
  }
  // Without a read in flight, only our hold keeps the call open: releasing it lets the
  // cancelled call reach OnDone instead of living until its deadline.
  if (release) RemoveHold();
}

void StreamCore::next(NextCompletion done) {
  std::optional<OutputChunk> chunk;
  std::error_code error;
  bool complete_now = true;
  bool read_more = false;
  {
    std::lock_guard lock(mutex_);
    if (!ready_.empty()) {
      chunk = std::move(ready_.front());
      ready_.pop_front();
      read_more = take_read_locked();
    } else if (outcome_) {
      error = *outcome_;
    } else if (waiting_) {
      error = asio::error::already_started;  // one next() at a time
    } else {
      waiting_ = std::move(done);
      complete_now = false;
    }
  }
  if (read_more) StartRead(&response_);
  if (complete_now) done(error, std::move(chunk));
}

bool StreamCore::finished() const {
  std::lock_guard lock(mutex_);
  return outcome_.has_value();
}

ExitStatus StreamCore::exit_status() const {
  std::lock_guard lock(mutex_);
  return exit_;
}

ExecInfo StreamCore::info() const {
  std::lock_guard lock(mutex_);
  return info_;
}

std::string StreamCore::error_message() const {
  std::lock_guard lock(mutex_);
  return message_;
}

std::shared_ptr<Cancellable> as_cancellable(const std::shared_ptr<StreamCore>& core) {
  return core;
}

void async_next(const std::shared_ptr<StreamCore>& core, NextCompletion done) {
  assert(core && "next() on a moved-from ExecStream");
  core->next(std::move(done));
}

}  // namespace detail

ExecStream::ExecStream(std::shared_ptr<detail::StreamCore> core, asio::any_io_executor executor)
    : core_(std::move(core)), executor_(std::move(executor)) {}

ExecStream::ExecStream(ExecStream&&) noexcept = default;

ExecStream& ExecStream::operator=(ExecStream&& other) noexcept {
  if (this != &other) {
    if (core_ && !core_->finished()) core_->cancel();
    core_ = std::move(other.core_);
    executor_ = std::move(other.executor_);
  }
  return *this;
}

ExecStream::~ExecStream() {
  if (core_ && !core_->finished()) core_->cancel();
}

bool ExecStream::finished() const noexcept { return core_ == nullptr || core_->finished(); }
ExitStatus ExecStream::exit_status() const { return core_ ? core_->exit_status() : ExitStatus{}; }
ExecInfo ExecStream::info() const { return core_ ? core_->info() : ExecInfo{}; }
std::string ExecStream::error_message() const { return core_ ? core_->error_message() : std::string{}; }
void ExecStream::cancel() noexcept {
  if (core_) core_->cancel();
}

}  // namespace sandbox
