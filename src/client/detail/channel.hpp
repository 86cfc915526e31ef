#pragma once
// Turns a RemoteRunnerConfig into a gRPC channel and the credentials its calls carry.

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>

#include "sandbox/runner_config.hpp"

namespace sandbox::detail {

/// What every call of a runner uses.
struct Connection {
  /// Carries the credentials, the token's included, to every call.
  std::shared_ptr<grpc::Channel> channel;
};

/// Validates `config` and creates the channel (it connects lazily). Warns once through
/// `config.log` when a token goes without TLS (`allow_insecure`).
/// @throws std::system_error `errc::invalid_config` or `errc::token_requires_tls`.
Connection connect(const RemoteRunnerConfig& config);

}  // namespace sandbox::detail
