// secret:// references resolved from the agent's --secrets-dir, and redacted from the output.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "agent/secret_store.hpp"
#include "integration/agent_exec_fixture.hpp"
#include "support/fifo_gate.hpp"
#include "support/stderr_capture.hpp"

namespace sandbox::agent {
namespace {

using sandbox::test::StderrCapture;

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* kDbValue = "s3cr3t-value";  // 12 bytes
constexpr const char* kApiValue = "api-token-42";

v1::ExecRequest with_env(v1::ExecRequest request, const std::string& key,
                         const std::string& value) {
  (*request.mutable_env())[key] = value;
  return request;
}

class AgentSecretsTest : public AgentExecTest {
 protected:
  AgentSecretsTest() {
    root_ = fs::canonical(dir_.path());
    secrets_ = root_ / "secrets";
    fs::create_directories(secrets_ / "db");
    fs::create_directories(root_ / "outside");
    write(secrets_ / "db" / "password", std::string(kDbValue) + "\n");  // as `echo` writes it
    write(secrets_ / "api", std::string(kApiValue) + "\n");
    write(root_ / "escaped", "escaped-value\n");  // secrets/../escaped
    write(root_ / "outside" / "target", "outside-value\n");
    options_.secrets_dir = secrets_;
  }

  static void write(const fs::path& file, const std::string& content) {
    std::ofstream(file, std::ios::binary) << content;
  }
  // A fifo `gate` in the workspace: the command blocks reading it until open_gate().
  void make_gate() { gate_.emplace(workspace_); }
  void open_gate() { gate_->open(); }
  std::optional<sandbox::test::FifoGate> gate_;

  // The exec must be refused before anything ran, naming the key, never a value.
  void expect_refused(const std::string& reference, const std::string& message) {
    ExecTranscript t =
        run(with_env(exec_request({"sh", "-c", "echo ran >> runs"}), "DB", reference));
    EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << reference;
    EXPECT_EQ(t.status.error_message(), message) << reference;
    for (const char* value : {kDbValue, kApiValue, "escaped-value", "outside-value", "root:"}) {
      EXPECT_THAT(t.status.error_message(), Not(HasSubstr(value))) << reference;
    }
    EXPECT_TRUE(t.messages.empty()) << reference;
    EXPECT_FALSE(fs::exists(workspace_ / "runs")) << reference << ": the command ran";
  }

  fs::path root_;
  fs::path secrets_;
};

TEST_F(AgentSecretsTest, TheCommandSeesTheResolvedValueWithoutItsTrailingNewline) {
  ExecTranscript t =
      run(with_env(exec_request({"sh", "-c", "test \"$DB\" = \"s3cr3t-value\" && echo ok"}), "DB",
                   "secret://db/password"));
  expect_well_formed(t);
  EXPECT_EQ(t.exit()->exit_code(), 0);
  EXPECT_EQ(t.stdout_bytes, "ok\n");
}

TEST_F(AgentSecretsTest, PrintedValuesAreRedactedOnBothStreams) {
  v1::ExecRequest request =
      exec_request({"sh", "-c", "printf 'db=%s\\n' \"$DB\"; printf 'api=%s\\n' \"$API\" >&2"});
  request = with_env(with_env(request, "DB", "secret://db/password"), "API", "secret://api");
  ExecTranscript t = run(request);
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "db=[REDACTED]\n");
  EXPECT_EQ(t.stderr_bytes, "api=[REDACTED]\n");
}

TEST_F(AgentSecretsTest, AValueSplitAcrossTwoWritesIsRedacted) {
  make_gate();
  // The first write ends in the value's first 8 bytes; the command then blocks on the gate,
  // so its second write (the last 4 bytes) comes in another pipe read.
  v1::ExecRequest request =
      with_env(exec_request({"sh", "-c",
                             "printf 'before:%s' \"${DB%????}\"; cat gate >/dev/null; "
                             "printf '%s:after\\n' \"${DB#????????}\""}),
               "DB", "secret://db/password");
  OpenCall call(*stub_, request);
  ASSERT_GT(read_started_pid(*call.reader), 0);
  std::string seen;
  while (seen.size() < 7) {
    const v1::ExecResponse message = read_one(*call.reader);
    ASSERT_EQ(message.event_case(), v1::ExecResponse::kStdout) << "no output before the gate";
    seen += message.stdout();
  }
  // Released at once: what precedes the held prefix; the prefix itself is held.
  EXPECT_EQ(seen, "before:");
  open_gate();
  std::string rest;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(call.finish(rest, exit).ok());
  EXPECT_EQ(seen + rest, "before:[REDACTED]:after\n");
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->exit_code(), 0);
}

