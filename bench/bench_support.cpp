#include "bench_support.hpp"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace bench {

Workload& workload() {
  static Workload w;
  return w;
}

std::string& server_address() {
  static std::string address;
  return address;
}

pid_t& server_pid() {
  static pid_t pid = 0;
  return pid;
}

grpc::ChannelArguments raw_channel_arguments() {
  grpc::ChannelArguments args;
  // Design §6: BDP probing on; 256 KiB TCP reads roughly double the small-message rate.
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 1);
  args.SetInt("grpc.experimental.tcp_read_chunk_size", 256 * 1024);
  // What the SDK sets besides (src/client/channel.cpp): its receive limit, no retries for
  // Exec, no service config from DNS.
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  return args;
}

std::shared_ptr<grpc::Channel> raw_channel() {
  return grpc::CreateCustomChannel(server_address(), grpc::InsecureChannelCredentials(),
                                   raw_channel_arguments());
}

double server_process_cpu_seconds() {
  if (server_pid() == 0) return 0;
  // /proc/<pid>/stat: fields 14 and 15 are utime and stime of all threads, in clock ticks.
  std::ifstream in("/proc/" + std::to_string(server_pid()) + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void LatencySamples::report(benchmark::State& state) {
  if (samples_.empty()) return;
  std::sort(samples_.begin(), samples_.end());
  auto at = [this](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(samples_.size() - 1) + 0.5);
    return std::chrono::duration<double, std::micro>(samples_[i]).count();
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
}

void CpuMeter::report(benchmark::State& state, double units, const char* unit) {
  if (units <= 0) return;
  const double process = process_cpu_seconds() - process_;
  state.counters[std::string("cpu_us_per_") + unit] = process * 1e6 / units;
  if (server_pid() != 0) {
    const double server = server_process_cpu_seconds() - server_;
    state.counters[std::string("server_cpu_us_per_") + unit] = server * 1e6 / units;
  }
}

void report_bulk(benchmark::State& state, std::uint64_t bytes_per_iteration, double seconds) {
  const auto bytes =
      static_cast<double>(state.iterations()) * static_cast<double>(bytes_per_iteration);
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  if (seconds > 0) state.counters["MB_per_s"] = bytes / seconds / 1e6;
}

}  // namespace bench
