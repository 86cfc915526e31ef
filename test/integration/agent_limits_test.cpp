// The agent's limits (docs/behavior.md, "Limits"), each at its boundary, with the terminal
// behaviour the spec gives it: request sizes, the output cap, concurrent execs, the timeout.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "agent/request_validation.hpp"
#include "integration/agent_exec_fixture.hpp"
#include "support/fifo_gate.hpp"
#include "support/process_watch.hpp"

namespace sandbox::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class AgentLimitsTest : public AgentExecTest {
 protected:
  void SetUp() override {}  // each test sets options_ first, then start()

  // Runs `request` and expects INVALID_ARGUMENT with exactly `message`, nothing run.
  void expect_invalid(const v1::ExecRequest& request, const std::string& message) {
    ExecTranscript t = run(request);
    EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << t.status.error_message();
    EXPECT_EQ(t.status.error_message(), message);
    EXPECT_TRUE(t.messages.empty()) << "a refused request must run nothing";
  }

  // Runs `request` and expects it to run to exit 0.
  void expect_runs(const v1::ExecRequest& request) {
    ExecTranscript t = run(request);
    expect_well_formed(t);
    ASSERT_NE(t.exit(), nullptr);
    EXPECT_EQ(t.exit()->exit_code(), 0) << t.stderr_bytes;
  }

  // A command that prints "ready" and then waits until the test writes a line to the
  // workspace fifo `gate` (opened read-write by the command, so neither side's open blocks).
  v1::ExecRequest gated_request(const std::string& gate, const std::string& exec_id) {
    gates_.emplace_back(workspace_, gate);
    v1::ExecRequest request = exec_request(
        {"sh", "-c", "exec 3<>" + gate + "; echo ready; read -r line <&3; echo \"$line\""});
    request.set_exec_id(exec_id);
    return request;
  }
  // Starts a gated command and waits (bounded by the call's deadline) until it reads its gate.
  void start_gated(OpenCall& call) {
    ASSERT_GT(read_started_pid(*call.reader), 0);
    ASSERT_EQ(read_one(*call.reader).stdout(), "ready\n") << "the gated command did not start";
  }
  // Lets a command that printed "ready" go on: never blocks (the command holds a reader).
  void open_gate(const std::string& gate) {
    const int fd = ::open((workspace_ / gate).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(fd, 0) << "gate " << gate << " has no reader: " << std::strerror(errno);
    EXPECT_EQ(::write(fd, "go\n", 3), 3);
    ::close(fd);
  }
  std::vector<sandbox::test::FifoGate> gates_;

  // Reads a gated call to its end and expects the command's normal exit.
  void expect_gated_exit(OpenCall& call) {
    std::string out;
    std::optional<v1::ExecResponse> exit;
    const grpc::Status status = call.finish(out, exit);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_THAT(out, HasSubstr("go\n"));
    ASSERT_TRUE(exit.has_value()) << "the gated call ended without exit_code";
    EXPECT_EQ(exit->exit_code(), 0);
  }
};

// ---------------------------------------------------------------- request sizes

TEST_F(AgentLimitsTest, ArgvAtTheEntryLimitRunsAndOneMoreIsInvalid) {
  start();
  std::vector<std::string> argv(kMaxArgvEntries, "x");
  argv[0] = "true";
  expect_runs(exec_request(argv));
  argv.push_back("x");
  expect_invalid(exec_request(argv), "command: 4097 arguments, at most 4096");
}

TEST_F(AgentLimitsTest, ArgvAtTheSizeLimitRunsAndOneMoreByteIsInvalid) {
  start();
  // Pieces of 64 KiB: the kernel refuses any single argument over 128 KiB (MAX_ARG_STRLEN).
  std::vector<std::string> argv{"true"};
  std::size_t total = argv[0].size();
  while (total < kMaxArgvBytes) {
    argv.emplace_back(std::min<std::size_t>(64 * 1024, kMaxArgvBytes - total), 'a');
    total += argv.back().size();
  }
  ASSERT_EQ(total, kMaxArgvBytes);
  expect_runs(exec_request(argv));
  argv.back().push_back('a');
  expect_invalid(exec_request(argv), "command: 1048577 bytes in total, at most 1048576");
}

TEST_F(AgentLimitsTest, EnvAtTheEntryLimitRunsAndOneMoreIsInvalid) {
  start();
  v1::ExecRequest request = exec_request({"true"});
  for (std::size_t i = 0; i < kMaxEnvEntries; ++i) {
    (*request.mutable_env())["V" + std::to_string(i)] = "1";
  }
  expect_runs(request);
  (*request.mutable_env())["ONE_MORE"] = "1";
  expect_invalid(request, "env: 1025 entries, at most 1024");
}

TEST_F(AgentLimitsTest, EnvAtTheSizeLimitRunsAndOneMoreByteIsInvalidNamingNoValue) {
  start();
  // 16 entries of 64 KiB (name + value): each "NAME=VALUE" string stays under MAX_ARG_STRLEN.
  v1::ExecRequest request = exec_request({"true"});
  for (int i = 0; i < 16; ++i) {
    const std::string name = "V" + std::to_string(10 + i);  // 3 bytes
    (*request.mutable_env())[name] = std::string(64 * 1024 - name.size(), 's');
  }
  expect_runs(request);
  (*request.mutable_env())["V10"].push_back('s');
  // Sizes only: the exact message shows no value is quoted.
  expect_invalid(request, "env: 1048577 bytes in total (names and values), at most 1048576");
}

TEST_F(AgentLimitsTest, StdinAtTheLimitRunsAndOneMoreByteIsInvalid) {
  start();
  v1::ExecRequest request = exec_request({"wc", "-c"});
  request.set_stdin(std::string(kMaxStdinBytes, 'i'));
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "4194304\n") << "the whole stdin must reach the command";
  request.mutable_stdin()->push_back('i');
  expect_invalid(request, "stdin: 4194305 bytes, at most 4194304");
}

