// sandbox-run: runs one command on a sandbox agent, streaming its output byte for byte (or,
// with --json, as JSON lines).
// The flags and exit statuses are a contract: see `usage_text()` in options.cpp.

#include <fcntl.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_awaitable.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/fd_io.hpp"
#include "cli/local_agent.hpp"
#include "cli/options.hpp"
#include "cli/run_output.hpp"
#include "common/malloc_tuning.hpp"
#include "sandbox/sandbox.hpp"

namespace {

using namespace sandbox;

/// Any error of sandbox-run, the transport or the agent.
constexpr int exit_error = 125;
/// 128 + SIGPIPE, as if the write had killed us: what `cmd | head` expects.
constexpr int exit_broken_pipe = 128 + SIGPIPE;

/// `std::system_error::what()` appends ": <code message>" to the message it was given;
/// the error line names the code already.
std::string message_of(const std::system_error& e) {
  std::string what = e.what();
  std::string suffix = ": " + e.code().message();
  if (what.size() > suffix.size() && what.ends_with(suffix))
    what.resize(what.size() - suffix.size());
  return what;
}

[[noreturn]] void throw_error(errc code, const std::string& message) {
  throw std::system_error(make_error_code(code), message);
}

/// The bearer token for an `--address` agent: `--token-file` (one trailing newline
/// ignored), else `$SANDBOX_TOKEN`. A private agent gets none.
std::string load_token(const cli::Options& options) {
  if (options.address.empty()) return {};
  if (options.token_file.empty()) {
    const char* env = std::getenv("SANDBOX_TOKEN");
    return env != nullptr ? env : "";
  }
  std::ifstream file(options.token_file, std::ios::binary);
  std::ostringstream text;
  if (!file || !(text << file.rdbuf())) {
    throw_error(errc::invalid_config, "--token-file: cannot read " + options.token_file);
  }
  std::string token = std::move(text).str();
  if (token.ends_with('\n')) token.pop_back();
  if (token.ends_with('\r')) token.pop_back();
  if (token.empty())
    throw_error(errc::invalid_config, "--token-file: " + options.token_file + " is empty");
  return token;
}

/// Checked here, though the runner checks it too, so that the error names the flag
/// rather than the SDK's `tls.*` field.
void check_readable(std::string_view flag, const std::string& path) {
  if (path.empty()) return;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw_error(errc::invalid_config,
                std::string(flag) + ": cannot read '" + path + "': " + std::strerror(errno));
  }
  ::close(fd);
}

RemoteRunnerConfig make_config(const cli::Options& options, std::string address) {
  RemoteRunnerConfig config;
  config.address = std::move(address);
  config.token = load_token(options);
  if (options.uses_tls()) {
    check_readable("--ca", options.ca_file);
    check_readable("--cert", options.cert_file);
    check_readable("--key", options.key_file);
    TlsConfig& tls = config.tls.emplace();
    tls.ca_file = options.ca_file;
    tls.cert_file = options.cert_file;
    tls.key_file = options.key_file;
    tls.server_name = options.server_name;
  }
  config.allow_insecure = options.allow_insecure;
  config.protocol = options.protocol;
  config.profile = options.profile;
  config.image = options.image;
  config.workdir = options.workdir;
  config.sandbox_id = options.sandbox_id;
  return config;
}

Command make_command(const cli::Options& options) {
  Command command(options.argv);
  command.env = options.env;
  command.timeout = options.timeout;
  command.max_output_bytes = options.max_output_bytes;
  if (options.forward_stdin) {
    if (auto ec = cli::read_all(STDIN_FILENO, command.stdin_data)) {
      throw std::system_error(ec, "--stdin: cannot read stdin");
    }
  }
  return command;
}

/// The agent's exit code, if sandbox-run can pass it on as its own status.
bool exit_code_fits(const ExitStatus& status) {
  return status.timed_out || status.signal > 0 ||
         (status.exit_code >= 0 && status.exit_code <= 255);
}

/// sandbox-run's status for how the command ended (`exit_code_fits(status)`).
int exit_status_of(const ExitStatus& status) {
  if (status.timed_out) return 124;
  if (status.signal > 0) return 128 + status.signal;
  return status.exit_code;
}

/// The status for a failed write to stdout or stderr, reported as an error unless the
/// reader went away.
int write_failed(cli::RunOutput& output, const cli::WriteFailure& failure) {
  if (failure.error == std::errc::broken_pipe) return exit_broken_pipe;
  output.error(failure.error,
               "writing " + std::string(failure.output) + ": " + failure.error.message());
  return exit_error;
}

