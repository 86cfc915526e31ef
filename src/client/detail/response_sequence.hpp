#pragma once
// The Exec response stream's rules (docs/behavior.md, "Stream order"), as a sans-io state
// machine: fed one message at a time, it says what the message is or which rule it broke.

#include <cstdint>
#include <string>

#include "sandbox/exec_result.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::detail {

/// What one accepted response was.
enum class ResponseKind {
  started,    ///< the `started` message; `info()` is filled
  chunk,      ///< stdout or stderr bytes, at the expected offset
  exit,       ///< the terminal exit; `exit_status()` is filled
  violation,  ///< broke a rule; `violation()` says which. Nothing more should be accepted.
};

/// Tracks one Exec response stream. Not thread-safe; one per attempt.
class ResponseSequence {
 public:
  ResponseSequence() = default;
  /// An attempt that resumes: its chunks must continue at these offsets.
  ResponseSequence(std::uint64_t stdout_from, std::uint64_t stderr_from) noexcept
      : stdout_received_(stdout_from), stderr_received_(stderr_from) {}

  /// Classifies `message` and advances. After `exit` or `violation`, every further message
  /// is a violation.
  ResponseKind accept(const v1::ExecResponse& message);

  /// True once `started` was accepted. An agent of the older generation never sends it;
  /// then chunk offsets are not checked.
  [[nodiscard]] bool started() const noexcept { return started_; }
  /// True once the exit was accepted.
  [[nodiscard]] bool exited() const noexcept { return exited_; }
  /// Identity reported by `started` (exec id pre-set by the caller).
  [[nodiscard]] ExecInfo& info() noexcept { return info_; }
  [[nodiscard]] const ExecInfo& info() const noexcept { return info_; }
  /// The exit, once `exited()`.
  [[nodiscard]] const ExitStatus& exit_status() const noexcept { return exit_; }
  /// The rule broken, once a violation was reported.
  [[nodiscard]] const std::string& violation() const noexcept { return violation_; }
  /// Bytes accepted so far on `stream`.
  [[nodiscard]] std::uint64_t received(OutputStream stream) const noexcept {
    return stream == OutputStream::out ? stdout_received_ : stderr_received_;
  }

 private:
  ResponseKind fail(std::string rule);
  ResponseKind accept_chunk(OutputStream stream, const v1::ExecResponse& message,
                            std::uint64_t& received);

  bool started_ = false;
  bool any_chunk_ = false;
  bool exited_ = false;
  bool failed_ = false;
  std::uint64_t stdout_received_ = 0;
  std::uint64_t stderr_received_ = 0;
  ExecInfo info_;
  ExitStatus exit_;
  std::string violation_;
};

}  // namespace sandbox::detail
