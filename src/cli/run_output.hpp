#pragma once
/// @file
/// Where one `sandbox-run` writes what happened: the command's bytes raw on fds 1 and 2, or
/// (`--json`) one JSON object per line on fd 1; and its errors.

#include <unistd.h>

#include <optional>
#include <string_view>
#include <system_error>

#include "sandbox/exec_result.hpp"

namespace sandbox::cli {

/// A write to one of this process's outputs that failed.
struct WriteFailure {
  std::error_code error;
  /// "stdout" or "stderr": the output the write went to.
  std::string_view output;
};

/// The output of one run. Not thread-safe: one run writes from one thread.
class RunOutput {
 public:
  enum class Format {
    raw,   ///< the command's stdout on `out_fd`, its stderr on `err_fd`, byte for byte
    json,  ///< JSON lines (json_lines.hpp) on `out_fd`
  };

  explicit RunOutput(Format format, int out_fd = STDOUT_FILENO, int err_fd = STDERR_FILENO)
      : format_(format), out_fd_(out_fd), err_fd_(err_fd) {}

  /// Writes one chunk; for `json`, the `started` line from `info` before the first one.
  std::optional<WriteFailure> chunk(const OutputChunk& chunk, const ExecInfo& info);

  /// For `json`: the `started` line if no chunk wrote it, then the `exit` line. For `raw`,
  /// nothing: the exit status says how the command ended.
  std::optional<WriteFailure> exit(const ExitStatus& status, const ExecInfo& info);

  /// The one error line `sandbox-run: error: <code name>: <message>` on `err_fd`, and for
  /// `json` an `error` line with the same code name and message on `out_fd` (unless a
  /// write to it failed already). `message` empty: `ec.message()`. Best effort: a failed
  /// write is not reported.
  void error(std::error_code ec, std::string_view message);

 private:
  std::optional<WriteFailure> write(int fd, std::string_view data);
  std::optional<WriteFailure> write_started(const ExecInfo& info);

  Format format_;
  int out_fd_;
  int err_fd_;
  bool started_written_ = false;
  bool out_failed_ = false;
};

}  // namespace sandbox::cli
