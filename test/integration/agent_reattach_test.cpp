// An exec outlives its calls: reattach with resume offsets, the reattach grace, Cancel.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

#include "integration/agent_exec_fixture.hpp"
#include "support/fifo_gate.hpp"
#include "support/process_watch.hpp"

namespace sandbox::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

class AgentReattachTest : public AgentExecTest {
 protected:
  void SetUp() override {}  // each test sets options_ first, then start()

  // A command that prints "first", waits until the test writes a line to the workspace's
  // fifo `gate`, echoes it, prints "second", and records each run in `runs`.
  v1::ExecRequest gated_request(const std::string& exec_id) {
    if (!gate_) gate_.emplace(workspace_);
    v1::ExecRequest request =
        exec_request({"sh", "-c", "echo run >> runs; echo first; cat gate; echo second"});
    request.set_exec_id(exec_id);
    return request;
  }
  void open_gate() { gate_->open(); }
  int runs() { return sandbox::test::count_lines(workspace_ / "runs"); }
  std::optional<sandbox::test::FifoGate> gate_;

  v1::CancelResponse cancel(const std::string& exec_id,
                            v1::CancelSignal signal = v1::CANCEL_SIGNAL_UNSPECIFIED,
                            grpc::Status* status_out = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::CancelRequest request;
    request.set_exec_id(exec_id);
    request.set_signal(signal);
    v1::CancelResponse response;
    const grpc::Status status = stub_->Cancel(&context, request, &response);
    if (status_out) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return response;
  }
};

// A command that never ends on its own and leaves a background child, under `exec_id`.
v1::ExecRequest sleeper(const std::string& exec_id) {
  v1::ExecRequest request = exec_request({"sh", "-c", "echo $$; sleep 300 & sleep 300"});
  request.set_exec_id(exec_id);
  return request;
}

v1::ExecRequest with_resume(v1::ExecRequest request, std::uint64_t out, std::uint64_t err = 0) {
  request.mutable_resume()->set_stdout_offset(out);
  request.mutable_resume()->set_stderr_offset(err);
  return request;
}

TEST_F(AgentReattachTest, CancelledCallKeepsItsCommandAndAReattachGetsTheRestOnce) {
  start();
  const v1::ExecRequest request = gated_request("keep-1");
  OpenCall first(*stub_, request);
  const pid_t pid = read_started_pid(*first.reader);
  ASSERT_GT(pid, 0);
  const v1::ExecResponse line = read_one(*first.reader);
  ASSERT_EQ(line.stdout(), "first\n");
  EXPECT_EQ(first.cancel().error_code(), grpc::StatusCode::CANCELLED);

  OpenCall second(*stub_, with_resume(request, 6));
  const v1::ExecResponse started = read_one(*second.reader);
  ASSERT_EQ(started.event_case(), v1::ExecResponse::kStarted);
  EXPECT_TRUE(started.started().resumed());
  EXPECT_EQ(started.started().pid(), pid) << "a reattach must not start the command again";
  EXPECT_TRUE(sandbox::test::process_alive(pid));
  open_gate();
  std::string rest;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(second.finish(rest, exit).ok());
  EXPECT_EQ(rest, "go\nsecond\n");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code(), 0);
  EXPECT_EQ(exit->exit().stdout_bytes(), 16u);
  EXPECT_EQ(runs(), 1);
}

TEST_F(AgentReattachTest, ResumedChunksCarryTheirStreamOffsets) {
  start();
  v1::ExecRequest request = exec_request({"sh", "-c", "printf 0123456789; printf abcdef >&2"});
  request.set_exec_id("offsets-1");
  ExecTranscript whole = run(request);
  ASSERT_TRUE(whole.status.ok()) << whole.status.error_message();
  // The first call ended with its exit; a retry that lost part of it reattaches within the
  // retention and is sent exactly the bytes past its offsets.
  ExecTranscript rest = run(with_resume(request, 4, 5));
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  EXPECT_TRUE(rest.messages.front().started().resumed());
  EXPECT_EQ(rest.stdout_bytes, "456789");
  EXPECT_EQ(rest.stderr_bytes, "f");
  for (const v1::ExecResponse& message : rest.messages) {
    if (message.has_stdout()) {
      EXPECT_EQ(message.offset(), 4u);
    } else if (message.has_stderr()) {
      EXPECT_EQ(message.offset(), 5u);
    }
  }
  ASSERT_NE(rest.exit(), nullptr);
  EXPECT_EQ(rest.exit()->exit().stdout_bytes(), 10u);
}

