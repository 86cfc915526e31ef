#include "agent/auth.hpp"

#include <cstddef>

namespace sandbox::agent {

bool constant_time_equals(std::string_view secret, std::string_view presented) noexcept {
  if (secret.empty()) return false;
  // Walk the presented bytes only, cycling through the secret: the loop count never depends
  // on the secret's length, and no branch depends on the data.
  volatile unsigned char diff = secret.size() != presented.size() ? 1 : 0;
  for (std::size_t i = 0; i < presented.size(); ++i) {
    diff = diff | static_cast<unsigned char>(presented[i] ^ secret[i % secret.size()]);
  }
  return diff == 0;
}

bool bearer_token_matches(std::string_view token, std::string_view authorization) noexcept {
  constexpr std::string_view kScheme = "Bearer ";
  // The scheme is public: checking it first leaks nothing about the token.
  if (authorization.substr(0, kScheme.size()) != kScheme) return false;
  return constant_time_equals(token, authorization.substr(kScheme.size()));
}

}  // namespace sandbox::agent
