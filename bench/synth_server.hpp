#pragma once
/// @file
/// An agent-like grpc++ callback server that runs no processes: it synthesises the output
/// the request's argv asks for, so the benchmark measures the client and the transport only.

#include <grpcpp/server.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

/// argv that makes the synthetic server send `total_bytes` of stdout in `chunk_bytes`
/// messages (the last one shorter if `chunk_bytes` does not divide `total_bytes`).
std::vector<std::string> synth_argv(std::uint64_t total_bytes, std::uint64_t chunk_bytes);

/// `SandboxExecService` on 127.0.0.1 at an ephemeral port. For a request with argv
/// `{"synth", "<total_bytes>", "<chunk_bytes>"}` it sends `started`, the stdout chunks with
/// their offsets, then `exit_code` 0 with `ExitDetails`, and finishes with OK. Exactly one
/// write is in flight per call; `OnWriteDone` starts the next one.
///
/// For the in-flight memory row: `{"synth_hold"}` sends `started` and holds the call open;
/// `{"synth_held"}` answers the number of held calls as its stdout, `{"synth_release"}`
/// the same and then ends every held call with exit code 0.
class SynthServer {
 public:
  SynthServer();
  SynthServer(const SynthServer&) = delete;
  SynthServer& operator=(const SynthServer&) = delete;
  ~SynthServer();

  /// `127.0.0.1:<port>`.
  [[nodiscard]] const std::string& address() const noexcept { return address_; }

 private:
  class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace bench
