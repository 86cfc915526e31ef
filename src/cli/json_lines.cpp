#include "cli/json_lines.hpp"

#include <cstdint>

#include "cli/base64.hpp"
#include "common/utf8.hpp"

namespace sandbox::cli {
namespace {

template <class Integer>
void append_number(std::string& out, std::string_view key, Integer value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += std::to_string(value);
}

void append_bool(std::string& out, std::string_view key, bool value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += value ? "true" : "false";
}

void append_string(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += json_string(value);
}

/// `{"event":"<event>"`: every line starts with its event, so a reader can dispatch on a
/// prefix.
std::string begin_line(std::string_view event) {
  std::string line = "{\"event\":\"";
  line += event;
  line += '"';
  return line;
}

std::string end_line(std::string line) {
  line += "}\n";
  return line;
}

}  // namespace

std::string json_string(std::string_view text) {
  constexpr std::string_view hex = "0123456789abcdef";
  std::string out = "\"";
  out.reserve(text.size() + 2);
  while (!text.empty()) {
    const auto c = static_cast<unsigned char>(text.front());
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else if (c >= 0x80) {
      if (std::size_t length = utf8_sequence_length(text); length > 0) {
        out += text.substr(0, length);
        text.remove_prefix(length);
        continue;
      }
      out += "\\ufffd";
    } else {
      out += static_cast<char>(c);
    }
    text.remove_prefix(1);
  }
  out += '"';
  return out;
}

std::string started_line(const ExecInfo& info) {
  std::string line = begin_line("started");
  append_string(line, "exec_id", info.exec_id);
  append_string(line, "sandbox_id", info.sandbox_id);
  append_string(line, "effective_profile", info.effective_profile);
  return end_line(std::move(line));
}

std::string chunk_line(const OutputChunk& chunk) {
  std::string line = begin_line(chunk.stream == OutputStream::out ? "stdout" : "stderr");
  append_number(line, "offset", chunk.offset);
  // Base64's alphabet needs no escaping.
  line += ",\"data\":\"";
  line += base64_encode(chunk.data);
  line += '"';
  return end_line(std::move(line));
}

std::string exit_line(const ExitStatus& status) {
  std::string line = begin_line("exit");
  append_number(line, "exit_code", status.exit_code);
  append_number(line, "signal", status.signal);
  append_bool(line, "timed_out", status.timed_out);
  append_bool(line, "stdout_truncated", status.stdout_truncated);
  append_bool(line, "stderr_truncated", status.stderr_truncated);
  append_number(line, "stdout_total", status.stdout_total);
  append_number(line, "stderr_total", status.stderr_total);
  append_number(line, "duration_ms", status.duration.count());
  return end_line(std::move(line));
}

std::string error_line(std::string_view code, std::string_view message) {
  std::string line = begin_line("error");
  append_string(line, "code", code);
  append_string(line, "message", message);
  return end_line(std::move(line));
}

}  // namespace sandbox::cli
