#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <system_error>

#include "cli/fd_io.hpp"
#include "cli/run_output.hpp"
#include "sandbox/error.hpp"

namespace sandbox::cli {
namespace {

using ::testing::StartsWith;

/// A pipe standing in for one of sandbox-run's outputs; read back once the writes are done
/// (the tests write far less than a pipe holds).
class CapturedFd {
 public:
  CapturedFd() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category());
  }
  ~CapturedFd() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  CapturedFd(const CapturedFd&) = delete;
  CapturedFd& operator=(const CapturedFd&) = delete;

  [[nodiscard]] int write_end() const { return fds_[1]; }
  /// Closes the read end: writes fail with EPIPE (while SIGPIPE is ignored).
  void close_reader() {
    ::close(fds_[0]);
    fds_[0] = -1;
  }
  std::string contents() {
    ::close(fds_[1]);
    fds_[1] = -1;
    std::string out;
    EXPECT_FALSE(read_all(fds_[0], out));
    return out;
  }

 private:
  int fds_[2] = {-1, -1};
};

const ExecInfo info{.exec_id = "e-1", .sandbox_id = "sb-1", .effective_profile = "standard"};

constexpr std::string_view started =
    R"({"event":"started","exec_id":"e-1","sandbox_id":"sb-1","effective_profile":"standard"})"
    "\n";

TEST(CliRunOutputTest, RawWritesEachStreamToItsFdAndNothingElse) {
  CapturedFd out;
  CapturedFd err;
  RunOutput output(RunOutput::Format::raw, out.write_end(), err.write_end());
  EXPECT_FALSE(output.chunk({.stream = OutputStream::out, .data = "a"}, info));
  EXPECT_FALSE(output.chunk({.stream = OutputStream::err, .data = "b"}, info));
  EXPECT_FALSE(output.exit({.exit_code = 0}, info));
  EXPECT_EQ(out.contents(), "a");
  EXPECT_EQ(err.contents(), "b");
}

TEST(CliRunOutputTest, JsonWritesStartedOnceBeforeTheFirstChunk) {
  CapturedFd out;
  CapturedFd err;
  RunOutput output(RunOutput::Format::json, out.write_end(), err.write_end());
  EXPECT_FALSE(output.chunk({.stream = OutputStream::out, .data = "a", .offset = 0}, info));
  EXPECT_FALSE(output.chunk({.stream = OutputStream::err, .data = "b", .offset = 0}, info));
  EXPECT_FALSE(output.exit({.exit_code = 3}, info));
  EXPECT_EQ(out.contents(), std::string(started) +
                                R"({"event":"stdout","offset":0,"data":"YQ=="})"
                                "\n"
                                R"({"event":"stderr","offset":0,"data":"Yg=="})"
                                "\n"
                                R"({"event":"exit","exit_code":3,"signal":0,"timed_out":false,)"
                                R"("stdout_truncated":false,"stderr_truncated":false,)"
                                R"("stdout_total":0,"stderr_total":0,"duration_ms":0})"
                                "\n");
  EXPECT_EQ(err.contents(), "");
}

TEST(CliRunOutputTest, JsonWritesStartedBeforeExitWhenThereWasNoOutput) {
  CapturedFd out;
  CapturedFd err;
  RunOutput output(RunOutput::Format::json, out.write_end(), err.write_end());
  EXPECT_FALSE(output.exit({.exit_code = 0}, info));
  EXPECT_THAT(out.contents(), StartsWith(std::string(started) + R"({"event":"exit",)"));
}

TEST(CliRunOutputTest, RawErrorIsOneStderrLine) {
  CapturedFd out;
  CapturedFd err;
  RunOutput output(RunOutput::Format::raw, out.write_end(), err.write_end());
  output.error(make_error_code(errc::unavailable), "no agent\nhere \r");
  EXPECT_EQ(out.contents(), "");
  EXPECT_EQ(err.contents(), "sandbox-run: error: unavailable: no agent here\n");
}

TEST(CliRunOutputTest, JsonErrorIsAStderrLineAndAnErrorLine) {
  CapturedFd out;
  CapturedFd err;
  RunOutput output(RunOutput::Format::json, out.write_end(), err.write_end());
  output.error(make_error_code(errc::unavailable), "no \"agent\"");
  EXPECT_EQ(out.contents(), R"({"event":"error","code":"unavailable","message":"no \"agent\""})"
                            "\n");
  EXPECT_EQ(err.contents(), "sandbox-run: error: unavailable: no \"agent\"\n");
}

TEST(CliRunOutputTest, EmptyMessageFallsBackToTheCodesMessage) {
  CapturedFd out;
  CapturedFd err;
  RunOutput output(RunOutput::Format::raw, out.write_end(), err.write_end());
  const auto ec = make_error_code(errc::deadline_exceeded);
  output.error(ec, "");
  EXPECT_EQ(err.contents(), "sandbox-run: error: deadline_exceeded: " + ec.message() + "\n");
}

/// Ignores SIGPIPE while alive, as sandbox-run does, so a write to a closed pipe fails with
/// EPIPE instead of killing the test.
struct IgnoreSigpipe {
  void (*previous)(int) = std::signal(SIGPIPE, SIG_IGN);
  ~IgnoreSigpipe() { std::signal(SIGPIPE, previous); }
};

TEST(CliRunOutputTest, FailedStdoutWriteIsNamedAndTheErrorStillReachesStderr) {
  IgnoreSigpipe ignore_sigpipe;
  CapturedFd out;
  CapturedFd err;
  out.close_reader();
  RunOutput output(RunOutput::Format::json, out.write_end(), err.write_end());
  auto failure = output.chunk({.data = "a"}, info);
  ASSERT_TRUE(failure);
  EXPECT_EQ(failure->error, std::errc::broken_pipe);
  EXPECT_EQ(failure->output, "stdout");
  output.error(make_error_code(errc::internal), "later");
  EXPECT_EQ(err.contents(), "sandbox-run: error: internal: later\n");
}

}  // namespace
}  // namespace sandbox::cli
