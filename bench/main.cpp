// sandbox_bench: the SDK against raw grpc++ clients, all talking to one synthetic server.
//
//   sandbox_bench [--short] [--separate_server | --pin] [Google Benchmark flags]
//
//   --short            every row, few iterations, 8 MiB bulk transfers (seconds; CTest)
//   --separate_server  run the server in a child process, so `cpu_us_per_*` is the client's
//                      CPU alone and `server_cpu_us_per_*` the server's
//   --pin              --separate_server, with the server on CPU 1 and the client on CPU 0:
//                      a core each, as a client and a remote agent have (docs/performance.md);
//                      without CPUs 0 and 1 to use, the same as --separate_server
//   --memory ...       one memory row in this process, the server in a child (memory.cpp)
//   --iterations=N     every row runs N iterations (for instruction counts under callgrind:
//                      the difference of two runs with different N is per-iteration work)
//
// Rows are `<workload>/<client>`; bench/ratios.py turns a JSON run into SDK/raw ratios.

#include <benchmark/benchmark.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "rows.hpp"
#include "synth_server.hpp"

namespace {

using benchmark::State;

/// Whether this process may run on CPUs 0 and 1 (what `--pin` needs).
bool can_pin() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  return sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_ISSET(0, &allowed) &&
         CPU_ISSET(1, &allowed);
}

/// Pins the calling process (every thread it starts later) to CPU `cpu`; false if the
/// machine has no such CPU or refuses.
bool pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

