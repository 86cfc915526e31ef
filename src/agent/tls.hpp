// The agent's transport security: TLS identity, client certificates, and which
// combinations of authentication options it accepts.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

namespace sandbox::agent {

struct AgentOptions;

/// The first rule `options` break among those on authentication and TLS, as a message
/// naming the command-line flag ("--tls-key: requires --tls-cert"); empty when none.
/// The one place these rules live: the command line and AgentServer both ask it.
///   - --tls-cert and --tls-key go together; --client-ca needs both;
///   - --tls-reload-interval is at least one second;
///   - a token (--token-file), client certificates (--client-ca), or
///     --allow-unauthenticated: the agent never serves without deciding who may call.
std::string security_violation(const AgentOptions& options);

/// The credentials the agent listens with: cleartext without a certificate; otherwise TLS
/// whose key and certificate are re-read every `tls_reload_interval` (gRPC's file watcher;
/// a failed re-read keeps the previous ones), and with a client CA (also re-read) requiring
/// and verifying client certificates in the handshake.
/// @throws std::runtime_error naming the flag and the file when a file cannot be read, holds
///   no PEM certificate or key, or the key does not belong to the certificate.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const AgentOptions& options);

}  // namespace sandbox::agent
