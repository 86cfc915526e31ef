// Security end to end: the real sandbox-agent binary serving TLS, mTLS and bearer tokens,
// the SDK connecting over real TLS on loopback, certificates made at test time.
//
// test/security_tests.cmake runs this binary with GRPC_VERBOSITY=debug and its output
// (the SDK's, the agent's and gRPC's logs) captured; security_log_scan then looks there for
// every token, secret and env value this suite used (it lists them in
// $SANDBOX_SENSITIVE_VALUES) and fails on any it finds.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"
#include "support/agent_process.hpp"
#include "support/stderr_capture.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using ::testing::HasSubstr;
using ::testing::Not;

// A value that must never appear in a log: random, so a log line cannot hold it by chance,
// and listed for security_log_scan.
std::string sensitive(std::string_view prefix) {
  static std::mutex mutex;
  static std::mt19937_64 random{std::random_device{}()};
  std::lock_guard lock(mutex);
  char digits[17];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(random()));
  std::string value = std::string(prefix) + digits;
  if (const char* list = std::getenv("SANDBOX_SENSITIVE_VALUES")) {
    std::ofstream(list, std::ios::app) << value << '\n';
  }
  return value;
}

struct Outcome {
  std::error_code error;
  ExecResult result;
  std::chrono::milliseconds took{};
};

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new TestCerts(); }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  static const TestCerts& certs() { return *certs_; }
  static std::string cert(std::string_view name) { return certs_->file(name).string(); }

  // The agent on a loopback port with `flags` (plus --sandbox none: the tests here are about
  // the transport, and the CI machine's bubblewrap is tested elsewhere).
  void start_agent(std::vector<std::string> flags) {
    flags.insert(flags.end(), {"--listen", "127.0.0.1:0", "--workspace", workspace_.path().string(),
                               "--sandbox", "none"});
    agent_ = std::make_unique<AgentProcess>(std::move(flags));
    port_ = agent_->address().substr(agent_->address().rfind(':') + 1);
  }

  // The agent serving mTLS with the test CA's server certificate and `token`.
  void start_mtls_agent(const std::string& token) {
    std::vector<std::string> flags{"--tls-cert",       cert("server.pem"), "--tls-key",
                                   cert("server.key"), "--client-ca",      cert("ca.pem")};
    if (!token.empty()) {
      const auto token_file = dir_.path() / "agent-token";
      std::ofstream(token_file) << token << '\n';
      flags.insert(flags.end(), {"--token-file", token_file.string()});
    }
    start_agent(std::move(flags));
  }

  // A runner for "127.0.0.1:PORT" (an IP name of the server certificate) trusting `ca`,
  // presenting `client` (a name in the certs, e.g. "client"; empty: no client certificate).
  // Not "localhost": c-ares (Debian 12: 1.18) leaks a few bytes per name lookup, which
  // LeakSanitizer reports; an IP address is not looked up.
  RemoteRunnerConfig tls_config(const std::string& ca = "ca",
                                const std::string& client = "client") {
    RemoteRunnerConfig config;
    config.address = "127.0.0.1:" + port_;
    config.default_deadline = 10s;
    config.tls = TlsConfig{};
    config.tls->ca_file = cert(ca + ".pem");
    if (!client.empty()) {
      config.tls->cert_file = cert(client + ".pem");
      config.tls->key_file = cert(client + ".key");
    }
    // Every runner its own connection: gRPC otherwise shares subchannels between runners
    // with equal arguments, and a test would see another runner's handshake.
    config.channel_args["grpc.use_local_subchannel_pool"] = 1;
    return config;
  }

  Outcome run(const RemoteRunnerConfig& config, Command command = {"echo", "hi"}) {
    RemoteRunner runner(io_.get_executor(), config);
    return run(runner, std::move(command));
  }

  Outcome run(RemoteRunner& runner, Command command = {"echo", "hi"}) {
    const auto start = std::chrono::steady_clock::now();
    auto [error, result] =
        run_bounded(io_, runner.exec(std::move(command), as_tuple(asio::use_awaitable)));
    Outcome outcome{error, std::move(result)};
    outcome.took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    // Printed, so the log scan also covers every error the SDK reports.
    std::printf("outcome: %s (%s): %s\n", std::string(error_name(error)).c_str(),
                error.message().c_str(), outcome.result.error_message.c_str());
    for (const AttemptFailure& failure : outcome.result.retries.failures) {
      std::printf("  attempt failed: %s: %s\n", std::string(error_name(failure.error)).c_str(),
                  failure.message.c_str());
    }
    return outcome;
  }

  bool ran(const std::string& marker) {
    return std::filesystem::exists(workspace_.path() / marker);
  }

  static TestCerts* certs_;
  TempDir dir_;
  TempDir workspace_;
  asio::io_context io_;
  std::unique_ptr<AgentProcess> agent_;
  std::string port_;
};

