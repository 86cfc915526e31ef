// Connects to a sandbox agent with mTLS (the runner presents a client certificate and
// verifies the agent's) and a bearer token, and runs one command over that connection.
//
//   mtls --certs DIR [ADDRESS]
//
// DIR holds ca.pem, client.pem and client.key, and for a private agent also server.pem and
// server.key, as test/support/make_test_certs.sh makes them. Without ADDRESS, a private
// local agent is started that serves TLS with server.pem, requires client certificates
// signed by ca.pem and a bearer token made up for this run; the program then also checks
// that the agent refuses a runner without the token and one without a client certificate
// (exit 0 when all is as expected, 1 otherwise). With ADDRESS, the agent's certificate must
// be for ADDRESS's host and signed by ca.pem, and the token is $SANDBOX_TOKEN (none when
// unset), as for sandbox-run. The token is never printed.

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "example_agent.hpp"
#include "sandbox/sandbox.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::system_category(), what);
}

/// 32 bytes from the kernel's CSPRNG, as 64 hex digits (printable ASCII, as a token must be).
std::string random_token() {
  unsigned char bytes[32];
  std::size_t filled = 0;
  while (filled < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + filled, sizeof bytes - filled, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("getrandom");
    filled += static_cast<std::size_t>(n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += hex[b >> 4];
    token += hex[b & 0xf];
  }
  return token;
}

/// The token in a file only this user can read, in a fresh 0700 directory: how the agent
/// takes it (`--token-file`). Removed with the object.
class TokenFile {
 public:
  explicit TokenFile(const std::string& token) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/mtls-example.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) fail_errno("mkdtemp " + pattern);
    dir_ = pattern;
    path_ = dir_ / "token";
    try {
      // O_EXCL: a file that exists already (someone else's) is never written into.
      int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) fail_errno("open " + path_.string());
      const std::string line = token + "\n";
      const bool written =
          ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
      const int write_errno = errno;
      ::close(fd);
      errno = write_errno;
      if (!written) fail_errno("write " + path_.string());
    } catch (...) {
      remove();  // no destructor runs for an object whose constructor threw
      throw;
    }
  }
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  ~TokenFile() { remove(); }

  [[nodiscard]] const fs::path& path() const { return path_; }

  /// Idempotent; never throws.
  void remove() noexcept {
    if (dir_.empty()) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }

 private:
  fs::path dir_;
  fs::path path_;
};

sandbox::Command hello() {
  sandbox::Command command{"sh", "-c", "echo hello over mTLS"};
  command.deadline = 30s;
  return command;
}

/// Runs `hello()` and reports the outcome; true when the command ran as expected.
asio::awaitable<bool> run_hello(sandbox::RemoteRunner& runner) {
  auto [ec, result] =
      co_await runner.exec(hello(), asio::experimental::as_tuple(asio::use_awaitable));
  if (ec) {
    std::cout << "over mTLS:       " << sandbox::error_name(ec) << ": " << result.error_message
              << "\n";
    co_return false;
  }
  std::cout << "over mTLS:       exit code " << result.exit_code()
            << ", stdout: " << result.stdout_data;
  co_return result.exit_code() == 0 && result.stdout_data == "hello over mTLS\n";
}

/// Runs `hello()` through a runner the agent must refuse, with `expected`.
asio::awaitable<bool> expect_refusal(sandbox::RemoteRunner& runner, std::string_view label,
                                     sandbox::errc expected) {
  auto [ec, result] =
      co_await runner.exec(hello(), asio::experimental::as_tuple(asio::use_awaitable));
  std::cout << label << (ec == expected ? "refused as expected: " : "NOT refused as expected: ")
            << (ec ? std::string(sandbox::error_name(ec)) + ": " + result.error_message
                   : "exit code " + std::to_string(result.exit_code()))
            << "\n";
  co_return ec == expected;
}

asio::awaitable<int> run(sandbox::RemoteRunnerConfig config, bool private_agent) {
  auto executor = co_await asio::this_coro::executor;
  sandbox::RemoteRunner runner(executor, config);
  bool passed = co_await run_hello(runner);
  if (private_agent) {
    // The agent needs both: a runner with only one of them gets nothing run.
    auto no_token = config;
    no_token.token.clear();
    sandbox::RemoteRunner without_token(executor, no_token);
    passed &=
        co_await expect_refusal(without_token, "no token:        ", sandbox::errc::unauthenticated);

    auto no_certificate = config;
    no_certificate.tls->cert_file.clear();
    no_certificate.tls->key_file.clear();
    sandbox::RemoteRunner without_certificate(executor, no_certificate);
    passed &=
        co_await expect_refusal(without_certificate, "no client cert:  ", sandbox::errc::tls_error);
  }
  co_return passed ? 0 : 1;
}

int usage() {
  std::cerr << "usage: mtls --certs DIR [ADDRESS]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<fs::path> certs;
  std::optional<std::string> address;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--certs" && i + 1 < argc) {
      certs = argv[++i];
    } else if (!arg.starts_with("-") && !address) {
      address = std::string(arg);
    } else {
      return usage();
    }
  }
  if (!certs) return usage();

  try {
    sandbox::RemoteRunnerConfig config;
    config.tls.emplace();
    config.tls->ca_file = (*certs / "ca.pem").string();  // signed the agent's certificate
    config.tls->cert_file = (*certs / "client.pem").string();
    config.tls->key_file = (*certs / "client.key").string();

    std::unique_ptr<sandbox::cli::LocalAgent> agent;
    if (address) {
      config.address = *address;
      if (const char* token = std::getenv("SANDBOX_TOKEN")) config.token = token;
      std::cout << "agent:           " << config.address << "\n"
                << "token:           " << (config.token.empty() ? "none" : "$SANDBOX_TOKEN")
                << "\n";
    } else {
      config.token = random_token();
      TokenFile token_file(config.token);
      agent = example::use_agent(
          nullptr, config,
          {"--tls-cert", (*certs / "server.pem").string(), "--tls-key",
           (*certs / "server.key").string(), "--client-ca", (*certs / "ca.pem").string(),
           "--token-file", token_file.path().string()});
      // The agent reads --token-file once, at startup: nothing needs the file any more.
      token_file.remove();
      // A unix socket has no host name to check the certificate against: name the one the
      // agent's certificate is for.
      config.tls->server_name = "localhost";
      std::cout << "agent:           " << config.address << " (private: TLS with server.pem, "
                << "client certificates signed by ca.pem, a bearer token)\n"
                << "token:           32 random bytes as hex, given to the agent in a 0600 file "
                   "(removed once it was read)\n";
    }
    std::cout << "runner:          CA ca.pem, client certificate client.pem\n";

    asio::io_context io;
    return example::run_to_end(io, run(config, agent != nullptr));
  } catch (const std::exception& e) {
    return example::report("mtls", e);
  }
}
