#include "common/trace_message.hpp"

namespace sandbox {

std::string trace_message(grpc::StatusCode code, std::string_view message) {
  if (code != grpc::StatusCode::INVALID_ARGUMENT && code != grpc::StatusCode::FAILED_PRECONDITION) {
    return std::string(message);
  }
  // The field is the leading identifier: `env[KEY]: ...`, `workdir: ...`, `command: ...`.
  std::size_t end = 0;
  while (end < message.size() && (message[end] == '_' || message[end] == '.' ||
                                  (message[end] >= 'a' && message[end] <= 'z'))) {
    ++end;
  }
  const std::string_view field = end == 0 ? std::string_view("request") : message.substr(0, end);
  return std::string(field) + ": refused (the message names request content, which is not traced)";
}

}  // namespace sandbox
