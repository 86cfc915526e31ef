#include "client/detail/channel.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

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
  explicit BearerTokenPlugin(std::string token) : header_("Bearer " + std::move(token)) {}
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

void apply(grpc::ChannelArguments& args, const std::string& key,
           const ChannelArgumentValue& value) {
  if (const int* number = std::get_if<int>(&value)) {
    args.SetInt(key, *number);
  } else {
    args.SetString(key, std::get<std::string>(value));
  }
}

grpc::ChannelArguments channel_arguments(const RemoteRunnerConfig& config) {
  grpc::ChannelArguments args;
  // Loopback measurements (design.md §6): a 256 KiB read chunk roughly doubles the rate of
  // small messages.
  args.SetInt("grpc.experimental.tcp_read_chunk_size", 256 * 1024);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  if (config.tls && !config.tls->server_name.empty()) {
    args.SetSslTargetNameOverride(config.tls->server_name);
  }
  for (const auto& [key, value] : config.channel_args) apply(args, key, value);
  // Exec must never be re-sent behind the SDK's back (a retry could run a command twice):
  // gRPC's retries are off, and no service config (e.g. from DNS TXT records) may turn
  // them on. These are applied last so no user argument can undo them.
  args.SetInt("grpc.enable_retries", 0);
  args.SetInt("grpc.service_config_disable_resolution", 1);
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
