// sandbox-run end to end: the real sandbox-run and sandbox-agent binaries as subprocesses,
// stdout and stderr captured separately through pipes, every wait bounded.

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/base64.hpp"
#include "cli/local_agent.hpp"
#include "support/agent_process.hpp"
#include "support/test_certs.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

/// Bound on one sandbox-run invocation that should finish promptly.
constexpr auto run_timeout = 60s;

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

/// Waits until the process behind `pidfd` exits. True if it did within `timeout`.
bool wait_pidfd(int pidfd, std::chrono::milliseconds timeout) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

/// How a child ended: `code` for a normal exit, `signal` when a signal killed it.
struct Ended {
  int code = -1;
  int signal = 0;
};

/// A child process with stdin fed from a string and stdout/stderr captured separately.
class Child {
 public:
  struct Spec {
    std::vector<std::string> argv;
    std::string stdin_data;
    /// NAME=VALUE entries set over this process's environment.
    std::vector<std::string> env;
    std::string cwd;
  };

  explicit Child(Spec spec) : stdin_data_(std::move(spec.stdin_data)) {
    int in[2];
    int out[2];
    int err[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
        ::pipe2(err, O_CLOEXEC) != 0) {
      throw std::system_error(errno, std::system_category(), "pipe2");
    }
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    ::posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    if (!spec.cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());

    // This process's environment with `spec.env` set over it, later entries winning.
    std::map<std::string, std::string> by_name;
    auto set = [&](std::string_view entry) {
      by_name[std::string(entry.substr(0, entry.find('=')))] = std::string(entry);
    };
    for (char** e = environ; *e != nullptr; ++e) set(*e);
    for (const auto& entry : spec.env) set(entry);
    std::vector<std::string> env;
    for (auto& [name, entry] : by_name) env.push_back(std::move(entry));
    auto pointers = [](std::vector<std::string>& strings) {
      std::vector<char*> p;
      for (auto& s : strings) p.push_back(s.data());
      p.push_back(nullptr);
      return p;
    };
    auto argv = pointers(spec.argv);
    auto envp = pointers(env);
    int rc =
        ::posix_spawn(&pid_, spec.argv[0].c_str(), &actions, nullptr, argv.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) throw std::system_error(rc, std::system_category(), "posix_spawn " + spec.argv[0]);
    stdin_ = in[1];
    out_fd_ = out[0];
    err_fd_ = err[0];
    pidfd_ = pidfd_open(pid_);
    ::fcntl(stdin_, F_SETFL, O_NONBLOCK);
    if (stdin_data_.empty()) close_fd(stdin_);
  }

  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  ~Child() {
    // Closed first: a child blocked writing to a full pipe gets EPIPE instead of hanging.
    for (int* fd : {&stdin_, &out_fd_, &err_fd_}) close_fd(*fd);
    if (pid_ > 0) {
      // A test that stopped early: SIGTERM first, so that sandbox-run still stops its private
      // agent (SIGKILL would orphan it), SIGKILL if it does not exit in time.
      ::kill(pid_, SIGTERM);
      if (pidfd_ < 0 || !wait_pidfd(pidfd_, 10s)) ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    close_fd(pidfd_);
  }

  /// Moves data through the pipes until `done()` holds, both outputs reached EOF, or
  /// `timeout` passed. Returns `done()`.
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done() && (out_fd_ >= 0 || err_fd_ >= 0)) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left <= 0ms) break;
      pollfd fds[3] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}, {stdin_, POLLOUT, 0}};
      int n = ::poll(fds, 3, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      read_into(fds[0], out_fd_, out_);
      read_into(fds[1], err_fd_, err_);
      if (fds[2].revents != 0) feed_stdin();
    }
    return done();
  }

  /// Reads both outputs to EOF and reaps the child, within `timeout` overall.
  std::optional<Ended> finish(std::chrono::milliseconds timeout = run_timeout) {
    const auto deadline = Clock::now() + timeout;
    pump_until([] { return false; }, timeout);
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (out_fd_ >= 0 || err_fd_ >= 0 || !wait_pidfd(pidfd_, std::max(left, 0ms))) {
      return std::nullopt;
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    if (WIFSIGNALED(status)) return Ended{.code = -1, .signal = WTERMSIG(status)};
    return Ended{.code = WEXITSTATUS(status)};
  }

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::string& out() const { return out_; }
  [[nodiscard]] const std::string& err() const { return err_; }

 private:
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }

  static void read_into(const pollfd& p, int& fd, std::string& sink) {
    if (p.fd < 0 || p.revents == 0) return;
    char buffer[65536];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      sink.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      close_fd(fd);
    }
  }

  void feed_stdin() {
    ssize_t n = ::write(stdin_, stdin_data_.data() + stdin_sent_, stdin_data_.size() - stdin_sent_);
    if (n > 0) stdin_sent_ += static_cast<std::size_t>(n);
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || stdin_sent_ == stdin_data_.size()) {
      close_fd(stdin_);
    }
  }

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdin_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string stdin_data_;
  std::size_t stdin_sent_ = 0;
  std::string out_;
  std::string err_;
};

