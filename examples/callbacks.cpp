// Uses the SDK without coroutines, from a program whose main thread stays synchronous and
// whose io_context runs on a background thread: (a) `runner.exec` with a plain callback,
// (b) `runner.exec` with `asio::use_future`, (c) a stream read to its end with callbacks.
// Checks each result (exit 0 when all are as expected, 1 otherwise).
//
//   callbacks [ADDRESS]
//
// Without ADDRESS, a private local agent is started for the run (as `sandbox-run` does).

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include "example_agent.hpp"
#include "sandbox/sandbox.hpp"

namespace {

/// (a) The completion handler is a lambda. It has no executor of its own, so it runs on the
/// runner's: the background thread that runs the io_context (never a gRPC thread).
bool exec_with_callback(sandbox::RemoteRunner& runner) {
  std::promise<bool> passed;
  auto outcome = passed.get_future();
  runner.exec(
      sandbox::Command{"sh", "-c", "echo from a callback"},
      [&passed](std::error_code ec, sandbox::ExecResult result) {
        if (ec) {
          std::cerr << "(a) callback: " << sandbox::error_name(ec) << ": " << result.error_message
                    << "\n";
          passed.set_value(false);
          return;
        }
        std::cout << "(a) callback: exit code " << result.exit_code()
                  << ", stdout: " << result.stdout_data;
        passed.set_value(result.exit_code() == 0 && result.stdout_data == "from a callback\n");
      });
  return outcome.get();
}

/// (b) `use_future` turns the completion into a `std::future<ExecResult>`; an error comes
/// out of `get()` as `std::system_error`. The future's handler carries an executor of its
/// own (Asio's system executor), so the result does not need this program's io_context.
bool exec_with_future(sandbox::RemoteRunner& runner) {
  std::future<sandbox::ExecResult> future =
      runner.exec(sandbox::Command{"sh", "-c", "echo from a future; exit 4"}, asio::use_future);
  try {
    sandbox::ExecResult result = future.get();
    std::cout << "(b) future:   exit code " << result.exit_code()
              << ", stdout: " << result.stdout_data;
    return result.exit_code() == 4 && result.stdout_data == "from a future\n";
  } catch (const std::system_error& e) {
    std::cerr << "(b) future: " << sandbox::error_name(e.code()) << ": " << e.what() << "\n";
    return false;
  }
}

/// (c) Reads a stream to its end with callbacks: each handler asks for the next chunk, so
/// exactly one `next()` is outstanding at a time, as `ExecStream` requires.
class StreamReader {
 public:
  explicit StreamReader(sandbox::ExecStream stream) : stream_(std::move(stream)) {}

  /// Starts reading; the future gets the error, or no error once the exit has arrived.
  std::future<std::error_code> read_all() {
    auto done = done_.get_future();
    // An ExecStream is used from one executor: the reads continue on the runner's (in the
    // handlers), so the first one starts there too rather than on this thread.
    asio::post(stream_.get_executor(), [this] { read_next(); });
    return done;
  }

  [[nodiscard]] const sandbox::ExecStream& stream() const { return stream_; }
  [[nodiscard]] const std::string& out() const { return out_; }
  [[nodiscard]] const std::string& err() const { return err_; }

 private:
  void read_next() {
    stream_.next([this](std::error_code ec, std::optional<sandbox::OutputChunk> chunk) {
      if (ec || !chunk) {
        done_.set_value(ec);
        return;
      }
      (chunk->stream == sandbox::OutputStream::out ? out_ : err_) += chunk->data;
      read_next();
    });
  }

  sandbox::ExecStream stream_;
  std::string out_;
  std::string err_;
  std::promise<std::error_code> done_;
};

/// Output of several lines, on one line of the report.
std::string escaped(const std::string& text) {
  std::string result = "\"";
  for (char c : text) result += c == '\n' ? std::string("\\n") : std::string(1, c);
  return result + "\"";
}

bool stream_with_callbacks(sandbox::RemoteRunner& runner) {
  StreamReader reader(runner.stream({"sh", "-c", "echo one; echo two >&2; echo three; exit 5"}));
  // The promise orders the reads on the io thread before what this thread reads below.
  if (auto ec = reader.read_all().get()) {
    std::cerr << "(c) stream: " << sandbox::error_name(ec) << ": "
              << reader.stream().error_message() << "\n";
    return false;
  }
  const int exit_code = reader.stream().exit_status().exit_code;
  std::cout << "(c) stream:   exit code " << exit_code << ", stdout: " << escaped(reader.out())
            << ", stderr: " << escaped(reader.err()) << "\n";
  return exit_code == 5 && reader.out() == "one\nthree\n" && reader.err() == "two\n";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    sandbox::RemoteRunnerConfig config;
    auto agent = example::use_agent(argc > 1 ? argv[1] : nullptr, config);

    asio::io_context io;
    sandbox::RemoteRunner runner(io.get_executor(), config);
    // Keeps io.run() from returning while no operation is pending yet.
    auto work = asio::make_work_guard(io);
    std::thread io_thread([&io] { io.run(); });

    const bool a = exec_with_callback(runner);
    const bool b = exec_with_future(runner);
    const bool c = stream_with_callbacks(runner);

    work.reset();
    io_thread.join();
    return a && b && c ? 0 : 1;
  } catch (const std::exception& e) {
    return example::report("callbacks", e);
  }
}
