#include "support/raw_exec.hpp"

namespace sandbox::test {

const v1::ExecResponse* ExecTranscript::exit() const {
  if (messages.empty() || messages.back().event_case() != v1::ExecResponse::kExitCode) {
    return nullptr;
  }
  return &messages.back();
}

std::unique_ptr<v1::SandboxExecService::Stub> make_stub(const std::string& address) {
  return v1::SandboxExecService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

ExecTranscript run_exec(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request,
                        std::chrono::milliseconds timeout,
                        const std::vector<std::pair<std::string, std::string>>& metadata) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  for (const auto& [key, value] : metadata) context.AddMetadata(key, value);
  ExecTranscript transcript;
  auto reader = stub.Exec(&context, request);
  v1::ExecResponse response;
  while (reader->Read(&response)) {
    if (response.event_case() == v1::ExecResponse::kStdout) {
      transcript.stdout_bytes += response.stdout();
    } else if (response.event_case() == v1::ExecResponse::kStderr) {
      transcript.stderr_bytes += response.stderr();
    }
    transcript.messages.push_back(std::move(response));
    response.Clear();
  }
  transcript.status = reader->Finish();
  return transcript;
}

v1::ExecRequest exec_request(std::vector<std::string> command) {
  v1::ExecRequest request;
  for (std::string& arg : command) request.add_command(std::move(arg));
  return request;
}

}  // namespace sandbox::test