TEST_F(AgentLimitsTest, RequestLargerThanTheReceiveLimitIsRefusedByGrpc) {
  start();
  v1::ExecRequest request = exec_request({"true"});
  request.set_stdin(std::string(kMaxRequestBytes + 1, 'i'));
  ExecTranscript t = run(request);
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << t.status.error_message();
  EXPECT_TRUE(t.messages.empty());
}

// ---------------------------------------------------------------- output cap

TEST_F(AgentLimitsTest, OutputCapIsTheSmallerOfTheRequestsAndTheAgentsAndZeroMeansTheAgents) {
  options_.max_output_bytes = 1000;
  start();
  // 1 MiB past the cap on stdout: the command finishes, so the agent kept draining the pipe
  // (64 KiB) after it stopped sending. stderr is exactly at the cap.
  const v1::ExecRequest base =
      exec_request({"sh", "-c", "head -c 1049576 /dev/zero; head -c 1000 /dev/zero >&2"});
  struct Case {
    std::uint64_t requested;
    std::uint64_t cap;
  };
  for (const Case c : {Case{0, 1000}, Case{1u << 20, 1000}, Case{10, 10}}) {
    SCOPED_TRACE("max_output_bytes = " + std::to_string(c.requested));
    v1::ExecRequest request = base;
    request.set_max_output_bytes(c.requested);
    ExecTranscript t = run(request);
    expect_well_formed(t);
    EXPECT_EQ(t.stdout_bytes.size(), c.cap);
    EXPECT_EQ(t.stderr_bytes.size(), std::min<std::uint64_t>(c.cap, 1000));
    const v1::ExitDetails& details = t.exit()->exit();
    EXPECT_EQ(t.exit()->exit_code(), 0);
    EXPECT_TRUE(details.stdout_truncated());
    EXPECT_EQ(details.stderr_truncated(), c.cap < 1000) << "exactly the cap is not truncated";
    EXPECT_EQ(details.stdout_bytes(), 1049576u) << "the true total, past the cap";
    EXPECT_EQ(details.stderr_bytes(), 1000u);
  }
}

// ---------------------------------------------------------------- concurrency

