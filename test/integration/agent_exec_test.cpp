// The agent in-process on a unix socket, driven by a raw grpc++ stub.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <grpcpp/generic/generic_stub.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "agent/agent_server.hpp"
#include "integration/agent_exec_fixture.hpp"
#include "support/process_watch.hpp"
#include "support/raw_exec.hpp"
#include "support/temp_dir.hpp"
#include "support/workdir_corpus.hpp"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST_F(AgentExecTest, StartedFirstExitLastNothingAfter) {
  ExecTranscript t = run({"sh", "-c", "echo hello; echo oops >&2; exit 3"});
  expect_well_formed(t);
  const v1::Started& started = t.messages.front().started();
  EXPECT_EQ(started.exec_id().size(), 36u);
  EXPECT_EQ(started.sandbox_id(), "test-box");
  EXPECT_EQ(started.effective_profile(), "none");
  EXPECT_EQ(started.image(), "");
  EXPECT_GT(started.pid(), 0);
  EXPECT_EQ(t.stdout_bytes, "hello\n");
  EXPECT_EQ(t.stderr_bytes, "oops\n");
  EXPECT_EQ(t.exit()->exit_code(), 3);
  EXPECT_EQ(t.exit()->exit().signal(), 0);
  EXPECT_FALSE(t.exit()->exit().timed_out());
  EXPECT_EQ(t.exit()->exit().stdout_bytes(), 6u);
  EXPECT_EQ(t.exit()->exit().stderr_bytes(), 5u);
  EXPECT_EQ(t.exit()->exit().effective_profile(), "none");
}

TEST_F(AgentExecTest, ClientExecIdIsEchoedInStarted) {
  v1::ExecRequest request = exec_request({"true"});
  request.set_exec_id("my-exec-1");
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.messages.front().started().exec_id(), "my-exec-1");
}

TEST_F(AgentExecTest, AllByteValuesArriveByteExactWithPerStreamOffsets) {
  std::string up;
  std::string down;
  std::string format_up;
  std::string format_down;
  for (int i = 0; i < 256; ++i) {
    up += static_cast<char>(i);
    down += static_cast<char>(255 - i);
    char octal[8];
    std::snprintf(octal, sizeof octal, "\\%03o", i);
    format_up += octal;
    std::snprintf(octal, sizeof octal, "\\%03o", 255 - i);
    format_down += octal;
  }
  // Many rounds so that each stream spans several reads and messages.
  ExecTranscript t = run({"sh", "-c",
                          "i=0; while [ $i -lt 200 ]; do printf \"$1\"; printf \"$2\" >&2; "
                          "i=$((i+1)); done",
                          "sh", format_up, format_down});
  expect_well_formed(t);
  std::string expected_out;
  std::string expected_err;
  for (int i = 0; i < 200; ++i) {
    expected_out += up;
    expected_err += down;
  }
  EXPECT_TRUE(t.stdout_bytes == expected_out) << "stdout differs";
  EXPECT_TRUE(t.stderr_bytes == expected_err) << "stderr differs";
  std::uint64_t out_offset = 0;
  std::uint64_t err_offset = 0;
  for (const v1::ExecResponse& m : t.messages) {
    if (m.event_case() == v1::ExecResponse::kStdout) {
      EXPECT_EQ(m.offset(), out_offset);
      out_offset += m.stdout().size();
    } else if (m.event_case() == v1::ExecResponse::kStderr) {
      EXPECT_EQ(m.offset(), err_offset);
      err_offset += m.stderr().size();
    }
  }
  EXPECT_EQ(t.exit()->exit().stdout_bytes(), expected_out.size());
  EXPECT_EQ(t.exit()->exit().stderr_bytes(), expected_err.size());
}

TEST_F(AgentExecTest, LargeOutputIsCoalescedIntoBoundedChunks) {
  ExecTranscript t = run({"head", "-c", "5000000", "/dev/zero"});
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes.size(), 5000000u);
  for (const v1::ExecResponse& m : t.messages) {
    EXPECT_LE(m.stdout().size(), options_.max_chunk_bytes);
  }
  // Coalesced: far fewer messages than pipe reads of 4 KiB would give.
  EXPECT_LT(t.messages.size(), 5000000u / 4096);
}

TEST_F(AgentExecTest, LineBeforeSleepArrivesWhileTheProcessStillRuns) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  auto reader = stub_->Exec(&context, exec_request({"sh", "-c", "echo ready; exec sleep 60"}));
  const v1::ExecResponse started = read_one(*reader);
  ASSERT_EQ(started.event_case(), v1::ExecResponse::kStarted);
  const v1::ExecResponse line = read_one(*reader);
  EXPECT_EQ(line.stdout(), "ready\n");
  EXPECT_TRUE(sandbox::test::process_alive(static_cast<pid_t>(started.started().pid())))
      << "the line arrived only after the process ended";
  context.TryCancel();
  drain(*reader);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(AgentExecTest, NonZeroExitIsAResult) {
  ExecTranscript t = run({"sh", "-c", "exit 42"});
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 42);
  EXPECT_EQ(t.exit()->exit().signal(), 0);
}

