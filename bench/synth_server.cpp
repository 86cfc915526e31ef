#include "synth_server.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <stdexcept>
#include <utility>
#include <vector>

#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace bench {
namespace {

namespace v1 = sandbox::v1;

// Largest chunk a request may ask for; the payload every stream slices its chunks from.
constexpr std::uint64_t kMaxChunk = std::uint64_t{4} << 20;

bool parse_u64(const std::string& text, std::uint64_t& out) {
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

class SynthReactor;

/// The calls of argv `{"synth_hold"}`: each sent `started` and waits for a release.
class HeldCalls {
 public:
  void add(SynthReactor* call) {
    std::lock_guard lock(mutex_);
    held_.push_back(call);
  }
  std::size_t count() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }
  /// Finishes every held call with exit code 0; returns how many there were.
  std::size_t release_all();

 private:
  std::mutex mutex_;
  std::vector<SynthReactor*> held_;
};

class SynthReactor final : public grpc::ServerWriteReactor<v1::ExecResponse> {
 public:
  SynthReactor(const v1::ExecRequest& request, const std::string& payload, HeldCalls& held)
      : payload_(payload), held_(held) {
    const auto& argv = request.command();
    if (argv.size() == 1 && (argv[0] == "synth_held" || argv[0] == "synth_release")) {
      // A control call: its stdout is the number of calls held (before releasing them).
      const auto n = argv[0] == "synth_held" ? held.count() : held.release_all();
      message_.set_stdout(std::to_string(n));
      total_ = sent_ = message_.stdout().size();
      StartWrite(&message_);
      return;
    }
    if (argv.size() == 1 && argv[0] == "synth_hold") {
      hold_ = true;
      message_.mutable_started()->set_exec_id(request.exec_id());
      StartWrite(&message_);
      return;
    }
    if (argv.size() != 3 || argv[0] != "synth" || !parse_u64(argv[1], total_) ||
        !parse_u64(argv[2], chunk_) || chunk_ == 0 || chunk_ > kMaxChunk) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "argv must be {synth, <total_bytes>, <chunk_bytes>}"));
      return;
    }
    auto* started = message_.mutable_started();
    started->set_exec_id(request.exec_id());
    started->set_sandbox_id("bench");
    started->set_effective_profile("bench");
    StartWrite(&message_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {  // the client went away; the status is not delivered to anyone
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    if (std::exchange(hold_, false)) {
      // No write in flight from here on: release() may write the exit from its thread. A
      // callback server calls OnDone only after Finish, so the held call stays alive.
      held_.add(this);
      return;
    }
    if (sent_ < total_) {
      const auto n = std::min(chunk_, total_ - sent_);
      // The stdout field keeps its bytes between writes: only the last, shorter chunk (or
      // the first one) copies; every other write changes just the offset.
      if (message_.event_case() != v1::ExecResponse::kStdout || message_.stdout().size() != n) {
        message_.set_stdout(payload_.data(), n);
      }
      message_.set_offset(sent_);
      sent_ += n;
      StartWrite(&message_);
      return;
    }
    finish_with_exit();
  }

  void OnDone() override { delete this; }

  /// Ends a held call: the exit, then OK.
  void release() { finish_with_exit(); }

 private:
  void finish_with_exit() {
    message_.Clear();
    message_.set_exit_code(0);
    auto* exit = message_.mutable_exit();
    exit->set_stdout_bytes(total_);
    exit->set_effective_profile("bench");
    StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
  }

  const std::string& payload_;
  HeldCalls& held_;
  bool hold_ = false;
  v1::ExecResponse message_;
  std::uint64_t total_ = 0;
  std::uint64_t chunk_ = 0;
  std::uint64_t sent_ = 0;
};

std::size_t HeldCalls::release_all() {
  std::vector<SynthReactor*> calls;
  {
    std::lock_guard lock(mutex_);
    calls.swap(held_);
  }
  // Outside the lock: a write may run reactions inline.
  for (auto* call : calls) call->release();
  return calls.size();
}

}  // namespace

std::vector<std::string> synth_argv(std::uint64_t total_bytes, std::uint64_t chunk_bytes) {
  return {"synth", std::to_string(total_bytes), std::to_string(chunk_bytes)};
}

class SynthServer::Service final : public v1::SandboxExecService::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::ExecResponse>* Exec(grpc::CallbackServerContext* /*context*/,
                                                   const v1::ExecRequest* request) override {
    return new SynthReactor(*request, payload_, held_);
  }

  void release_all() { held_.release_all(); }

 private:
  HeldCalls held_;
  const std::string payload_ = std::string(kMaxChunk, 'x');
};

SynthServer::SynthServer() : service_(std::make_unique<Service>()) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service_.get());
  // Design §6: BDP probing on (off halves 64 KiB throughput). It is gRPC's default; set
  // explicitly so the benchmark does not depend on that default.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 1);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0)
    throw std::runtime_error("synth server: could not listen on 127.0.0.1");
  address_ = "127.0.0.1:" + std::to_string(port);
}

SynthServer::~SynthServer() {
  service_->release_all();  // a held call would keep Shutdown waiting
  server_->Shutdown();
  server_->Wait();
}

}  // namespace bench
