#pragma once
// The engine behind ExecStream: one Exec RPC with a bounded read-ahead queue between gRPC's
// reactions and the consumer's next() calls.

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "client/detail/exec_call.hpp"
#include "sandbox/detail/completion.hpp"
#include "sandbox/exec_stream.hpp"

namespace sandbox::detail {

/// Shared by the ExecStream handle, the cancellation slot and (until OnDone) itself.
///
/// Invariants, all under `mutex_`:
/// - at most one read is in flight (`reading_`); it is started by a reaction while the queue
///   has room, otherwise by the consumer's `next()` once it has made room;
/// - the queue holds at most `read_ahead_` chunks: memory is bounded and a consumer that
///   stops reading stops the reads, so HTTP/2 flow control slows the agent;
/// - our hold is released exactly once: at the end of the stream, or on cancellation;
/// - no gRPC function is called with the mutex held (gRPC may run reactions inline).
class StreamCore final : public Cancellable,
                         public CallBase,
                         public std::enable_shared_from_this<StreamCore> {
 public:
  StreamCore(RunnerCore* core, Command command, std::size_t read_ahead);

  /// Validates and starts the RPC; a failure becomes the stream's terminal error.
  void start();
  /// Completes `done` with the next chunk, the end (nullopt) or the terminal error.
  void next(NextCompletion done);
  /// The consumer's cancellation (slot, ExecStream::cancel, destruction).
  void cancel() noexcept override;

  [[nodiscard]] bool finished() const;
  [[nodiscard]] ExitStatus exit_status() const;
  [[nodiscard]] ExecInfo info() const;
  [[nodiscard]] std::string error_message() const;

 private:
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;
  void on_cancelled() noexcept override;

  /// Claims the right to call RemoveHold (once); caller holds the mutex.
  bool take_hold_locked() noexcept;
  /// Claims the right to start a read from outside a reaction; caller holds the mutex.
  bool take_read_locked() noexcept;

  const std::size_t read_ahead_;
  mutable std::mutex mutex_;
  std::deque<OutputChunk> ready_;
  NextCompletion waiting_;
  bool reading_ = false;
  bool holding_ = false;
  bool ended_ = false;  // no read will be started any more
  std::optional<std::error_code> outcome_;  // set at the exit (empty code) or the failure
  std::string message_;
  ExitStatus exit_;
  ExecInfo info_;
  std::shared_ptr<StreamCore> self_;  // keeps the reactor alive until OnDone
};

}  // namespace sandbox::detail