TEST_F(AgentExecTest, SignalDeathIs128PlusSignal) {
  ExecTranscript t = run({"sh", "-c", "kill -9 $$"});
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 137);
  EXPECT_EQ(t.exit()->exit().signal(), 9);
}

TEST_F(AgentExecTest, CommandNotFoundExits127WithAMessage) {
  ExecTranscript t = run({"no-such-command-for-sure"});
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 127);
  EXPECT_EQ(t.stderr_bytes, "sandbox-agent: no-such-command-for-sure: command not found\n");
  EXPECT_EQ(t.messages.front().started().pid(), 0);
}

TEST_F(AgentExecTest, NotExecutableExits126WithAMessage) {
  std::ofstream(workspace_ / "script.sh") << "#!/bin/sh\necho hi\n";
  ::chmod((workspace_ / "script.sh").c_str(), 0644);
  ExecTranscript t = run({"./script.sh"});
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 126);
  EXPECT_EQ(t.stderr_bytes, "sandbox-agent: ./script.sh: Permission denied\n");
}

TEST_F(AgentExecTest, ProgramIsResolvedThroughTheRequestPath) {
  fs::create_directory(workspace_ / "bin");
  std::ofstream(workspace_ / "bin" / "hello-tool") << "#!/bin/sh\necho from-tool\n";
  ::chmod((workspace_ / "bin" / "hello-tool").c_str(), 0755);
  v1::ExecRequest request = exec_request({"hello-tool"});
  (*request.mutable_env())["PATH"] = (workspace_ / "bin").string() + ":/usr/bin:/bin";
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "from-tool\n");
}

TEST_F(AgentExecTest, StdinRoundTrip) {
  v1::ExecRequest request = exec_request({"cat"});
  const std::string input("hello\0world\n", 12);
  request.set_stdin(input);
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, input);
}

TEST_F(AgentExecTest, LargeStdinRoundTrip) {
  v1::ExecRequest request = exec_request({"cat"});
  std::string input(1 << 20, '\0');
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>(i * 7);
  request.set_stdin(input);
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_TRUE(t.stdout_bytes == input);
}

TEST_F(AgentExecTest, UnreadStdinIsFine) {
  v1::ExecRequest request = exec_request({"true"});
  request.set_stdin(std::string(1 << 20, 'x'));
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 0);
}

TEST_F(AgentExecTest, ChildEnvironmentIsCleanBaseOverlaidWithTheRequest) {
  ::setenv("SANDBOX_AGENT_TEST_ONLY_IN_AGENT", "leak", 1);
  v1::ExecRequest request = exec_request({"env"});
  (*request.mutable_env())["FOO"] = "bar";
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_THAT(t.stdout_bytes, HasSubstr("FOO=bar\n"));
  EXPECT_THAT(t.stdout_bytes, HasSubstr("HOME=" + workspace_.string() + "\n"));
  EXPECT_THAT(t.stdout_bytes, HasSubstr("LANG=C.UTF-8\n"));
  EXPECT_THAT(t.stdout_bytes, ::testing::Not(HasSubstr("SANDBOX_AGENT_TEST_ONLY_IN_AGENT")));
}

TEST_F(AgentExecTest, RelativeWorkdirIsUnderTheWorkspace) {
  fs::create_directory(workspace_ / "sub");
  v1::ExecRequest request = exec_request({"pwd"});
  request.set_workdir("sub");
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, (workspace_ / "sub").string() + "\n");
}

TEST_F(AgentExecTest, TimeoutReports124TimedOutWithPartialOutput) {
  v1::ExecRequest request = exec_request({"sh", "-c", "echo partial; sleep 60 & sleep 60"});
  request.set_timeout_ms(300);
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "partial\n");
  EXPECT_EQ(t.exit()->exit_code(), 124);
  EXPECT_TRUE(t.exit()->exit().timed_out());
  const pid_t pid = static_cast<pid_t>(t.messages.front().started().pid());
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, kGroupGoneTimeout))
      << "process group " << pid << " still has live members after the timeout";
}

TEST_F(AgentExecTest, ClientCancelKillsTheProcessGroup) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  auto reader = stub_->Exec(&context, exec_request({"sh", "-c", "sleep 300 & sleep 300"}));
  const pid_t pid = read_started_pid(*reader);
  ASSERT_NE(pid, 0);
  context.TryCancel();
  drain(*reader);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, kGroupGoneTimeout))
      << "process group " << pid << " still has live members after cancel";
  server_->shutdown();  // returns once every session has reaped its child
  EXPECT_FALSE(sandbox::test::process_exists(pid)) << "the agent did not reap " << pid;
}

