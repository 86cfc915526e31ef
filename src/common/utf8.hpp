// UTF-8 as protobuf's proto3 `string` fields require it: the SDK names a field that is not
// before any I/O (protobuf would fail the call with a bare status), and sandbox-run --json
// replaces what is not in its output.
#pragma once

#include <cstddef>
#include <string_view>

namespace sandbox {

/// The length (1-4) of the well-formed UTF-8 sequence that starts `text`, or 0 when it does
/// not start with one (or is empty). RFC 3629 §4: no overlong forms, surrogates or code
/// points above U+10FFFF.
std::size_t utf8_sequence_length(std::string_view text) noexcept;

/// True when all of `text` is well-formed UTF-8.
bool is_utf8(std::string_view text) noexcept;

}  // namespace sandbox