TEST_F(AgentSecretsTest, OrdinaryOutputIsNotDelayedByRedaction) {
  make_gate();
  OpenCall call(*stub_, with_env(exec_request({"sh", "-c", "echo hello; cat gate; echo bye"}), "DB",
                                 "secret://db/password"));
  ASSERT_GT(read_started_pid(*call.reader), 0);
  EXPECT_EQ(read_one(*call.reader).stdout(), "hello\n") << "arrives while the command blocks";
  open_gate();
  std::string rest;
  std::optional<v1::ExecResponse> exit;
  ASSERT_TRUE(call.finish(rest, exit).ok());
  EXPECT_EQ(rest, "go\nbye\n");
}

TEST_F(AgentSecretsTest, AHeldPrefixIsReleasedAtEof) {
  ExecTranscript t = run(with_env(exec_request({"sh", "-c", "printf 'x%s' \"${DB%????}\""}), "DB",
                                  "secret://db/password"));
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "xs3cr3t-v") << "a prefix alone is no secret";
}

TEST_F(AgentSecretsTest, OffsetsTotalsAndResumeCountTheRedactedStream) {
  v1::ExecRequest request =
      with_env(exec_request({"sh", "-c", "printf 'ab%scd' \"$DB\""}), "DB", "secret://db/password");
  request.set_exec_id("redacted-offsets-1");
  ExecTranscript whole = run(request);
  expect_well_formed(whole);
  EXPECT_EQ(whole.stdout_bytes, "ab[REDACTED]cd");
  EXPECT_EQ(whole.exit()->exit().stdout_bytes(), 14u) << "2 + 10 + 2, not 2 + 12 + 2";
  request.mutable_resume()->set_stdout_offset(2);
  ExecTranscript rest = run(request);
  expect_well_formed(rest);
  EXPECT_EQ(rest.stdout_bytes, "[REDACTED]cd");
  for (const v1::ExecResponse& message : rest.messages) {
    if (message.has_stdout()) {
      EXPECT_EQ(message.offset(), 2u);
    }
  }
}

TEST_F(AgentSecretsTest, OnlyTheExecsOwnSecretsAreRedacted) {
  // Another exec's secret, or a value the command has by other means, is just output.
  ExecTranscript t = run(with_env(
      exec_request({"sh", "-c", "printf '%s %s' s3cr3t-value \"$API\""}), "API", "secret://api"));
  expect_well_formed(t);
  EXPECT_EQ(t.stdout_bytes, "s3cr3t-value [REDACTED]");
  ExecTranscript none = run(exec_request({"printf", "%s", "api-token-42"}));
  expect_well_formed(none);
  EXPECT_EQ(none.stdout_bytes, "api-token-42");
}

TEST_F(AgentSecretsTest, AMissingSecretIsInvalidArgumentNamingTheKey) {
  expect_refused("secret://db/nope",
                 "env[DB]: secret 'db/nope' not found in the agent's secret store");
  // The agent's own example, with the key of the issue.
  ExecTranscript t = run(with_env(exec_request({"true"}), "DB_PASSWORD", "secret://db/pw"));
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(t.status.error_message(),
            "env[DB_PASSWORD]: secret 'db/pw' not found in the agent's secret store");
}