/// Streams `command`'s output to `output` as it arrives and yields sandbox-run's exit
/// status. SIGINT/SIGTERM/SIGHUP cancel the call (the agent kills the command) and yield
/// 128 + the signal.
asio::awaitable<int> stream_command(RemoteRunner& runner, Command command,
                                    asio::signal_set& signals, cli::RunOutput& output) {
  // Shared with the signal handler, which may still be queued when this frame is gone.
  auto stream = std::make_shared<ExecStream>(runner.stream(std::move(command)));
  auto interrupted = std::make_shared<int>(0);
  signals.async_wait([stream, interrupted](std::error_code ec, int signal) {
    if (ec) return;
    *interrupted = signal;
    stream->cancel();
  });
  struct CancelSignalWait {
    asio::signal_set& signals;
    ~CancelSignalWait() { signals.cancel(); }
  } cancel_signal_wait{signals};

  for (;;) {
    auto [ec, chunk] = co_await stream->next(asio::experimental::as_tuple(asio::use_awaitable));
    if (*interrupted != 0) co_return 128 + *interrupted;
    if (ec) {
      output.error(ec, stream->error_message());
      co_return exit_error;
    }
    if (!chunk) break;
    if (auto failure = output.chunk(*chunk, stream->info())) {
      stream->cancel();
      co_return write_failed(output, *failure);
    }
  }
  const ExitStatus status = stream->exit_status();
  if (!exit_code_fits(status)) {
    output.error(
        make_error_code(errc::protocol_error),
        "the agent reported exit code " + std::to_string(status.exit_code) + ", outside 0-255");
    co_return exit_error;
  }
  if (auto failure = output.exit(status, stream->info())) co_return write_failed(output, *failure);
  co_return exit_status_of(status);
}

int run(const cli::Options& options, cli::RunOutput& output) {
  // A closed reader of our stdout must surface as EPIPE from write(), not kill us before the
  // private agent is stopped.
  std::signal(SIGPIPE, SIG_IGN);
  asio::io_context io;
  // Installed before the agent starts: a signal from now on is queued for the wait in
  // stream_command instead of killing this process with the agent still running.
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);

  Command command = make_command(options);
  std::unique_ptr<cli::LocalAgent> agent;
  std::string address = options.address;
  if (address.empty()) {
    auto binary = cli::find_agent_binary();
    if (!binary) {
      throw_error(errc::unavailable,
                  "no sandbox-agent next to sandbox-run or on PATH to start a private agent; "
                  "pass --address");
    }
    agent = cli::LocalAgent::start(
        {.binary = *binary, .workspace = std::filesystem::current_path().string()});
    address = agent->address();
  }

  int status = exit_error;
  {
    RemoteRunner runner(io.get_executor(), make_config(options, address));
    asio::co_spawn(io, stream_command(runner, std::move(command), signals, output),
                   [&](std::exception_ptr error, int result) {
                     status = result;
                     if (!error) return;
                     status = exit_error;
                     try {
                       std::rethrow_exception(error);
                     } catch (const std::system_error& e) {
                       output.error(e.code(), message_of(e));
                     } catch (const std::exception& e) {
                       output.error(make_error_code(errc::internal), e.what());
                     }
                   });
    io.run();
  }  // ~RemoteRunner waits until gRPC finished the call, before the agent goes away.
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  sandbox::tune_malloc_for_streaming();
  std::vector<std::string_view> args(argv + 1, argv + argc);
  auto parsed = cli::parse_args(args);
  cli::RunOutput output(parsed.options.json ? cli::RunOutput::Format::json
                                            : cli::RunOutput::Format::raw);
  switch (parsed.action) {
    case cli::Action::help:
      return cli::write_all(STDOUT_FILENO, cli::usage_text()) ? exit_error : 0;
    case cli::Action::version:
      return cli::write_all(STDOUT_FILENO, "sandbox-run " SANDBOX_VERSION_STRING "\n") ? exit_error
                                                                                       : 0;
    case cli::Action::error:
      output.error(make_error_code(errc::invalid_argument), parsed.error);
      return exit_error;
    case cli::Action::run:
      break;
  }
  try {
    return run(parsed.options, output);
  } catch (const std::system_error& e) {
    output.error(e.code(), message_of(e));
  } catch (const std::exception& e) {
    output.error(make_error_code(errc::internal), e.what());
  }
  return exit_error;
}
