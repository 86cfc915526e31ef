// The agent in-process on a unix socket, driven by a raw grpc++ stub: the fixture and the
// stream helpers its tests share.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent_server.hpp"
#include "support/raw_exec.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::agent {

using sandbox::test::exec_request;
using sandbox::test::ExecTranscript;

inline constexpr std::chrono::seconds kGroupGoneTimeout{10};

/// A fresh agent per test (options_ may be changed in SetUp before start()), a stub on it.
class AgentExecTest : public ::testing::Test {
 protected:
  AgentExecTest() {
    workspace_ = std::filesystem::canonical(dir_.path()) / "ws";
    std::filesystem::create_directory(workspace_);
    options_.listen = "unix:" + (dir_.path() / "agent.sock").string();
    options_.allow_unauthenticated = true;
    options_.workspace = workspace_;
    options_.sandbox_id = "test-box";
    options_.kill_grace = std::chrono::milliseconds(500);
    // The host's view of pids and signals: these tests watch process groups from outside.
    // Confinement has its own tests (agent_confinement_test.cpp).
    options_.sandbox = SandboxKind::none;
  }

  void SetUp() override { start(); }

  void start() {
    server_.emplace(options_);
    stub_ = sandbox::test::make_stub(server_->address());
  }

  ExecTranscript run(const v1::ExecRequest& request,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return sandbox::test::run_exec(*stub_, request, timeout);
  }
  ExecTranscript run(std::vector<std::string> command) { return run(exec_request(command)); }

  sandbox::test::TempDir dir_;
  std::filesystem::path workspace_;
  AgentOptions options_;
  std::optional<AgentServer> server_;
  std::unique_ptr<v1::SandboxExecService::Stub> stub_;
};

// Reads one message of a streaming call, or fails the test.
inline v1::ExecResponse read_one(grpc::ClientReader<v1::ExecResponse>& reader) {
  v1::ExecResponse response;
  EXPECT_TRUE(reader.Read(&response)) << "stream ended before the expected message";
  return response;
}

// Reads the `started` message of a streaming call and returns the command's pid (0 and a
// test failure when the first message is something else).
inline pid_t read_started_pid(grpc::ClientReader<v1::ExecResponse>& reader) {
  const v1::ExecResponse started = read_one(reader);
  EXPECT_EQ(started.event_case(), v1::ExecResponse::kStarted) << "first message is not started";
  return static_cast<pid_t>(started.started().pid());
}

// Reads a streaming call to its end, discarding the messages.
inline void drain(grpc::ClientReader<v1::ExecResponse>& reader) {
  v1::ExecResponse rest;
  while (reader.Read(&rest)) {
  }
}

// A streaming Exec call held open by the test (deadline 30 s).
struct OpenCall {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::ExecResponse>> reader;

  OpenCall(v1::SandboxExecService::Stub& stub, const v1::ExecRequest& request) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    reader = stub.Exec(&context, request);
  }
  // Reads to the end: the stdout bytes and the exit message (if any), then the status.
  grpc::Status finish(std::string& stdout_bytes, std::optional<v1::ExecResponse>& exit) {
    v1::ExecResponse message;
    while (reader->Read(&message)) {
      if (message.has_exit_code()) exit = message;
      if (message.event_case() == v1::ExecResponse::kStdout) stdout_bytes += message.stdout();
    }
    return reader->Finish();
  }
  grpc::Status cancel() {
    context.TryCancel();
    drain(*reader);
    return reader->Finish();
  }
};

// The order every stream must have: one started, output, one exit_code last.
inline void expect_well_formed(const ExecTranscript& t) {
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  ASSERT_GE(t.messages.size(), 2u);
  EXPECT_EQ(t.messages.front().event_case(), v1::ExecResponse::kStarted);
  ASSERT_NE(t.exit(), nullptr) << "last message is not exit_code";
  for (std::size_t i = 1; i + 1 < t.messages.size(); ++i) {
    EXPECT_TRUE(t.messages[i].event_case() == v1::ExecResponse::kStdout ||
                t.messages[i].event_case() == v1::ExecResponse::kStderr)
        << "message " << i << " is neither stdout nor stderr";
  }
}

}  // namespace sandbox::agent