TEST_F(AgentExecTest, ClientDeadlineKillsTheProcessGroup) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 2s);
  auto reader = stub_->Exec(&context, exec_request({"sh", "-c", "sleep 300 & sleep 300"}));
  const pid_t pid = read_started_pid(*reader);
  ASSERT_NE(pid, 0);
  drain(*reader);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, kGroupGoneTimeout))
      << "process group " << pid << " still has live members after the deadline";
}

TEST_F(AgentExecTest, FinishedCommandsAreReaped) {
  for (int i = 0; i < 5; ++i) {
    ExecTranscript t = run({"true"});
    expect_well_formed(t);
    const pid_t pid = static_cast<pid_t>(t.messages.front().started().pid());
    // exit_code is sent only after waitpid: the pid must be gone, not a zombie.
    EXPECT_FALSE(sandbox::test::process_exists(pid)) << "pid " << pid << " was not reaped";
  }
}

TEST_F(AgentExecTest, BackgroundChildrenDoNotHoldTheStreamOpen) {
  // The background sleep inherits stdout; the agent kills the group when sh exits.
  ExecTranscript t = run(exec_request({"sh", "-c", "sleep 300 & echo done"}), 20s);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "done\n");
  EXPECT_EQ(t.exit()->exit_code(), 0);
}

TEST_F(AgentExecTest, SlowClientBlocksTheCommandInsteadOfBufferingWithoutBound) {
  constexpr std::size_t kOutputBytes = 64u << 20;  // far more than every buffer on the way
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 60s);
  auto reader = stub_->Exec(
      &context, exec_request({"head", "-c", std::to_string(kOutputBytes), "/dev/zero"}));
  const pid_t pid = read_started_pid(*reader);
  ASSERT_NE(pid, 0);
  // Unthrottled, head writes 64 MiB in well under a second; with nobody reading, it must
  // still be blocked on its full pipe after that long.
  EXPECT_FALSE(sandbox::test::wait_until_not_alive(pid, 1s))
      << "the command finished although the client read nothing: output was buffered";
  std::size_t received = 0;
  v1::ExecResponse response;
  while (reader->Read(&response)) received += response.stdout().size();
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(received, kOutputBytes);
}

TEST_F(AgentExecTest, MaxOutputBytesTruncatesAndReportsTrueTotals) {
  v1::ExecRequest request =
      exec_request({"sh", "-c", "head -c 100000 /dev/zero; head -c 10 /dev/zero >&2"});
  request.set_max_output_bytes(1000);
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes.size(), 1000u);
  EXPECT_EQ(t.stderr_bytes.size(), 10u);
  EXPECT_TRUE(t.exit()->exit().stdout_truncated());
  EXPECT_FALSE(t.exit()->exit().stderr_truncated());
  EXPECT_EQ(t.exit()->exit().stdout_bytes(), 100000u);
  EXPECT_EQ(t.exit()->exit().stderr_bytes(), 10u);
}

TEST_F(AgentExecTest, ValidationErrorsNameTheFieldAndRunNothing) {
  struct Case {
    v1::ExecRequest request;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({exec_request({}), "command: must not be empty"});
  cases.push_back(
      {exec_request({"echo", std::string("a\0b", 3)}), "command[1]: contains a NUL byte"});
  v1::ExecRequest secret = exec_request({"env"});
  (*secret.mutable_env())["API_KEY"] = "secret://prod/key";
  cases.push_back(
      {secret,
       "env[API_KEY]: secret references need a secret store on the agent (not configured)"});
  v1::ExecRequest escape = exec_request({"pwd"});
  escape.set_workdir("../..");
  cases.push_back({escape, "workdir: must be inside the workspace"});
  for (const Case& c : cases) {
    ExecTranscript t = run(c.request);
    EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_EQ(t.status.error_message(), c.message);
    EXPECT_TRUE(t.messages.empty()) << c.message;
  }
}

TEST_F(AgentExecTest, EveryWorkdirOfTheEscapeCorpusIsRefusedAndRunsNothing) {
  const std::vector<std::string> corpus = sandbox::test::escaping_workdirs(workspace_);
  ASSERT_GE(corpus.size(), 30u);
  for (const std::string& workdir : corpus) {
    v1::ExecRequest request =
        exec_request({"sh", "-c", "echo ran >> " + (workspace_ / "ran").string()});
    request.set_workdir(workdir);
    ExecTranscript t = run(request);
    EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "accepted: " << workdir;
    EXPECT_THAT(t.status.error_message(), ::testing::StartsWith("workdir: ")) << workdir;
    EXPECT_TRUE(t.messages.empty()) << workdir;
  }
  EXPECT_FALSE(fs::exists(workspace_ / "ran")) << "a refused request ran its command";
}

TEST_F(AgentExecTest, UnenforceableProfileFailsClosed) {
  v1::ExecRequest request = exec_request({"true"});
  request.set_profile("strict");
  ExecTranscript t = run(request);
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(t.messages.empty());
}

TEST_F(AgentExecTest, ShutdownCancelsRunningExecsAndKillsTheirGroups) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  auto reader = stub_->Exec(&context, exec_request({"sh", "-c", "sleep 300 & sleep 300"}));
  const pid_t pid = read_started_pid(*reader);
  ASSERT_NE(pid, 0);
  server_->shutdown();
  EXPECT_FALSE(sandbox::test::process_exists(pid)) << "shutdown returned before reaping " << pid;
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, kGroupGoneTimeout));
  drain(*reader);
  EXPECT_FALSE(reader->Finish().ok());
  server_->shutdown();  // idempotent
}

