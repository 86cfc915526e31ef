// sandbox-agent: the reference SandboxExecService agent.
#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "agent/agent_server.hpp"
#include "agent/command_line.hpp"
#include "agent/log.hpp"
#include "common/malloc_tuning.hpp"
#include "sandbox/version.hpp"
#ifdef SANDBOX_AGENT_WITH_OPENTELEMETRY
#include "sandbox/opentelemetry.hpp"
#endif

namespace {

using sandbox::agent::AgentServer;
using sandbox::agent::CommandLine;

#ifdef SANDBOX_AGENT_WITH_OPENTELEMETRY
using Tracing = sandbox::otel::OtlpExport;
#else
struct Tracing {};
#endif

// The OTLP pipeline of `--otlp-endpoint`, else of the environment's endpoint; null: none.
std::unique_ptr<Tracing> start_tracing(const std::string& flag_endpoint,
                                       sandbox::agent::AgentOptions& options) {
#ifdef SANDBOX_AGENT_WITH_OPENTELEMETRY
  std::string endpoint =
      flag_endpoint.empty() ? sandbox::otel::otlp_endpoint_from_environment() : flag_endpoint;
  if (endpoint.empty()) return nullptr;
  auto tracing = std::make_unique<Tracing>(endpoint, "sandbox-agent");
  options.tracer = tracing->tracer();
  sandbox::agent::log("info", "agent.tracing", {{"otlp_endpoint", endpoint}});
  return tracing;
#else
  (void)options;
  if (flag_endpoint.empty() && std::getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != nullptr) {
    sandbox::agent::log(
        "warning", "agent.tracing_unavailable",
        {{"reason", "built without OpenTelemetry; OTEL_EXPORTER_OTLP_ENDPOINT ignored"}});
  }
  if (!flag_endpoint.empty()) {
    throw std::runtime_error(
        "--otlp-endpoint: this sandbox-agent was built without OpenTelemetry "
        "(SANDBOX_WITH_OPENTELEMETRY=OFF)");
  }
  return nullptr;
#endif
}

int run(sandbox::agent::AgentOptions options, const std::string& otlp_endpoint) {
  // Block SIGTERM/SIGINT before any thread exists so every thread inherits the mask and
  // only the signal thread below receives them, synchronously.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Declared before the server: spans the server ends while shutting down are still
  // exported, then flushed when this goes.
  const auto tracing = start_tracing(otlp_endpoint, options);
  AgentServer server(options);
  std::printf("listening on %s\n", server.address().c_str());
  std::fflush(stdout);

  std::thread signal_thread([&server, stop_signals] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    sandbox::agent::log("info", "agent.signal", {{"signal", std::to_string(signal_number)}});
    server.shutdown();
  });
  server.wait();
  signal_thread.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sandbox::tune_malloc_for_streaming();
  std::signal(SIGPIPE, SIG_IGN);
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  CommandLine command_line;
  try {
    command_line = sandbox::agent::parse_command_line(args);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "sandbox-agent: %s\n", error.what());
    return 2;
  }
  switch (command_line.action) {
    case CommandLine::Action::help:
      std::fputs(sandbox::agent::usage().c_str(), stdout);
      return 0;
    case CommandLine::Action::version:
      std::printf("sandbox-agent %s\n", SANDBOX_VERSION_STRING);
      return 0;
    case CommandLine::Action::run:
      break;
  }
  try {
    return run(std::move(command_line.options), command_line.otlp_endpoint);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "sandbox-agent: %s\n", error.what());
    return 1;
  }
}
