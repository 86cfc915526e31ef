// Exec through a raw grpc++ stub: what the agent sent, message by message.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace sandbox::test {

/// Everything one Exec call produced.
struct ExecTranscript {
  grpc::Status status;
  std::vector<v1::ExecResponse> messages;  ///< in arrival order
  std::string stdout_bytes;                ///< concatenated stdout chunks
  std::string stderr_bytes;                ///< concatenated stderr chunks

  /// The last message when it is an exit_code message, else nullptr.
  const v1::ExecResponse* exit() const;
};

/// A stub on an insecure channel to `address` (a gRPC target such as "unix:/path").
std::unique_ptr<v1::SandboxExecService::Stub> make_stub(const std::string& address);

/// Runs one Exec to the end with a blocking stub and a deadline of `timeout`; `metadata`
/// is added to the call as is. Blocks the calling thread; never throws.
ExecTranscript run_exec(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30),
                        const std::vector<std::pair<std::string, std::string>>& metadata = {});

/// An ExecRequest running `command`.
v1::ExecRequest exec_request(std::vector<std::string> command);

}  // namespace sandbox::test
