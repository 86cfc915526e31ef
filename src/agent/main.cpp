// sandbox-agent: the reference SandboxExecService agent.
#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/agent_server.hpp"
#include "agent/command_line.hpp"
#include "agent/log.hpp"
#include "sandbox/version.hpp"

namespace {

using sandbox::agent::AgentServer;
using sandbox::agent::CommandLine;

int run(const sandbox::agent::AgentOptions& options) {
  // Block SIGTERM/SIGINT before any thread exists so every thread inherits the mask and
  // only the signal thread below receives them, synchronously.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

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
    return run(command_line.options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "sandbox-agent: %s\n", error.what());
    return 1;
  }
}