TestCerts* SecurityTest::certs_ = nullptr;

// The shape every TLS failure must have: its own error, saying which, within the deadline,
// after one attempt.
void expect_tls_failure(const Outcome& outcome, std::string_view which) {
  EXPECT_EQ(outcome.error, errc::tls_error) << outcome.error.message();
  EXPECT_THAT(outcome.result.error_message, HasSubstr(std::string(which)));
  EXPECT_EQ(outcome.result.retries.attempts, 1u) << "a TLS failure is never retried";
  EXPECT_LT(outcome.took, 10s);
}

TEST_F(SecurityTest, MutualTlsWithATokenRunsTheCommand) {
  const std::string token = sensitive("tok-");
  start_mtls_agent(token);
  RemoteRunnerConfig config = tls_config();
  config.token = token;
  Outcome outcome = run(config);
  ASSERT_FALSE(outcome.error) << outcome.result.error_message;
  EXPECT_EQ(outcome.result.stdout_data, "hi\n");
}

TEST_F(SecurityTest, MutualTlsFromPemInMemory) {
  start_mtls_agent("");
  RemoteRunnerConfig config = tls_config();
  config.tls = TlsConfig{};
  config.tls->ca_pem = certs().pem("ca.pem");
  config.tls->cert_pem = certs().pem("client.pem");
  config.tls->key_pem = certs().pem("client.key");
  Outcome outcome = run(config);
  EXPECT_FALSE(outcome.error) << outcome.result.error_message;
  // The probe reads PEM text as the runner does: a rejection is still explained.
  config.tls->cert_pem = certs().pem("client-expired.pem");
  config.tls->key_pem = certs().pem("client-expired.key");
  expect_tls_failure(run(config), "it expired on 2020-02-01");
}

TEST_F(SecurityTest, AgentCertificateFromAnUnknownCa) {
  start_mtls_agent("");
  expect_tls_failure(run(tls_config("ca2")), "signed by an unknown CA");
}

TEST_F(SecurityTest, NoClientCertificate) {
  start_mtls_agent("");
  expect_tls_failure(run(tls_config("ca", "")), "client certificate");
}

TEST_F(SecurityTest, ClientCertificateFromAnotherCa) {
  start_mtls_agent("");
  expect_tls_failure(run(tls_config("ca", "client-ca2")), "client certificate");
}

TEST_F(SecurityTest, ExpiredClientCertificate) {
  start_mtls_agent("");
  expect_tls_failure(run(tls_config("ca", "client-expired")), "expired");
}

TEST_F(SecurityTest, AgentCertificateForAnotherName) {
  start_agent({"--tls-cert", cert("wrong-name.pem"), "--tls-key", cert("wrong-name.key"),
               "--client-ca", cert("ca.pem")});
  expect_tls_failure(run(tls_config()), "name");
  RemoteRunnerConfig overridden = tls_config();
  overridden.tls->server_name = "wrong.example";
  Outcome outcome = run(overridden);
  EXPECT_FALSE(outcome.error) << "server_name names what the certificate says: "
                              << outcome.result.error_message;
}

TEST_F(SecurityTest, TlsAgainstACleartextAgent) {
  start_agent({"--allow-unauthenticated"});
  expect_tls_failure(run(tls_config()), "cleartext");
}

TEST_F(SecurityTest, CleartextAgainstATlsAgent) {
  start_mtls_agent("");
  RemoteRunnerConfig config = tls_config();
  config.tls.reset();
  expect_tls_failure(run(config), "TLS");
}

TEST_F(SecurityTest, ExpiredAgentCertificate) {
  start_agent({"--tls-cert", cert("server-expired.pem"), "--tls-key", cert("server-expired.key"),
               "--allow-unauthenticated"});
  expect_tls_failure(run(tls_config("ca", "")), "the agent's certificate expired on 2020-02-01");
}

// A peer that accepts and closes at once (a proxy whose backend is down) looks like a TLS
// rejection to gRPC; the probe must not mistake it: it stays UNAVAILABLE and is retried.
class ClosingListener {
 public:
  ClosingListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      throw std::runtime_error("ClosingListener: cannot listen");
    }
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int client = ::accept(fd_, nullptr, nullptr);
        if (client < 0) return;  // shut down
        accepted_.fetch_add(1);
        ::close(client);
      }
    });
  }
  ~ClosingListener() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  ClosingListener(const ClosingListener&) = delete;
  ClosingListener& operator=(const ClosingListener&) = delete;
  std::string port() const { return std::to_string(port_); }
  int accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

