#pragma once
// The reference agent in this process (unconfined, on a unix socket) with a FaultProxy (TCP)
// in front of it, and a runner on the proxy: what the SDK's fault tests drive.

#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "agent/agent_server.hpp"
#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"
#include "support/fault_proxy.hpp"
#include "support/fifo_gate.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {

/// A base of test fixtures. Members are destroyed runner first, then the io_context, the
/// proxy and the agent: no call outlives what it runs on.
class ProxiedAgent {
 protected:
  /// Starts the agent (unauthenticated, `--sandbox none` so tests can watch the command's
  /// pids, kill grace 500 ms; `tune` may change any option first), the proxy unless
  /// `via_proxy` is false, and the runner with `config` pointed at the proxy (or the agent).
  void start_agent(RemoteRunnerConfig config,
                   const std::function<void(agent::AgentOptions&)>& tune = {},
                   bool via_proxy = true) {
    agent::AgentOptions options;
    options.listen = "unix:" + (sockets_.path() / "agent.sock").string();
    options.allow_unauthenticated = true;
    options.workspace = workspace_.path();
    options.kill_grace = std::chrono::milliseconds(500);
    options.sandbox = agent::SandboxKind::none;
    if (tune) tune(options);
    agent_ = std::make_unique<agent::AgentServer>(options);
    if (via_proxy) proxy_ = std::make_unique<FaultProxy>(agent_->address());
    config.address = via_proxy ? proxy_->address() : agent_->address();
    runner_ = std::make_unique<RemoteRunner>(io_.get_executor(), config);
  }

  /// The next chunk of `stream`, or a test failure naming what did not arrive.
  std::string next_data(ExecStream& stream) {
    auto [ec, chunk] =
        run_bounded(io_, stream.next(asio::experimental::as_tuple(asio::use_awaitable)),
                    std::chrono::seconds(10));
    EXPECT_FALSE(ec) << "next() failed: " << ec.message() << ": " << stream.error_message();
    EXPECT_TRUE(chunk.has_value()) << "the stream ended before the expected chunk";
    return chunk ? chunk->data : std::string();
  }

  /// How many times a command that appends a line to the workspace's `runs` ran.
  int runs() { return count_lines(workspace_.path() / "runs"); }

  TempDir sockets_;
  TempDir workspace_;
  std::unique_ptr<agent::AgentServer> agent_;
  std::unique_ptr<FaultProxy> proxy_;
  asio::io_context io_;
  std::unique_ptr<RemoteRunner> runner_;
};

}  // namespace sandbox::test
