#include "synth_server.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

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

class SynthReactor final : public grpc::ServerWriteReactor<v1::ExecResponse> {
 public:
  SynthReactor(const v1::ExecRequest& request, const std::string& payload) : payload_(payload) {
    const auto& argv = request.command();
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
    message_.Clear();
    message_.set_exit_code(0);
    auto* exit = message_.mutable_exit();
    exit->set_stdout_bytes(total_);
    exit->set_effective_profile("bench");
    StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
  }

  void OnDone() override { delete this; }

 private:
  const std::string& payload_;
  v1::ExecResponse message_;
  std::uint64_t total_ = 0;
  std::uint64_t chunk_ = 0;
  std::uint64_t sent_ = 0;
};

}  // namespace

std::vector<std::string> synth_argv(std::uint64_t total_bytes, std::uint64_t chunk_bytes) {
  return {"synth", std::to_string(total_bytes), std::to_string(chunk_bytes)};
}

class SynthServer::Service final : public v1::SandboxExecService::CallbackService {
 public:
  grpc::ServerWriteReactor<v1::ExecResponse>* Exec(grpc::CallbackServerContext* /*context*/,
                                                   const v1::ExecRequest* request) override {
    return new SynthReactor(*request, payload_);
  }

 private:
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
  server_->Shutdown();
  server_->Wait();
}

}  // namespace bench
