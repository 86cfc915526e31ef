// Bearer-token authentication of Exec calls.
#pragma once

#include <string_view>

namespace sandbox::agent {

/// True when `presented` equals `secret`. The running time depends only on
/// `presented.size()`: neither on the position of the first difference nor on the length of
/// `secret`, so timing reveals nothing about the secret. `secret` must not be empty.
bool constant_time_equals(std::string_view secret, std::string_view presented) noexcept;

/// True when the `authorization` header value is exactly `Bearer <token>`, compared in
/// constant time (see constant_time_equals). `token` must not be empty.
bool bearer_token_matches(std::string_view token, std::string_view authorization) noexcept;

}  // namespace sandbox::agent
