// What every example does around its own code: find its agent (the address on its command
// line, else a private local agent, as sandbox-run does), run, and report errors.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "cli/local_agent.hpp"
#include "sandbox/sandbox.hpp"

namespace example {

/// Points `config` at `address` when one is given (returns null); otherwise starts a private
/// `sandbox-agent` (next to this program or on PATH) with `extra_flags`, on a unix socket in
/// a private directory, with the current directory as its workspace, and returns it: it stops
/// when destroyed, so keep it until the runner is gone.
/// @throws std::runtime_error when no address is given and no sandbox-agent is found.
inline std::unique_ptr<sandbox::cli::LocalAgent> use_agent(
    const char* address, sandbox::RemoteRunnerConfig& config,
    std::vector<std::string> extra_flags = {}) {
  if (address != nullptr) {
    config.address = address;
    return nullptr;
  }
  auto binary = sandbox::cli::find_agent_binary();
  if (!binary) {
    throw std::runtime_error("no sandbox-agent next to this program or on PATH; pass an address");
  }
  auto agent =
      sandbox::cli::LocalAgent::start({.binary = *binary,
                                       .workspace = std::filesystem::current_path().string(),
                                       .extra_flags = std::move(extra_flags)});
  config.address = agent->address();
  return agent;
}

/// Runs `task` on `io` to its end and returns its value; its exception leaves io.run() and
/// is rethrown here.
inline int run_to_end(asio::io_context& io, asio::awaitable<int> task) {
  int status = 1;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr error, int result) {
    if (error) std::rethrow_exception(error);
    status = result;
  });
  io.run();
  return status;
}

/// main()'s report of an error that ended the example: `<program>: <code>: <message>`, and
/// the status to exit with.
inline int report(const char* program, const std::exception& error) {
  if (const auto* system = dynamic_cast<const std::system_error*>(&error)) {
    std::cerr << program << ": " << sandbox::error_name(system->code()) << ": " << error.what()
              << "\n";
    return 1;
  }
  std::cerr << program << ": " << error.what() << "\n";
  return 2;
}

}  // namespace example
