#include "cli/json_lines.hpp"

#include <cstdint>

#include "cli/base64.hpp"

namespace sandbox::cli {
namespace {

/// The length of the well-formed UTF-8 sequence starting `text`, 0 if it does not start
/// with one. Ranges from RFC 3629 §4 (the second byte's range excludes overlong forms,
/// surrogates and code points past U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  auto in = [&](std::size_t i, unsigned low, unsigned high) {
    return i < text.size() && byte(i) >= low && byte(i) <= high;
  };
  const unsigned lead = byte(0);
  std::size_t length = 0;
  unsigned second_low = 0x80;
  unsigned second_high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) second_low = 0xa0;   // overlong
    if (lead == 0xed) second_high = 0x9f;  // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) second_low = 0x90;   // overlong
    if (lead == 0xf4) second_high = 0x8f;  // past U+10FFFF
  } else {
    return 0;
  }
  if (!in(1, second_low, second_high)) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (!in(i, 0x80, 0xbf)) return 0;
  }
  return length;
}

void append_number(std::string& out, std::string_view key, std::int64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  out += std::to_string(value);
}

void append_unsigned(std::string& out, std::string_view key, std::uint64_t value) {
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
  append_unsigned(line, "offset", chunk.offset);
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
  append_unsigned(line, "stdout_total", status.stdout_total);
  append_unsigned(line, "stderr_total", status.stderr_total);
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
