#include "common/trace_message.hpp"

namespace sandbox {
namespace {

// grpc::StatusCode's numbers (the SDK's errc uses the same), without including gRPC here.
constexpr int kInvalidArgument = 3;
constexpr int kFailedPrecondition = 9;

}  // namespace

std::string trace_message(int code, std::string_view message) {
  if (code != kInvalidArgument && code != kFailedPrecondition) return std::string(message);
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
