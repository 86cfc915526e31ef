#pragma once
/// @file
/// What a remote command produces: output chunks, its exit status, the collected result.

#include <chrono>
#include <cstdint>
#include <string>

#include "sandbox/retry.hpp"

namespace sandbox {

/// Which of the command's output streams a chunk belongs to.
enum class OutputStream : std::uint8_t {
  out = 1,  ///< stdout
  err = 2,  ///< stderr
};

/// A piece of output, as the agent sent it. Chunks of one stream arrive in order with no gap;
/// the order between stdout and stderr is the agent's send order.
struct OutputChunk {
  /// The stream these bytes belong to.
  OutputStream stream = OutputStream::out;
  /// The bytes, unmodified (binary safe).
  std::string data;
  /// Offset of `data[0]` within its own stream.
  std::uint64_t offset = 0;
};

/// How the command ended and what the agent reported about it.
struct ExitStatus {
  /// The exit code: 0-255 for a normal exit, 128+signal when killed by a signal, 124 when
  /// the agent's command timeout killed it, 127/126 when it could not be started.
  int exit_code = -1;
  /// The signal that killed the command, 0 if it exited normally.
  int signal = 0;
  /// True when the agent's command timeout killed the command.
  bool timed_out = false;
  /// True when stdout was cut at the output cap (by the agent or by `exec()`).
  bool stdout_truncated = false;
  /// True when stderr was cut at the output cap (by the agent or by `exec()`).
  bool stderr_truncated = false;
  /// Total stdout bytes the command wrote, as the agent counted them (including bytes
  /// not sent).
  std::uint64_t stdout_total = 0;
  /// Total stderr bytes the command wrote, as the agent counted them.
  std::uint64_t stderr_total = 0;
  /// Run time of the command as measured by the agent.
  std::chrono::milliseconds duration{0};
};

/// Identity of one exec, as reported in the agent's `started` message.
struct ExecInfo {
  /// The exec id (the client's, or the SDK-generated one).
  std::string exec_id;
  /// The sandbox the command ran in.
  std::string sandbox_id;
  /// The profile the agent enforced after clamping the requested one.
  std::string effective_profile;
};

/// The whole result of `RemoteRunner::exec()`.
///
/// On success `status` is complete. On error the result still carries the output received so
/// far and `error_message`, but `status.exit_code` stays -1: a partial result is never
/// presented as a complete one.
struct ExecResult {
  /// How the command ended.
  ExitStatus status;
  /// The command's stdout, up to the output cap.
  std::string stdout_data;
  /// The command's stderr, up to the output cap.
  std::string stderr_data;
  /// Identity and effective profile of the exec.
  ExecInfo info;
  /// Wall-clock time of the call as seen by the client.
  std::chrono::microseconds elapsed{0};
  /// On error: the reason, including the agent's status message. Empty on success.
  std::string error_message;
  /// The attempts the call made and each failed one's error.
  RetryHistory retries;

  /// Shorthand for `status.exit_code`.
  [[nodiscard]] int exit_code() const noexcept { return status.exit_code; }
};

}  // namespace sandbox
