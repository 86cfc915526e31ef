#include "sandbox/error.hpp"

#include <asio/error.hpp>
#include <string>

#include "client/detail/status_mapping.hpp"

namespace sandbox {
namespace {

std::string_view name_of(errc e) noexcept {
  switch (e) {
    case errc::cancelled:
      return "cancelled";
    case errc::unknown:
      return "unknown";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::deadline_exceeded:
      return "deadline_exceeded";
    case errc::not_found:
      return "not_found";
    case errc::already_exists:
      return "already_exists";
    case errc::permission_denied:
      return "permission_denied";
    case errc::resource_exhausted:
      return "resource_exhausted";
    case errc::failed_precondition:
      return "failed_precondition";
    case errc::aborted:
      return "aborted";
    case errc::out_of_range:
      return "out_of_range";
    case errc::unimplemented:
      return "unimplemented";
    case errc::internal:
      return "internal";
    case errc::unavailable:
      return "unavailable";
    case errc::data_loss:
      return "data_loss";
    case errc::unauthenticated:
      return "unauthenticated";
    case errc::missing_exit_code:
      return "missing_exit_code";
    case errc::protocol_error:
      return "protocol_error";
    case errc::runner_closed:
      return "runner_closed";
    case errc::invalid_config:
      return "invalid_config";
    case errc::token_requires_tls:
      return "token_requires_tls";
  }
  return {};
}

std::string_view description_of(errc e) noexcept {
  switch (e) {
    case errc::cancelled:
      return "the agent cancelled the call";
    case errc::unknown:
      return "unknown error";
    case errc::invalid_argument:
      return "invalid argument";
    case errc::deadline_exceeded:
      return "deadline exceeded";
    case errc::not_found:
      return "not found";
    case errc::already_exists:
      return "already exists";
    case errc::permission_denied:
      return "permission denied";
    case errc::resource_exhausted:
      return "resource exhausted";
    case errc::failed_precondition:
      return "failed precondition";
    case errc::aborted:
      return "aborted";
    case errc::out_of_range:
      return "out of range";
    case errc::unimplemented:
      return "not implemented by the agent";
    case errc::internal:
      return "internal error";
    case errc::unavailable:
      return "agent unavailable";
    case errc::data_loss:
      return "data loss";
    case errc::unauthenticated:
      return "unauthenticated";
    case errc::missing_exit_code:
      return "the stream ended without an exit_code";
    case errc::protocol_error:
      return "the agent broke the stream protocol";
    case errc::runner_closed:
      return "the runner was closed";
    case errc::invalid_config:
      return "invalid runner configuration";
    case errc::token_requires_tls:
      return "a token needs TLS (insecure channel refused)";
  }
  return {};
}

class Category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sandbox"; }
  [[nodiscard]] std::string message(int value) const override {
    auto text = description_of(static_cast<errc>(value));
    return text.empty() ? "sandbox error " + std::to_string(value) : std::string(text);
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
    auto name = name_of(static_cast<errc>(ec.value()));
    if (!name.empty()) return name;
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

}  // namespace detail
}  // namespace sandbox
