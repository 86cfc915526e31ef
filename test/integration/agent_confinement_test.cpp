// The bubblewrap sandbox: the profile clamp, what each profile grants, and failing closed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "agent/confinement.hpp"
#include "integration/agent_exec_fixture.hpp"

namespace sandbox::agent {
namespace {

using ::testing::HasSubstr;

TEST(ProfileClampTest, StrictStaysAnythingElseIsStandardAndTheMaximumCaps) {
  EXPECT_EQ(clamp_profile("strict", Profile::standard), Profile::strict);
  for (const char* requested : {"", "standard", "none", "permissive", "root", "STRICT", "x"}) {
    EXPECT_EQ(clamp_profile(requested, Profile::standard), Profile::standard) << requested;
    EXPECT_EQ(clamp_profile(requested, Profile::strict), Profile::strict) << requested;
  }
  EXPECT_EQ(clamp_profile("strict", Profile::strict), Profile::strict);
}

// A TCP listener on the host's loopback, to see whether a sandboxed command can reach it.
class HostListener {
 public:
  HostListener() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
  }
  ~HostListener() { ::close(fd_); }
  HostListener(const HostListener&) = delete;
  HostListener& operator=(const HostListener&) = delete;
  [[nodiscard]] int port() const { return port_; }
  // Whether a connection is waiting now (the command that made it has already exited).
  [[nodiscard]] bool has_pending_connection() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }

 private:
  int fd_;
  int port_ = 0;
};

class AgentConfinementTest : public AgentExecTest {
 protected:
  void SetUp() override {
    options_.sandbox = SandboxKind::bubblewrap;
    start();
  }
  v1::ExecRequest with_profile(std::vector<std::string> argv, const std::string& profile) {
    v1::ExecRequest request = exec_request(std::move(argv));
    request.set_profile(profile);
    return request;
  }
  // `bash -c 'echo > /dev/tcp/127.0.0.1/PORT'`: exit 0 only if it connected.
  v1::ExecRequest connect_to(const HostListener& listener, const std::string& profile) {
    return with_profile(
        {"bash", "-c", "echo hi > /dev/tcp/127.0.0.1/" + std::to_string(listener.port())}, profile);
  }
};

TEST_F(AgentConfinementTest, EffectiveProfileIsTheClampedOneInStartedAndInTheExit) {
  for (const auto& [requested, effective] :
       std::vector<std::pair<std::string, std::string>>{{"strict", "strict"},
                                                        {"standard", "standard"},
                                                        {"", "standard"},
                                                        {"permissive", "standard"},
                                                        {"root", "standard"}}) {
    ExecTranscript t = run(with_profile({"true"}, requested));
    expect_well_formed(t);
    EXPECT_EQ(t.messages.front().started().effective_profile(), effective) << requested;
    ASSERT_NE(t.exit(), nullptr);
    EXPECT_EQ(t.exit()->exit().effective_profile(), effective) << requested;
    EXPECT_EQ(t.exit()->exit_code(), 0) << requested << ": " << t.stderr_bytes;
  }
}

TEST_F(AgentConfinementTest, StandardReachesAHostListener) {
  HostListener listener;
  ExecTranscript t = run(connect_to(listener, "standard"));
  ASSERT_NE(t.exit(), nullptr) << t.status.error_message();
  EXPECT_EQ(t.exit()->exit_code(), 0) << t.stderr_bytes;
  EXPECT_TRUE(listener.has_pending_connection());
}

TEST_F(AgentConfinementTest, StrictHasNoNetworkAtAll) {
  HostListener listener;
  ExecTranscript t = run(connect_to(listener, "strict"));
  ASSERT_NE(t.exit(), nullptr) << t.status.error_message();
  EXPECT_NE(t.exit()->exit_code(), 0) << "a strict command connected to the host";
  EXPECT_FALSE(listener.has_pending_connection());
}

TEST_F(AgentConfinementTest, NetworkNonePolicyCutsTheNetworkOfStandard) {
  HostListener listener;
  v1::ExecRequest request = connect_to(listener, "standard");
  request.mutable_policy()->set_network(v1::SandboxPolicy::NETWORK_NONE);
  ExecTranscript t = run(request);
  ASSERT_NE(t.exit(), nullptr) << t.status.error_message();
  EXPECT_NE(t.exit()->exit_code(), 0);
  EXPECT_EQ(t.messages.front().started().effective_profile(), "standard");
  EXPECT_FALSE(listener.has_pending_connection());
}

