#pragma once
/// @file
/// Where the SDK's own log messages go.

#include <functional>
#include <string_view>

namespace sandbox {

/// Severity of an SDK log message.
enum class LogLevel { debug, info, warning, error };

/// Receives the SDK's log messages. Called on the thread that triggered the message (for
/// the insecure-token warning: the thread constructing the runner), possibly from several
/// threads at once; must not throw. Messages never contain a token, a secret or an env value.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;

}  // namespace sandbox
