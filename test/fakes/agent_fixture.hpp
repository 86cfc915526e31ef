#pragma once
// The real agent in-process on a unix socket in a temporary workspace, with a runner on it.

#include <gtest/gtest.h>

#include <asio/io_context.hpp>
#include <fstream>
#include <memory>

#include "agent/agent_server.hpp"
#include "sandbox/sandbox.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {

class RealAgentTest : public ::testing::Test {
 protected:
  RealAgentTest() {
    agent::AgentOptions options;
    options.listen = "unix:" + (sockets_.path() / "agent.sock").string();
    options.allow_unauthenticated = true;
    options.workspace = workspace_.path();
    options.kill_grace = std::chrono::milliseconds(500);
    options.sandbox = agent::SandboxKind::none;  // tests watch the command's pids from outside
    agent_ = std::make_unique<agent::AgentServer>(options);
    RemoteRunnerConfig config;
    config.address = agent_->address();
    runner_ = std::make_unique<RemoteRunner>(io_.get_executor(), config);
  }

  /// Writes `bytes` to `name` in the workspace.
  void write_file(const std::string& name, const std::string& bytes) {
    std::ofstream(workspace_.path() / name, std::ios::binary) << bytes;
  }

  TempDir sockets_;
  TempDir workspace_;
  std::unique_ptr<agent::AgentServer> agent_;
  asio::io_context io_;
  std::unique_ptr<RemoteRunner> runner_;
};

}  // namespace sandbox::test
