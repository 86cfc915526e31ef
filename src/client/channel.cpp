#include "client/detail/channel.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <system_error>

#include "client/detail/retry_fsm.hpp"
#include "client/detail/tsan_annotations.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {
namespace {

[[noreturn]] void fail(errc code, const std::string& message) {
  throw std::system_error(make_error_code(code), message);
}

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

// Sends the bearer token as call credentials. The token lives only here and in gRPC's
// metadata; DebugString never shows it.
class BearerTokenPlugin final : public grpc::MetadataCredentialsPlugin {
 public:
  explicit BearerTokenPlugin(std::string token) : header_("Bearer " + std::move(token)) {
    ordered_before(this);  // gRPC destroys it on one of its threads
  }
  ~BearerTokenPlugin() override { ordered_after(this); }
  BearerTokenPlugin(const BearerTokenPlugin&) = delete;
  BearerTokenPlugin& operator=(const BearerTokenPlugin&) = delete;
  [[nodiscard]] bool IsBlocking() const override { return false; }
  [[nodiscard]] const char* GetType() const override { return "sandbox.bearer"; }
  grpc::Status GetMetadata(grpc::string_ref /*service_url*/, grpc::string_ref /*method_name*/,
                           const grpc::AuthContext& /*channel_auth_context*/,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    metadata->emplace("authorization", header_);
    return grpc::Status::OK;
  }
  grpc::string DebugString() override { return "sandbox bearer token (redacted)"; }

 private:
  std::string header_;
};

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
  const RetryPolicy& retry = config.retry;
  const int initial = static_cast<int>(std::max<std::int64_t>(retry.initial_backoff.count(), 1));
  values["grpc.initial_reconnect_backoff_ms"] = initial;
  values["grpc.min_reconnect_backoff_ms"] = initial;
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

Connection connect(const RemoteRunnerConfig& config) {
  if (config.address.empty()) fail(errc::invalid_config, "address: must not be empty");
  if (!config.token.empty() && !config.tls && !config.allow_insecure) {
    fail(errc::token_requires_tls,
         "token: refusing to send a bearer token over an insecure channel without TLS; "
         "configure tls, or set allow_insecure for a loopback or unix-socket agent");
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
    const TlsConfig& tls = *config.tls;
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = read_pem(tls.ca_pem, tls.ca_file, "ca_file");
    options.pem_cert_chain = read_pem(tls.cert_pem, tls.cert_file, "cert_file");
    options.pem_private_key = read_pem(tls.key_pem, tls.key_file, "key_file");
    if (options.pem_cert_chain.empty() != options.pem_private_key.empty()) {
      fail(errc::invalid_config, "tls: a client certificate and its key go together");
    }
    channel_credentials = grpc::SslCredentials(options);
    if (!config.token.empty()) {
      channel_credentials = grpc::CompositeChannelCredentials(
          channel_credentials,
          grpc::MetadataCredentialsFromPlugin(std::make_unique<BearerTokenPlugin>(config.token)));
    }
  } else {
    channel_credentials = grpc::InsecureChannelCredentials();
    if (!config.token.empty()) {
      // The explicit local opt-in: gRPC refuses per-call tokens on an insecure channel
      // unless the plugin declares that it needs no transport security.
      connection.per_call_credentials = grpc::experimental::MetadataCredentialsFromPlugin(
          std::make_unique<BearerTokenPlugin>(config.token), GRPC_SECURITY_NONE);
    }
  }
  connection.channel =
      grpc::CreateCustomChannel(config.address, channel_credentials, channel_arguments(config));
  if (!connection.channel) fail(errc::invalid_config, "address: gRPC could not create a channel");
  return connection;
}

}  // namespace sandbox::detail