/// The processes whose command line (NUL-separated argv) `matches`.
std::vector<pid_t> processes_where(const std::function<bool(const std::string&)>& matches) {
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (!std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream file(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (matches(cmdline)) found.push_back(std::stoi(name));
  }
  return found;
}

std::vector<pid_t> processes_mentioning(const std::string& needle) {
  return processes_where(
      [&](const std::string& cmdline) { return cmdline.find(needle) != std::string::npos; });
}

/// Every process below `root` in the process tree, from /proc/<pid>/stat's ppid field.
std::vector<pid_t> descendants_of(pid_t root) {
  std::multimap<pid_t, pid_t> children;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (!std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::ifstream file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    if (rest >> state >> ppid) children.emplace(ppid, std::stoi(name));
  }
  std::vector<pid_t> found;
  std::vector<pid_t> pending = {root};
  while (!pending.empty()) {
    pid_t parent = pending.back();
    pending.pop_back();
    for (auto [it, end] = children.equal_range(parent); it != end; ++it) {
      found.push_back(it->second);
      pending.push_back(it->second);
    }
  }
  return found;
}

/// All 256 byte values, in order.
std::string all_bytes() {
  std::string bytes(256, '\0');
  for (int i = 0; i < 256; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>(i);
  return bytes;
}

/// A shell `printf` format that prints `bytes` exactly (octal escapes only).
std::string printf_format(const std::string& bytes) {
  std::string format;
  char escape[8];
  for (unsigned char c : bytes) {
    std::snprintf(escape, sizeof escape, "\\%03o", c);
    format += escape;
  }
  return format;
}

/// One `--json` line's fields: strings unescaped, numbers and booleans as written. Enough
/// JSON for sandbox-run's flat objects; `std::nullopt` for anything else.
using JsonFields = std::map<std::string, std::string>;

std::optional<std::string> parse_json_string(std::string_view& text) {
  if (!text.starts_with('"')) return std::nullopt;
  text.remove_prefix(1);
  std::string out;
  while (!text.empty() && text.front() != '"') {
    char c = text.front();
    text.remove_prefix(1);
    if (static_cast<unsigned char>(c) < 0x20) return std::nullopt;  // must be escaped
    if (c != '\\') {
      out += c;
      continue;
    }
    if (text.empty()) return std::nullopt;
    char e = text.front();
    text.remove_prefix(1);
    static const std::map<char, char> simple = {{'"', '"'},  {'\\', '\\'}, {'/', '/'},
                                                {'b', '\b'}, {'f', '\f'},  {'n', '\n'},
                                                {'r', '\r'}, {'t', '\t'}};
    if (auto it = simple.find(e); it != simple.end()) {
      out += it->second;
    } else if (e == 'u' && text.size() >= 4) {
      unsigned code = std::stoul(std::string(text.substr(0, 4)), nullptr, 16);
      text.remove_prefix(4);
      // The BMP as UTF-8: all sandbox-run writes (control characters, U+FFFD).
      if (code < 0x80) {
        out += static_cast<char>(code);
      } else if (code < 0x800) {
        out += static_cast<char>(0xc0 | code >> 6);
        out += static_cast<char>(0x80 | (code & 0x3f));
      } else {
        out += static_cast<char>(0xe0 | code >> 12);
        out += static_cast<char>(0x80 | (code >> 6 & 0x3f));
        out += static_cast<char>(0x80 | (code & 0x3f));
      }
    } else {
      return std::nullopt;
    }
  }
  if (text.empty()) return std::nullopt;
  text.remove_prefix(1);
  return out;
}

std::optional<JsonFields> parse_json_line(std::string_view line) {
  JsonFields fields;
  if (!line.starts_with('{')) return std::nullopt;
  line.remove_prefix(1);
  for (;;) {
    auto key = parse_json_string(line);
    if (!key || !line.starts_with(':')) return std::nullopt;
    line.remove_prefix(1);
    std::string value;
    if (line.starts_with('"')) {
      auto text = parse_json_string(line);
      if (!text) return std::nullopt;
      value = *text;
    } else {
      auto end = line.find_first_of(",}");
      if (end == std::string_view::npos || end == 0) return std::nullopt;
      value = line.substr(0, end);
      line.remove_prefix(end);
    }
    if (!fields.emplace(*key, value).second) return std::nullopt;  // duplicate key
    if (line == "}") return fields;
    if (!line.starts_with(',')) return std::nullopt;
    line.remove_prefix(1);
  }
}

/// sandbox-run's stdout under `--json`, one parsed object per line. Fails the test on a
/// line that is not one JSON object, or output that does not end with a newline.
std::vector<JsonFields> json_lines_of(const std::string& out) {
  std::vector<JsonFields> lines;
  EXPECT_TRUE(out.empty() || out.back() == '\n') << "the last line is unterminated";
  std::istringstream stream(out);
  std::string line;
  while (std::getline(stream, line)) {
    auto fields = parse_json_line(line);
    EXPECT_TRUE(fields.has_value()) << "not a flat JSON object: " << line;
    if (fields) lines.push_back(std::move(*fields));
  }
  return lines;
}

/// The bytes of `stream`'s ("stdout" or "stderr") chunk lines, checking each continues at
/// the offset the previous ones reached.
std::string decoded_output(const std::vector<JsonFields>& lines, const std::string& stream) {
  std::string bytes;
  for (const auto& line : lines) {
    if (line.at("event") != stream) continue;
    EXPECT_EQ(line.at("offset"), std::to_string(bytes.size())) << stream << " offset";
    auto data = sandbox::cli::base64_decode(line.at("data"));
    EXPECT_TRUE(data.has_value()) << "not base64: " << line.at("data");
    bytes += data.value_or("");
  }
  return bytes;
}

class CliRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "cli-test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    root_ = pattern;
    tmpdir_ = root_ / "tmp";
    workspace_ = root_ / "ws";
    fs::create_directories(tmpdir_);
    fs::create_directories(workspace_);
  }

  void TearDown() override {
    agent_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  /// sandbox-run with `args`, its TMPDIR private to this test, in the test's workspace.
  std::unique_ptr<Child> start(std::vector<std::string> args, std::string stdin_data = {},
                               std::vector<std::string> env = {}) {
    args.insert(args.begin(), SANDBOX_RUN_BINARY);
    env.insert(env.begin(), "TMPDIR=" + tmpdir_.string());
    return std::make_unique<Child>(Child::Spec{.argv = std::move(args),
                                               .stdin_data = std::move(stdin_data),
                                               .env = std::move(env),
                                               .cwd = workspace_.string()});
  }

  /// Runs sandbox-run to its end; fails the test if it does not end within `run_timeout`.
  struct Run {
    Ended ended;
    std::string out;
    std::string err;
  };
  Run run(std::vector<std::string> args, std::string stdin_data = {},
          std::vector<std::string> env = {}) {
    auto child = start(std::move(args), std::move(stdin_data), std::move(env));
    auto ended = child->finish();
    EXPECT_TRUE(ended.has_value()) << "sandbox-run did not finish within " << run_timeout.count()
                                   << "s; stderr so far: " << child->err();
    EXPECT_EQ(ended.value_or(Ended{}).signal, 0) << "sandbox-run was killed by a signal";
    return {ended.value_or(Ended{}), child->out(), child->err()};
  }

  /// An agent of the test's own, for `--address`.
  const std::string& agent_address() {
    if (!agent_) {
      agent_ = sandbox::cli::LocalAgent::start(
          {.binary = SANDBOX_AGENT_BINARY, .workspace = workspace_.string()});
    }
    return agent_->address();
  }

  /// Nothing of a private agent outlives a run: no directory in TMPDIR, no process that
  /// mentions it.
  void expect_no_private_agent_left() {
    EXPECT_TRUE(fs::is_empty(tmpdir_)) << "a private agent's directory is left in " << tmpdir_;
    EXPECT_THAT(processes_mentioning(tmpdir_.string()), ::testing::IsEmpty())
        << "a private agent process is still running";
  }

  fs::path root_;
  fs::path tmpdir_;
  fs::path workspace_;
  std::unique_ptr<sandbox::cli::LocalAgent> agent_;
};

const std::vector<std::string> hello_oops = {"sh", "-c", "echo hello; echo oops >&2; exit 3"};

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_F(CliRunTest, PrivateAgentStreamsBothStreamsAndPassesTheExitCode) {
  auto r = run(concat({"--"}, hello_oops));
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.ended.code, 3);
  expect_no_private_agent_left();
}