TEST_F(AgentReattachTest, ReattachWithoutOffsetsGetsEverythingAgainNotANewRun) {
  start();
  const v1::ExecRequest request = gated_request("again-1");
  OpenCall first(*stub_, request);
  const pid_t pid = read_started_pid(*first.reader);
  ASSERT_EQ(read_one(*first.reader).stdout(), "first\n");
  first.cancel();
  OpenCall second(*stub_, request);
  EXPECT_EQ(read_started_pid(*second.reader), pid);
  open_gate();
  std::string all;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(second.finish(all, exit).ok());
  EXPECT_EQ(all, "first\ngo\nsecond\n");
  EXPECT_EQ(runs(), 1);
}

TEST_F(AgentReattachTest, ANewerCallTakesOverAndTheOlderOneEndsAborted) {
  start();
  const v1::ExecRequest request = gated_request("takeover-1");
  OpenCall first(*stub_, request);
  ASSERT_GT(read_started_pid(*first.reader), 0);
  ASSERT_EQ(read_one(*first.reader).stdout(), "first\n");
  OpenCall second(*stub_, with_resume(request, 6));
  ASSERT_EQ(read_one(*second.reader).event_case(), v1::ExecResponse::kStarted);
  drain(*first.reader);
  const grpc::Status superseded = first.reader->Finish();
  EXPECT_EQ(superseded.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(superseded.error_message(), HasSubstr("another call reattached"));
  open_gate();
  std::string rest;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(second.finish(rest, exit).ok());
  EXPECT_EQ(rest, "go\nsecond\n");
}

TEST_F(AgentReattachTest, DetachedCommandIsKilledWhenTheGraceEndsAndReattachSeesThatExit) {
  options_.reattach_grace = 200ms;
  start();
  const v1::ExecRequest request = sleeper("grace-1");
  OpenCall first(*stub_, request);
  const pid_t pid = read_started_pid(*first.reader);
  ASSERT_GT(pid, 0);
  first.cancel();
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, kGroupGoneTimeout))
      << "the detached command outlived the reattach grace";
  ExecTranscript late = run(request);
  ASSERT_TRUE(late.status.ok()) << late.status.error_message();
  ASSERT_NE(late.exit(), nullptr);
  EXPECT_EQ(late.exit()->exit_code(), 128 + SIGTERM);
  EXPECT_EQ(late.exit()->exit().signal(), SIGTERM);
  EXPECT_EQ(late.stdout_bytes, std::to_string(pid) + "\n");
}

TEST_F(AgentReattachTest, CancelKillsTheGroupAtOnceAndLaterReattachesGetItsExit) {
  start();
  const v1::ExecRequest request = sleeper("cancel-1");
  OpenCall call(*stub_, request);
  const pid_t pid = read_started_pid(*call.reader);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(cancel("cancel-1").state(), v1::CancelResponse::STATE_RUNNING);
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, 2s));
  std::string out;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(call.finish(out, exit).ok()) << "the attached call reports the exit Cancel caused";
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code(), 128 + SIGTERM);

  ExecTranscript later = run(request);
  ASSERT_NE(later.exit(), nullptr) << later.status.error_message();
  EXPECT_EQ(later.exit()->exit_code(), 128 + SIGTERM);
  EXPECT_EQ(cancel("cancel-1").state(), v1::CancelResponse::STATE_FINISHED);
}

TEST_F(AgentReattachTest, CancelWithKillIgnoresATermTrap) {
  start();
  v1::ExecRequest request = exec_request({"sh", "-c", "trap '' TERM; echo ready; sleep 300"});
  request.set_exec_id("kill-1");
  OpenCall call(*stub_, request);
  const pid_t pid = read_started_pid(*call.reader);
  ASSERT_EQ(read_one(*call.reader).stdout(), "ready\n");
  EXPECT_EQ(cancel("kill-1", v1::CANCEL_SIGNAL_KILL).state(), v1::CancelResponse::STATE_RUNNING);
  EXPECT_TRUE(sandbox::test::wait_until_group_gone(pid, 2s));
  std::string out;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(call.finish(out, exit).ok());
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit().signal(), SIGKILL);
}

TEST_F(AgentReattachTest, CancelOfAnUnknownIdIsUnknownAndBarsThatIdFromStarting) {
  start();
  EXPECT_EQ(cancel("never-seen").state(), v1::CancelResponse::STATE_UNKNOWN);
  v1::ExecRequest request = exec_request({"sh", "-c", "echo ran >> runs"});
  request.set_exec_id("never-seen");
  ExecTranscript t = run(request);
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_TRUE(t.messages.empty());
  EXPECT_EQ(runs(), 0);
}

TEST_F(AgentReattachTest, CancelNeedsAnExecId) {
  start();
  grpc::Status status;
  cancel("", v1::CANCEL_SIGNAL_UNSPECIFIED, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "exec_id: must not be empty");
}