TEST_F(SecurityTest, APeerThatClosesAtOnceIsStillTransientWithAndWithoutTls) {
  ClosingListener closer;
  port_ = closer.port();
  for (bool tls : {false, true}) {
    RemoteRunnerConfig config = tls_config();
    if (!tls) config.tls.reset();
    config.retry.max_attempts = 3;
    config.retry.initial_backoff = 10ms;
    Outcome outcome = run(config);
    EXPECT_EQ(outcome.error, errc::unavailable)
        << "tls " << tls << ": " << outcome.result.error_message;
    EXPECT_EQ(outcome.result.retries.attempts, 3u) << "tls " << tls;
  }
  EXPECT_GT(closer.accepted(), 2) << "the runner connected (and the probes did)";
}

TEST_F(SecurityTest, TokenMissingWrongOrOfAnotherLengthIsRefusedBeforeAnythingRuns) {
  const std::string token = sensitive("tok-");
  start_mtls_agent(token);
  struct Case {
    const char* what;
    std::string token;
  };
  const Case cases[] = {{"missing", ""},
                        {"wrong", std::string(token.size() - 1, 'x') + "y"},
                        {"shorter", token.substr(0, token.size() - 1)},
                        {"longer", token + "0"}};
  for (const Case& c : cases) {
    RemoteRunnerConfig config = tls_config();
    config.token = c.token;
    const std::string marker = std::string("ran-") + c.what;
    Outcome outcome = run(config, {"touch", marker});
    EXPECT_EQ(outcome.error, errc::unauthenticated) << c.what;
    EXPECT_EQ(outcome.result.retries.attempts, 1u) << c.what << ": never retried";
    EXPECT_FALSE(ran(marker)) << c.what << ": the command ran";
  }
  RemoteRunnerConfig config = tls_config();
  config.token = token;
  EXPECT_FALSE(run(config, {"touch", "ran-right"}).error);
  EXPECT_TRUE(ran("ran-right"));
}

TEST_F(SecurityTest, MutualTlsAloneAuthenticates) {
  start_mtls_agent("");
  Outcome outcome = run(tls_config());
  EXPECT_FALSE(outcome.error) << outcome.result.error_message;
}

TEST_F(SecurityTest, ATokenWithoutTlsIsRefusedAtConstruction) {
  RemoteRunnerConfig config;
  config.address = "127.0.0.1:1";
  config.token = sensitive("tok-");
  try {
    RemoteRunner runner(io_.get_executor(), config);
    FAIL() << "accepted a token over cleartext without allow_insecure";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::token_requires_tls);
    EXPECT_THAT(e.what(), Not(HasSubstr(config.token)));
  }
  // Even with the opt-in, never to an address of another host.
  config.allow_insecure = true;
  for (const char* remote : {"192.0.2.7:50051", "ipv4:10.1.2.3:443", "[2001:db8::1]:443"}) {
    config.address = remote;
    try {
      RemoteRunner runner(io_.get_executor(), config);
      ADD_FAILURE() << "accepted a cleartext token to " << remote;
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), errc::token_requires_tls) << remote;
      EXPECT_THAT(e.what(), HasSubstr("neither a loopback address nor a unix socket"));
    }
  }
}

TEST_F(SecurityTest, AllowInsecureWorksOnLoopbackAndUnixSocketsAndWarnsOnceWithoutTheToken) {
  const std::string token = sensitive("tok-");
  for (const char* listen : {"127.0.0.1:0", "unix"}) {
    std::vector<std::string> flags;
    const auto socket =
        dir_.path() / (std::string("agent-") + (listen[0] == 'u' ? "u" : "t") + ".sock");
    const auto token_file = dir_.path() / "agent-token";
    std::ofstream(token_file) << token << '\n';
    flags = {"--token-file", token_file.string(),
             "--listen",     listen[0] == 'u' ? "unix:" + socket.string() : std::string(listen),
             "--workspace",  workspace_.path().string(),
             "--sandbox",    "none"};
    AgentProcess agent(flags);
    std::vector<std::pair<LogLevel, std::string>> logged;
    RemoteRunnerConfig config;
    config.address = agent.address();
    config.token = token;
    config.allow_insecure = true;
    config.log = [&](LogLevel level, std::string_view message) {
      logged.emplace_back(level, message);
      std::printf("sdk log: %.*s\n", static_cast<int>(message.size()), message.data());
    };
    RemoteRunner runner(io_.get_executor(), config);
    for (int i = 0; i < 3; ++i) {
      Outcome outcome = run(runner);
      EXPECT_FALSE(outcome.error) << listen << ": " << outcome.result.error_message;
    }
    ASSERT_EQ(logged.size(), 1u) << listen << ": said once, at construction";
    EXPECT_EQ(logged[0].first, LogLevel::warning);
    EXPECT_THAT(logged[0].second, HasSubstr("without TLS"));
    EXPECT_THAT(logged[0].second, Not(HasSubstr(token)));
  }
}