TEST_F(AgentLimitsTest, NewExecBeyondMaxConcurrentIsRefusedAtOnceAndASlotFreesWhenOneEnds) {
  options_.max_concurrent = 2;
  start();
  OpenCall first(*stub_, gated_request("gate-1", "slot-1"));
  start_gated(first);
  OpenCall second(*stub_, gated_request("gate-2", "slot-2"));
  start_gated(second);

  // A queued call would sit until its deadline instead.
  ExecTranscript refused = run(exec_request({"true"}), 10s);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.status.error_message();
  EXPECT_EQ(refused.status.error_message(), "agent: 2 execs running, at most 2 (--max-concurrent)");
  EXPECT_TRUE(refused.messages.empty());

  // exit_code is sent after the slot was freed; the ended exec stays retained for reattach
  // but runs nothing, so it holds no slot.
  open_gate("gate-1");
  expect_gated_exit(first);
  ExecTranscript admitted = run(exec_request({"true"}));
  expect_well_formed(admitted);
  EXPECT_EQ(admitted.exit()->exit_code(), 0);

  open_gate("gate-2");
  expect_gated_exit(second);
}

TEST_F(AgentLimitsTest, ReattachAtMaxConcurrentIsNotANewExecAndIsNeverRefused) {
  options_.max_concurrent = 1;
  start();
  const v1::ExecRequest request = gated_request("gate", "reattach-1");
  OpenCall first(*stub_, request);
  start_gated(first);
  ASSERT_EQ(run(exec_request({"true"}), 10s).status.error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED)
      << "the limit is not reached: the reattach below would prove nothing";

  OpenCall again(*stub_, request);
  const v1::ExecResponse started = read_one(*again.reader);
  ASSERT_EQ(started.event_case(), v1::ExecResponse::kStarted);
  EXPECT_TRUE(started.started().resumed());
  drain(*first.reader);
  EXPECT_EQ(first.reader->Finish().error_code(), grpc::StatusCode::ABORTED);
  open_gate("gate");
  expect_gated_exit(again);
}

// ---------------------------------------------------------------- timeout

TEST_F(AgentLimitsTest, RequestedTimeoutIsClampedToTheAgentsMax) {
  options_.max_timeout = 200ms;
  start();
  v1::ExecRequest request = exec_request({"sh", "-c", "echo partial; sleep 60 & sleep 60"});
  request.set_timeout_ms(3600 * 1000);
  ExecTranscript t = run(request, 20s);
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 124);
  EXPECT_TRUE(t.exit()->exit().timed_out());
  EXPECT_EQ(t.exit()->exit().signal(), SIGTERM);
  EXPECT_EQ(t.stdout_bytes, "partial\n") << "output until the timeout is delivered";
  const pid_t pid = static_cast<pid_t>(t.messages.front().started().pid());
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, kGroupGoneTimeout))
      << "process group " << pid << " outlived its timeout";
}

TEST_F(AgentLimitsTest, NoRequestedTimeoutMeansTheAgentsMax) {
  options_.max_timeout = 200ms;
  start();
  ExecTranscript t = run(exec_request({"sh", "-c", "sleep 60 & sleep 60"}), 20s);
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 124);
  EXPECT_TRUE(t.exit()->exit().timed_out());
}

// ---------------------------------------------------------------- the options

TEST(AgentLimitOptionsTest, OutOfRangeLimitsAreRefusedNamingTheOption) {
  sandbox::test::TempDir dir;
  auto error_with = [&](auto change) {
    AgentOptions options;
    options.listen = "unix:" + (dir.path() / "agent.sock").string();
    options.allow_unauthenticated = true;
    options.workspace = dir.path();
    change(options);
    try {
      AgentServer server(options);
    } catch (const std::runtime_error& error) {
      return std::string(error.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(error_with([](AgentOptions& o) { o.max_output_bytes = 0; }),
            "max_output_bytes: must be positive");
  EXPECT_EQ(error_with([](AgentOptions& o) { o.max_concurrent = 0; }),
            "max_concurrent: must be positive");
  EXPECT_EQ(error_with([](AgentOptions& o) { o.max_timeout = 0ms; }),
            "max_timeout: must be positive and at most 366 days");
  EXPECT_EQ(error_with([](AgentOptions& o) { o.max_timeout = std::chrono::hours(367 * 24); }),
            "max_timeout: must be positive and at most 366 days");
}

}  // namespace
}  // namespace sandbox::agent
