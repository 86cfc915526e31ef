// Whether bytes are UTF-8: protobuf refuses to serialize a `string` field that is not, so
// the SDK names the field before any I/O instead of failing the call with a bare status.
#pragma once

#include <string_view>

namespace sandbox {

/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above
/// U+10FFFF), as protobuf's proto3 `string` fields require.
bool is_utf8(std::string_view text) noexcept;

}  // namespace sandbox
