#include "client/detail/log.hpp"

#include <unistd.h>

#include <string>

namespace sandbox::detail {
namespace {

std::string_view name_of(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "log";
}

}  // namespace

void log(const LogSink& sink, LogLevel level, std::string_view message) noexcept {
  try {
    if (sink) return sink(level, message);
    if (level < LogLevel::warning) return;
    std::string line = "sandbox-exec: ";
    line.append(name_of(level)).append(": ").append(message).append("\n");
    // One write, so lines of concurrent threads never interleave.
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, line.data(), line.size());
  } catch (...) {  // NOLINT(bugprone-empty-catch): a log line is never worth a failure
  }
}

}  // namespace sandbox::detail
