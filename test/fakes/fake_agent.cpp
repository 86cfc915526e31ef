#include "fakes/fake_agent.hpp"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace sandbox::test {

class FakeAgent::Service final : public v1::SandboxExecService::Service {
 public:
  explicit Service(ExecScript script) : script_(std::move(script)) {}

  grpc::Status Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                    ExecWriter* writer) override {
    RecordedCall call;
    call.request = *request;
    for (const auto& [key, value] : context->client_metadata()) {
      call.metadata.emplace(std::string(key.data(), key.size()),
                            std::string(value.data(), value.size()));
    }
    {
      std::lock_guard lock(mutex_);
      calls_.push_back(std::move(call));
    }
    return script_(*context, *request, *writer);
  }

  std::vector<RecordedCall> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  ExecScript script_;
  mutable std::mutex mutex_;
  std::vector<RecordedCall> calls_;
};

FakeAgent::FakeAgent(ExecScript script) : service_(std::make_unique<Service>(std::move(script))) {
  std::string pattern = (std::filesystem::temp_directory_path() / "fake-agent-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  address_ = "unix:" + (dir_ / "fake.sock").string();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address_, grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) throw std::runtime_error("fake agent could not listen on " + address_);
}

FakeAgent::~FakeAgent() {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::vector<RecordedCall> FakeAgent::calls() const { return service_->calls(); }

v1::ExecResponse started_message(const std::string& exec_id, const std::string& sandbox_id,
                                 const std::string& profile) {
  v1::ExecResponse message;
  auto* started = message.mutable_started();
  started->set_exec_id(exec_id);
  started->set_sandbox_id(sandbox_id);
  started->set_effective_profile(profile);
  return message;
}

v1::ExecResponse stdout_message(const std::string& bytes, std::uint64_t offset) {
  v1::ExecResponse message;
  message.set_stdout(bytes);
  message.set_offset(offset);
  return message;
}

v1::ExecResponse stderr_message(const std::string& bytes, std::uint64_t offset) {
  v1::ExecResponse message;
  message.set_stderr(bytes);
  message.set_offset(offset);
  return message;
}

v1::ExecResponse exit_message(int code, int signal, bool timed_out) {
  v1::ExecResponse message;
  message.set_exit_code(code);
  message.mutable_exit()->set_signal(signal);
  message.mutable_exit()->set_timed_out(timed_out);
  return message;
}

ExecScript replying(std::string out, std::string err, int code) {
  return [out = std::move(out), err = std::move(err), code](
             grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    if (!out.empty()) writer.Write(stdout_message(out, 0));
    if (!err.empty()) writer.Write(stderr_message(err, 0));
    auto exit = exit_message(code);
    exit.mutable_exit()->set_stdout_bytes(out.size());
    exit.mutable_exit()->set_stderr_bytes(err.size());
    writer.Write(exit);
    return grpc::Status::OK;
  };
}

ExecScript waiting_for_cancel(std::atomic<int>& cancels_seen, std::string first_stdout) {
  return [&cancels_seen, first_stdout = std::move(first_stdout)](
             grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    if (!first_stdout.empty()) writer.Write(stdout_message(first_stdout, 0));
    if (wait_for_client_cancel(context)) ++cancels_seen;
    return grpc::Status::CANCELLED;
  };
}

bool wait_for_client_cancel(grpc::ServerContext& context) {
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!context.IsCancelled()) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace sandbox::test