// grpc.health.v1.Health/Check by hand (no health.proto ships with Debian's grpc++):
// HealthCheckRequest{service} is field 1, HealthCheckResponse{status} is field 1 (1 = SERVING).
grpc::Status health_check(const std::string& address, const std::string& service,
                          std::string& response_bytes) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  std::string request;
  if (!service.empty()) {
    request.push_back('\x0a');
    request.push_back(static_cast<char>(service.size()));
    request += service;
  }
  grpc::Slice slice(request);
  const grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_buffer,
                 &response, [&done](grpc::Status status) { done.set_value(std::move(status)); });
  grpc::Status status = done.get_future().get();
  std::vector<grpc::Slice> slices;
  response_bytes.clear();
  if (status.ok() && response.Dump(&slices).ok()) {
    for (const grpc::Slice& piece : slices) {
      response_bytes.append(reinterpret_cast<const char*>(piece.begin()), piece.size());
    }
  }
  return status;
}

TEST_F(AgentExecTest, HealthServiceReportsServingForTheAgentAndItsService) {
  const std::string serving("\x08\x01", 2);
  std::string response;
  ASSERT_TRUE(health_check(server_->address(), "", response).ok());
  EXPECT_EQ(response, serving);
  ASSERT_TRUE(health_check(server_->address(), "sandbox.v1.SandboxExecService", response).ok());
  EXPECT_EQ(response, serving);
  EXPECT_EQ(health_check(server_->address(), "no.such.Service", response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

class AgentAuthExecTest : public AgentExecTest {
 protected:
  void SetUp() override {
    options_.allow_unauthenticated = false;
    options_.token = "t0ken-value";
    start();
  }
  ExecTranscript run_with(const std::string& authorization) {
    std::vector<std::pair<std::string, std::string>> metadata;
    if (!authorization.empty()) metadata.emplace_back("authorization", authorization);
    return sandbox::test::run_exec(*stub_, exec_request({"echo", "ran"}), 30s, metadata);
  }
};

TEST_F(AgentAuthExecTest, MissingTokenIsUnauthenticated) {
  ExecTranscript t = run_with("");
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(t.messages.empty());
}

TEST_F(AgentAuthExecTest, WrongTokenIsUnauthenticated) {
  for (const char* header :
       {"Bearer t0ken-valuE", "Bearer t0ken-value2", "t0ken-value", "Bearer "}) {
    ExecTranscript t = run_with(header);
    EXPECT_EQ(t.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << header;
    EXPECT_TRUE(t.messages.empty()) << header;
  }
}

TEST_F(AgentAuthExecTest, RightTokenRuns) {
  ExecTranscript t = run_with("Bearer t0ken-value");
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "ran\n");
}

TEST(AgentServerTest, RefusesToStartWithoutAuthentication) {
  sandbox::test::TempDir dir;
  AgentOptions options;
  options.listen = "unix:" + (dir.path() / "agent.sock").string();
  EXPECT_THROW(AgentServer{options}, std::runtime_error);
}

TEST(AgentServerTest, RefusesAMalformedListenAddress) {
  AgentOptions options;
  options.allow_unauthenticated = true;
  options.listen = "no-port";
  EXPECT_THROW(AgentServer{options}, std::runtime_error);
}

TEST(AgentServerTest, EphemeralTcpPortIsReportedWithTheRealPort) {
  AgentOptions options;
  options.allow_unauthenticated = true;
  options.listen = "127.0.0.1:0";
  AgentServer server(options);
  const std::string address = server.address();
  ASSERT_TRUE(address.starts_with("127.0.0.1:")) << address;
  EXPECT_NE(address, "127.0.0.1:0");
  ExecTranscript t =
      sandbox::test::run_exec(*sandbox::test::make_stub(address), exec_request({"true"}));
  EXPECT_TRUE(t.status.ok()) << t.status.error_message();
}

}  // namespace
}  // namespace sandbox::agent
