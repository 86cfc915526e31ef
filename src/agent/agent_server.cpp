#include "agent/agent_server.hpp"

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "agent/auth.hpp"
#include "agent/exec_registry.hpp"
#include "agent/exec_session.hpp"
#include "agent/execution.hpp"
#include "agent/log.hpp"
#include "agent/request_validation.hpp"
#include "agent/secret_store.hpp"
#include "agent/tls.hpp"
#include "common/uuid.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;

// Process I/O is light (pipe reads, timers); two threads keep one slow handler from
// delaying every other exec, on the two cores this agent is sized for.
constexpr int kIoThreads = 2;
constexpr const char* kServiceName = "sandbox.v1.SandboxExecService";
// Far beyond any sane command, and far from overflowing the steady clock's arithmetic.
constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(366 * 24);

// The reactor of a call refused before anything ran.
class RefusedCall final : public grpc::ServerWriteReactor<v1::ExecResponse> {
 public:
  explicit RefusedCall(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

bool is_printable_ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// How callers are authenticated, for the startup log.
std::string auth_description(const AgentOptions& options) {
  std::string auth;
  if (!options.client_ca_file.empty()) auth = "client-certificate";
  if (!options.token.empty()) auth += auth.empty() ? "bearer" : "+bearer";
  return auth.empty() ? "none" : auth;
}

std::string default_sandbox_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "local";
  return std::string("local-") + host;
}

// "host:port" -> "host"; throws unless the port is a number.
std::string tcp_host(const std::string& listen) {
  const std::size_t colon = listen.rfind(':');
  const bool has_port = colon != std::string::npos && colon + 1 < listen.size() &&
                        listen.find_first_not_of("0123456789", colon + 1) == std::string::npos;
  if (!has_port) {
    throw std::runtime_error("listen: expected HOST:PORT or unix:PATH, got '" + listen + "'");
  }
  return listen.substr(0, colon);
}

}  // namespace

struct AgentServer::Impl final : v1::SandboxExecService::CallbackService {
  explicit Impl(AgentOptions opts)
      : options(std::move(opts)),
        work(io.get_executor()),
        registry(options.resume_retention, options.max_concurrent) {}

