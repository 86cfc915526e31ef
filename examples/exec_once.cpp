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

#include "cli/local_agent.hpp"
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
    std::unique_ptr<sandbox::cli::LocalAgent> agent;
    sandbox::RemoteRunnerConfig config;
    if (argc > 1) {
      config.address = argv[1];
    } else {
      auto binary = sandbox::cli::find_agent_binary();
      if (!binary) {
        std::cerr << "exec_once: no sandbox-agent next to this program or on PATH; pass an "
                     "address\n";
        return 2;
      }
      agent = sandbox::cli::LocalAgent::start(
          {.binary = *binary, .workspace = std::filesystem::current_path().string()});
      config.address = agent->address();
    }

    asio::io_context io;
    sandbox::RemoteRunner runner(io.get_executor(), config);
    int status = 1;
    asio::co_spawn(io, exec_once(runner), [&](std::exception_ptr error, int result) {
      if (error) std::rethrow_exception(error);  // out of io.run(), into the catch below
      status = result;
    });
    io.run();
    return status;
  } catch (const std::system_error& e) {
    std::cerr << "exec_once: " << sandbox::error_name(e.code()) << ": " << e.what() << "\n";
    return 1;
  }
}
