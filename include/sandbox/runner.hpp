#pragma once
/// @file
/// `RemoteRunner`: runs commands on a remote sandbox agent.

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>
#include <system_error>

#include "sandbox/command.hpp"
#include "sandbox/detail/completion.hpp"
#include "sandbox/exec_result.hpp"
#include "sandbox/exec_stream.hpp"
#include "sandbox/runner_config.hpp"

namespace sandbox {

namespace detail {
class RunnerCore;
using ExecCompletion = UniqueFunction<void(std::error_code, ExecResult)>;
std::shared_ptr<Operation> make_exec_operation(const std::shared_ptr<RunnerCore>& core,
                                               Command&& cmd, ExecCompletion done);
}  // namespace detail

/// One connection (gRPC channel) to a sandbox agent, and the way to run commands there.
///
///     sandbox::RemoteRunner runner(co_await asio::this_coro::executor, {.address =
///     "unix:/run/agent.sock"}); auto result = co_await runner.exec({"pytest", "-q"});
///
/// Thread-safe: `exec()`, `stream()` and `close()` may be called concurrently from any
/// threads. Calls share the channel; each is one RPC (`SandboxExecService/Exec`).
///
/// When the caller abandons a call (its cancellation, `close()`, destroying an unfinished
/// stream, the call's deadline; also a response that broke the protocol, after which the
/// SDK gives the call up) the runner cancels the RPC and also sends
/// `SandboxExecService/Cancel` for its exec id, so the agent kills the command at once
/// instead of keeping it for a reattach. A lost connection sends no `Cancel`: the command
/// keeps running so that a retry can reattach. `Cancel` is best effort (bounded by
/// `RemoteRunnerConfig::cancel_timeout`, failures ignored) and no completion waits for it.
/// Against an agent of the older generation, which answers it UNIMPLEMENTED, the runner
/// stops sending it after that first answer and only cancels the RPC.
class RemoteRunner {
 public:
  /// The executor completion handlers run on when they have no associated executor.
  using executor_type = asio::any_io_executor;
  /// Completion signature of `exec()`.
  using exec_signature = void(std::error_code, ExecResult);

  /// Validates `config` and creates the channel (connecting lazily, on the first call).
  /// With `allow_insecure` and a token, warns once through `config.log`.
  ///
  /// @param executor  where handlers without an associated executor run; the runner keeps a
  ///                  copy. Its execution context must outlive the runner: completions are
  ///                  posted to it up to the destructor.
  /// @param config    kept by the runner (see `config()`); its `log` sink and
  ///                  `token_provider` may be called from any thread while the runner lives
  ///                  (see `LogSink`, `TokenProvider`).
  ///
  /// @throws std::system_error `errc::invalid_config` for an empty address, unreadable
  ///   TLS files, PEM text with a `reload_interval`, both `token` and `token_provider`, a
  ///   token that is not printable ASCII, a zero `stream_read_ahead` or a negative
  ///   `cancel_timeout`; `errc::token_requires_tls` for a token without TLS unless
  ///   `allow_insecure` (the message says "insecure"), and with it for an IP address of
  ///   another host.
  RemoteRunner(executor_type executor, RemoteRunnerConfig config);
  RemoteRunner(const RemoteRunner&) = delete;
  RemoteRunner& operator=(const RemoteRunner&) = delete;
  /// Closes the runner and waits until gRPC has finished every call it started (their
  /// handlers are posted, not run, by then), including the `Cancel` RPCs in flight: it may
  /// block up to `RemoteRunnerConfig::cancel_timeout` for an agent that does not answer
  /// them. Must not be called from a completion handler of this runner's own calls running
  /// on a gRPC thread (none ever are).
  ~RemoteRunner();

  /// Runs `cmd` in the sandbox and collects its whole output.
  ///
  /// @param cmd    argv (non-empty) plus optional per-call overrides; copied.
  /// @param token  completion token; defaults to `asio::use_awaitable`.
  ///
  /// @par Completion signature
  ///   `void(std::error_code, sandbox::ExecResult)`. A non-zero exit of the command is a
  ///   result (`ExecResult::exit_code()`), not an error.
  /// @par Errors
  ///   `errc::invalid_argument` before any I/O for an invalid command;
  ///   `errc::missing_exit_code` when the stream ends without an exit code;
  ///   `errc::runner_closed` when `close()` was called; `errc::deadline_exceeded`; any other
  ///   gRPC status through the one mapping. The result keeps the partial output and the
  ///   agent's message in `ExecResult::error_message` (use `as_tuple` to see them with
  ///   coroutines; `use_awaitable` throws `std::system_error`).
  /// @par Per-operation cancellation
  ///   `terminal`: cancels the RPC and asks the agent to kill the command (`Cancel`; against
  ///   an agent of the older generation only the RPC is cancelled); completes with
  ///   `asio::error::operation_aborted` after gRPC confirmed the call ended, without
  ///   waiting for the agent's answer to `Cancel`. The same happens, with
  ///   `errc::deadline_exceeded`, when the call's deadline passes.
  /// @par Executor
  ///   The handler runs as if posted to its associated executor (default: the runner's),
  ///   never inside this call and never on a gRPC thread.
  /// @par Object lifetimes
  ///   The runner must outlive the operation (its destructor waits for it).
  template <typename CompletionToken = asio::use_awaitable_t<>>
  // By value: the command is moved into the operation (and stored by deferred tokens).
  auto exec(Command cmd,  // NOLINT(performance-unnecessary-value-param)
            CompletionToken&& token = asio::use_awaitable_t<>{}) {
    return asio::async_initiate<CompletionToken, exec_signature>(
        // By value: moved into the operation (clang-tidy misses the move through the call).
        [this](auto handler, Command command) {  // NOLINT(performance-unnecessary-value-param)
          auto slot = asio::get_associated_cancellation_slot(handler);
          auto operation =
              detail::make_exec_operation(core_, std::move(command),
                                          detail::posted_completion<std::error_code, ExecResult>(
                                              std::move(handler), executor_));
          if (slot.is_connected()) slot.template emplace<detail::CancelOnTerminal>(operation);
          operation->start();
        },
        token, std::move(cmd));
  }

  /// Starts `cmd` and returns its output as a stream of chunks; see `ExecStream`.
  ///
  /// @param cmd  argv (non-empty) plus optional per-call overrides; moved into the stream.
  ///
  /// Never fails here: a validation error, a closed runner or an RPC failure is reported by
  /// the stream's first or later `next()`. The RPC starts at once.
  ExecStream stream(Command cmd);

  /// Cancels every call in flight (they complete with `errc::runner_closed`; the agent is
  /// asked to kill their commands, as for a caller's cancellation) and makes later calls
  /// fail with it. Idempotent; thread-safe; does not wait.
  void close() noexcept;

  /// True after `close()`.
  [[nodiscard]] bool closed() const noexcept;
  /// The configuration the runner was built with.
  [[nodiscard]] const RemoteRunnerConfig& config() const noexcept;
  /// The executor handlers run on when they have no associated executor.
  [[nodiscard]] executor_type get_executor() const noexcept { return executor_; }

 private:
  executor_type executor_;
  std::shared_ptr<detail::RunnerCore> core_;
};

}  // namespace sandbox