TEST_F(AgentReattachTest, CancelRacingNormalCompletionAlwaysEndsTheStreamWithAnExit) {
  start();
  for (int i = 0; i < 40; ++i) {
    const std::string id = "race-" + std::to_string(i);
    v1::ExecRequest request = exec_request({"echo", "done"});
    request.set_exec_id(id);
    OpenCall call(*stub_, request);
    ASSERT_EQ(read_one(*call.reader).event_case(), v1::ExecResponse::kStarted);
    auto cancelled = std::async(std::launch::async, [&] { return cancel(id).state(); });
    std::string out;
    std::optional<v1::ExecResponse> exit;
    ASSERT_TRUE(call.finish(out, exit).ok()) << id;
    ASSERT_TRUE(exit.has_value()) << id;
    EXPECT_THAT(exit->exit_code(), ::testing::AnyOf(0, 128 + SIGTERM)) << id;
    EXPECT_THAT(cancelled.get(), ::testing::AnyOf(v1::CancelResponse::STATE_RUNNING,
                                                  v1::CancelResponse::STATE_FINISHED))
        << id;
  }
}

TEST_F(AgentReattachTest, SameExecIdWithAnotherCommandIsRefused) {
  start();
  v1::ExecRequest request = exec_request({"echo", "one"});
  request.set_exec_id("same-1");
  ASSERT_TRUE(run(request).status.ok());
  request.set_command(1, "two");
  ExecTranscript t = run(request);
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(t.status.error_message(), HasSubstr("exec_id: already used for a different request"));
}

TEST_F(AgentReattachTest, OutputDroppedPastTheResumeBufferIsDataLoss) {
  options_.resume_buffer_bytes = 64 * 1024;
  start();
  v1::ExecRequest request = exec_request({"head", "-c", "1048576", "/dev/zero"});
  request.set_exec_id("evicted-1");
  ExecTranscript whole = run(request);
  ASSERT_EQ(whole.stdout_bytes.size(), 1048576u);
  ExecTranscript lost = run(with_resume(request, 1000));
  EXPECT_EQ(lost.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(lost.status.error_message(), HasSubstr("resume.stdout_offset: bytes from 1000"));
  EXPECT_TRUE(lost.messages.empty());
  // What was kept is still served.
  ExecTranscript tail = run(with_resume(request, 1048576 - 1000));
  ASSERT_TRUE(tail.status.ok()) << tail.status.error_message();
  EXPECT_EQ(tail.stdout_bytes.size(), 1000u);
}

TEST_F(AgentReattachTest, ResumePastTheOutputIsOutOfRange) {
  start();
  v1::ExecRequest request = exec_request({"echo", "abc"});
  request.set_exec_id("past-1");
  ASSERT_TRUE(run(request).status.ok());
  ExecTranscript t = run(with_resume(request, 5));
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_TRUE(t.messages.empty());
}

TEST_F(AgentReattachTest, ResumeOfAnUnknownIdIsNotFoundAndRunsNothing) {
  start();
  v1::ExecRequest request = exec_request({"sh", "-c", "echo ran >> runs"});
  request.set_exec_id("unknown-1");
  ExecTranscript t = run(with_resume(request, 10));
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(runs(), 0);
}

TEST_F(AgentReattachTest, AttachOnlyOfAnUnknownIdIsNotFoundAndRunsNothing) {
  // A retry after `started`, at offset 0, reaching an agent that restarted meanwhile.
  start();
  v1::ExecRequest request = exec_request({"sh", "-c", "echo ran >> runs"});
  request.set_exec_id("unknown-2");
  request.set_attach_only(true);
  ExecTranscript t = run(request);
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(t.status.error_message(), HasSubstr("attach_only"));
  EXPECT_EQ(runs(), 0);
}

TEST_F(AgentReattachTest, AttachOnlyReattachesToAKnownExec) {
  start();
  v1::ExecRequest request = exec_request({"sh", "-c", "echo ran >> runs; echo out"});
  request.set_exec_id("known-2");
  ASSERT_TRUE(run(request).status.ok());
  request.set_attach_only(true);  // not part of the request's identity
  ExecTranscript again = run(request);
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_EQ(again.stdout_bytes, "out\n");
  EXPECT_EQ(runs(), 1);
}

TEST_F(AgentReattachTest, ShutdownKillsDetachedCommandsWithoutWaitingForTheGrace) {
  start();
  const v1::ExecRequest request = sleeper("shutdown-1");
  OpenCall call(*stub_, request);
  const pid_t pid = read_started_pid(*call.reader);
  call.cancel();
  server_->shutdown();
  EXPECT_FALSE(sandbox::test::process_exists(pid)) << "shutdown returned before reaping " << pid;
}

}  // namespace
}  // namespace sandbox::agent
