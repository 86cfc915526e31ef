#pragma once
/// @file
/// Configuration of a `RemoteRunner`: where the agent is, how to authenticate, defaults.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "sandbox/log.hpp"
#include "sandbox/retry.hpp"
#include "sandbox/tracing.hpp"

namespace sandbox {

/// TLS settings. Each piece comes from a file path or from PEM text in memory; the PEM text
/// wins when both are set. A client certificate and key together make the connection mTLS.
///
/// A handshake that fails (an agent certificate no CA here signed, or for another name; a
/// client certificate the agent rejects or that it requires; TLS against a cleartext agent
/// or the reverse) fails the call with `errc::tls_error`, a message saying which, and no
/// retry: none of these heals by trying again.
struct TlsConfig {
  /// CA bundle that must have signed the agent's certificate (empty: system roots).
  std::string ca_file;
  /// CA bundle as PEM text.
  std::string ca_pem;
  /// Client certificate chain for mTLS.
  std::string cert_file;
  /// Client certificate chain as PEM text.
  std::string cert_pem;
  /// Private key of the client certificate.
  std::string key_file;
  /// Private key as PEM text.
  std::string key_pem;
  /// Name to verify the agent's certificate against instead of the address's host.
  std::string server_name;
  /// Zero: the files are read once, when the runner is constructed. Positive: gRPC re-reads
  /// `ca_file`, `cert_file` and `key_file` this often, so certificates rotate without a new
  /// runner; new connections use what was read last (a failed read keeps the previous
  /// ones). Needs files, not PEM text; at least one second.
  std::chrono::seconds reload_interval{0};
};

/// Produces the bearer token of a call: asked once per attempt, on a gRPC thread (several
/// may ask at once), before the request is sent. Return the current token (cache it; this
/// runs on the call's path). An empty token or an exception fails that attempt with
/// `errc::unauthenticated` before anything is sent, and it is not retried.
using TokenProvider = std::function<std::string()>;

/// A gRPC channel argument value (integer or string), e.g. keepalive settings.
using ChannelArgumentValue = std::variant<int, std::string>;

/// HTTP/2 keepalive pings, which find a dead connection (a peer that vanished without a
/// reset, a blackholed route) while a call waits for output.
///
/// The defaults find one within about `time + timeout` (15 s) of the last bytes received,
/// and never earn a `too_many_pings` GOAWAY from a server with gRPC's default ping policy
/// (at most one ping per 5 minutes while it sends nothing, two strikes forgiven): gRPC
/// sends at most `max_pings_without_data` pings until the next data arrives. Against the
/// reference agent, which accepts a ping every second, `max_pings_without_data = 0` keeps
/// pinging through a command that prints nothing for minutes.
struct KeepaliveConfig {
  /// Idle time before a ping (`grpc.keepalive_time_ms`); zero disables keepalive.
  std::chrono::milliseconds time{10000};
  /// How long to wait for the ping's answer (`grpc.keepalive_timeout_ms`).
  std::chrono::milliseconds timeout{5000};
  /// Ping also while no call is in flight (`grpc.keepalive_permit_without_calls`). Off: a
  /// default server counts such pings as abuse.
  bool permit_without_calls = false;
  /// Pings sent while no data arrives (`grpc.http2.max_pings_without_data`); 0: no limit.
  int max_pings_without_data = 2;
};

/// Which generation of agent a runner talks to.
enum class AgentProtocol {
  /// `sandbox.v1.SandboxExecService` (Exec and Cancel): everything in docs/behavior.md.
  v1,
  /// The first deployed generation, at `/workflow.plugin.external.sandbox.SandboxExecService/Exec`
  /// (proto/compat/): the same messages, but the agent reads only the request's profile,
  /// image, command, env and workdir, and sends neither `started` nor offsets. So a command
  /// with stdin, a timeout or an exec id is refused (`errc::invalid_argument` naming the
  /// field), as is a stream with `max_output_bytes` (`exec()` still caps on its side); a
  /// failure is retried only when the request never left the client; no `Cancel` is sent
  /// (cancelling the RPC is all this agent understands); `ExecResult::info` stays empty but
  /// for the exec id the SDK chose.
  legacy,
};

/// Everything a `RemoteRunner` needs. Per-call `Command` fields override the defaults here.
struct RemoteRunnerConfig {
  /// The agent: any gRPC target (`host:port`, `unix:/path`, `dns:///name:port`). Required.
  std::string address;
  /// The agent's generation; `legacy` for the first deployed one.
  AgentProtocol protocol = AgentProtocol::v1;
  /// Bearer token sent as call credentials (`authorization: Bearer ...`). Never logged.
  std::string token;
  /// Instead of `token`, for long-lived runners whose token expires: asked for the token of
  /// every attempt. Setting both is an `errc::invalid_config`.
  TokenProvider token_provider;
  /// TLS/mTLS; unset means a cleartext channel.
  std::optional<TlsConfig> tls;
  /// Accept a token over a cleartext channel: the explicit local opt-in. The channel then
  /// connects only to a loopback address or a unix socket (gRPC's local credentials), and
  /// the runner says so once at warning level (without the token).
  bool allow_insecure = false;
  /// Requested security profile (`strict`, `standard`); the agent clamps it. Empty: the
  /// agent's default.
  std::string profile;
  /// OCI image reference, passed to the agent verbatim.
  std::string image;
  /// Environment for every command; `Command::env` entries override these.
  std::map<std::string, std::string> env;
  /// Default working directory inside the sandbox.
  std::string workdir;
  /// The sandbox this runner targets: sent as `sandbox-id` call metadata and used as the
  /// `sandbox.id` of spans until the agent reports its own in `started`.
  std::string sandbox_id;
  /// Default deadline of a call, over all its attempts; zero means none. See
  /// `Command::deadline` and `RetryPolicy::deadline`.
  std::chrono::milliseconds default_deadline{0};
  /// Added to a command's timeout to make the RPC deadline, so the agent's timeout result
  /// (exit 124, output kept) arrives before the client gives up.
  std::chrono::milliseconds timeout_grace{5000};
  /// Bound on the `Cancel` RPC sent when the caller abandons a call (its cancellation,
  /// `close()`, destroying an unfinished stream, the call's deadline). The agent keeps the
  /// command of a merely cancelled or lost Exec call running for a reattach grace; `Cancel`
  /// asks it to kill the command now. Best effort: the caller's completion never waits for
  /// it, `~RemoteRunner` does (up to this long). Zero: never send `Cancel` (only the RPC is
  /// cancelled, and the agent keeps the command until its reattach grace ends). Must not be
  /// negative.
  std::chrono::milliseconds cancel_timeout{2000};
  /// Per-stream cap on what `exec()` collects (and asks the agent to send). `stream()`
  /// asks for no cap unless `Command::max_output_bytes` is set: its consumer bounds memory.
  std::uint64_t max_output_bytes = std::uint64_t{16} << 20;
  /// How many response messages an `ExecStream` reads ahead of its consumer (at least 1).
  /// Bounds the client's memory per stream at about this many 64 KiB messages.
  std::size_t stream_read_ahead = 4;
  /// When and how calls are retried; `Command::retry` overrides it per call.
  RetryPolicy retry;
  /// Keepalive pings of the channel.
  KeepaliveConfig keepalive;
  /// Receives one CLIENT span per Exec attempt (docs/behavior.md §15), children of the span
  /// active on the thread that calls `exec()`/`stream()`, and injects each into its
  /// attempt's metadata (W3C `traceparent`). Shared, thread-safe. Null (the default):
  /// nothing is traced, at the cost of one branch per attempt.
  std::shared_ptr<Tracer> tracer;
  /// Receives the SDK's log messages; empty: warnings and errors go to stderr as
  /// `sandbox-exec: warning: ...`.
  LogSink log;
  /// Extra gRPC channel arguments, applied after the SDK's own (so they override them,
  /// except that retries stay disabled for Exec).
  std::map<std::string, ChannelArgumentValue> channel_args;
};

}  // namespace sandbox
