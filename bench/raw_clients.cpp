// The two raw grpc++ clients the SDK is compared with. They do what a careful user of
// grpc++ would do by hand and nothing more: count the stdout bytes, check the offsets, and
// require the exit code, as the SDK does.

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "bench_support.hpp"
#include "rows.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"
#include "synth_server.hpp"

namespace bench {
namespace {

namespace v1 = sandbox::v1;

struct CallResult {
  std::uint64_t stdout_bytes = 0;
  /// Filled only by a collecting call (the `raw_callback_collect` rows).
  std::string stdout_data;
  bool exit_seen = false;
  bool offsets_ok = true;
  grpc::Status status;

  [[nodiscard]] bool ok(std::uint64_t expected_bytes) const {
    return status.ok() && exit_seen && offsets_ok && stdout_bytes == expected_bytes;
  }
};

/// Counts down to zero; the benchmark thread waits for it.
class Latch {
 public:
  void reset(int count) {
    std::lock_guard lock(mutex_);
    count_ = count;
  }
  void count_down() {
    std::lock_guard lock(mutex_);
    if (--count_ == 0) done_.notify_one();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  int count_ = 0;
};

/// One Exec call: reads until the end, counting bytes; reports to `latch` from OnDone.
class ReadReactor final : public grpc::ClientReadReactor<v1::ExecResponse> {
 public:
  ReadReactor(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request,
              CallResult& result, Latch& latch, bool collect = false)
      : result_(result), latch_(latch), collect_(collect) {
    stub.async()->Exec(&context_, &request, this);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    switch (response_.event_case()) {
      case v1::ExecResponse::kStdout:
        result_.offsets_ok &= response_.offset() == result_.stdout_bytes;
        result_.stdout_bytes += response_.stdout().size();
        if (collect_) result_.stdout_data.append(response_.stdout());
        break;
      case v1::ExecResponse::kExitCode:
        result_.exit_seen = true;
        break;
      default:
        break;
    }
    StartRead(&response_);
  }

  // OnDone runs after every other reaction: nothing touches the reactor after `delete`.
  void OnDone(const grpc::Status& status) override {
    result_.status = status;
    Latch& latch = latch_;
    delete this;
    latch.count_down();
  }

 private:
  grpc::ClientContext context_;
  v1::ExecResponse response_;
  CallResult& result_;
  Latch& latch_;
  const bool collect_;
};

v1::ExecRequest make_request(std::uint64_t total, std::uint64_t chunk) {
  v1::ExecRequest request;
  for (auto& arg : synth_argv(total, chunk)) request.add_command(std::move(arg));
  return request;
}

CallResult call_sync(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request) {
  CallResult result;
  grpc::ClientContext context;
  auto reader = stub.Exec(&context, request);
  v1::ExecResponse response;
  while (reader->Read(&response)) {
    switch (response.event_case()) {
      case v1::ExecResponse::kStdout:
        result.offsets_ok &= response.offset() == result.stdout_bytes;
        result.stdout_bytes += response.stdout().size();
        break;
      case v1::ExecResponse::kExitCode:
        result.exit_seen = true;
        break;
      default:
        break;
    }
  }
  result.status = reader->Finish();
  return result;
}

CallResult call_callback(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request,
                         Latch& latch, bool collect = false) {
  CallResult result;
  latch.reset(1);
  new ReadReactor(stub, request, result, latch, collect);
  latch.wait();
  return result;
}

void fail(benchmark::State& state, const CallResult& result) {
  state.SkipWithError(("call failed: " + result.status.error_message() +
                       (result.exit_seen ? "" : " (no exit code)") +
                       (result.offsets_ok ? "" : " (bad offset)"))
                          .c_str());
}

// The tiny-exec row for one raw client: `call(stub, request)` runs one exec to the end.
template <typename Call>
void tiny_row(benchmark::State& state, Call call) {
  auto stub = v1::SandboxExecService::NewStub(raw_channel());
  const auto request = make_request(workload().tiny_bytes, workload().tiny_bytes);
  if (auto warm = call(*stub, request); !warm.ok(workload().tiny_bytes)) return fail(state, warm);

  LatencySamples latencies;
  latencies.reserve(static_cast<std::size_t>(state.max_iterations));
  CpuMeter cpu;
  cpu.start();
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto result = call(*stub, request);
    latencies.add(Clock::now() - t0);
    if (!result.ok(workload().tiny_bytes)) return fail(state, result);
  }
  cpu.report(state, static_cast<double>(state.iterations()), "exec");
  latencies.report(state);
}

}  // namespace

void tiny_raw_callback(benchmark::State& state) {
  Latch latch;
  tiny_row(state, [&latch](auto& stub, const auto& request) {
    return call_callback(stub, request, latch);
  });
}

void tiny_raw_sync(benchmark::State& state) {
  tiny_row(state, [](auto& stub, const auto& request) { return call_sync(stub, request); });
}

void concurrent_raw_callback(benchmark::State& state) {
  auto stub = v1::SandboxExecService::NewStub(raw_channel());
  const auto request = make_request(workload().tiny_bytes, workload().tiny_bytes);
  const int n = workload().concurrency;
  Latch latch;
  if (auto warm = call_callback(*stub, request, latch); !warm.ok(workload().tiny_bytes))
    return fail(state, warm);

  std::vector<CallResult> results(static_cast<std::size_t>(n));
  CpuMeter cpu;
  cpu.start();
  for (auto _ : state) {
    latch.reset(n);
    for (auto& result : results) {
      result = CallResult{};
      new ReadReactor(*stub, request, result, latch);
    }
    latch.wait();
    for (const auto& result : results) {
      if (!result.ok(workload().tiny_bytes)) return fail(state, result);
    }
  }
  const auto execs = static_cast<double>(state.iterations()) * n;
  state.SetItemsProcessed(state.iterations() * n);
  cpu.report(state, execs, "exec");
}

void bulk_raw_callback(benchmark::State& state, std::uint64_t chunk_bytes, bool collect) {
  auto stub = v1::SandboxExecService::NewStub(raw_channel());
  const auto total = workload().bulk_bytes;
  Latch latch;
  if (auto warm = call_callback(*stub, make_request(16, 16), latch); !warm.ok(16))
    return fail(state, warm);

  const auto request = make_request(total, chunk_bytes);
  CpuMeter cpu;
  cpu.start();
  const auto t0 = Clock::now();
  for (auto _ : state) {
    auto result = call_callback(*stub, request, latch, collect);
    if (!result.ok(total)) return fail(state, result);
    if (collect && result.stdout_data.size() != total)
      return state.SkipWithError("collected too few bytes");
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  cpu.report(state, static_cast<double>(state.iterations() * total) / (1 << 20), "MiB");
  report_bulk(state, total, seconds);
}

void bulk_raw_sync(benchmark::State& state, std::uint64_t chunk_bytes) {
  auto stub = v1::SandboxExecService::NewStub(raw_channel());
  const auto total = workload().bulk_bytes;
  if (auto warm = call_sync(*stub, make_request(16, 16)); !warm.ok(16)) return fail(state, warm);

  const auto request = make_request(total, chunk_bytes);
  CpuMeter cpu;
  cpu.start();
  const auto t0 = Clock::now();
  for (auto _ : state) {
    auto result = call_sync(*stub, request);
    if (!result.ok(total)) return fail(state, result);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  cpu.report(state, static_cast<double>(state.iterations() * total) / (1 << 20), "MiB");
  report_bulk(state, total, seconds);
}

}  // namespace bench
