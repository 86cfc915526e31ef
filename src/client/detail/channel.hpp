#pragma once
// Turns a RemoteRunnerConfig into a gRPC channel and the credentials its calls carry.

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "sandbox/runner_config.hpp"

namespace sandbox::detail {

/// What every call of a runner uses.
struct Connection {
  /// Carries the credentials, the token's included, to every call.
  std::shared_ptr<grpc::Channel> channel;
};

/// A TLS setting's PEM text: `pem` when set, else the contents of `path` (empty when both
/// are). The probe (tls_probe.hpp) reads the files the same way, as they are now.
/// @throws std::system_error `errc::invalid_config` naming `tls.<field>` when the file
///   cannot be read.
std::string read_pem(const std::string& pem, const std::string& path, const char* field);

/// Validates `config` and creates the channel (it connects lazily). Warns once through
/// `config.log` when a token goes without TLS (`allow_insecure`).
/// @throws std::system_error `errc::invalid_config` or `errc::token_requires_tls`.
Connection connect(const RemoteRunnerConfig& config);

}  // namespace sandbox::detail
