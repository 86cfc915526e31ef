// resolve_workdir: every way out of the workspace is refused, and the directory checked is
// the one the command runs in.
#include "agent/workdir.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "support/temp_dir.hpp"
#include "support/workdir_corpus.hpp"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::StartsWith;

class WorkdirTest : public ::testing::Test {
 protected:
  WorkdirTest()
      : workspace_(fs::canonical(dir_.path()) / "ws"),
        corpus_(sandbox::test::escaping_workdirs(workspace_)) {}

  grpc::Status resolve(const std::string& workdir) {
    ResolvedWorkdir out;
    return resolve_workdir(workdir, workspace_, out);
  }

  sandbox::test::TempDir dir_;
  fs::path workspace_;
  std::vector<std::string> corpus_;
};

TEST_F(WorkdirTest, EveryEscapeOrBadPathIsInvalidAndNamesTheField) {
  const std::vector<std::string>& corpus = corpus_;
  ASSERT_GE(corpus.size(), 30u);
  for (const std::string& workdir : corpus) {
    const grpc::Status status = resolve(workdir);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << "accepted: '" << workdir << "'";
    EXPECT_THAT(status.error_message(), StartsWith("workdir: ")) << workdir;
  }
}

TEST_F(WorkdirTest, MessagesSayWhichRuleWasBroken) {
  EXPECT_EQ(resolve("../x").error_message(), "workdir: must be inside the workspace");
  EXPECT_EQ(resolve("to-etc").error_message(),
            "workdir: resolves outside the workspace (through a symlink)");
  EXPECT_EQ(resolve("missing").error_message(), "workdir: does not exist");
  EXPECT_EQ(resolve("file").error_message(), "workdir: is not a directory");
  EXPECT_EQ(resolve("loop").error_message(), "workdir: too many levels of symbolic links");
  EXPECT_EQ(resolve(std::string("a\0b", 3)).error_message(), "workdir: contains a NUL byte");
  EXPECT_EQ(resolve(std::string(4096, 'a')).error_message(), "workdir: 4096 bytes, at most 4095");
}

TEST_F(WorkdirTest, PathsInsideTheWorkspaceResolveToTheirDirectory) {
  const std::vector<std::pair<std::string, fs::path>> cases = {
      {"", workspace_},
      {".", workspace_},
      {"sub", workspace_ / "sub"},
      {"sub/", workspace_ / "sub"},
      {"./sub/deep/..", workspace_ / "sub"},
      {"to-sub", workspace_ / "sub"},  // a relative symlink that stays inside
      {"to-sub/deep", workspace_ / "sub" / "deep"},
      {workspace_.string(), workspace_},
      {(workspace_ / "sub" / "deep").string(), workspace_ / "sub" / "deep"},
  };
  for (const auto& [workdir, expected] : cases) {
    ResolvedWorkdir out;
    const grpc::Status status = resolve_workdir(workdir, workspace_, out);
    ASSERT_TRUE(status.ok()) << "'" << workdir << "': " << status.error_message();
    EXPECT_TRUE(out.fd) << workdir;
    EXPECT_EQ(out.path, expected) << workdir;
  }
}

TEST_F(WorkdirTest, TheCommandRunsInTheDirectoryCheckedEvenIfThePathIsSwappedAfterwards) {
  ResolvedWorkdir resolved;
  ASSERT_TRUE(resolve_workdir("sub", workspace_, resolved).ok());
  // Between check and use: the checked directory moves away and the name becomes a symlink
  // to a directory outside.
  fs::rename(workspace_ / "sub", workspace_ / "sub-checked");
  fs::create_directory_symlink(dir_.path() / "outside", workspace_ / "sub");

  LaunchSpec spec;
  spec.argv = {"/bin/pwd", "-P"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.workdir = resolved.path;
  spec.workdir_fd = std::move(resolved.fd);
  auto spawned = spawn_process(spec);
  ASSERT_TRUE(std::holds_alternative<ChildProcess>(spawned));
  ChildProcess& child = std::get<ChildProcess>(spawned);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = ::read(child.stdout_fd.get(), buffer, sizeof buffer)) > 0;) {
    out.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(reap_process(child.pid).exit_code, 0);
  EXPECT_EQ(out, (workspace_ / "sub-checked").string() + "\n");
}

}  // namespace
}  // namespace sandbox::agent