TEST_F(AgentSecretsTest, NamesThatCouldLeaveTheStoreAreRejected) {
  const std::string bad_name =
      ": a name is a relative path of non-empty components other than '.' and '..' (such as "
      "db/password)";
  for (const std::string name :
       {"../escaped", "/etc/passwd", "db//password", "db/../api", "", "db/"}) {
    expect_refused("secret://" + name, "env[DB]: secret '" + name + "'" + bad_name);
  }
  fs::create_symlink(root_ / "outside" / "target", secrets_ / "out-link");
  fs::create_directory_symlink(root_ / "outside", secrets_ / "out-dir");
  const std::string not_a_file =
      " is not a regular file in the agent's secret store (symlinks are not followed)";
  expect_refused("secret://out-link", "env[DB]: secret 'out-link'" + not_a_file);
  expect_refused("secret://out-dir/target", "env[DB]: secret 'out-dir/target'" + not_a_file);
}

TEST_F(AgentSecretsTest, AnOversizedSecretIsRejected) {
  write(secrets_ / "big", std::string(kMaxSecretBytes + 1, 'x'));
  expect_refused("secret://big", "env[DB]: secret 'big' is larger than 65536 bytes");
}

TEST_F(AgentSecretsTest, TheAgentLogNeverContainsASecretValue) {
  StderrCapture capture(root_ / "agent.log");
  ExecTranscript printed = run(with_env(with_env(exec_request({"sh", "-c",
                                                               "echo \"$DB\" \"$API\"; "
                                                               "echo \"$DB\" >&2; exit 3"}),
                                                 "DB", "secret://db/password"),
                                        "API", "secret://api"));
  ExecTranscript refused = run(with_env(
      with_env(exec_request({"true"}), "DB", "secret://db/password"), "MISSING", "secret://nope"));
  ExecTranscript not_started =
      run(with_env(exec_request({"no-such-program-xyz"}), "DB", "secret://db/password"));
  server_->shutdown();
  server_.reset();
  const std::string log = capture.restore();
  EXPECT_EQ(printed.stdout_bytes, "[REDACTED] [REDACTED]\n");
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(not_started.status.error_code(), grpc::StatusCode::OK);
  // The capture worked: the agent logged these execs.
  EXPECT_THAT(log, HasSubstr("event=exec.start"));
  EXPECT_THAT(log, HasSubstr("event=exec.refused"));
  EXPECT_THAT(log, HasSubstr("event=exec.not_started"));
  EXPECT_THAT(log, HasSubstr("event=agent.shutdown"));
  EXPECT_THAT(log, Not(HasSubstr(kDbValue)));
  EXPECT_THAT(log, Not(HasSubstr(kApiValue)));
  EXPECT_THAT(log, Not(HasSubstr("s3cr3t")));
}

TEST(AgentSecretsOptionsTest, AnAgentWithASecretsDirThatIsNoDirectoryDoesNotStart) {
  sandbox::test::TempDir dir;
  AgentOptions options;
  options.listen = "unix:" + (dir.path() / "agent.sock").string();
  options.allow_unauthenticated = true;
  options.workspace = dir.path();
  options.secrets_dir = dir.path() / "missing";
  try {
    AgentServer server(options);
    ADD_FAILURE() << "the agent started";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), StartsWith("secrets_dir: '"));
    EXPECT_THAT(error.what(), HasSubstr("is not an existing directory"));
  }
}

using AgentWithoutSecretStoreTest = AgentExecTest;

TEST_F(AgentWithoutSecretStoreTest, EveryReferenceIsRejected) {
  ExecTranscript t = run(with_env(exec_request({"true"}), "DB", "secret://db/password"));
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(t.status.error_message(),
            "env[DB]: secret references need a secret store on the agent (not configured)");
  EXPECT_TRUE(t.messages.empty());
}

}  // namespace
}  // namespace sandbox::agent
