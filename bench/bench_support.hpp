#pragma once
/// @file
/// What every client row of the benchmark shares: the server's address, the workloads,
/// the raw clients' channel, and the counters the rows report.

#include <benchmark/benchmark.h>
#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/types.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

/// Workload sizes. `--short` shrinks iteration counts and the bulk size so the whole binary
/// runs in seconds (the `bench_short` CTest test); the rows stay the same.
struct Workload {
  std::uint64_t tiny_bytes = 16;
  int concurrency = 64;
  std::uint64_t bulk_bytes = std::uint64_t{64} << 20;
  benchmark::IterationCount tiny_iterations = 10000;
  benchmark::IterationCount concurrent_iterations = 800;  // batches of `concurrency` execs
  benchmark::IterationCount bulk_iterations = 10;
};

/// Set by `main` before any benchmark runs.
Workload& workload();
/// The synthetic server's address (`127.0.0.1:<port>`), set by `main`.
std::string& server_address();

/// The channel arguments the SDK sets (src/client/channel.cpp), mirrored for the raw
/// clients so both sides of every comparison run with the same transport settings.
grpc::ChannelArguments raw_channel_arguments();
/// A fresh channel to the server with `raw_channel_arguments()`.
std::shared_ptr<grpc::Channel> raw_channel();

/// CPU time of the whole process (every thread: the benchmark thread, gRPC's threads and,
/// unless the server runs in a child process, the server's share too).
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// The server's child process with `--separate_server`, else 0; set by `main`.
pid_t& server_pid();

/// CPU seconds the server process used so far when it runs in a child process
/// (`--separate_server`), else 0.
double server_process_cpu_seconds();

using Clock = std::chrono::steady_clock;

/// Per-call latencies of one benchmark run, reported as `p50_us` / `p99_us` counters.
class LatencySamples {
 public:
  void reserve(std::size_t n) { samples_.reserve(n); }
  void add(Clock::duration d) { samples_.push_back(d); }
  void report(benchmark::State& state);

 private:
  std::vector<Clock::duration> samples_;
};

/// Process (and, with `--separate_server`, server) CPU over a timed loop.
class CpuMeter {
 public:
  void start() {
    process_ = process_cpu_seconds();
    server_ = server_process_cpu_seconds();
  }
  /// Sets `cpu_us_per_<unit>` (process CPU, see `process_cpu_seconds`) and, when the server
  /// runs in a child process, `server_cpu_us_per_<unit>`.
  void report(benchmark::State& state, double units, const char* unit);

 private:
  double process_ = 0;
  double server_ = 0;
};

/// Sets bytes_per_second and the `MB_per_s` counter: 10^6 bytes per second of the timed
/// loop's wall-clock `seconds`.
void report_bulk(benchmark::State& state, std::uint64_t bytes_per_iteration, double seconds);

}  // namespace bench
