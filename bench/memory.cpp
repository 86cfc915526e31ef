// The memory rows: what the client process holds, measured from /proc/self/status in a
// process of its own (main() forks the server first, so none of the server's memory is
// counted, and nothing an earlier row allocated is either).
//
//   sandbox_bench --memory stream <client> <total_bytes> <chunk_bytes>
//       one stream of total_bytes; peak RSS (VmHWM) before and after it
//   sandbox_bench --memory inflight <client> <calls>
//       `calls` execs held open by the server at once; RSS before and with all in flight
//
// Each prints one JSON object on stdout for bench/ratios.py.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"
#include "synth_server.hpp"

#ifdef SANDBOX_BENCH_WITH_SDK
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include "sandbox/sandbox.hpp"
#endif

namespace bench {
namespace {

namespace v1 = sandbox::v1;
using namespace std::chrono_literals;

/// A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: the peak so far).
long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stol(line.substr(prefix.size()));
  }
  return -1;
}

v1::ExecRequest request_of(const std::vector<std::string>& argv) {
  v1::ExecRequest request;
  for (const auto& arg : argv) request.add_command(arg);
  return request;
}

/// A control call to the server over its own channel (`synth_held`, `synth_release`): the
/// number it answers.
class Control {
 public:
  Control() : stub_(v1::SandboxExecService::NewStub(raw_channel())) {}
  std::size_t ask(const char* what) {
    grpc::ClientContext context;
    auto reader = stub_->Exec(&context, request_of({what}));
    v1::ExecResponse response;
    std::string out;
    while (reader->Read(&response)) {
      if (response.has_stdout()) out += response.stdout();
    }
    if (!reader->Finish().ok()) throw std::runtime_error(std::string(what) + " failed");
    return std::stoul(out);
  }
  /// Waits until the server holds `calls` calls; false after 120 s.
  bool wait_held(std::size_t calls) {
    const auto until = Clock::now() + 120s;
    while (ask("synth_held") < calls) {
      if (Clock::now() > until) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

 private:
  std::unique_ptr<v1::SandboxExecService::Stub> stub_;
};

/// The raw callback client's call: counts stdout bytes, notes the exit, signals OnDone.
class RawCall final : public grpc::ClientReadReactor<v1::ExecResponse> {
 public:
  RawCall(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request, std::atomic<int>& ok,
          std::atomic<int>& done)
      : ok_(ok), done_(done) {
    stub.async()->Exec(&context_, &request, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (response_.has_stdout()) bytes_ += response_.stdout().size();
    if (response_.event_case() == v1::ExecResponse::kExitCode) exited_ = true;
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    if (status.ok() && exited_) ok_.fetch_add(1);
    auto& done = done_;
    delete this;
    done.fetch_add(1);
  }
  std::uint64_t bytes_ = 0;

 private:
  grpc::ClientContext context_;
  v1::ExecResponse response_;
  std::atomic<int>& ok_;
  std::atomic<int>& done_;
  bool exited_ = false;
};

bool wait_count(const std::atomic<int>& count, int n) {
  const auto until = Clock::now() + 120s;
  while (count.load() < n) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

struct InflightResult {
  long rss_before_kib = 0;
  long rss_held_kib = 0;
  int ok = 0;
};

/// Lets the client finish reading what the server sent to the held calls (`started`)
/// before RSS is read: the server counts a call as held when its write completed.
void settle() { std::this_thread::sleep_for(300ms); }

InflightResult inflight_raw(int calls) {
  Control control;
  auto stub = v1::SandboxExecService::NewStub(raw_channel());
  std::atomic<int> ok{0}, done{0};
  const auto tiny = request_of(synth_argv(16, 16));
  new RawCall(*stub, tiny, ok, done);
  if (!wait_count(done, 1) || ok.load() != 1) throw std::runtime_error("warm-up call failed");
  ok = 0;
  done = 0;
  const auto hold = request_of({"synth_hold"});
  InflightResult result;
  result.rss_before_kib = status_kib("VmRSS");
  for (int i = 0; i < calls; ++i) new RawCall(*stub, hold, ok, done);
  if (!control.wait_held(static_cast<std::size_t>(calls)))
    throw std::runtime_error("the server never held every call");
  settle();
  result.rss_held_kib = status_kib("VmRSS");
  control.ask("synth_release");
  if (!wait_count(done, calls)) throw std::runtime_error("held calls did not end");
  result.ok = ok.load();
  return result;
}

#ifdef SANDBOX_BENCH_WITH_SDK
sandbox::RemoteRunnerConfig sdk_config() {
  sandbox::RemoteRunnerConfig config;
  config.address = server_address();
  return config;
}

InflightResult inflight_sdk(int calls, bool stream) {
  Control control;
  asio::io_context io{1};
  auto guard = asio::make_work_guard(io);
  InflightResult result;
  {
    sandbox::RemoteRunner runner(io.get_executor(), sdk_config());
    int done = 0;
    int ok = 0;
    auto on_exec = [&](std::error_code ec, sandbox::ExecResult r) {
      ++done;
      if (!ec && r.exit_code() == 0) ++ok;
    };
    runner.exec(sandbox::Command(synth_argv(16, 16)), on_exec);
    while (done < 1) io.run_one();
    if (ok != 1) throw std::runtime_error("warm-up exec failed");
    done = ok = 0;

    std::vector<sandbox::ExecStream> streams;
    if (stream) streams.reserve(static_cast<std::size_t>(calls));
    result.rss_before_kib = status_kib("VmRSS");
    const sandbox::Command hold(std::vector<std::string>{"synth_hold"});
    for (int i = 0; i < calls; ++i) {
      if (stream) {
        streams.push_back(runner.stream(hold));
      } else {
        runner.exec(hold, on_exec);
      }
    }
    if (!control.wait_held(static_cast<std::size_t>(calls)))
      throw std::runtime_error("the server never held every call");
    settle();
    result.rss_held_kib = status_kib("VmRSS");
    control.ask("synth_release");
    if (stream) {
      for (auto& s : streams) {
        asio::co_spawn(
            io,
            [&s]() -> asio::awaitable<bool> {
              for (;;) {
                auto [ec, chunk] =
                    co_await s.next(asio::experimental::as_tuple(asio::use_awaitable));
                if (ec) co_return false;
                if (!chunk) co_return s.exit_status().exit_code == 0;
              }
            },
            [&](std::exception_ptr e, bool good) {
              ++done;
              if (!e && good) ++ok;
            });
      }
    }
    while (done < calls) io.run_one();
    result.ok = ok;
  }
  return result;
}

struct StreamResult {
  long hwm_before_kib = 0;
  long hwm_after_kib = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
};

/// `fixed_window`: the runner's channel without gRPC's BDP probing and with a 1 MiB stream
/// window, so the transport reads at most that far ahead of the consumer (with probing the
/// window grows to what the link carries): what a user who caps memory over throughput
/// sets (guide.md).
StreamResult stream_sdk(std::uint64_t total, std::uint64_t chunk, bool fixed_window) {
  asio::io_context io{1};
  auto guard = asio::make_work_guard(io);
  StreamResult result;
  auto config = sdk_config();
  if (fixed_window) {
    config.channel_args["grpc.http2.bdp_probe"] = 0;
    config.channel_args["grpc.http2.lookahead_bytes"] = 1 << 20;
  }
  sandbox::RemoteRunner runner(io.get_executor(), config);
  bool done = false;
  auto drain = [&](std::uint64_t bytes) -> asio::awaitable<std::uint64_t> {
    sandbox::Command cmd(synth_argv(bytes, chunk));
    auto stream = runner.stream(cmd);
    std::uint64_t got = 0;
    for (;;) {
      auto [ec, c] = co_await stream.next(asio::experimental::as_tuple(asio::use_awaitable));
      if (ec || !c) break;
      got += c->data.size();
    }
    co_return stream.exit_status().exit_code == 0 ? got : 0;
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        if (co_await drain(16) != 16) throw std::runtime_error("warm-up stream failed");
        result.hwm_before_kib = status_kib("VmHWM");
        const auto t0 = Clock::now();
        result.bytes = co_await drain(total);
        result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        result.hwm_after_kib = status_kib("VmHWM");
      },
      [&](std::exception_ptr e) {
        done = true;
        if (e) std::rethrow_exception(e);
      });
  while (!done) io.run_one();
  return result;
}
#endif

/// The raw callback client reading one stream, for comparison: what gRPC itself holds.
struct RawStreamResult {
  long hwm_before_kib = 0;
  long hwm_after_kib = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
};

RawStreamResult stream_raw(std::uint64_t total, std::uint64_t chunk) {
  auto stub = v1::SandboxExecService::NewStub(raw_channel());
  std::atomic<int> ok{0}, done{0};
  const auto tiny = request_of(synth_argv(16, 16));
  new RawCall(*stub, tiny, ok, done);
  if (!wait_count(done, 1) || ok.load() != 1) throw std::runtime_error("warm-up call failed");
  RawStreamResult result;
  result.hwm_before_kib = status_kib("VmHWM");
  const auto request = request_of(synth_argv(total, chunk));
  const auto t0 = Clock::now();
  auto* call = new RawCall(*stub, request, ok, done);
  (void)call;  // deletes itself in OnDone
  if (!wait_count(done, 2)) throw std::runtime_error("the stream did not end");
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  result.hwm_after_kib = status_kib("VmHWM");
  result.bytes = ok.load() == 2 ? total : 0;
  return result;
}

}  // namespace

int run_memory(const std::vector<std::string>& args) {
  try {
    if (args.size() == 4 && args[0] == "stream") {
      const auto total = std::stoull(args[2]);
      const auto chunk = std::stoull(args[3]);
      long before = 0, after = 0;
      std::uint64_t bytes = 0;
      double seconds = 0;
      if (args[1] == "raw_callback") {
        auto r = stream_raw(total, chunk);
        before = r.hwm_before_kib, after = r.hwm_after_kib, bytes = r.bytes, seconds = r.seconds;
#ifdef SANDBOX_BENCH_WITH_SDK
      } else if (args[1] == "sdk_stream" || args[1] == "sdk_stream_fixed_window") {
        auto r = stream_sdk(total, chunk, args[1] == "sdk_stream_fixed_window");
        before = r.hwm_before_kib, after = r.hwm_after_kib, bytes = r.bytes, seconds = r.seconds;
#endif
      } else {
        throw std::runtime_error("unknown client " + args[1]);
      }
      if (bytes != total) throw std::runtime_error("the stream delivered a wrong byte count");
      std::printf(
          "{\"memory\": \"stream\", \"client\": \"%s\", \"total_bytes\": %llu, "
          "\"chunk_bytes\": %llu, \"hwm_before_kib\": %ld, \"hwm_kib\": %ld, "
          "\"MB_per_s\": %.1f}\n",
          args[1].c_str(), static_cast<unsigned long long>(total),
          static_cast<unsigned long long>(chunk), before, after,
          static_cast<double>(total) / seconds / 1e6);
      return 0;
    }
    if (args.size() == 3 && args[0] == "inflight") {
      const int calls = std::stoi(args[2]);
      InflightResult r;
      if (args[1] == "raw_callback") {
        r = inflight_raw(calls);
#ifdef SANDBOX_BENCH_WITH_SDK
      } else if (args[1] == "sdk_exec" || args[1] == "sdk_stream") {
        r = inflight_sdk(calls, args[1] == "sdk_stream");
#endif
      } else {
        throw std::runtime_error("unknown client " + args[1]);
      }
      if (r.ok != calls) throw std::runtime_error("some held calls failed");
      std::printf(
          "{\"memory\": \"inflight\", \"client\": \"%s\", \"calls\": %d, "
          "\"rss_before_kib\": %ld, \"rss_held_kib\": %ld, \"kib_per_call\": %.2f}\n",
          args[1].c_str(), calls, r.rss_before_kib, r.rss_held_kib,
          static_cast<double>(r.rss_held_kib - r.rss_before_kib) / calls);
      return 0;
    }
    std::fprintf(stderr,
                 "usage: --memory stream <client> <total> <chunk> | --memory inflight <client> "
                 "<calls>\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memory row failed: %s\n", e.what());
    std::printf("{\"error\": \"%s\"}\n", e.what());
    return 1;
  }
}

}  // namespace bench
