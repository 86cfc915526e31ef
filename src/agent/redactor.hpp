// Replaces an exec's secret values in its output stream with "[REDACTED]".
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sandbox::agent {

/// What stands in the output for a secret value.
inline constexpr std::string_view kRedactedMarker = "[REDACTED]";
/// Secrets shorter than this are not redacted: replacing every "a" or "42" would mangle all
/// output and hide nothing (a value that short is guessable anyway). docs/behavior.md §11.
inline constexpr std::size_t kMinRedactedSecretBytes = 4;

/// A streaming redactor for one output stream of one exec. Sans-io: no threads, no clocks;
/// the caller serialises access.
///
/// The output is what redacting the whole stream at once would give, however the input is
/// split into chunks: scanning left to right, wherever one of the secrets starts, the longest
/// secret starting there is replaced by kRedactedMarker and scanning continues after it;
/// every other byte passes unchanged (binary data included).
///
/// Promptness: feed() holds back only the longest suffix of the input that is a proper
/// prefix of some secret (at most the longest secret's length minus one byte) and could
/// still become a secret with more input; everything before it is released at once. Output
/// that could not be the start of a secret (a line like "hello\n" when no secret starts with
/// "hello\n"...) is never delayed. finish() releases what is held at EOF.
///
/// Cost: per input byte whose value starts some secret, at most the summed length of the
/// secrets starting with that byte is compared; other bytes cost one table lookup.
class Redactor {
 public:
  /// A redactor that redacts nothing: every byte passes at once.
  Redactor() = default;
  /// Redacts `secrets`; values shorter than kMinRedactedSecretBytes, and duplicates, are
  /// ignored. The values are copied.
  explicit Redactor(const std::vector<std::string>& secrets);

  /// False when there is nothing to redact: feed() then only copies.
  [[nodiscard]] bool active() const noexcept { return !secrets_.empty(); }

  /// Consumes `data` and appends to `out` what can be released now (redacted).
  void feed(std::string_view data, std::string& out);
  /// End of the stream: appends what is still held (redacted) to `out`. Further feed() calls
  /// start a new stream.
  void finish(std::string& out);

  /// Bytes held back now, waiting to see whether they are the start of a secret.
  [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }

 private:
  // Releases from held_ into `out` everything that is decided; keeps the undecided tail.
  void scan(std::string& out, bool at_eof);

  std::vector<std::string> secrets_;  // longest first, so the first full match is the longest
  std::array<bool, 256> starts_{};    // first bytes of the secrets
  std::string held_;
};

}  // namespace sandbox::agent