/// The server in a child process, forked before this process touches gRPC (gRPC does not
/// survive a fork). The child lives until the parent closes the lifeline pipe or dies.
/// `pin`: the server runs on CPU 1 and this process on CPU 0.
class ServerProcess {
 public:
  explicit ServerProcess(bool pin = false) {
    int address_pipe[2];
    int lifeline[2];
    if (pipe(address_pipe) != 0 || pipe(lifeline) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (pin && !pin_to_cpu(1)) _exit(1);
      close(address_pipe[0]);
      close(lifeline[1]);
      {
        bench::SynthServer server;
        const auto& address = server.address();
        if (write(address_pipe[1], address.data(), address.size()) !=
            static_cast<ssize_t>(address.size())) {
          _exit(1);
        }
        close(address_pipe[1]);
        char byte = 0;
        while (read(lifeline[0], &byte, 1) != 0 && errno == EINTR) {
        }
      }
      _exit(0);
    }
    close(address_pipe[1]);
    close(lifeline[0]);
    lifeline_ = lifeline[1];
    if (pin && !pin_to_cpu(0)) throw std::runtime_error("cannot pin this process to CPU 0");
    char buffer[128];
    ssize_t n = 0;
    while ((n = read(address_pipe[0], buffer, sizeof buffer)) > 0)
      address_.append(buffer, static_cast<size_t>(n));
    close(address_pipe[0]);
    if (address_.empty()) throw std::runtime_error("the server process did not start");
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess() {
    close(lifeline_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] const std::string& address() const noexcept { return address_; }

 private:
  pid_t pid_ = 0;
  int lifeline_ = -1;
  std::string address_;
};

template <typename Body>
benchmark::internal::Benchmark* row(const std::string& name, Body body,
                                    benchmark::IterationCount iterations,
                                    benchmark::TimeUnit unit) {
  return benchmark::RegisterBenchmark(name.c_str(), body)
      ->Iterations(iterations)
      ->UseRealTime()
      ->Unit(unit);
}

void register_rows() {
  const auto& w = bench::workload();
  using benchmark::kMicrosecond;
  using benchmark::kMillisecond;

  row("tiny_exec/raw_callback", bench::tiny_raw_callback, w.tiny_iterations, kMicrosecond);
  row("tiny_exec/raw_sync", bench::tiny_raw_sync, w.tiny_iterations, kMicrosecond);
#ifdef SANDBOX_BENCH_WITH_SDK
  row("tiny_exec/sdk_exec", bench::tiny_sdk_exec, w.tiny_iterations, kMicrosecond);
  row("tiny_exec/sdk_stream", bench::tiny_sdk_stream, w.tiny_iterations, kMicrosecond);
  row("tiny_exec/sdk_exec_noop_tracer", bench::tiny_sdk_exec_noop_tracer, w.tiny_iterations,
      kMicrosecond);
#ifdef SANDBOX_BENCH_WITH_OTEL
  row("tiny_exec/sdk_exec_otel_tracer", bench::tiny_sdk_exec_otel_tracer, w.tiny_iterations,
      kMicrosecond);
#endif
#endif

  const std::string concurrent = "concurrent" + std::to_string(w.concurrency) + "_tiny/";
  row(concurrent + "raw_callback", bench::concurrent_raw_callback, w.concurrent_iterations,
      kMillisecond);
#ifdef SANDBOX_BENCH_WITH_SDK
  row(concurrent + "sdk_exec", bench::concurrent_sdk_exec, w.concurrent_iterations, kMillisecond);
  row(concurrent + "sdk_stream", bench::concurrent_sdk_stream, w.concurrent_iterations,
      kMillisecond);
  row(concurrent + "sdk_exec_callback", bench::concurrent_sdk_exec_callback,
      w.concurrent_iterations, kMillisecond);
#endif

  for (const std::uint64_t chunk : {std::uint64_t{4} << 10, std::uint64_t{64} << 10}) {
    const std::string prefix = "bulk_" + std::to_string(chunk >> 10) + "KiB_chunks/";
    row(
        prefix + "raw_callback", [chunk](State& s) { bench::bulk_raw_callback(s, chunk, false); },
        w.bulk_iterations, kMillisecond);
    row(
        prefix + "raw_callback_collect",
        [chunk](State& s) { bench::bulk_raw_callback(s, chunk, true); }, w.bulk_iterations,
        kMillisecond);
    row(
        prefix + "raw_sync", [chunk](State& s) { bench::bulk_raw_sync(s, chunk); },
        w.bulk_iterations, kMillisecond);
#ifdef SANDBOX_BENCH_WITH_SDK
    row(
        prefix + "sdk_exec", [chunk](State& s) { bench::bulk_sdk_exec(s, chunk); },
        w.bulk_iterations, kMillisecond);
    row(
        prefix + "sdk_stream", [chunk](State& s) { bench::bulk_sdk_stream(s, chunk); },
        w.bulk_iterations, kMillisecond);
#endif
  }
}

}  // namespace

namespace bench {
int run_memory(const std::vector<std::string>& args);
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--memory") == 0) {
    // Forked before this process touches gRPC; only the client's memory is measured here.
    ServerProcess server_process;
    bench::server_address() = server_process.address();
    bench::server_pid() = server_process.pid();
    return bench::run_memory(std::vector<std::string>(argv + 2, argv + argc));
  }
  bool short_mode = false;
  bool separate_server = false;
  bool pin = false;
  int iterations = 0;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--short") == 0) {
      short_mode = true;
    } else if (std::strcmp(argv[i], "--separate_server") == 0) {
      separate_server = true;
    } else if (std::strcmp(argv[i], "--pin") == 0) {
      pin = separate_server = true;
    } else if (std::strncmp(argv[i], "--iterations=", 13) == 0) {
      iterations = std::atoi(argv[i] + 13);
    } else {
      args.push_back(argv[i]);
    }
  }
  auto& w = bench::workload();
  if (short_mode) {
    w.bulk_bytes = std::uint64_t{8} << 20;
    w.tiny_iterations = 200;
    w.concurrent_iterations = 10;
    w.bulk_iterations = 1;
  }
  if (iterations > 0) {
    w.tiny_iterations = w.concurrent_iterations = w.bulk_iterations = iterations;
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

  // Without two CPUs to give away, --pin is only --separate_server (the context says so).
  pin = pin && can_pin();
  std::unique_ptr<ServerProcess> server_process;
  std::unique_ptr<bench::SynthServer> server;
  if (separate_server) {
    server_process = std::make_unique<ServerProcess>(pin);
    bench::server_address() = server_process->address();
    bench::server_pid() = server_process->pid();
  } else {
    server = std::make_unique<bench::SynthServer>();
    bench::server_address() = server->address();
  }
  benchmark::AddCustomContext("server", pin ? "child process, CPU 1; client CPU 0"
                                            : (separate_server ? "child process" : "in-process"));
  benchmark::AddCustomContext("mode", short_mode ? "short" : "full");
  benchmark::AddCustomContext("bulk_bytes", std::to_string(w.bulk_bytes));
  benchmark::AddCustomContext("tiny_bytes", std::to_string(w.tiny_bytes));
  benchmark::AddCustomContext("concurrency", std::to_string(w.concurrency));

  register_rows();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
