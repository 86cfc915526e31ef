#include "sandbox/error.hpp"

#include <asio/error.hpp>
#include <string>

#include "client/detail/status_mapping.hpp"

namespace sandbox {
namespace {

struct Entry {
  errc code;
  std::string_view name;         // the enumerator, for logs and sandbox-run
  std::string_view description;  // error_code::message()
};

constexpr Entry entries[] = {
    {errc::cancelled, "cancelled", "the agent cancelled the call"},
    {errc::unknown, "unknown", "unknown error"},
    {errc::invalid_argument, "invalid_argument", "invalid argument"},
    {errc::deadline_exceeded, "deadline_exceeded", "deadline exceeded"},
    {errc::not_found, "not_found", "not found"},
    {errc::already_exists, "already_exists", "already exists"},
    {errc::permission_denied, "permission_denied", "permission denied"},
    {errc::resource_exhausted, "resource_exhausted", "resource exhausted"},
    {errc::failed_precondition, "failed_precondition", "failed precondition"},
    {errc::aborted, "aborted", "aborted"},
    {errc::out_of_range, "out_of_range", "out of range"},
    {errc::unimplemented, "unimplemented", "not implemented by the agent"},
    {errc::internal, "internal", "internal error"},
    {errc::unavailable, "unavailable", "agent unavailable"},
    {errc::data_loss, "data_loss", "data loss"},
    {errc::unauthenticated, "unauthenticated", "unauthenticated"},
    {errc::missing_exit_code, "missing_exit_code", "the stream ended without an exit_code"},
    {errc::protocol_error, "protocol_error", "the agent broke the stream protocol"},
    {errc::runner_closed, "runner_closed", "the runner was closed"},
    {errc::invalid_config, "invalid_config", "invalid runner configuration"},
    {errc::token_requires_tls, "token_requires_tls",
     "a token needs TLS (insecure channel refused)"},
};

const Entry* find(int value) noexcept {
  for (const auto& entry : entries) {
    if (static_cast<int>(entry.code) == value) return &entry;
  }
  return nullptr;
}

class Category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sandbox"; }
  [[nodiscard]] std::string message(int value) const override {
    const Entry* entry = find(value);
    return entry ? std::string(entry->description) : "sandbox error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

std::string_view error_name(std::error_code ec) noexcept {
  if (!ec) return "ok";
  if (ec.category() == error_category()) {
    if (const Entry* entry = find(ec.value())) return entry->name;
  }
  if (ec == asio::error::operation_aborted) return "cancelled";
  // Not a sandbox code: a stable "category:value" without allocating.
  return ec.category().name();
}

namespace detail {

std::error_code error_from_grpc_code(int grpc_code) noexcept {
  // gRPC status codes 1..16 share their numbers with errc (see error.hpp).
  if (grpc_code == 0) return {};
  if (grpc_code >= 1 && grpc_code <= 16) return make_error_code(static_cast<errc>(grpc_code));
  return make_error_code(errc::unknown);
}

bool failed_before_sending(int grpc_code, std::string_view message, bool answered) noexcept {
  constexpr int unavailable = 14;
  if (answered || grpc_code != unavailable) return false;
  // The client channel's own words when its load-balancing pick fails (every address
  // failed to connect, or resolving the name failed): the call never reached a transport.
  // A broken connection reads otherwise ("Socket closed", "Connection reset", GOAWAY...).
  for (std::string_view marker : {"failed to connect to all addresses", "DNS resolution failed",
                                  "empty address list", "name resolution"}) {
    if (message.find(marker) != std::string_view::npos) return true;
  }
  return false;
}

}  // namespace detail
}  // namespace sandbox
