#include "agent/command_line.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "support/temp_dir.hpp"

namespace sandbox::agent {
namespace {

using ::testing::HasSubstr;

CommandLine parse(std::vector<std::string_view> args) { return parse_command_line(args); }

std::string error_of(std::vector<std::string_view> args) {
  try {
    parse(args);
  } catch (const CommandLineError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(AgentCommandLineTest, ParsesEveryFlag) {
  CommandLine line = parse({"--listen", "127.0.0.1:0", "--allow-unauthenticated", "--workspace",
                            "/tmp", "--sandbox-id=box-1"});
  EXPECT_EQ(line.action, CommandLine::Action::run);
  EXPECT_EQ(line.options.listen, "127.0.0.1:0");
  EXPECT_TRUE(line.options.allow_unauthenticated);
  EXPECT_EQ(line.options.workspace, "/tmp");
  EXPECT_EQ(line.options.sandbox_id, "box-1");
}

TEST(AgentCommandLineTest, ReattachFlagsTakeDurationsAndByteCounts) {
  using namespace std::chrono_literals;
  CommandLine defaults = parse({"--listen", "x:1", "--allow-unauthenticated"});
  EXPECT_EQ(defaults.options.reattach_grace, 30s);
  EXPECT_EQ(defaults.options.resume_retention, 60s);
  EXPECT_EQ(defaults.options.resume_buffer_bytes, 8u << 20);
  CommandLine line = parse({"--listen", "x:1", "--allow-unauthenticated", "--reattach-grace",
                            "500ms", "--resume-retention=2m", "--resume-buffer", "64K"});
  EXPECT_EQ(line.options.reattach_grace, 500ms);
  EXPECT_EQ(line.options.resume_retention, 2min);
  EXPECT_EQ(line.options.resume_buffer_bytes, 64u << 10);
  EXPECT_EQ(parse({"--listen", "x:1", "--allow-unauthenticated", "--reattach-grace", "0"})
                .options.reattach_grace,
            0ms);
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--reattach-grace", "soon"}),
              HasSubstr("--reattach-grace: expected a duration"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--resume-buffer", "0"}),
              HasSubstr("--resume-buffer: expected a positive byte count"));
}

TEST(AgentCommandLineTest, ReadsAndTrimsTheTokenFile) {
  sandbox::test::TempDir dir;
  const std::string path = (dir.path() / "token").string();
  std::ofstream(path) << "  abc.DEF-123\n";
  CommandLine line = parse({"--listen", "unix:/x.sock", "--token-file", path});
  EXPECT_EQ(line.options.token, "abc.DEF-123");
}

TEST(AgentCommandLineTest, RefusesToRunWithoutAuthentication) {
  EXPECT_THAT(error_of({"--listen", "127.0.0.1:0"}), HasSubstr("--allow-unauthenticated"));
}

TEST(AgentCommandLineTest, ErrorsNameTheFlag) {
  EXPECT_THAT(error_of({"--allow-unauthenticated"}), HasSubstr("--listen: required"));
  EXPECT_THAT(error_of({"--listen"}), HasSubstr("--listen: needs a value"));
  EXPECT_THAT(error_of({"--frobnicate"}), HasSubstr("--frobnicate: unknown flag"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--token-file", "/nonexistent/token"}),
              HasSubstr("--token-file: cannot read"));
  EXPECT_THAT(error_of({"--allow-unauthenticated=yes"}),
              HasSubstr("--allow-unauthenticated: takes no value"));
}

TEST(AgentCommandLineTest, EmptyTokenFileIsAnError) {
  sandbox::test::TempDir dir;
  const std::string path = (dir.path() / "token").string();
  std::ofstream(path) << "\n";
  EXPECT_THAT(error_of({"--listen", "x:1", "--token-file", path}),
              HasSubstr("--token-file: '" + path + "' is empty"));
}

TEST(AgentCommandLineTest, HelpAndVersionNeedNothingElse) {
  EXPECT_EQ(parse({"--help"}).action, CommandLine::Action::help);
  EXPECT_EQ(parse({"--version"}).action, CommandLine::Action::version);
}

}  // namespace
}  // namespace sandbox::agent
