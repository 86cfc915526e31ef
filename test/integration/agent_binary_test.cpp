// The sandbox-agent binary as a subprocess: its command line, output and signals.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "support/agent_process.hpp"
#include "support/process_watch.hpp"
#include "support/raw_exec.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(AgentBinaryTest, PrintsListeningOnWithTheRealTcpPort) {
  AgentProcess agent({"--allow-unauthenticated", "--listen", "127.0.0.1:0"});
  std::smatch match;
  const std::string address = agent.address();
  ASSERT_TRUE(std::regex_match(address, match, std::regex(R"(127\.0\.0\.1:(\d+))"))) << address;
  EXPECT_NE(std::stoi(match[1]), 0);
  ExecTranscript t = run_exec(*make_stub(address), exec_request({"echo", "hi"}));
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  EXPECT_EQ(t.stdout_bytes, "hi\n");
}

TEST(AgentBinaryTest, ListensOnAUnixSocketByDefault) {
  AgentProcess agent;
  EXPECT_EQ(agent.address(), "unix:" + (agent.directory() / "agent.sock").string());
  ExecTranscript t = run_exec(*make_stub(agent.address()), exec_request({"true"}));
  EXPECT_TRUE(t.status.ok()) << t.status.error_message();
}

TEST(AgentBinaryTest, RefusesToStartWithoutAuthentication) {
  TempDir dir;
  ProcessResult r = run_process(
      {agent_binary_path(), "--listen", "unix:" + (dir.path() / "agent.sock").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.stdout_text, "");
  EXPECT_THAT(r.stderr_text, HasSubstr("--allow-unauthenticated"));
  EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1) << r.stderr_text;
}

// The agent refuses TLS settings it cannot serve, naming the flag, before it listens.
TEST(AgentBinaryTest, RefusesTlsItCannotServe) {
  TestCerts certs;
  TempDir dir;
  auto cert = [&](const char* name) { return certs.file(name).string(); };
  const std::string listen = "unix:" + (dir.path() / "agent.sock").string();
  const std::string empty = (dir.path() / "empty.pem").string();
  std::ofstream(empty) << "not a certificate\n";
  struct Case {
    std::vector<std::string> flags;
    const char* says;
    int exit_code;
  };
  const Case cases[] = {
      {{"--tls-cert", cert("server.pem"), "--allow-unauthenticated"},
       "--tls-cert: requires --tls-key",
       2},
      {{"--tls-key", cert("server.key"), "--allow-unauthenticated"},
       "--tls-key: requires --tls-cert",
       2},
      {{"--client-ca", cert("ca.pem")}, "--client-ca: requires --tls-cert and --tls-key", 2},
      {{"--tls-cert", cert("server.pem"), "--tls-key", cert("server.key")},
       "--token-file or --client-ca: required",
       2},
      {{"--tls-cert", cert("server.pem"), "--tls-key", cert("client.key"),
        "--allow-unauthenticated"},
       "is not the key of the certificate in --tls-cert",
       1},
      {{"--tls-cert", empty, "--tls-key", cert("server.key"), "--allow-unauthenticated"},
       "holds no PEM certificate",
       1},
      {{"--tls-cert", cert("server.pem"), "--tls-key", cert("server.key"), "--client-ca",
        (dir.path() / "missing.pem").string()},
       "--client-ca: cannot read",
       1},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv{agent_binary_path(), "--listen", listen};
    argv.insert(argv.end(), c.flags.begin(), c.flags.end());
    ProcessResult r = run_process(argv);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.says << ": " << r.stderr_text;
    EXPECT_THAT(r.stderr_text, HasSubstr(c.says));
    EXPECT_EQ(r.stdout_text, "") << "it must not have listened";
  }
}

TEST(AgentBinaryTest, UnknownFlagIsNamed) {
  ProcessResult r = run_process({agent_binary_path(), "--frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("--frobnicate"));
}

TEST(AgentBinaryTest, HelpAndVersionExitZero) {
  ProcessResult help = run_process({agent_binary_path(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.stdout_text, HasSubstr("--listen ADDR"));
  ProcessResult version = run_process({agent_binary_path(), "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_THAT(version.stdout_text, HasSubstr("sandbox-agent "));
}

TEST(AgentBinaryTest, TokenFileRequiresTheBearerToken) {
  TempDir dir;
  const std::string token_file = (dir.path() / "token").string();
  std::ofstream(token_file) << "file-t0ken\n";
  AgentProcess agent({"--token-file", token_file});
  auto stub = make_stub(agent.address());
  EXPECT_EQ(run_exec(*stub, exec_request({"true"})).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ExecTranscript t =
      run_exec(*stub, exec_request({"true"}), 30s, {{"authorization", "Bearer file-t0ken"}});
  EXPECT_TRUE(t.status.ok()) << t.status.error_message();
}

TEST(AgentBinaryTest, SigtermExitsZeroAndKillsRunningCommands) {
  AgentProcess agent;
  auto stub = make_stub(agent.address());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  auto reader = stub->Exec(&context, exec_request({"sh", "-c", "sleep 300 & sleep 300"}));
  v1::ExecResponse started;
  ASSERT_TRUE(reader->Read(&started));
  ASSERT_EQ(started.event_case(), v1::ExecResponse::kStarted);
  const pid_t pid = static_cast<pid_t>(started.started().pid());
  EXPECT_EQ(agent.stop(), 0);
  EXPECT_TRUE(wait_until_group_gone(pid, 10s)) << "process group " << pid << " survived";
  v1::ExecResponse rest;
  while (reader->Read(&rest)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
}

TEST(AgentBinaryTest, WorkspaceAndSandboxIdFlagsApply) {
  TempDir workspace;
  AgentProcess agent({"--allow-unauthenticated", "--workspace", workspace.path().string(),
                      "--sandbox-id", "box-7"});
  ExecTranscript t = run_exec(*make_stub(agent.address()), exec_request({"pwd"}));
  ASSERT_TRUE(t.status.ok()) << t.status.error_message();
  EXPECT_EQ(t.messages.front().started().sandbox_id(), "box-7");
  EXPECT_EQ(t.stdout_bytes, std::filesystem::canonical(workspace.path()).string() + "\n");
}

}  // namespace
}  // namespace sandbox::test