TEST_F(CliRunTest, ExplicitAddressStreamsBothStreamsAndPassesTheExitCode) {
  auto r = run(concat({"--address", agent_address(), "--"}, hello_oops));
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_EQ(r.ended.code, 3);
  EXPECT_TRUE(fs::is_empty(tmpdir_)) << "no private agent is made when --address is given";
}

TEST_F(CliRunTest, BinaryOutputIsByteExactOnBothStreams) {
  // 64 rounds of all 256 byte values, interleaved on both streams: several chunks each.
  const std::string script = "p() { printf '" + printf_format(all_bytes()) +
                             "'; }; i=0; while [ $i -lt 64 ]; do p; p >&2; i=$((i+1)); done";
  auto r = run({"--", "sh", "-c", script});
  std::string expected;
  for (int i = 0; i < 64; ++i) expected += all_bytes();
  EXPECT_EQ(r.ended.code, 0) << r.err.substr(0, 200);
  EXPECT_TRUE(r.out == expected) << "stdout differs: " << r.out.size() << " bytes";
  EXPECT_TRUE(r.err == expected) << "stderr differs: " << r.err.size() << " bytes";
}

TEST_F(CliRunTest, TimedOutCommandExits124) {
  const auto begin = Clock::now();
  auto r = run({"--timeout", "300ms", "--", "sleep", "30"});
  EXPECT_EQ(r.ended.code, 124) << r.err;
  EXPECT_LT(Clock::now() - begin, 20s) << "the timeout did not cut the 30 s sleep short";
  expect_no_private_agent_left();
}

