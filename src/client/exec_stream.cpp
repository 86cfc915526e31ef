#include "sandbox/exec_stream.hpp"

#include <asio/error.hpp>
#include <cassert>

#include "client/detail/stream_core.hpp"
#include "sandbox/error.hpp"

namespace sandbox {
namespace detail {

// ---------------------------------------------------------------- the consumer's side

void StreamCore::fail(std::error_code error, std::string text) {
  std::lock_guard lock(mutex);
  ended = true;
  outcome = error;
  message = std::move(text);
}

bool StreamCore::take_read_locked() noexcept {
  if (ended || reading || !holding || ready.size() >= read_ahead) return false;
  reading = true;
  return true;
}

void StreamCore::next(NextCompletion done) {
  std::optional<OutputChunk> chunk;
  std::error_code error;
  std::shared_ptr<StreamRpc> reader;
  {
    std::lock_guard lock(mutex);
    if (!ready.empty()) {
      chunk = std::move(ready.front());
      ready.pop_front();
      // The hold is held while a read may be claimed, so the reactor is alive.
      if (take_read_locked()) reader = rpc.lock();
    } else if (outcome) {
      error = *outcome;
    } else if (waiting) {
      error = asio::error::already_started;  // one next() at a time
    } else {
      waiting = std::move(done);  // a reaction completes it
      return;
    }
  }
  if (reader) reader->read_more();
  done(error, std::move(chunk));
}

void StreamCore::cancel() noexcept {
  if (auto reactor = rpc.lock()) reactor->cancel_with(CancelReason::user);
}

bool StreamCore::finished() const {
  std::lock_guard lock(mutex);
  return outcome.has_value();
}

ExitStatus StreamCore::exit_status() const {
  std::lock_guard lock(mutex);
  return exit;
}

ExecInfo StreamCore::info() const {
  std::lock_guard lock(mutex);
  return identity;
}

std::string StreamCore::error_message() const {
  std::lock_guard lock(mutex);
  return message;
}

RetryHistory StreamCore::retries() const {
  if (auto call = rpc.lock()) return call->history();
  std::lock_guard lock(mutex);
  return history;
}

// ---------------------------------------------------------------- the reactor

StreamRpc::StreamRpc(RunnerCore* core, Command&& command, std::shared_ptr<StreamCore> stream)
    : CallBase(core, std::move(command)), stream_(std::move(stream)) {}

void StreamRpc::start(RunnerCore* core, Command&& command,
                      const std::shared_ptr<StreamCore>& stream) {
  auto rpc = std::make_shared<StreamRpc>(core, std::move(command), stream);
  std::error_code error;
  std::string message;
  if (!rpc->prepare(OutputUse::stream, error, message)) {
    return stream->fail(error, std::move(message));
  }
  {
    std::lock_guard lock(stream->mutex);
    stream->identity.exec_id = rpc->request_.exec_id();
    stream->rpc = rpc;
  }
  // One hold per attempt: reads are also started by next(), outside reactions.
  if (!rpc->start_call(1)) stream->fail(errc::runner_closed, "the runner is closed");
}

void StreamRpc::read_more() {
  // The consumer claimed the read while the attempt held it open: it is the current one.
  if (auto attempt = current_attempt()) attempt->read_next();
}

void StreamRpc::on_attempt_starting() {
  std::lock_guard lock(stream_->mutex);
  stream_->holding = true;
  stream_->reading = true;  // the attempt starts with a read in flight
}

void StreamRpc::on_read(Attempt& attempt, bool ok) {
  StreamCore& s = *stream_;
  NextCompletion deliver;
  std::optional<OutputChunk> chunk;
  bool release = false;
  bool read_again = false;
  bool after_exit = false;
  auto end_reason = CancelReason::none;
  {
    std::lock_guard lock(s.mutex);
    s.reading = false;
    if (!ok || s.ended) {
      // This attempt is over (OnDone brings the status, and maybe a retry), or a
      // cancellation made this read moot, or this was the read after the exit.
      release = std::exchange(s.holding, false);
      // A message after the exit: the agent keeps the stream open, the client ends it
      // (ignored when a cancellation already ended the stream).
      if (ok) end_reason = CancelReason::exited;
    } else {
      v1::ExecResponse& response = attempt.response;
      switch (attempt.sequence.accept(response)) {
        case ResponseKind::started:
          s.identity = attempt.sequence.info();
          break;
        case ResponseKind::chunk: {
          OutputChunk next;
          next.stream = response.has_stdout() ? OutputStream::out : OutputStream::err;
          next.data = std::move(next.stream == OutputStream::out ? *response.mutable_stdout()
                                                                 : *response.mutable_stderr());
          next.offset = attempt.sequence.received(next.stream) - next.data.size();
          if (s.waiting && s.ready.empty()) {
            deliver = std::move(s.waiting);
            chunk = std::move(next);
          } else {
            s.ready.push_back(std::move(next));
          }
          break;
        }
        case ResponseKind::exit: {
          // The first exit_code ends the stream, even if the agent keeps it open. One more
          // read, which the agent's status ends at once (bounded: end_after_exit), ends the
          // RPC: cancelling it here instead cost a cancellation through gRPC's stack (and an
          // RST_STREAM) for every call.
          s.exit = attempt.sequence.exit_status();
          s.identity = attempt.sequence.info();
          s.outcome = std::error_code{};
          s.ended = true;
          after_exit = true;
          if (s.waiting && s.ready.empty()) deliver = std::move(s.waiting);
          break;
        }
        case ResponseKind::violation:
          s.ended = true;
          release = std::exchange(s.holding, false);
          end_reason = CancelReason::violation;
          break;
      }
      read_again = after_exit || (!s.ended && s.ready.size() < s.read_ahead);
      s.reading = read_again;
    }
  }
  if (after_exit) core_->end_after_exit(this);
  if (deliver) deliver({}, std::move(chunk));
  if (end_reason != CancelReason::none) cancel_with(end_reason);
  if (release) attempt.RemoveHold();
  if (read_again) attempt.read_next();
}

void StreamRpc::finish(std::error_code error, std::string message) {
  RetryHistory attempts = history();
  StreamCore& s = *stream_;
  NextCompletion deliver;
  std::error_code delivered;
  {
    std::lock_guard lock(s.mutex);
    s.ended = true;
    s.history = std::move(attempts);
    if (!s.outcome) {
      s.outcome = error;
      s.message = std::move(message);
      if (s.waiting && s.ready.empty()) {
        deliver = std::move(s.waiting);
        delivered = error;
      }
    }
  }
  if (deliver) deliver(delivered, std::nullopt);
}

void StreamRpc::on_cancelled(Attempt* attempt) noexcept {
  StreamCore& s = *stream_;
  bool release = false;
  {
    std::lock_guard lock(s.mutex);
    s.ended = true;
    // A caller's cancellation is terminal: what was read ahead is dropped. After close()
    // the chunks already received are still delivered before the error, and once the exit
    // has arrived (the outcome is success) a cancellation changes nothing: dropping chunks
    // then would present a partial output as complete.
    const bool exited = s.outcome && !*s.outcome;
    if (cancel_reason() == CancelReason::user && !exited) s.ready.clear();
    // A read in flight or claimed by the consumer ends with a failure and releases the
    // hold itself; releasing it here could let the attempt end under that read.
    if (!s.reading) release = std::exchange(s.holding, false);
  }
  // Without a read in flight only our hold keeps the attempt open: releasing it lets the
  // cancelled attempt reach OnDone instead of living until its deadline.
  if (release && attempt != nullptr) attempt->RemoveHold();
}

std::shared_ptr<Cancellable> as_cancellable(const std::shared_ptr<StreamCore>& core) {
  return core;
}

void async_next(const std::shared_ptr<StreamCore>& core, NextCompletion done) {
  assert(core && "next() on a moved-from ExecStream");
  core->next(std::move(done));
}

}  // namespace detail

// ---------------------------------------------------------------- ExecStream

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

std::string ExecStream::error_message() const {
  return core_ ? core_->error_message() : std::string{};
}

RetryHistory ExecStream::retries() const { return core_ ? core_->retries() : RetryHistory{}; }

void ExecStream::cancel() noexcept {
  if (core_) core_->cancel();
}

}  // namespace sandbox
