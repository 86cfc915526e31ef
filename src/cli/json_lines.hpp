#pragma once
/// @file
/// `sandbox-run --json`'s output: one JSON object per line, built without a JSON library.
/// The schema is a contract, documented in `usage_text()` and README's sandbox-run section.

#include <string>
#include <string_view>

#include "sandbox/exec_result.hpp"

namespace sandbox::cli {

/// `text` as a JSON string literal, quotes included. `"` and `\` are escaped, control
/// characters (U+0000-U+001F, U+007F) become `\u00XX`; well-formed UTF-8 is kept as it is
/// and every byte that is not part of a well-formed sequence (RFC 3629: no overlong forms,
/// no surrogates, nothing past U+10FFFF) becomes `\ufffd`, so any bytes make valid JSON.
std::string json_string(std::string_view text);

/// `{"event":"started","exec_id":...,"sandbox_id":...,"effective_profile":...}` and `\n`.
std::string started_line(const ExecInfo& info);

/// `{"event":"stdout"|"stderr","offset":N,"data":"<base64>"}` and `\n`.
std::string chunk_line(const OutputChunk& chunk);

/// `{"event":"exit","exit_code":N,"signal":N,"timed_out":B,"stdout_truncated":B,
/// "stderr_truncated":B,"stdout_total":N,"stderr_total":N,"duration_ms":N}` and `\n`.
std::string exit_line(const ExitStatus& status);

/// `{"event":"error","code":...,"message":...}` and `\n`.
std::string error_line(std::string_view code, std::string_view message);

}  // namespace sandbox::cli
