#pragma once
// The SDK's own log messages, through the user's sink or to stderr.

#include <string_view>

#include "sandbox/log.hpp"

namespace sandbox::detail {

/// Hands `message` to `sink`; without one, writes warnings and errors to stderr as one
/// line `sandbox-exec: <level>: <message>`. Never throws (a throwing sink is ignored).
void log(const LogSink& sink, LogLevel level, std::string_view message) noexcept;

}  // namespace sandbox::detail
