#pragma once
/// @file
/// Base64 (RFC 4648 §4: standard alphabet, `=` padding, no line breaks): how `--json` carries
/// the command's output, which may be any bytes, inside JSON strings.

#include <optional>
#include <string>
#include <string_view>

namespace sandbox::cli {

/// Encodes `bytes`; the result's length is 4 * ceil(size / 3).
std::string base64_encode(std::string_view bytes);

/// Decodes canonical base64 as `base64_encode` writes it. `std::nullopt` for anything else:
/// a length not a multiple of 4, a character outside the alphabet, misplaced padding, or
/// non-zero bits left over before the padding (so every byte string has one encoding).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace sandbox::cli
