#pragma once
// The engine behind ExecStream, in two objects:
// - StreamCore: the consumer's side (what ExecStream holds): the bounded queue of chunks,
//   the outcome, the pending next(). It may outlive the runner.
// - StreamRpc: the call (its attempts are the gRPC reactors). Attempts and waits own it;
//   the consumer never does, so the runner can wait for every grpc call to be destroyed
//   before its channel.

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "client/detail/exec_call.hpp"
#include "sandbox/detail/completion.hpp"
#include "sandbox/exec_stream.hpp"

namespace sandbox::detail {

class StreamRpc;

/// Invariants, all under `mutex`, for the attempt in flight:
/// - at most one read is in flight or claimed (`reading`); it is started by a reaction
///   while the queue has room, otherwise by the consumer's `next()` once it made room;
/// - the queue holds at most `read_ahead` chunks: memory is bounded, and a consumer that
///   stops reading stops the reads, so HTTP/2 flow control slows the agent;
/// - the attempt's hold is released exactly once (`holding`): when a read fails (the
///   attempt is over; a retry's attempt takes a new hold), when the read after the exit
///   completes (the status ends it; a message instead ends the RPC), on a violation, or on
///   cancellation when no read is in flight or claimed (else that read's failure releases
///   it); while it is held the attempt is alive (no OnDone);
/// - chunks received stay queued across attempts: a retry resumes after them.
/// - no gRPC function is called with the mutex held (gRPC may run reactions inline).
class StreamCore final : public Cancellable {
 public:
  explicit StreamCore(std::size_t read_ahead) : read_ahead(std::max<std::size_t>(1, read_ahead)) {}

  /// Completes `done` with the next chunk, the end (nullopt) or the terminal error.
  void next(NextCompletion done);
  /// The consumer's cancellation (slot, ExecStream::cancel, destruction). Thread-safe.
  void cancel() noexcept override;

  [[nodiscard]] bool finished() const;
  [[nodiscard]] ExitStatus exit_status() const;
  [[nodiscard]] ExecInfo info() const;
  [[nodiscard]] std::string error_message() const;
  [[nodiscard]] RetryHistory retries() const;

  /// Ends the stream before any RPC (validation failure, closed runner).
  void fail(std::error_code error, std::string message);
  /// Claims the right to start a read from outside a reaction; caller holds the mutex.
  bool take_read_locked() noexcept;

  const std::size_t read_ahead;
  mutable std::mutex mutex;
  std::deque<OutputChunk> ready;
  NextCompletion waiting;
  bool reading = false;
  bool holding = false;
  bool ended = false;                      // no read will be started any more
  std::optional<std::error_code> outcome;  // the exit (empty code) or the failure
  std::string message;
  ExitStatus exit;
  ExecInfo identity;
  RetryHistory history;          // set when the call is over
  std::weak_ptr<StreamRpc> rpc;  // set before the call starts; expires when it is over
};

/// The Exec call of one stream; reports into its StreamCore.
class StreamRpc final : public CallBase {
 public:
  StreamRpc(RunnerCore* core, Command&& command, std::shared_ptr<StreamCore> stream);

  /// Validates and starts the call; a failure becomes the stream's terminal error.
  static void start(RunnerCore* core, Command&& command, const std::shared_ptr<StreamCore>& stream);
  /// Starts the read the consumer claimed with take_read_locked().
  void read_more();
  using CallBase::history;

 private:
  void on_read(Attempt& attempt, bool ok) override;
  void on_attempt_starting() override;
  void finish(std::error_code error, std::string message) override;
  void on_cancelled(Attempt* attempt) noexcept override;

  std::shared_ptr<StreamCore> stream_;
};

}  // namespace sandbox::detail
