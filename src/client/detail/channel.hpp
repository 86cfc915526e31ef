#pragma once
// Turns a RemoteRunnerConfig into a gRPC channel and the credentials its calls carry.

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>

#include "sandbox/runner_config.hpp"

namespace sandbox::detail {

/// What every call of a runner uses.
struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  /// Set only for a token over a cleartext channel (`allow_insecure`): attached to each call
  /// because gRPC cannot compose call credentials into insecure channel credentials.
  std::shared_ptr<grpc::CallCredentials> per_call_credentials;
};

/// Validates `config` and creates the channel (it connects lazily).
/// @throws std::system_error `errc::invalid_config` or `errc::token_requires_tls`.
Connection connect(const RemoteRunnerConfig& config);

}  // namespace sandbox::detail
