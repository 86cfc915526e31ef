#pragma once
// A scripted agent: a real in-process gRPC server on a unix socket whose Exec (and Cancel)
// does whatever the test's script says. For faults the real agent cannot produce on demand
// (a stream without exit_code, an exit followed by a hang, protocol violations, an agent of
// the older generation without Cancel) and for recording exactly what the client sent.

#include <grpcpp/server.h>
#include <grpcpp/server_context.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sandbox/runner_config.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace sandbox::test {

using ExecWriter = grpc::ServerWriter<v1::ExecResponse>;

/// What the fake does for each Exec call. Runs on a gRPC server thread.
using ExecScript =
    std::function<grpc::Status(grpc::ServerContext&, const v1::ExecRequest&, ExecWriter&)>;

/// What the fake does for each Cancel call. Runs on a gRPC server thread; the request is
/// recorded before it runs.
using CancelScript = std::function<grpc::Status(const v1::CancelRequest&, v1::CancelResponse&)>;

/// One recorded call.
struct RecordedCall {
  v1::ExecRequest request;
  std::multimap<std::string, std::string> metadata;
};

/// One recorded Cancel.
struct RecordedCancel {
  v1::CancelRequest request;
  std::multimap<std::string, std::string> metadata;
};

/// Which service the fake serves.
enum class FakeGeneration {
  v1,      ///< sandbox.v1.SandboxExecService (Exec, Cancel)
  legacy,  ///< only /workflow.plugin.external.sandbox.SandboxExecService/Exec (proto/compat/)
};

/// The fake agent. Starts listening in the constructor; stops in the destructor.
class FakeAgent {
 public:
  /// Without a Cancel script, Cancel answers UNIMPLEMENTED, as the older agent generation
  /// (which does not know the method) does; the request is recorded either way. A `legacy`
  /// fake serves the script at the older generation's path only: v1 calls, Cancel
  /// included, are UNIMPLEMENTED there.
  explicit FakeAgent(ExecScript script, CancelScript cancel_script = {},
                     FakeGeneration generation = FakeGeneration::v1);
  ~FakeAgent();
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  /// `unix:<temp dir>/fake.sock`.
  [[nodiscard]] std::string address() const { return address_; }
  /// Every call received so far, in arrival order.
  [[nodiscard]] std::vector<RecordedCall> calls() const;
  /// Every Cancel received so far, in arrival order.
  [[nodiscard]] std::vector<RecordedCancel> cancels() const;
  /// Blocks until at least `n` Cancels were received, at most `timeout`; whether they were.
  [[nodiscard]] bool wait_for_cancels(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  class Service;
  class LegacyService;
  std::filesystem::path dir_;
  std::string address_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<LegacyService> legacy_service_;
  std::unique_ptr<grpc::Server> server_;
};

/// Response builders.
v1::ExecResponse started_message(const std::string& exec_id, const std::string& sandbox_id = "fake",
                                 const std::string& profile = "none");
v1::ExecResponse stdout_message(const std::string& bytes, std::uint64_t offset);
v1::ExecResponse stderr_message(const std::string& bytes, std::uint64_t offset);
v1::ExecResponse exit_message(int code, int signal = 0, bool timed_out = false);

/// A well-behaved script: started, then the given stdout/stderr, then exit `code`.
ExecScript replying(std::string out, std::string err, int code);

/// A Cancel script of an agent that has the method: answers OK with `state`.
CancelScript answering_cancel(v1::CancelResponse::State state = v1::CancelResponse::STATE_RUNNING);

/// A script that sends `started` and exit `code`, then keeps the stream open until the client
/// cancels (counted in `cancels_seen`): an agent that does not finish after the exit.
ExecScript exiting_then_holding_open(std::atomic<int>& cancels_seen, int code);

/// A script that never exits: `started`, then `first_stdout` (if any), then it waits until
/// the client cancels, counting each observed cancellation in `cancels_seen`.
ExecScript waiting_for_cancel(std::atomic<int>& cancels_seen, std::string first_stdout = {});

/// `then`, except that a call to `warm_up_command` gets exit 0 at once: a test whose timing
/// starts at its second call runs that first, to have the channel connected (the first call's
/// connection setup can take hundreds of milliseconds on a loaded machine).
ExecScript after_warm_up(ExecScript then);
inline constexpr const char* warm_up_command = "warm-up";

/// An agent that reattaches, with a connection that breaks: each call sends `started`
/// (`resumed` after the first), then `out` from the call's `resume.stdout_offset` in chunks
/// of `chunk` bytes. The first `failing` calls stop after `per_attempt` bytes with
/// UNAVAILABLE (trailer `grpc-retry-pushback-ms: pushback` when it is not empty); the next
/// one sends the rest and exit 0.
ExecScript resuming_after_failures(std::string out, int failing, std::size_t per_attempt,
                                   std::size_t chunk = 1000, std::string pushback = {});

/// `failures` calls answered with a trailers-only UNAVAILABLE (nothing sent before the
/// status, as a proxy or a server shutting down answers), then `then`.
ExecScript unavailable_then(int failures, ExecScript then);

/// A runner configuration pointing at `agent`.
inline RemoteRunnerConfig runner_config(const FakeAgent& agent) {
  RemoteRunnerConfig config;
  config.address = agent.address();
  return config;
}

/// Blocks (bounded: 30 s) until the client cancelled the call or its deadline passed.
/// Polls ServerContext::IsCancelled, the only cancellation signal of the sync API.
bool wait_for_client_cancel(grpc::ServerContext& context);

}  // namespace sandbox::test