TEST_F(AgentConfinementTest, SystemIsReadOnlyTmpIsPrivateWorkspaceIsWritable) {
  const std::string marker = "/tmp/sandbox-confinement-marker-" + std::to_string(::getpid());
  std::ofstream(marker) << "host";
  ExecTranscript t = run(
      with_profile({"sh", "-c",
                    "if touch /usr/sandbox-probe 2>/dev/null; then echo usr-writable; fi; "
                    "if test -e " +
                        marker +
                        "; then echo tmp-shared; fi; "
                        "echo in-tmp > /tmp/own && cat /tmp/own; echo ws > ws-file && echo ws-ok"},
                   "standard"));
  std::remove(marker.c_str());
  ASSERT_NE(t.exit(), nullptr) << t.status.error_message();
  EXPECT_EQ(t.stdout_bytes, "in-tmp\nws-ok\n") << t.stderr_bytes;
  EXPECT_TRUE(std::filesystem::exists(workspace_ / "ws-file"));
}

TEST_F(AgentConfinementTest, WritableRootsWithoutTheWorkspaceMountItReadOnly) {
  v1::ExecRequest request = with_profile({"sh", "-c", "echo x > ws-file"}, "standard");
  request.mutable_policy()->add_writable_roots(":tmp");
  ExecTranscript t = run(request);
  ASSERT_NE(t.exit(), nullptr) << t.status.error_message();
  EXPECT_NE(t.exit()->exit_code(), 0);
  EXPECT_FALSE(std::filesystem::exists(workspace_ / "ws-file"));
}

TEST_F(AgentConfinementTest, PolicyRootsMustBeSymbolicNames) {
  v1::ExecRequest request = with_profile({"true"}, "standard");
  request.mutable_policy()->add_writable_roots("/home/me/project");
  ExecTranscript t = run(request);
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(t.status.error_message(),
              HasSubstr("policy.writable_roots: '/home/me/project' is not a symbolic root"));
  EXPECT_TRUE(t.messages.empty());
}

TEST_F(AgentConfinementTest, TheCommandHasItsOwnPidNamespace) {
  ExecTranscript t = run(with_profile({"sh", "-c", "echo $$"}, "strict"));
  expect_well_formed(t);
  const pid_t host_pid = static_cast<pid_t>(t.messages.front().started().pid());
  EXPECT_LT(std::stoi(t.stdout_bytes), 10) << "not a fresh pid namespace";
  EXPECT_NE(std::stoi(t.stdout_bytes), host_pid);
}

class AgentWithoutBubblewrapTest : public AgentExecTest {
 protected:
  void SetUp() override {
    options_.sandbox = SandboxKind::bubblewrap;
    options_.bwrap_path = "/nonexistent/bwrap";
    start();
  }
};

TEST_F(AgentWithoutBubblewrapTest, FailsClosedNamingWhatIsMissing) {
  for (const char* profile : {"", "standard", "strict"}) {
    v1::ExecRequest request = exec_request({"sh", "-c", "echo ran > ran"});
    request.set_profile(profile);
    ExecTranscript t = run(request);
    EXPECT_EQ(t.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << profile;
    EXPECT_THAT(t.status.error_message(), HasSubstr("bubblewrap ('/nonexistent/bwrap')"));
    EXPECT_TRUE(t.messages.empty());
  }
  EXPECT_FALSE(std::filesystem::exists(workspace_ / "ran")) << "a command ran unconfined";
}

// A stand-in for bwrap, to refuse what the real one grants here.
class AgentWithRefusingBubblewrapTest : public AgentExecTest {
 protected:
  void SetUp() override {}
  void start_with_bwrap(const std::string& script) {
    const std::filesystem::path path = dir_.path() / "fake-bwrap";
    std::ofstream(path) << "#!/bin/sh\n" << script;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    options_.sandbox = SandboxKind::bubblewrap;
    options_.bwrap_path = path.string();
    start();
  }
};

TEST_F(AgentWithRefusingBubblewrapTest, RefusedNamespacesFailEveryExecClosed) {
  start_with_bwrap("echo 'bwrap: No permissions to create new namespace' >&2; exit 1\n");
  ExecTranscript t = run(exec_request({"true"}));
  EXPECT_EQ(t.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(t.status.error_message(),
            "sandbox: bubblewrap cannot create namespaces here: bwrap: No permissions to create "
            "new namespace");
  EXPECT_TRUE(t.messages.empty());
}

TEST_F(AgentWithRefusingBubblewrapTest, RefusedNetworkNamespaceFailsStrictButNotStandard) {
  start_with_bwrap(
      "case \"$*\" in *--unshare-net*) echo 'bwrap: net namespace refused' >&2; exit 1;; esac\n"
      "exec bwrap \"$@\"\n");
  v1::ExecRequest strict = exec_request({"true"});
  strict.set_profile("strict");
  ExecTranscript refused = run(strict);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.status.error_message(), HasSubstr("cannot create a network namespace"));
  EXPECT_THAT(refused.status.error_message(), HasSubstr("needed for profile strict"));
  ExecTranscript standard = run(exec_request({"true"}));
  expect_well_formed(standard);
  EXPECT_EQ(standard.messages.front().started().effective_profile(), "standard");
}

}  // namespace
}  // namespace sandbox::agent