TEST_F(SecurityTest, TheTokenProviderIsAskedPerCallSoATokenCanBeRefreshed) {
  const std::string token = sensitive("tok-");
  start_mtls_agent(token);
  std::mutex mutex;
  std::string current = token;
  std::atomic<int> asked{0};
  RemoteRunnerConfig config = tls_config();
  config.token_provider = [&] {
    asked.fetch_add(1);
    std::lock_guard lock(mutex);
    return current;
  };
  RemoteRunner runner(io_.get_executor(), config);
  EXPECT_FALSE(run(runner).error);
  {
    std::lock_guard lock(mutex);
    current = sensitive("stale-");
  }
  EXPECT_EQ(run(runner).error, errc::unauthenticated) << "the provider's new token was sent";
  {
    std::lock_guard lock(mutex);
    current = token;
  }
  EXPECT_FALSE(run(runner).error) << "refreshed without a new runner";
  EXPECT_GE(asked.load(), 3);
}

TEST_F(SecurityTest, AFailingTokenProviderFailsTheCallUnauthenticatedWithoutRetrying) {
  start_mtls_agent(sensitive("tok-"));
  RemoteRunnerConfig config = tls_config();
  config.token_provider = []() -> std::string { throw std::runtime_error("vault is down"); };
  Outcome thrown = run(config, {"touch", "ran"});
  EXPECT_EQ(thrown.error, errc::unauthenticated);
  EXPECT_THAT(thrown.result.error_message, HasSubstr("token_provider: threw: vault is down"));
  EXPECT_EQ(thrown.result.retries.attempts, 1u);
  config.token_provider = [] { return std::string(); };
  Outcome empty = run(config, {"touch", "ran"});
  EXPECT_EQ(empty.error, errc::unauthenticated);
  EXPECT_THAT(empty.result.error_message, HasSubstr("token_provider: returned an empty token"));
  EXPECT_FALSE(ran("ran"));
}

TEST_F(SecurityTest, TheAgentRotatesItsCertificateAndClientCaWithoutARestart) {
  RotatingFiles files(
      certs(), dir_.path(),
      {{"cert.pem", "server.pem"}, {"key.pem", "server.key"}, {"ca.pem", "ca.pem"}});
  start_agent({"--tls-cert", files.path("cert.pem"), "--tls-key", files.path("key.pem"),
               "--client-ca", files.path("ca.pem"), "--tls-reload-interval", "1s"});
  ASSERT_FALSE(run(tls_config("ca", "client")).error);
  EXPECT_EQ(run(tls_config("ca2", "client-ca2")).error, errc::tls_error);
  // The other CA's server certificate and client CA.
  files.rotate(
      {{"cert.pem", "server-ca2.pem"}, {"key.pem", "server-ca2.key"}, {"ca.pem", "ca2.pem"}});
  Outcome outcome;
  const bool rotated = eventually(
      [&] {
        outcome = run(tls_config("ca2", "client-ca2"));
        return !outcome.error;
      },
      10s);
  EXPECT_TRUE(rotated) << "the agent still serves the old files: " << outcome.result.error_message;
  EXPECT_EQ(run(tls_config("ca", "client")).error, errc::tls_error) << "the old CA is gone";
}

TEST_F(SecurityTest, TheClientRotatesItsCertificateWithoutANewRunner) {
  start_mtls_agent("");
  RotatingFiles files(certs(), dir_.path(),
                      {{"cert.pem", "client-expired.pem"}, {"key.pem", "client-expired.key"}});
  RemoteRunnerConfig config = tls_config();
  config.tls->cert_file = files.path("cert.pem");
  config.tls->key_file = files.path("key.pem");
  config.tls->reload_interval = 1s;
  config.retry.max_attempts = 1;
  RemoteRunner runner(io_.get_executor(), config);
  Outcome before = run(runner);
  EXPECT_EQ(before.error, errc::tls_error);
  EXPECT_THAT(before.result.error_message, HasSubstr("expired"));
  files.rotate({{"cert.pem", "client.pem"}, {"key.pem", "client.key"}});
  Outcome outcome;
  const bool rotated = eventually(
      [&] {
        outcome = run(runner);
        return !outcome.error;
      },
      10s);
  EXPECT_TRUE(rotated) << "the runner still presents the expired certificate: "
                       << outcome.result.error_message;
}

