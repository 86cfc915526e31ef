#include "agent/request_validation.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "support/temp_dir.hpp"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

class AgentRequestValidationTest : public ::testing::Test {
 protected:
  AgentRequestValidationTest() {
    workspace_ = fs::canonical(dir_.path()) / "ws";
    fs::create_directories(workspace_ / "sub");
    fs::create_directories(dir_.path() / "outside");
    std::ofstream(workspace_ / "file") << "x";
    request_.add_command("true");
  }

  grpc::Status validate() { return validate_exec_request(request_, workspace_, spec_); }

  void expect_invalid(const std::string& message) {
    const grpc::Status status = validate();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(status.error_message(), message);
  }

  sandbox::test::TempDir dir_;
  fs::path workspace_;
  v1::ExecRequest request_;
  LaunchSpec spec_;
};

TEST_F(AgentRequestValidationTest, MinimalRequestRunsInTheWorkspaceWithACleanEnvironment) {
  ASSERT_TRUE(validate().ok());
  EXPECT_EQ(spec_.argv, std::vector<std::string>{"true"});
  EXPECT_EQ(spec_.workdir, workspace_);
  EXPECT_THAT(spec_.env, Contains("HOME=" + workspace_.string()));
  EXPECT_THAT(spec_.env, Contains("LANG=C.UTF-8"));
  EXPECT_THAT(spec_.env,
              Contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
  EXPECT_EQ(spec_.env.size(), 3u);
}

TEST_F(AgentRequestValidationTest, RequestEnvOverlaysTheBase) {
  (*request_.mutable_env())["PATH"] = "/bin";
  (*request_.mutable_env())["FOO"] = "bar";
  ASSERT_TRUE(validate().ok());
  EXPECT_THAT(spec_.env, Contains("PATH=/bin"));
  EXPECT_THAT(spec_.env, Contains("FOO=bar"));
  EXPECT_THAT(spec_.env,
              Not(Contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")));
}

TEST_F(AgentRequestValidationTest, EmptyCommandIsRejected) {
  request_.clear_command();
  expect_invalid("command: must not be empty");
}

TEST_F(AgentRequestValidationTest, EmptyProgramIsRejected) {
  request_.set_command(0, "");
  expect_invalid("command[0]: must not be empty");
}

TEST_F(AgentRequestValidationTest, NulInArgumentIsRejected) {
  request_.add_command(std::string("a\0b", 3));
  expect_invalid("command[1]: contains a NUL byte");
}

TEST_F(AgentRequestValidationTest, EnvKeyRules) {
  (*request_.mutable_env())["A=B"] = "v";
  expect_invalid("env[A=B]: key must not contain '='");
  request_.mutable_env()->clear();
  (*request_.mutable_env())[""] = "v";
  expect_invalid("env: key must not be empty");
}

TEST_F(AgentRequestValidationTest, NulInEnvValueIsRejectedWithoutEchoingIt) {
  (*request_.mutable_env())["FOO"] = std::string("se\0cret", 7);
  expect_invalid("env[FOO]: value contains a NUL byte");
}

TEST_F(AgentRequestValidationTest, SecretReferenceNeedsASecretStore) {
  (*request_.mutable_env())["API_KEY"] = "secret://prod/api-key";
  const grpc::Status status = validate();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "env[API_KEY]: secret references need a secret store on the agent (not configured)");
}

TEST_F(AgentRequestValidationTest, ExecIdRules) {
  request_.set_exec_id(std::string(37, 'a'));
  expect_invalid("exec_id: must be at most 36 characters");
  request_.set_exec_id("has space");
  expect_invalid("exec_id: must be printable ASCII without spaces");
  request_.set_exec_id("caf\xc3\xa9");
  expect_invalid("exec_id: must be printable ASCII without spaces");
  request_.set_exec_id("0b1e2f3a-aaaa-4bbb-8ccc-0123456789ab");
  EXPECT_TRUE(validate().ok());
}

TEST_F(AgentRequestValidationTest, RelativeWorkdirResolvesUnderTheWorkspace) {
  request_.set_workdir("sub/../sub");
  ASSERT_TRUE(validate().ok());
  EXPECT_EQ(spec_.workdir, workspace_ / "sub");
}

TEST_F(AgentRequestValidationTest, AbsoluteWorkdirInsideTheWorkspaceIsAccepted) {
  request_.set_workdir((workspace_ / "sub").string());
  ASSERT_TRUE(validate().ok());
  EXPECT_EQ(spec_.workdir, workspace_ / "sub");
}

TEST_F(AgentRequestValidationTest, DotDotEscapeIsRejected) {
  request_.set_workdir("../outside");
  expect_invalid("workdir: must be inside the workspace");
  request_.set_workdir("sub/../../outside");
  expect_invalid("workdir: must be inside the workspace");
}

TEST_F(AgentRequestValidationTest, AbsoluteWorkdirOutsideIsRejected) {
  request_.set_workdir((dir_.path() / "outside").string());
  expect_invalid("workdir: must be inside the workspace");
  request_.set_workdir(workspace_.string() + "-sibling");
  expect_invalid("workdir: must be inside the workspace");
}

TEST_F(AgentRequestValidationTest, SymlinkEscapeIsRejected) {
  fs::create_directory_symlink(dir_.path() / "outside", workspace_ / "link");
  request_.set_workdir("link");
  expect_invalid("workdir: resolves outside the workspace (through a symlink)");
}

TEST_F(AgentRequestValidationTest, WorkdirMustExistAndBeADirectory) {
  request_.set_workdir("missing");
  expect_invalid("workdir: does not exist");
  request_.set_workdir("file");
  expect_invalid("workdir: is not a directory");
  request_.set_workdir(std::string("sub\0x", 5));
  expect_invalid("workdir: contains a NUL byte");
}

TEST_F(AgentRequestValidationTest, ConfinementThisAgentCannotEnforceFailsClosed) {
  request_.set_profile("strict");
  EXPECT_EQ(validate().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(validate().error_message(), HasSubstr("profile: 'strict' cannot be enforced"));
  request_.set_profile("none");
  EXPECT_TRUE(validate().ok());
  request_.mutable_policy()->set_network(v1::SandboxPolicy::NETWORK_NONE);
  EXPECT_EQ(validate().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(validate().error_message(), HasSubstr("policy.network"));
}

TEST_F(AgentRequestValidationTest, ResumeOffsetsAreNotTheValidatorsToRefuse) {
  // Whether they can be served is decided against the exec's retained output.
  request_.mutable_resume()->set_stdout_offset(10);
  EXPECT_TRUE(validate().ok()) << validate().error_message();
}

TEST(CancelRequestValidationTest, NeedsAWellFormedExecIdAndAKnownSignal) {
  v1::CancelRequest request;
  EXPECT_EQ(validate_cancel_request(request).error_message(), "exec_id: must not be empty");
  request.set_exec_id("has space");
  EXPECT_EQ(validate_cancel_request(request).error_message(),
            "exec_id: must be printable ASCII without spaces");
  request.set_exec_id(std::string(37, 'a'));
  EXPECT_EQ(validate_cancel_request(request).error_message(),
            "exec_id: must be at most 36 characters");
  request.set_exec_id("ok-1");
  EXPECT_TRUE(validate_cancel_request(request).ok());
  request.set_signal(v1::CANCEL_SIGNAL_KILL);
  EXPECT_TRUE(validate_cancel_request(request).ok());
  request.set_signal(static_cast<v1::CancelSignal>(7));
  EXPECT_EQ(validate_cancel_request(request).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(validate_cancel_request(request).error_message(),
              HasSubstr("signal: unknown value 7"));
}

TEST_F(AgentRequestValidationTest, SecretReferencesResolveFromTheStore) {
  fs::create_directories(dir_.path() / "secrets" / "db");
  std::ofstream(dir_.path() / "secrets" / "db" / "password") << "s3cr3t-value\n";
  const SecretStore store(dir_.path() / "secrets");
  (*request_.mutable_env())["DB_PASSWORD"] = "secret://db/password";
  (*request_.mutable_env())["PLAIN"] = "not-a-secret";
  ASSERT_TRUE(validate_exec_request(request_, workspace_, spec_, &store).ok());
  EXPECT_THAT(spec_.env, Contains("DB_PASSWORD=s3cr3t-value"));
  EXPECT_THAT(spec_.env, Contains("PLAIN=not-a-secret"));
  EXPECT_EQ(spec_.secrets, std::vector<std::string>{"s3cr3t-value"});

  (*request_.mutable_env())["OTHER"] = "secret://db/missing";
  const grpc::Status status = validate_exec_request(request_, workspace_, spec_, &store);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "env[OTHER]: secret 'db/missing' not found in the agent's secret store");
}

TEST_F(AgentRequestValidationTest, ResolvedEnvironmentIsBoundedToo) {
  fs::create_directories(dir_.path() / "secrets");
  std::ofstream(dir_.path() / "secrets" / "big") << std::string(kMaxSecretBytes, 'x');
  const SecretStore store(dir_.path() / "secrets");
  for (int i = 0; i < 17; ++i) {
    (*request_.mutable_env())["K" + std::to_string(i)] = "secret://big";
  }
  const grpc::Status status = validate_exec_request(request_, workspace_, spec_, &store);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("bytes in total with secrets resolved (names and values), at most "
                        "1048576"));
  EXPECT_THAT(status.error_message(), Not(HasSubstr("xxxx")));
}

}  // namespace
}  // namespace sandbox::agent
