#include "cli/run_output.hpp"

#include <string>

#include "cli/fd_io.hpp"
#include "cli/json_lines.hpp"
#include "sandbox/error.hpp"

namespace sandbox::cli {

std::optional<WriteFailure> RunOutput::write(int fd, std::string_view data) {
  if (auto ec = write_all(fd, data)) {
    if (fd == out_fd_) out_failed_ = true;
    return WriteFailure{ec, fd == out_fd_ ? "stdout" : "stderr"};
  }
  return std::nullopt;
}

std::optional<WriteFailure> RunOutput::write_started(const ExecInfo& info) {
  if (started_written_) return std::nullopt;
  started_written_ = true;
  return write(out_fd_, started_line(info));
}

std::optional<WriteFailure> RunOutput::chunk(const OutputChunk& chunk, const ExecInfo& info) {
  if (format_ == Format::raw) {
    return write(chunk.stream == OutputStream::out ? out_fd_ : err_fd_, chunk.data);
  }
  if (auto failure = write_started(info)) return failure;
  return write(out_fd_, chunk_line(chunk));
}

std::optional<WriteFailure> RunOutput::exit(const ExitStatus& status, const ExecInfo& info) {
  if (format_ == Format::raw) return std::nullopt;
  if (auto failure = write_started(info)) return failure;
  return write(out_fd_, exit_line(status));
}

void RunOutput::error(std::error_code ec, std::string_view message) {
  // Kept in a variable: a temporary in the range-for's initializer would die before the loop.
  const std::string fallback = message.empty() ? ec.message() : std::string();
  // One line, whatever the agent's message contains.
  std::string one_line;
  for (char c : message.empty() ? std::string_view(fallback) : message) {
    one_line += (c == '\n' || c == '\r') ? ' ' : c;
  }
  while (one_line.ends_with(' ')) one_line.pop_back();
  const std::string_view code = error_name(ec);
  write_all(err_fd_, "sandbox-run: error: " + std::string(code) + ": " + one_line + "\n");
  if (format_ == Format::json && !out_failed_) write_all(out_fd_, error_line(code, one_line));
}

}  // namespace sandbox::cli
