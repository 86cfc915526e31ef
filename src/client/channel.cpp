#include "client/detail/channel.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/support/channel_arguments.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <system_error>

#include "client/detail/log.hpp"
#include "client/detail/retry_fsm.hpp"
#include "client/detail/status_mapping.hpp"
#include "client/detail/tsan_annotations.hpp"
#include "common/utf8.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {
namespace {

[[noreturn]] void fail(errc code, const std::string& message) {
  throw std::system_error(make_error_code(code), message);
}

bool is_header_safe(std::string_view token) {
  // The token travels in an HTTP/2 header: visible ASCII only.
  return std::all_of(token.begin(), token.end(),
                     [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

// Sends the bearer token as call credentials: a fixed one, or the provider's of the moment.
// The token lives only here and in gRPC's metadata; DebugString never shows it.
class BearerTokenPlugin final : public grpc::MetadataCredentialsPlugin {
 public:
  explicit BearerTokenPlugin(std::string token) : header_("Bearer " + std::move(token)) {
    ordered_before(this);  // gRPC destroys it on one of its threads
  }
  explicit BearerTokenPlugin(TokenProvider provider) : provider_(std::move(provider)) {
    ordered_before(this);
  }
  ~BearerTokenPlugin() override { ordered_after(this); }
  BearerTokenPlugin(const BearerTokenPlugin&) = delete;
  BearerTokenPlugin& operator=(const BearerTokenPlugin&) = delete;
  // A provider may take a moment (a cache miss, a file): gRPC then asks it on a thread of
  // its own instead of the one driving connections.
  [[nodiscard]] bool IsBlocking() const override { return provider_ != nullptr; }
  [[nodiscard]] const char* GetType() const override { return "sandbox.bearer"; }
  grpc::Status GetMetadata(grpc::string_ref /*service_url*/, grpc::string_ref /*method_name*/,
                           const grpc::AuthContext& /*channel_auth_context*/,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    if (!provider_) {
      metadata->emplace("authorization", header_);
      return grpc::Status::OK;
    }
    std::string token;
    try {
      token = provider_();
    } catch (const std::exception& error) {
      return refused(std::string("threw: ") + error.what());
    } catch (...) {
      return refused("threw");
    }
    if (token.empty()) return refused("returned an empty token");
    if (!is_header_safe(token)) return refused("returned a token that is not printable ASCII");
    metadata->emplace("authorization", "Bearer " + token);
    return grpc::Status::OK;
  }
  grpc::string DebugString() override { return "sandbox bearer token (redacted)"; }

 private:
  static grpc::Status refused(const std::string& why) {
    return {grpc::StatusCode::UNAUTHENTICATED, std::string(kTokenProviderFailure) + why};
  }

  std::string header_;
  TokenProvider provider_;
};

std::unique_ptr<BearerTokenPlugin> token_plugin(const RemoteRunnerConfig& config) {
  if (config.token_provider) return std::make_unique<BearerTokenPlugin>(config.token_provider);
  return std::make_unique<BearerTokenPlugin>(config.token);
}

bool is_unix_socket(const std::string& address) {
  return address.starts_with("unix:") || address.starts_with("unix-abstract:");
}

// True for an IP literal target (`10.0.0.5:50051`, `ipv4:...`, `[2001:db8::1]:443`) that is
// not a loopback address. Names are left to gRPC's local credentials, which refuse a
// connection whose peer is not local.
bool is_remote_ip_literal(std::string_view target) {
  for (std::string_view scheme : {"dns:///", "ipv4:", "ipv6:"}) {
    if (target.starts_with(scheme)) target.remove_prefix(scheme.size());
  }
  std::string_view host = target.substr(0, target.rfind(':'));
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  const std::string text(host);
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) != 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return !IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

std::shared_ptr<grpc::ChannelCredentials> tls_credentials(const TlsConfig& tls) {
  if (tls.reload_interval.count() == 0) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = read_pem(tls.ca_pem, tls.ca_file, "ca_file");
    options.pem_cert_chain = read_pem(tls.cert_pem, tls.cert_file, "cert_file");
    options.pem_private_key = read_pem(tls.key_pem, tls.key_file, "key_file");
    if (options.pem_cert_chain.empty() != options.pem_private_key.empty()) {
      fail(errc::invalid_config, "tls: a client certificate and its key go together");
    }
    return grpc::SslCredentials(options);
  }
  if (!tls.ca_pem.empty() || !tls.cert_pem.empty() || !tls.key_pem.empty()) {
    fail(errc::invalid_config,
         "tls.reload_interval: reloading re-reads files; use ca_file, cert_file and key_file, "
         "not PEM text");
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    fail(errc::invalid_config, "tls: a client certificate and its key go together");
  }
  // Unreadable now is a configuration error, not a handshake failure on every call.
  for (const auto& [path, field] :
       {std::pair{&tls.ca_file, "ca_file"}, std::pair{&tls.cert_file, "cert_file"},
        std::pair{&tls.key_file, "key_file"}}) {
    if (!path->empty()) read_pem({}, *path, field);
  }
  using grpc::experimental::FileWatcherCertificateProvider;
  const auto interval = static_cast<unsigned int>(tls.reload_interval.count());
  std::shared_ptr<FileWatcherCertificateProvider> provider;
  if (tls.cert_file.empty()) {
    provider = std::make_shared<FileWatcherCertificateProvider>(tls.ca_file, interval);
  } else if (tls.ca_file.empty()) {
    provider =
        std::make_shared<FileWatcherCertificateProvider>(tls.key_file, tls.cert_file, interval);
  } else {
    provider = std::make_shared<FileWatcherCertificateProvider>(tls.key_file, tls.cert_file,
                                                                tls.ca_file, interval);
  }
  grpc::experimental::TlsChannelCredentialsOptions options;
  // Without a CA file gRPC verifies against the system's roots, as SslCredentials does.
  if (!tls.ca_file.empty()) options.watch_root_certs();
  if (!tls.cert_file.empty()) options.watch_identity_key_cert_pairs();
  options.set_certificate_provider(std::move(provider));
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

grpc::ChannelArguments channel_arguments(const RemoteRunnerConfig& config) {
  // One value per key, decided here: gRPC reads some arguments by the first occurrence of a
  // key and others by the last, so a key set twice means whatever the reader picks.
  std::map<std::string, ChannelArgumentValue> values;
  // Loopback measurements (design.md §6): a 256 KiB read chunk roughly doubles the rate of
  // small messages.
  values["grpc.experimental.tcp_read_chunk_size"] = 256 * 1024;
  values["grpc.max_receive_message_length"] = 16 * 1024 * 1024;
  const KeepaliveConfig& keepalive = config.keepalive;
  if (keepalive.time.count() > 0) {
    values["grpc.keepalive_time_ms"] = static_cast<int>(keepalive.time.count());
    values["grpc.keepalive_timeout_ms"] = static_cast<int>(keepalive.timeout.count());
    values["grpc.keepalive_permit_without_calls"] = keepalive.permit_without_calls ? 1 : 0;
    values["grpc.http2.max_pings_without_data"] = keepalive.max_pings_without_data;
  }
  // While the agent refuses connections, a call fails at once during the channel's
  // reconnect backoff (gRPC's default: 1 s, growing to 120 s) without trying to connect.
  // Aligned with the SDK's own backoff, each retry finds a fresh connection attempt.
  // Not grpc.min_reconnect_backoff_ms: gRPC 1.51 takes it as the connection attempt's
  // timeout (default 20 s), and at 100 ms a TLS handshake on a loaded machine or a distant
  // network fails ("handshaker shutdown") before it can finish.
  const RetryPolicy& retry = config.retry;
  const int initial = static_cast<int>(std::max<std::int64_t>(retry.initial_backoff.count(), 1));
  values["grpc.initial_reconnect_backoff_ms"] = initial;
  values["grpc.max_reconnect_backoff_ms"] =
      static_cast<int>(std::max<std::int64_t>(retry.max_backoff.count(), initial));
  if (config.tls && !config.tls->server_name.empty()) {
    values["grpc.ssl_target_name_override"] = config.tls->server_name;
  }
  for (const auto& [key, value] : config.channel_args) values[key] = value;
  // Exec must never be re-sent behind the SDK's back (a retry could run a command twice):
  // gRPC's retries (transparent ones included) are off, and no service config from the
  // resolver (DNS TXT records) is read. Last, so no user argument can undo them.
  values["grpc.enable_retries"] = 0;
  values["grpc.service_config_disable_resolution"] = 1;

  grpc::ChannelArguments args;
  for (const auto& [key, value] : values) {
    if (const int* number = std::get_if<int>(&value)) {
      args.SetInt(key, *number);
    } else {
      args.SetString(key, std::get<std::string>(value));
    }
  }
  return args;
}

}  // namespace

std::string read_pem(const std::string& pem, const std::string& path, const char* field) {
  if (!pem.empty() || path.empty()) return pem;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fail(errc::invalid_config,
         std::string("tls.") + field + ": cannot read '" + path + "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Connection connect(const RemoteRunnerConfig& config) {
  if (config.address.empty()) fail(errc::invalid_config, "address: must not be empty");
  if (!config.token.empty() && config.token_provider) {
    fail(errc::invalid_config, "token, token_provider: set one of them, not both");
  }
  if (!is_header_safe(config.token)) {
    fail(errc::invalid_config, "token: must be printable ASCII without spaces");
  }
  const bool has_token = !config.token.empty() || config.token_provider;
  if (config.tls && config.tls->reload_interval.count() < 0) {
    fail(errc::invalid_config, "tls.reload_interval: must not be negative");
  }
  if (has_token && !config.tls && !config.allow_insecure) {
    fail(errc::token_requires_tls,
         "token: refusing to send a bearer token over an insecure channel without TLS; "
         "configure tls, or set allow_insecure for a loopback or unix-socket agent");
  }
  if (has_token && !config.tls && is_remote_ip_literal(config.address)) {
    fail(errc::token_requires_tls,
         "allow_insecure: '" + config.address +
             "' is neither a loopback address nor a unix socket; a token goes to another "
             "host only over TLS");
  }
  for (const auto& [field, text] :
       {std::pair{"profile", &config.profile}, std::pair{"image", &config.image},
        std::pair{"workdir", &config.workdir}}) {
    if (!is_utf8(*text)) fail(errc::invalid_config, std::string(field) + ": must be UTF-8");
  }
  for (const auto& [key, value] : config.env) {
    // Neither is echoed: a value may be a secret, and bytes that are not UTF-8 do not print.
    if (!is_utf8(key) || !is_utf8(value)) {
      fail(errc::invalid_config, "env: names and values must be UTF-8 (protobuf strings)");
    }
  }
  if (config.stream_read_ahead == 0)
    fail(errc::invalid_config, "stream_read_ahead: must be at least 1");
  if (config.cancel_timeout.count() < 0)
    fail(errc::invalid_config, "cancel_timeout: must not be negative");
  if (auto violation = retry_policy_violation(config.retry); !violation.empty()) {
    fail(errc::invalid_config, violation);
  }
  constexpr std::int64_t int_max = std::numeric_limits<int>::max();
  const KeepaliveConfig& keepalive = config.keepalive;
  if (keepalive.time.count() < 0 || keepalive.time.count() > int_max)
    fail(errc::invalid_config, "keepalive.time: must be in [0, INT_MAX] ms");
  if (keepalive.time.count() > 0 &&
      (keepalive.timeout.count() <= 0 || keepalive.timeout.count() > int_max))
    fail(errc::invalid_config, "keepalive.timeout: must be positive (and at most INT_MAX ms)");
  if (keepalive.max_pings_without_data < 0)
    fail(errc::invalid_config, "keepalive.max_pings_without_data: must not be negative");
  if (config.retry.max_backoff.count() > int_max)
    fail(errc::invalid_config, "retry.max_backoff: at most INT_MAX ms");

  Connection connection;
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  if (config.tls) {
    channel_credentials = tls_credentials(*config.tls);
    if (has_token) {
      channel_credentials = grpc::CompositeChannelCredentials(
          channel_credentials, grpc::MetadataCredentialsFromPlugin(token_plugin(config)));
    }
  } else if (has_token) {
    // The explicit local opt-in: gRPC's local credentials connect only to a loopback
    // address or a unix socket, and call credentials that declare they need no transport
    // security may ride on them.
    channel_credentials = grpc::CompositeChannelCredentials(
        grpc::experimental::LocalCredentials(is_unix_socket(config.address) ? UDS : LOCAL_TCP),
        grpc::experimental::MetadataCredentialsFromPlugin(token_plugin(config),
                                                          GRPC_SECURITY_NONE));
    log(config.log, LogLevel::warning,
        "allow_insecure: the bearer token is sent without TLS to '" + config.address +
            "'; the channel connects only to a loopback address or a unix socket");
  } else {
    channel_credentials = grpc::InsecureChannelCredentials();
  }
  connection.channel =
      grpc::CreateCustomChannel(config.address, channel_credentials, channel_arguments(config));
  if (!connection.channel) fail(errc::invalid_config, "address: gRPC could not create a channel");
  return connection;
}

}  // namespace sandbox::detail
