#pragma once
// Finds out why an agent closed a new connection without a word.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "client/detail/status_mapping.hpp"
#include "sandbox/runner_config.hpp"

namespace sandbox::detail {

/// What `probe` finds out about the agent at gRPC target `target`, for a runner with TLS
/// settings `tls`: a TLS reason for the failure ("the agent's certificate expired on ...",
/// without the "TLS: " prefix), or empty when it is not a TLS matter or unsure.
///
/// `Probe::closed_connection`: gRPC 1.51 reports "Socket closed" alike for an agent that
/// is down behind a proxy, a TLS agent meeting a cleartext client (it closes on the HTTP/2
/// preface), and an mTLS agent rejecting the client's certificate (it closes without a TLS
/// alert). Without `tls`, a TLS ClientHello answered in TLS means the agent speaks TLS;
/// with `tls`, a handshake presenting the runner's own certificate (verifying the agent as
/// the runner does) that completes and is then closed instead of answered in HTTP/2 means
/// the certificate was rejected, and the certificate says whether it expired.
/// `Probe::untrusted_agent`: gRPC says only "certificate verify failed"; a handshake
/// verifying the agent's certificate as the runner does says why (unknown CA, expired...).
///
/// Blocking: one connection, bounded by `timeout`. Understands `host:port`,
/// `dns:[//authority/]host:port`, `ipv4:`/`ipv6:` with one address, and `unix:path`.
std::string explain_failure(Probe probe, std::string_view target,
                            const std::optional<TlsConfig>& tls,
                            std::chrono::milliseconds timeout) noexcept;

}  // namespace sandbox::detail
