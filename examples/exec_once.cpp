// Runs one command on a sandbox agent with `co_await runner.exec(...)` and prints the
// collected result.
//
//   exec_once [ADDRESS]
//
// Without ADDRESS, a private local agent is started for the run (as `sandbox-run` does).

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "example_agent.hpp"
#include "sandbox/sandbox.hpp"

namespace {

asio::awaitable<int> exec_once(sandbox::RemoteRunner& runner) {
  sandbox::Command command{"sh", "-c", "echo hello from the sandbox; echo a note >&2; exit 7"};
  command.timeout = std::chrono::seconds(30);
  // A non-zero exit is a result, not an error; errors (unreachable agent...) throw here.
  sandbox::ExecResult result = co_await runner.exec(std::move(command));
  std::cout << "exec id:     " << result.info.exec_id << "\n"
            << "exit code:   " << result.exit_code() << "\n"
            << "stdout:      " << result.stdout_data << "stderr:      " << result.stderr_data
            << "elapsed:     " << result.elapsed.count() << " us\n";
  co_return result.exit_code() == 7 && result.stdout_data == "hello from the sandbox\n" ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    sandbox::RemoteRunnerConfig config;
    auto agent = example::use_agent(argc > 1 ? argv[1] : nullptr, config);
    asio::io_context io;
    sandbox::RemoteRunner runner(io.get_executor(), config);
    return example::run_to_end(io, exec_once(runner));
  } catch (const std::exception& e) {
    return example::report("exec_once", e);
  }
}
