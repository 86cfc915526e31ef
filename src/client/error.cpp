#include "sandbox/error.hpp"

#include <asio/error.hpp>
#include <initializer_list>
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
    {errc::tls_error, "tls_error", "TLS failure"},
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

namespace {

bool contains(std::string_view text, std::string_view marker) noexcept {
  // OpenSSL 3 spells its reasons in lower case ("wrong version number"), BoringSSL in upper
  // case with underscores ("WRONG_VERSION_NUMBER"): compared ignoring both.
  auto fold = [](char c) {
    if (c == '_') return ' ';
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  };
  if (marker.size() > text.size()) return false;
  for (std::size_t start = 0; start + marker.size() <= text.size(); ++start) {
    std::size_t i = 0;
    while (i < marker.size() && fold(text[start + i]) == fold(marker[i])) ++i;
    if (i == marker.size()) return true;
  }
  return false;
}

// What a connection failure gRPC reports as UNAVAILABLE means, when it is TLS's.
struct TlsFailure {
  std::initializer_list<std::string_view> markers;
  std::string_view meaning;
  Probe probe = Probe::none;
};

constexpr std::string_view kTlsPrefix = "TLS: ";
const TlsFailure tls_failures[] = {
    {{"certificate verify failed"},
     "the agent's certificate is not trusted: not signed by a CA in tls.ca_file (or the "
     "system roots), or expired",
     Probe::untrusted_agent},
    {{"is not in peer certificate", "Hostname Verification Check failed",
      "call host does not match SSL server name"},
     "the agent's certificate is for another name than the address (tls.server_name "
     "overrides the name checked)"},
    {{"wrong version number"},
     "the agent does not speak TLS (it serves cleartext): drop tls, or use the agent's TLS "
     "address"},
    {{"handshake failed"}, "the TLS handshake with the agent failed"},
};

}  // namespace

StatusMeaning meaning_of_status(int grpc_code, std::string_view grpc_message) {
  constexpr int unavailable = 14;
  StatusMeaning meaning{error_from_grpc_code(grpc_code),
                        grpc_message.empty() ? "gRPC status " + std::to_string(grpc_code)
                                             : std::string(grpc_message)};
  if (grpc_code != unavailable) return meaning;
  if (const auto at = grpc_message.find(kTokenProviderFailure);
      at != std::string_view::npos &&
      contains(grpc_message, "Getting metadata from plugin failed")) {
    meaning.error = errc::unauthenticated;
    meaning.message = std::string(grpc_message.substr(at));
    return meaning;
  }
  for (const TlsFailure& failure : tls_failures) {
    for (std::string_view marker : failure.markers) {
      if (!contains(grpc_message, marker)) continue;
      meaning.error = errc::tls_error;
      meaning.message = std::string(kTlsPrefix)
                            .append(failure.meaning)
                            .append(" (")
                            .append(grpc_message)
                            .append(")");
      meaning.probe = failure.probe;
      return meaning;
    }
  }
  if (contains(grpc_message, "failed to connect to all addresses") &&
      contains(grpc_message, "Socket closed")) {
    meaning.probe = Probe::closed_connection;
  }
  return meaning;
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
