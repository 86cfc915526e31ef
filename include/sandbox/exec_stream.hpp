#pragma once
/// @file
/// `ExecStream`: a remote command's output as an async generator of chunks.

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "sandbox/detail/completion.hpp"
#include "sandbox/exec_result.hpp"

namespace sandbox {

namespace detail {
class StreamCore;
using NextCompletion = UniqueFunction<void(std::error_code, std::optional<OutputChunk>)>;
std::shared_ptr<Cancellable> as_cancellable(const std::shared_ptr<StreamCore>& core);
void async_next(const std::shared_ptr<StreamCore>& core, NextCompletion done);
}  // namespace detail

/// The output of one running command, chunk by chunk, in the order the agent sent it:
///
///     auto stream = runner.stream({"make", "-j2"});
///     while (auto chunk = co_await stream.next()) consume(*chunk);
///     int code = stream.exit_status().exit_code;
///
/// The RPC starts when the stream is created and reads at most
/// `RemoteRunnerConfig::stream_read_ahead` messages ahead of the consumer: a consumer that
/// stops reading slows the agent through HTTP/2 flow control, and memory stays bounded
/// whatever the output size.
///
/// A lost connection does not end the stream: the SDK retries as `RemoteRunnerConfig::retry`
/// says, reattaching at the offsets already received, so the consumer sees every byte
/// exactly once and in order across attempts (`retries()` tells how many there were).
///
/// Move-only. Destroying a stream that has not finished cancels it (see `cancel()`). One
/// `next()` may be outstanding at a time. Not thread-safe: use one stream from one executor
/// (or strand).
class ExecStream {
 public:
  /// Completion signature of `next()`.
  using next_signature = void(std::error_code, std::optional<OutputChunk>);

  /// Takes over the other stream's RPC and executor. The moved-from stream is empty: it
  /// reports `finished()` and default values, `cancel()` does nothing, and `next()` on it
  /// is a precondition violation (asserted in debug builds); assign to it to reuse it.
  ExecStream(ExecStream&&) noexcept;
  /// Cancels this stream's command if it has not finished (as the destructor does), then
  /// takes over the other stream's RPC and executor, leaving it empty (see the move
  /// constructor). Never blocks.
  ExecStream& operator=(ExecStream&&) noexcept;
  ExecStream(const ExecStream&) = delete;
  ExecStream& operator=(const ExecStream&) = delete;
  /// Cancels the stream (as `cancel()` does) if it has not finished; never blocks.
  ~ExecStream();

  /// Waits for the next chunk.
  ///
  /// @param token  completion token; defaults to `asio::use_awaitable`.
  ///
  /// @par Completion signature
  ///   `void(std::error_code, std::optional<OutputChunk>)`: a chunk; or `std::nullopt` once
  ///   the command's exit was received (then `exit_status()` is valid); or an error.
  /// @par Errors
  ///   `errc::invalid_argument` for a command that failed validation (no RPC was made);
  ///   `errc::missing_exit_code` when the stream ended without an exit code (the chunks
  ///   already delivered are all there was); `errc::runner_closed`; any mapped gRPC status.
  ///   After an error or the end, further calls complete with the same outcome.
  ///   `error_message()` has the details.
  /// @par Per-operation cancellation
  ///   `terminal`: cancels the whole stream (as `cancel()` does); the operation completes
  ///   with `asio::error::operation_aborted` once gRPC confirms the call ended.
  /// @par Executor
  ///   The handler runs as if posted to its associated executor (default: the runner's),
  ///   never inside this call and never on a gRPC thread.
  /// @par Object lifetimes
  ///   The stream must stay valid (not moved from) until the operation completes.
  template <typename CompletionToken = asio::use_awaitable_t<>>
  auto next(CompletionToken&& token = asio::use_awaitable_t<>{}) {
    return asio::async_initiate<CompletionToken, next_signature>(
        [this](auto handler) {
          auto slot = asio::get_associated_cancellation_slot(handler);
          if (slot.is_connected()) {
            slot.template emplace<detail::CancelOnTerminal>(detail::as_cancellable(core_));
          }
          detail::async_next(core_,
                             detail::posted_completion<std::error_code, std::optional<OutputChunk>>(
                                 std::move(handler), executor_));
        },
        token);
  }

  /// True once the exit status was received or the stream failed.
  [[nodiscard]] bool finished() const noexcept;
  /// How the command ended. Meaningful once `next()` yielded `std::nullopt`; before that
  /// `exit_code` is -1.
  [[nodiscard]] ExitStatus exit_status() const;
  /// Exec id, sandbox id and effective profile, filled when the agent's `started` arrived
  /// (the exec id is known from the start).
  [[nodiscard]] ExecInfo info() const;
  /// The error's details (the agent's status message, or the rule a response broke).
  [[nodiscard]] std::string error_message() const;
  /// The attempts so far and each failed one's error (complete once `finished()`).
  [[nodiscard]] RetryHistory retries() const;
  /// Cancels the RPC and asks the agent to kill the command (`Cancel`, best effort and
  /// bounded by `RemoteRunnerConfig::cancel_timeout`; against an agent of the older
  /// generation only the RPC is cancelled). A pending or later `next()` completes with
  /// `asio::error::operation_aborted` once gRPC confirmed the call ended, without waiting
  /// for the agent's answer. Once the exit has arrived it changes nothing: the chunks read
  /// ahead and the end are still delivered. Thread-safe, idempotent.
  void cancel() noexcept;

  /// The executor handlers run on when they have no associated executor.
  [[nodiscard]] asio::any_io_executor get_executor() const noexcept { return executor_; }

  /// For `RemoteRunner` only.
  ExecStream(std::shared_ptr<detail::StreamCore> core, asio::any_io_executor executor);

 private:
  std::shared_ptr<detail::StreamCore> core_;
  asio::any_io_executor executor_;
};

}  // namespace sandbox