TEST_F(SecurityTest, ReloadingNeedsFilesNotPem) {
  RemoteRunnerConfig config = tls_config();
  config.tls->ca_pem = certs().pem("ca.pem");
  config.tls->reload_interval = 1s;
  try {
    RemoteRunner runner(io_.get_executor(), config);
    FAIL() << "accepted PEM text with a reload interval";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), errc::invalid_config);
    EXPECT_THAT(e.what(), HasSubstr("tls.reload_interval"));
  }
}

TEST_F(SecurityTest, SecretsAndEnvValuesReachTheCommandButNoLogOrError) {
  const std::string token = sensitive("tok-");
  const std::string secret = sensitive("secret-");
  const std::string plain = sensitive("env-");
  const auto secrets_dir = dir_.path() / "secrets";
  std::filesystem::create_directory(secrets_dir);
  std::ofstream(secrets_dir / "api_key") << secret << '\n';
  const auto token_file = dir_.path() / "agent-token";
  std::ofstream(token_file) << token << '\n';
  start_agent({"--tls-cert", cert("server.pem"), "--tls-key", cert("server.key"), "--client-ca",
               cert("ca.pem"), "--token-file", token_file.string(), "--secrets-dir",
               secrets_dir.string()});
  RemoteRunnerConfig config = tls_config();
  config.token = token;
  RemoteRunner runner(io_.get_executor(), config);

  Command uses{
      "sh", "-c",
      "test \"$API_KEY\" = \"$(cat expected)\" && test -n \"$PLAIN\" && echo \"$API_KEY\""};
  std::ofstream(workspace_.path() / "expected") << secret;
  uses.env = {{"API_KEY", "secret://api_key"}, {"PLAIN", plain}};
  Outcome outcome = run(runner, uses);
  ASSERT_FALSE(outcome.error) << outcome.result.error_message;
  EXPECT_EQ(outcome.result.exit_code(), 0) << "the command saw the resolved secret";
  EXPECT_EQ(outcome.result.stdout_data, "[REDACTED]\n") << "the secret is redacted from output";

  // Refusals name the variable and the rule, never a value.
  Command missing{"true"};
  missing.env = {{"API_KEY", "secret://no_such_secret"}, {"PLAIN", plain}};
  Outcome refused = run(runner, missing);
  EXPECT_EQ(refused.error, errc::invalid_argument);
  EXPECT_THAT(refused.result.error_message, HasSubstr("API_KEY"));
  Command bad_value{"true"};
  bad_value.env = {{"PLAIN", plain + std::string(1, '\0') + plain}};
  Outcome invalid = run(runner, bad_value);
  EXPECT_EQ(invalid.error, errc::invalid_argument);
  for (const Outcome* o : {&refused, &invalid}) {
    EXPECT_THAT(o->result.error_message, Not(HasSubstr(plain)));
    EXPECT_THAT(o->result.error_message, Not(HasSubstr(secret)));
  }
}

TEST_F(SecurityTest, TheDefaultLogSinkWarnsOnStderrWithoutTheToken) {
  RemoteRunnerConfig config;
  config.address = "unix:" + (dir_.path() / "nobody.sock").string();
  config.token = sensitive("tok-");
  config.allow_insecure = true;
  StderrCapture capture(dir_.path() / "stderr");
  { RemoteRunner runner(io_.get_executor(), config); }
  const std::string logged = capture.restore();
  // gRPC logs to stderr too (GRPC_VERBOSITY=debug in the captured run): count the SDK's.
  std::size_t warnings = 0;
  for (std::size_t at = logged.find("sandbox-exec: "); at != std::string::npos;
       at = logged.find("sandbox-exec: ", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << logged;
  EXPECT_THAT(logged, HasSubstr("sandbox-exec: warning: allow_insecure: "));
  EXPECT_THAT(logged, Not(HasSubstr(config.token)));
  // Also into the captured suite log, which security_log_scan checks for this line.
  std::fputs(logged.c_str(), stderr);
}

}  // namespace
}  // namespace sandbox::test
