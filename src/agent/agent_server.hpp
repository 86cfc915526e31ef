// The reference agent as a library: a gRPC server for SandboxExecService.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "agent/confinement.hpp"
#include "sandbox/tracing.hpp"

namespace sandbox::agent {

/// How an AgentServer listens, authenticates and runs commands.
struct AgentOptions {
  std::string listen;  // "host:port" (port 0 = ephemeral) or "unix:PATH"
  std::string token;   // bearer token; empty = none
  /// Serve without a token or client certificates (tls.hpp: security_violation).
  bool allow_unauthenticated = false;
  /// TLS: the certificate chain and its key (PEM files, both or neither); empty = cleartext.
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  /// CA bundle (PEM) client certificates must chain to; set = mTLS, every client presents
  /// a certificate. Needs tls_cert_file.
  std::filesystem::path client_ca_file;
  /// How often the three files above are re-read, so certificates rotate without a
  /// restart. At least one second.
  std::chrono::milliseconds tls_reload_interval{std::chrono::seconds(60)};
  std::filesystem::path workspace;             // root and default workdir; empty = current dir
  std::string sandbox_id;                      // reported in Started; empty = "local-<hostname>"
  std::chrono::milliseconds kill_grace{2000};  // TERM -> KILL delay
  std::size_t max_chunk_bytes = 64 * 1024;     // coalescing limit per message
  /// A running exec whose call was cancelled or lost (with a client-chosen exec_id) is
  /// killed when no call has reattached within this; 0 kills at once.
  std::chrono::milliseconds reattach_grace{30000};
  /// An ended exec (with a client-chosen exec_id) is remembered for reattach this long after
  /// its last call ended; also how long a Cancel of an unknown id bars that id.
  std::chrono::milliseconds resume_retention{60000};
  /// Output already sent that each exec keeps for resume (both streams together).
  std::uint64_t resume_buffer_bytes = std::uint64_t{8} << 20;
  /// The agent's per-stream output cap: a request's `max_output_bytes` is clamped to it, and
  /// 0 there means this. Bytes past it are drained and counted, never sent. Positive.
  std::uint64_t max_output_bytes = std::uint64_t{8} << 30;
  /// Execs whose command runs at once; one more new exec is RESOURCE_EXHAUSTED (reattaches
  /// are not new execs). Positive.
  std::size_t max_concurrent = 64;
  /// A request's `timeout_ms` is clamped to this, and 0 there means this: no command runs
  /// longer. Positive, at most 366 days.
  std::chrono::milliseconds max_timeout{std::chrono::hours(1)};
  /// The secret store: `secret://NAME` in an env value is the file NAME below this directory
  /// (docs/behavior.md §11), and its value is redacted from that exec's output. Empty = no
  /// store: every reference is refused. Must be an existing directory.
  std::filesystem::path secrets_dir;
  /// How commands are confined: bubblewrap (the default; an exec it cannot confine as asked
  /// is refused, never run with less), or none (development: unconfined, said at startup
  /// and in every `started`).
  SandboxKind sandbox = SandboxKind::bubblewrap;
  /// The most permissive profile granted; requests are clamped to it (confinement.hpp).
  Profile max_profile = Profile::standard;
  /// The bubblewrap executable (searched on PATH unless it contains a '/').
  std::string bwrap_path = "bwrap";
  /// Receives the spans of every Exec call (docs/behavior.md §15): a SERVER span continuing
  /// the caller's trace and its `sandbox.setup` and `sandbox.process` children. Null: none.
  std::shared_ptr<Tracer> tracer;
};

/// A running agent: serves SandboxExecService (Exec, Cancel) on `options.listen`.
///
/// An exec lives apart from its calls (see execution.hpp): a lost call leaves it running for
/// `reattach_grace`, a retry with the same exec_id reattaches, Cancel kills it. Commands run
/// confined as `sandbox` and the clamped profile say (confinement.hpp), each in its own process
/// group, with a clean environment, in the workspace. Process I/O runs on two internal Asio
/// threads; gRPC runs its own. Ignores SIGPIPE for the whole process (writes to a closed pipe must
/// fail with EPIPE, not kill the agent); children get default dispositions. Keeps the gRPC library
/// initialised until the process exits (see agent_server.cpp: grpc 1.51's final shutdown can block
/// for 10 s).
///
/// Thread-safety: every member function may be called from any thread.
class AgentServer {
 public:
  /// Binds and starts serving.
  /// @throws std::runtime_error with a message naming the problem: an authentication or
  ///   TLS rule broken (tls.hpp: security_violation), an unreadable or mismatched TLS
  ///   file, a malformed or unbindable `listen`, a workspace that is
  ///   not a directory, a token that is not printable ASCII, a limit out of range (the
  ///   message names the option: "max_concurrent: must be positive").
  explicit AgentServer(AgentOptions options);

  /// shutdown(), then releases everything.
  ~AgentServer();

  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  /// The bound address with the real port: "127.0.0.1:45123", or "unix:/tmp/x/agent.sock"
  /// as given. Usable as a gRPC target.
  std::string address() const;

  /// Stops accepting calls, cancels running execs (their process groups get SIGTERM, then
  /// SIGKILL after `kill_grace`), waits until every call has finished and every child has
  /// been reaped. Idempotent: concurrent and later calls wait for the first to complete.
  /// Must not be called from a gRPC reaction.
  void shutdown();

  /// Blocks until shutdown() has completed.
  void wait();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandbox::agent