TEST_F(CliRunTest, CommandKilledBySignalExits128PlusSignal) {
  auto r = run({"--", "sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(r.ended.code, 128 + SIGTERM) << r.err;
}

TEST_F(CliRunTest, UnreachableAgentIsOneUnavailableErrorLine) {
  auto r = run({"--address", "unix:/nonexistent/sock", "--", "true"});
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: unavailable: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, EndsWith("\n"));
  EXPECT_EQ(r.out, "");
}

TEST_F(CliRunTest, TokenWithoutTlsIsRefusedUnlessInsecureIsAllowed) {
  const auto token_file = root_ / "token";
  std::ofstream(token_file) << "tok-3b1f9e\n";
  auto r = run({"--address", agent_address(), "--token-file", token_file.string(), "--", "true"});
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: "));
  EXPECT_THAT(r.err, HasSubstr("insecure"));
  EXPECT_THAT(r.err, Not(HasSubstr("tok-3b1f9e"))) << "the token leaked into the error";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(CliRunTest, MutualTlsWithATokenAndEachTlsFailureNamed) {
  sandbox::test::TestCerts certs;
  const auto token_file = root_ / "token";
  std::ofstream(token_file) << "tok-51ac07\n";
  auto cert = [&](const std::string& name) { return certs.file(name).string(); };
  sandbox::test::AgentProcess agent({"--tls-cert", cert("server.pem"), "--tls-key",
                                     cert("server.key"), "--client-ca", cert("ca.pem"),
                                     "--token-file", token_file.string(), "--listen", "127.0.0.1:0",
                                     "--workspace", workspace_.string(), "--sandbox", "none"});
  const std::string address = "127.0.0.1:" + agent.address().substr(agent.address().rfind(':') + 1);
  auto with = [&](const std::string& ca, const std::string& client) {
    return run({"--address", address, "--ca", cert(ca + ".pem"), "--cert", cert(client + ".pem"),
                "--key", cert(client + ".key"), "--token-file", token_file.string(), "--", "echo",
                "hi"});
  };
  auto ok = with("ca", "client");
  EXPECT_EQ(ok.ended.code, 0) << ok.err;
  EXPECT_EQ(ok.out, "hi\n");
  auto unknown_ca = with("ca2", "client");
  EXPECT_EQ(unknown_ca.ended.code, 125);
  EXPECT_THAT(unknown_ca.err, HasSubstr("tls_error"));
  EXPECT_THAT(unknown_ca.err, HasSubstr("unknown CA"));
  auto rejected = with("ca", "client-ca2");
  EXPECT_EQ(rejected.ended.code, 125);
  EXPECT_THAT(rejected.err, HasSubstr("rejected this runner's client certificate"));
  for (const auto* r : {&ok, &unknown_ca, &rejected}) {
    EXPECT_THAT(r->err, Not(HasSubstr("tok-51ac07"))) << "the token leaked";
  }
}

TEST_F(CliRunTest, ProtocolLegacyTalksToTheOlderGenerationsPath) {
  // The v1 agent does not serve the older path: the flag demonstrably changes the method.
  auto legacy = run({"--address", agent_address(), "--protocol", "legacy", "--", "true"});
  EXPECT_EQ(legacy.ended.code, 125);
  EXPECT_THAT(legacy.err, HasSubstr("unimplemented"));
  auto v1 = run({"--address", agent_address(), "--protocol", "v1", "--", "true"});
  EXPECT_EQ(v1.ended.code, 0) << v1.err;
  auto refused =
      run({"--address", agent_address(), "--protocol", "legacy", "--timeout", "5s", "--", "true"});
  EXPECT_EQ(refused.ended.code, 125);
  EXPECT_THAT(refused.err, HasSubstr("timeout: needs a v1 agent"));
}

TEST_F(CliRunTest, TokenFromEnvironmentIsRefusedWithoutTlsToo) {
  auto r = run({"--address", agent_address(), "--", "true"}, {}, {"SANDBOX_TOKEN=tok-env-77"});
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, HasSubstr("insecure"));
  EXPECT_THAT(r.err, Not(HasSubstr("tok-env-77")));
}

TEST_F(CliRunTest, StdinReachesTheCommandByteExact) {
  std::string input;
  for (int i = 0; i < 1024; ++i) input += all_bytes();  // 256 KiB: more than a pipe holds
  auto r = run({"--stdin", "--", "cat"}, input);
  EXPECT_EQ(r.ended.code, 0) << r.err;
  EXPECT_TRUE(r.out == input) << "stdout differs: " << r.out.size() << " of " << input.size();
}

TEST_F(CliRunTest, SecretReferenceReachesTheAgentVerbatim) {
  // This agent has no secret store: it refuses the reference, naming the key, not the value.
  auto r = run({"--env", "DB_PASSWORD=secret://db-pass-7f3a", "--", "true"});
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: invalid_argument: "));
  EXPECT_THAT(r.err, HasSubstr("DB_PASSWORD"));
  EXPECT_THAT(r.err, Not(HasSubstr("db-pass-7f3a"))) << "the secret reference was echoed";
  expect_no_private_agent_left();
}

TEST_F(CliRunTest, MaxOutputCapsEachStream) {
  auto r = run({"--max-output", "1K", "--", "sh", "-c",
                "head -c 100000 /dev/zero; head -c 100000 /dev/zero >&2"});
  EXPECT_EQ(r.ended.code, 0) << r.err.substr(0, 200);
  EXPECT_EQ(r.out.size(), 1024u);
  EXPECT_EQ(r.err.size(), 1024u);
}

TEST_F(CliRunTest, EnvAndWorkdirReachTheCommand) {
  fs::create_directories(workspace_ / "sub");
  auto r = run({"--env", "GREETING=hi there", "--workdir", "sub", "--", "sh", "-c",
                "echo \"$GREETING\"; basename \"$PWD\""});
  EXPECT_EQ(r.ended.code, 0) << r.err;
  EXPECT_EQ(r.out, "hi there\nsub\n");
}

TEST_F(CliRunTest, JsonLinesCarryBinaryStdoutTextStderrAndExitInOrder) {
  const std::string script =
      "printf '" + printf_format(all_bytes()) + "'; echo 'some \"text\"' >&2; exit 3";
  auto r = run({"--json", "--", "sh", "-c", script});
  EXPECT_EQ(r.ended.code, 3) << r.err;
  EXPECT_EQ(r.err, "") << "--json writes everything on stdout";
  auto lines = json_lines_of(r.out);
  ASSERT_GE(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines.front().at("event"), "started");
  EXPECT_THAT(lines.front().at("exec_id"), Not(::testing::IsEmpty()));
  EXPECT_TRUE(lines.front().contains("sandbox_id"));
  EXPECT_TRUE(lines.front().contains("effective_profile"));
  for (std::size_t i = 1; i + 1 < lines.size(); ++i) {
    EXPECT_THAT(lines[i].at("event"), ::testing::AnyOf("stdout", "stderr")) << "line " << i;
  }
  EXPECT_TRUE(decoded_output(lines, "stdout") == all_bytes()) << "stdout differs";
  EXPECT_EQ(decoded_output(lines, "stderr"), "some \"text\"\n");
  const auto& exit = lines.back();
  EXPECT_EQ(exit, (JsonFields{{"event", "exit"},
                              {"exit_code", "3"},
                              {"signal", "0"},
                              {"timed_out", "false"},
                              {"stdout_truncated", "false"},
                              {"stderr_truncated", "false"},
                              {"stdout_total", "256"},
                              {"stderr_total", "12"},
                              {"duration_ms", exit.at("duration_ms")}}));
  expect_no_private_agent_left();
}

TEST_F(CliRunTest, JsonWithoutOutputIsStartedThenExit) {
  auto r = run({"--json", "--", "true"});
  EXPECT_EQ(r.ended.code, 0) << r.err;
  auto lines = json_lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0].at("event"), "started");
  EXPECT_EQ(lines[1].at("event"), "exit");
  EXPECT_EQ(lines[1].at("exit_code"), "0");
}

