#pragma once
/// @file
/// A command to run remotely: argv plus per-call overrides of the runner's defaults.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sandbox/retry.hpp"

namespace sandbox {

/// One command: argv plus optional per-call settings. Unset optionals fall back to the
/// `RemoteRunnerConfig` defaults; `env` entries are merged over the runner's env.
///
/// Validation (one place, `RemoteRunner` before any I/O): `argv` must be non-empty and
/// `argv[0]` non-empty; no string may contain a NUL byte except `stdin_data`.
struct Command {
  /// argv; `argv[0]` is resolved through PATH inside the sandbox.
  std::vector<std::string> argv;
  /// Environment entries merged over the runner's. A value `secret://NAME` is passed to the
  /// agent verbatim: only the agent resolves it, the client never reads or logs it.
  std::map<std::string, std::string> env;
  /// Working directory inside the sandbox (relative to the agent's workspace).
  std::optional<std::string> workdir;
  /// Bytes written to the command's stdin, then EOF. Empty: stdin is closed at once.
  std::string stdin_data;
  /// Command timeout enforced by the agent (kill, exit 124, `timed_out`); zero means the
  /// agent's default. The RPC deadline then becomes this plus the runner's
  /// `timeout_grace`, so the agent's timeout result wins over a bare deadline error.
  std::chrono::milliseconds timeout{0};
  /// Deadline of this call, overriding the runner's `default_deadline`: one limit over all
  /// of its attempts and the waits between them.
  std::optional<std::chrono::milliseconds> deadline;
  /// Retry policy of this call, overriding `RemoteRunnerConfig::retry`.
  std::optional<RetryPolicy> retry;
  /// Per-stream output cap, overriding the runner's `max_output_bytes`.
  std::optional<std::uint64_t> max_output_bytes;
  /// Idempotency and reattach key (UUID, at most 36 ASCII characters). Empty: the SDK
  /// generates a random UUID for the call.
  std::string exec_id;

  Command() = default;
  /// `co_await runner.exec({"ls", "-la"})`. A variadic constructor rather than an
  /// initializer_list one: g++ 12 rejects an initializer_list of strings built inside a
  /// `co_await` expression ("array used as initializer").
  template <typename... Args>
  requires(sizeof...(Args) > 0 && (std::is_convertible_v<Args, std::string> && ...))
      Command(Args&&... args)  // NOLINT(google-explicit-constructor)
      : argv{std::string(std::forward<Args>(args))...} {}
  /// A command from an argv vector.
  Command(std::vector<std::string> args)
      : argv(std::move(args)) {}  // NOLINT(google-explicit-constructor)
};

}  // namespace sandbox