  grpc::ServerWriteReactor<v1::ExecResponse>* Exec(grpc::CallbackServerContext* context,
                                                   const v1::ExecRequest* request) override {
    ExecTrace trace(options.tracer.get(), *context, *request, settings->sandbox_id);
    grpc::Status status = authorize(*context);
    LaunchSpec spec;
    if (status.ok()) {
      status = validate_exec_request(*request, workspace, spec, secrets ? &*secrets : nullptr,
                                     &*confinement);
    }
    if (!status.ok()) return refuse(*context, std::move(status), trace);

    // Only an id the client chose can be reattached: nobody else knows an assigned one.
    const bool reattachable = !request->exec_id().empty();
    const std::string exec_id = reattachable ? request->exec_id() : random_uuid();
    trace.exec_id(exec_id);
    const std::string fingerprint = reattachable ? request_fingerprint(*request) : std::string();
    const std::array<std::uint64_t, 2> offsets{request->resume().stdout_offset(),
                                               request->resume().stderr_offset()};
    ExecSession* reactor = nullptr;
    status = registry.admit(
        {exec_id, fingerprint, offsets[0] != 0 || offsets[1] != 0, request->attach_only()},
        [&] {
          return std::make_shared<Execution>(*settings, registry, exec_id, reattachable,
                                             fingerprint, std::move(spec), *request);
        },
        [&](const std::shared_ptr<Execution>& execution, bool created) {
          auto session = std::make_shared<ExecSession>(execution);
          session->trace = std::move(trace);
          session->own();  // gRPC's reference, until OnDone
          reactor = session.get();
          if (created) {
            execution->start(std::move(session));
          } else {
            execution->attach(std::move(session), offsets);
          }
        });
    if (!status.ok()) return refuse(*context, std::move(status), trace);
    return reactor;
  }

  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* context,
                                   const v1::CancelRequest* request,
                                   v1::CancelResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    grpc::Status status = authorize(*context);
    if (status.ok()) status = validate_cancel_request(*request);
    if (!status.ok()) {
      log("info", "cancel.refused",
          {{"peer", context->peer()},
           {"code", std::to_string(static_cast<int>(status.error_code()))},
           {"reason", status.error_message()}});
      reactor->Finish(std::move(status));
      return reactor;
    }
    const int signal = request->signal() == v1::CANCEL_SIGNAL_KILL ? SIGKILL : SIGTERM;
    const v1::CancelResponse::State state = registry.cancel(request->exec_id(), signal);
    response->set_state(state);
    log("info", "cancel",
        {{"exec_id", request->exec_id()},
         {"signal", std::to_string(signal)},
         {"state", v1::CancelResponse::State_Name(state)}});
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // Client certificates were verified in the TLS handshake; the token is checked per call.
  grpc::Status authorize(const grpc::CallbackServerContext& context) const {
    if (options.token.empty()) return grpc::Status::OK;
    const auto& metadata = context.client_metadata();
    auto [first, last] = metadata.equal_range("authorization");
    if (first != last && std::next(first) == last &&
        bearer_token_matches(options.token,
                             std::string_view(first->second.data(), first->second.size()))) {
      return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or invalid bearer token");
  }

  grpc::ServerWriteReactor<v1::ExecResponse>* refuse(const grpc::CallbackServerContext& context,
                                                     grpc::Status status, ExecTrace& trace) {
    trace.end(status);
    log("info", "exec.refused",
        {{"peer", context.peer()},
         {"code", std::to_string(static_cast<int>(status.error_code()))},
         {"reason", status.error_message()}});
    return new RefusedCall(std::move(status));
  }

  void shutdown() {
    std::call_once(shutdown_once, [this] {
      log("info", "agent.shutdown", {{"address", address}});
      // Health checks see NOT_SERVING first, so a balancer stops sending new calls.
      if (server) server->GetHealthCheckService()->Shutdown();
      registry.close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent is shutting down"));
      // Cancels whatever is still in flight and waits for the calls to end.
      if (server) server->Shutdown(std::chrono::system_clock::now());
      // Every session finishes only after its child is reaped; the io_context must keep
      // running until then, since sessions post to it.
      registry.wait_until_empty();
      work.reset();
      for (std::thread& thread : io_threads) thread.join();
      {
        std::lock_guard lock(done_mutex);
        done = true;
      }
      done_cv.notify_all();
    });
  }

  const AgentOptions options;
  fs::path workspace;
  std::optional<SecretStore> secrets;  // none without options.secrets_dir
  std::optional<Confinement> confinement;
  std::string address;

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::vector<std::thread> io_threads;
  std::optional<ExecSettings> settings;
  ExecRegistry registry;
  std::unique_ptr<grpc::Server> server;  // after the service (this) it calls into

  std::once_flag shutdown_once;
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;  // guarded by done_mutex
};

AgentServer::AgentServer(AgentOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& impl = *impl_;
  const AgentOptions& opts = impl.options;
  if (std::string violation = security_violation(opts); !violation.empty()) {
    throw std::runtime_error(violation);
  }
  if (!opts.token.empty() && !is_printable_ascii(opts.token)) {
    throw std::runtime_error("token: must be printable ASCII without spaces");
  }
  if (opts.max_chunk_bytes == 0) throw std::runtime_error("max_chunk_bytes: must be positive");
  if (opts.kill_grace.count() < 0) throw std::runtime_error("kill_grace: must not be negative");
  if (opts.reattach_grace.count() < 0) {
    throw std::runtime_error("reattach_grace: must not be negative");
  }
  if (opts.resume_retention.count() < 0) {
    throw std::runtime_error("resume_retention: must not be negative");
  }
  if (opts.max_output_bytes == 0) throw std::runtime_error("max_output_bytes: must be positive");
  if (opts.max_concurrent == 0) throw std::runtime_error("max_concurrent: must be positive");
  if (opts.max_timeout <= std::chrono::milliseconds::zero() || opts.max_timeout > kMaxTimeout) {
    throw std::runtime_error("max_timeout: must be positive and at most 366 days");
  }
  if (opts.listen.empty()) throw std::runtime_error("listen: must not be empty");

  std::error_code ec;
  const fs::path root = opts.workspace.empty() ? fs::current_path(ec) : opts.workspace;
  impl.workspace = fs::canonical(root, ec);
  if (ec || !fs::is_directory(impl.workspace, ec)) {
    throw std::runtime_error("workspace: '" + root.string() + "' is not an existing directory");
  }
  if (!opts.secrets_dir.empty()) impl.secrets.emplace(opts.secrets_dir);
  // Probed before any thread of ours exists: it runs bwrap twice and waits for it.
  impl.confinement.emplace(opts.sandbox, opts.bwrap_path, opts.max_profile);
  // A process-lifetime reference to the gRPC library, never released: when ~Server drops
  // the last one, grpc 1.51 shuts the library down synchronously and joins an executor thread
  // parked in a 10 s epoll_wait, so stopping the agent would randomly take 10 s.
  [[maybe_unused]] static const bool grpc_kept_initialized = (grpc_init(), true);
  // Also before any thread of ours exists, so a bad TLS file is a plain refusal to start.
  std::shared_ptr<grpc::ServerCredentials> credentials = server_credentials(opts);

  // Writes to a pipe whose reader died must fail with EPIPE, not kill the agent.
  std::signal(SIGPIPE, SIG_IGN);

  const bool unix_socket = opts.listen.starts_with("unix:");
  const std::string host = unix_socket ? std::string() : tcp_host(opts.listen);
  if (unix_socket && opts.listen.size() == 5) {
    throw std::runtime_error("listen: unix: needs a socket path");
  }

  impl.settings.emplace(ExecSettings{
      impl.io.get_executor(), opts.sandbox_id.empty() ? default_sandbox_id() : opts.sandbox_id,
      opts.kill_grace, opts.max_chunk_bytes, opts.reattach_grace, opts.resume_retention,
      opts.resume_buffer_bytes, opts.max_output_bytes, opts.max_timeout});
  for (int i = 0; i < kIoThreads; ++i) {
    impl.io_threads.emplace_back([&impl] { impl.io.run(); });
  }

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(opts.listen, credentials, &port);
  // Without this, a second agent could silently share a TCP port with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Above gRPC's 4 MiB default, so that every request within the limits is admitted and an
  // oversized field is named by validation instead of a bare RESOURCE_EXHAUSTED.
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  // Clients find a dead connection by keepalive pings, also through a command that prints
  // nothing for minutes (docs/behavior.md, "Keepalive"): a ping per second is accepted,
  // with or without calls, where gRPC's default counts anything above one per 5 minutes
  // as abuse and answers with GOAWAY too_many_pings.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // The agent's own pings find a client that vanished, so its execs detach (and are killed
  // after the reattach grace) instead of waiting for TCP to give up.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.RegisterService(&impl);
  // grpc.health.v1.Health for load balancers and orchestrators: "" and the service's own
  // name report SERVING until shutdown begins.
  grpc::EnableDefaultHealthCheckService(true);
  impl.server = builder.BuildAndStart();
  if (impl.server && port != 0) {
    impl.server->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  }
  if (!impl.server || port == 0) {
    impl.server.reset();
    impl.work.reset();
    for (std::thread& thread : impl.io_threads) thread.join();
    impl.io_threads.clear();
    throw std::runtime_error("listen: cannot listen on '" + opts.listen + "'");
  }
  impl.address = unix_socket ? opts.listen : host + ":" + std::to_string(port);
  log("info", "agent.start",
      {
          {"address", impl.address},
          {"auth", auth_description(opts)},
          {"tls", opts.tls_cert_file.empty() ? "off" : "on"},
          {"tracing", opts.tracer ? "on" : "off"},
          {"sandbox_id", impl.settings->sandbox_id},
          {"workspace", impl.workspace.string()},
          {"secrets_dir", impl.secrets ? impl.secrets->directory().string() : "none"},
          {"sandbox", impl.confinement->describe()},
          {"reattach_grace_ms", std::to_string(opts.reattach_grace.count())},
          {"resume_retention_ms", std::to_string(opts.resume_retention.count())},
          {"max_output_bytes", std::to_string(opts.max_output_bytes)},
          {"max_concurrent", std::to_string(opts.max_concurrent)},
          {"max_timeout_ms", std::to_string(opts.max_timeout.count())},
      });
}

AgentServer::~AgentServer() {
  if (impl_->server) shutdown();
}

std::string AgentServer::address() const { return impl_->address; }

void AgentServer::shutdown() { impl_->shutdown(); }

void AgentServer::wait() {
  std::unique_lock lock(impl_->done_mutex);
  impl_->done_cv.wait(lock, [this] { return impl_->done; });
}

}  // namespace sandbox::agent
