// Structured one-line logs of the agent.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace sandbox::agent {

/// One `key=value` field of a log line. Callers pass names, ids and numbers only: never
/// environment values, tokens, stdin or command arguments past argv[0].
struct LogField {
  std::string_view key;
  std::string value;
};

/// Writes `ts=<RFC 3339 UTC> level=<level> event=<event> key=value...` plus a newline to
/// stderr with one write(2), so lines from concurrent threads never interleave. Values with
/// spaces, quotes, `=` or control characters are quoted and escaped. Thread-safe; never throws.
void log(std::string_view level, std::string_view event,
         std::initializer_list<LogField> fields = {}) noexcept;

}  // namespace sandbox::agent
