#include "fakes/fake_agent.hpp"

#include "compat/sandbox_exec_legacy.grpc.pb.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace sandbox::test {

namespace {

std::multimap<std::string, std::string> metadata_of(const grpc::ServerContext& context) {
  std::multimap<std::string, std::string> metadata;
  for (const auto& [key, value] : context.client_metadata()) {
    metadata.emplace(std::string(key.data(), key.size()), std::string(value.data(), value.size()));
  }
  return metadata;
}

}  // namespace

class FakeAgent::Service final : public v1::SandboxExecService::Service {
 public:
  Service(ExecScript script, CancelScript cancel_script)
      : script_(std::move(script)), cancel_script_(std::move(cancel_script)) {}

  grpc::Status Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                    ExecWriter* writer) override {
    {
      std::lock_guard lock(mutex_);
      calls_.push_back({*request, metadata_of(*context)});
    }
    return script_(*context, *request, *writer);
  }

  grpc::Status Cancel(grpc::ServerContext* context, const v1::CancelRequest* request,
                      v1::CancelResponse* response) override {
    {
      std::lock_guard lock(mutex_);
      cancels_.push_back({*request, metadata_of(*context)});
    }
    cancel_arrived_.notify_all();
    // The same status a server without the method sends, so the client cannot tell.
    if (!cancel_script_) return {grpc::StatusCode::UNIMPLEMENTED, ""};
    return cancel_script_(*request, *response);
  }

  std::vector<RecordedCall> calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
  }

  std::vector<RecordedCancel> cancels() const {
    std::lock_guard lock(mutex_);
    return cancels_;
  }

  bool wait_for_cancels(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return cancel_arrived_.wait_for(lock, timeout, [&] { return cancels_.size() >= n; });
  }

 private:
  ExecScript script_;
  CancelScript cancel_script_;
  mutable std::mutex mutex_;
  mutable std::condition_variable cancel_arrived_;
  std::vector<RecordedCall> calls_;      // guarded by mutex_
  std::vector<RecordedCancel> cancels_;  // guarded by mutex_
};

// The older generation's service: the same script and records, at its own path.
class FakeAgent::LegacyService final
    : public workflow::plugin::external::sandbox::SandboxExecService::Service {
 public:
  explicit LegacyService(FakeAgent::Service& v1) : v1_(v1) {}
  grpc::Status Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                    ExecWriter* writer) override {
    return v1_.Exec(context, request, writer);
  }

 private:
  FakeAgent::Service& v1_;  // (plain `Service` names the base class here)
};

FakeAgent::FakeAgent(ExecScript script, CancelScript cancel_script, FakeGeneration generation)
    : service_(std::make_unique<Service>(std::move(script), std::move(cancel_script))) {
  std::string pattern = (std::filesystem::temp_directory_path() / "fake-agent-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  address_ = "unix:" + (dir_ / "fake.sock").string();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address_, grpc::InsecureServerCredentials());
  if (generation == FakeGeneration::legacy) {
    legacy_service_ = std::make_unique<LegacyService>(*service_);
    builder.RegisterService(legacy_service_.get());
  } else {
    builder.RegisterService(service_.get());
  }
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

std::vector<RecordedCancel> FakeAgent::cancels() const { return service_->cancels(); }

bool FakeAgent::wait_for_cancels(std::size_t n, std::chrono::milliseconds timeout) const {
  return service_->wait_for_cancels(n, timeout);
}

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

ExecScript resuming_after_failures(std::string out, int failing, std::size_t per_attempt,
                                   std::size_t chunk, std::string pushback) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  return [out = std::move(out), failing, per_attempt, chunk, pushback = std::move(pushback), calls](
             grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
    const int call = (*calls)++;
    auto started = started_message(request.exec_id());
    started.mutable_started()->set_resumed(call > 0);
    writer.Write(started);
    std::size_t offset = std::min<std::size_t>(request.resume().stdout_offset(), out.size());
    const std::size_t stop =
        call < failing ? std::min(out.size(), offset + per_attempt) : out.size();
    while (offset < stop) {
      const std::size_t size = std::min(chunk, stop - offset);
      writer.Write(stdout_message(out.substr(offset, size), offset));
      offset += size;
    }
    if (call < failing) {
      if (!pushback.empty()) context.AddTrailingMetadata("grpc-retry-pushback-ms", pushback);
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection to the sandbox lost");
    }
    auto exit = exit_message(0);
    exit.mutable_exit()->set_stdout_bytes(out.size());
    writer.Write(exit);
    return grpc::Status::OK;
  };
}

ExecScript unavailable_then(int failures, ExecScript then) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  return [failures, then = std::move(then), calls](
             grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
    if ((*calls)++ < failures) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    return then(context, request, writer);
  };
}

CancelScript answering_cancel(v1::CancelResponse::State state) {
  return [state](const v1::CancelRequest&, v1::CancelResponse& response) {
    response.set_state(state);
    return grpc::Status::OK;
  };
}

ExecScript exiting_then_holding_open(std::atomic<int>& cancels_seen, int code) {
  return [&cancels_seen, code](grpc::ServerContext& context, const v1::ExecRequest& request,
                               ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(exit_message(code));
    if (wait_for_client_cancel(context)) ++cancels_seen;  // keeps the stream open
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

ExecScript after_warm_up(ExecScript then) {
  return [answer = replying("", "", 0), then = std::move(then)](
             grpc::ServerContext& context, const v1::ExecRequest& request, ExecWriter& writer) {
    const bool warm_up = request.command_size() == 1 && request.command(0) == warm_up_command;
    return warm_up ? answer(context, request, writer) : then(context, request, writer);
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