TEST_F(CliRunTest, JsonCommandThatCannotStartIsAnExitNotAnError) {
  auto r = run({"--json", "--", "no-such-command-3f9a"});
  EXPECT_EQ(r.ended.code, 127) << r.err;
  auto lines = json_lines_of(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines.front().at("event"), "started");
  EXPECT_THAT(decoded_output(lines, "stderr"), HasSubstr("no-such-command-3f9a"));
  EXPECT_EQ(lines.back().at("event"), "exit");
  EXPECT_EQ(lines.back().at("exit_code"), "127");
}

TEST_F(CliRunTest, JsonUnreachableAgentIsAnErrorLineBesideTheStderrLine) {
  auto r = run({"--json", "--address", "unix:/nonexistent/sock", "--", "true"});
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: unavailable: "));
  auto lines = json_lines_of(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  EXPECT_EQ(lines[0].at("event"), "error");
  EXPECT_EQ(lines[0].at("code"), "unavailable");
  EXPECT_EQ("sandbox-run: error: unavailable: " + lines[0].at("message") + "\n", r.err)
      << "the error line and the stderr line say the same";
}

TEST_F(CliRunTest, JsonCommandLineErrorIsAnErrorLineToo) {
  auto r = run({"--json", "--timeout", "abc", "--", "true"});
  EXPECT_EQ(r.ended.code, 125);
  auto lines = json_lines_of(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  EXPECT_EQ(lines[0].at("event"), "error");
  EXPECT_EQ(lines[0].at("code"), "invalid_argument");
  EXPECT_THAT(lines[0].at("message"), StartsWith("--timeout: "));
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: invalid_argument: --timeout: "));
}

TEST_F(CliRunTest, UnreadableTlsFileIsNamedByItsFlag) {
  const auto missing = (root_ / "missing.pem").string();
  const auto present = (root_ / "present.pem").string();
  std::ofstream(present) << "not used\n";
  for (const auto& [flag, args] : std::map<std::string, std::vector<std::string>>{
           {"--ca", {"--ca", missing}},
           {"--cert", {"--cert", missing, "--key", present}},
           {"--key", {"--cert", present, "--key", missing}}}) {
    auto r = run(concat(concat({"--address", "127.0.0.1:1"}, args), {"--", "true"}));
    EXPECT_EQ(r.ended.code, 125) << flag;
    EXPECT_THAT(r.err, StartsWith("sandbox-run: error: invalid_config: " + flag + ": cannot read"));
  }
}

struct BadFlag {
  std::string name;
  std::vector<std::string> args;
  std::string flag;
};

// Test names and CTest's listing show the case's name, not a byte dump.
void PrintTo(const BadFlag& bad, std::ostream* os) { *os << bad.name; }

class CliBadFlagTest : public CliRunTest, public ::testing::WithParamInterface<BadFlag> {};

TEST_P(CliBadFlagTest, ExitsWithOneLineNamingTheFlag) {
  auto r = run(GetParam().args);
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: invalid_argument: "));
  EXPECT_THAT(r.err, HasSubstr(GetParam().flag));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");
  expect_no_private_agent_left();
}

INSTANTIATE_TEST_SUITE_P(
    Usage, CliBadFlagTest,
    ::testing::Values(BadFlag{"BadTimeout", {"--timeout", "abc", "--", "true"}, "--timeout"},
                      BadFlag{"MissingDoubleDash", {"true"}, "'--'"},
                      BadFlag{"UnknownFlag", {"--frobnicate", "--", "true"}, "--frobnicate"},
                      BadFlag{
                          "BadMaxOutput", {"--max-output", "lots", "--", "true"}, "--max-output"},
                      BadFlag{"EnvWithoutValue", {"--env", "NOVALUE", "--", "true"}, "--env"}),
    [](const auto& info) { return info.param.name; });

TEST_F(CliRunTest, HelpExitsZeroWithUsageOnStdout) {
  auto r = run({"--help"});
  EXPECT_EQ(r.ended.code, 0);
  EXPECT_THAT(r.out, StartsWith("Usage: sandbox-run [OPTIONS] -- COMMAND [ARG...]"));
  EXPECT_EQ(r.err, "");
}

TEST_F(CliRunTest, TerminatingSandboxRunStopsCommandAndPrivateAgent) {
  auto child = start({"--", "sh", "-c", "echo ready; exec sleep 30"});
  ASSERT_TRUE(child->pump_until([&] { return child->out() == "ready\n"; }, run_timeout))
      << "the command never said ready; stderr: " << child->err();
  // The private agent is the one process whose argv names this test's TMPDIR; what it
  // started are its descendants (whatever sandbox backend sits in between).
  auto agents = processes_mentioning(tmpdir_.string());
  ASSERT_EQ(agents.size(), 1u) << "expected exactly one private agent";
  std::vector<int> remote;
  for (pid_t pid : descendants_of(agents.front())) remote.push_back(pidfd_open(pid));
  ASSERT_FALSE(remote.empty()) << "the remote command is not running";

  ASSERT_EQ(::kill(child->pid(), SIGTERM), 0);
  auto ended = child->finish();
  ASSERT_TRUE(ended.has_value()) << "sandbox-run did not exit after SIGTERM";
  EXPECT_EQ(ended->code, 128 + SIGTERM) << child->err();
  EXPECT_EQ(child->err(), "");
  for (int pidfd : remote) {
    if (pidfd < 0) continue;  // already gone
    EXPECT_TRUE(wait_pidfd(pidfd, 10s)) << "a process of the remote command outlived the run";
    ::close(pidfd);
  }
  expect_no_private_agent_left();
}

TEST_F(CliRunTest, AgentThatCannotStartIsAnUnavailableError) {
  // A TMPDIR where no socket can be made: the private agent fails, nothing is left.
  auto r = run({"--", "true"}, {}, {"TMPDIR=/nonexistent-dir"});
  EXPECT_EQ(r.ended.code, 125);
  EXPECT_THAT(r.err, StartsWith("sandbox-run: error: unavailable: "));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
