// Streams a command's output with `runner.stream(cmd)` and `co_await stream.next()`, and
// consumes it line by line as it arrives: a line split across chunks is put back together,
// and a last line without a newline still counts. Checks the lines and the exit status it
// got (exit 0 when they are as expected, 1 otherwise).
//
//   stream_chunks [ADDRESS]
//
// Without ADDRESS, a private local agent is started for the run (as `sandbox-run` does).

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "example_agent.hpp"
#include "sandbox/sandbox.hpp"

namespace {

using Clock = std::chrono::steady_clock;

/// Cuts one output stream into lines. A chunk ends wherever the agent's read of the pipe
/// ended, not at a line end, so an incomplete tail waits for the next chunk of the same
/// stream.
class LineSplitter {
 public:
  LineSplitter(std::string_view label, Clock::time_point start) : label_(label), start_(start) {}

  void feed(std::string_view data) {
    pending_.append(data);
    std::size_t begin = 0;
    for (auto end = pending_.find('\n'); end != std::string::npos;
         end = pending_.find('\n', begin)) {
      emit(pending_.substr(begin, end - begin));
      begin = end + 1;
    }
    pending_.erase(0, begin);
  }

  /// The stream has ended: what is left is a last line that had no newline.
  void finish() {
    if (!pending_.empty()) emit(std::exchange(pending_, {}));
  }

  [[nodiscard]] const std::vector<std::string>& lines() const { return lines_; }

 private:
  void emit(std::string line) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_);
    std::cout << "[" << label_ << "] " << lines_.size() + 1 << " (+" << ms.count()
              << " ms): " << line << "\n";
    lines_.push_back(std::move(line));
  }

  std::string_view label_;
  Clock::time_point start_;
  std::string pending_;
  std::vector<std::string> lines_;
};

// Prints over about a second, on both streams; one line is written in two parts with a pause
// between them (so it usually arrives in two chunks), and the last one has no newline.
constexpr const char* script = R"(
for i in 1 2 3 4 5; do
  echo "step $i of 5"
  echo "warning $i" >&2
  sleep 0.1
done
printf 'a line written '
sleep 0.2
printf 'in two parts\n'
printf 'no newline at the end'
)";

asio::awaitable<int> stream_lines(sandbox::RemoteRunner& runner) {
  sandbox::Command command{"sh", "-c", script};
  command.timeout = std::chrono::seconds(30);

  const auto start = Clock::now();
  LineSplitter out("stdout", start);
  LineSplitter err("stderr", start);
  int chunks = 0;

  auto stream = runner.stream(std::move(command));
  for (;;) {
    // as_tuple: an error comes back as a value, and the stream still has its message.
    auto [ec, chunk] = co_await stream.next(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      std::cerr << "stream_chunks: " << sandbox::error_name(ec) << ": " << stream.error_message()
                << "\n";
      co_return 1;
    }
    if (!chunk) break;  // the exit arrived
    ++chunks;
    (chunk->stream == sandbox::OutputStream::out ? out : err).feed(chunk->data);
  }
  out.finish();
  err.finish();

  const sandbox::ExitStatus status = stream.exit_status();
  std::cout << "exec id:     " << stream.info().exec_id << "\n"
            << "chunks:      " << chunks << " for " << out.lines().size() + err.lines().size()
            << " lines\n"
            << "exit code:   " << status.exit_code << (status.timed_out ? " (timed out)" : "")
            << "\n"
            << "duration:    " << status.duration.count() << " ms (agent)\n";

  const std::vector<std::string> expected_out = {
      "step 1 of 5",          "step 2 of 5", "step 3 of 5",
      "step 4 of 5",          "step 5 of 5", "a line written in two parts",
      "no newline at the end"};
  const std::vector<std::string> expected_err = {"warning 1", "warning 2", "warning 3", "warning 4",
                                                 "warning 5"};
  co_return status.exit_code == 0 && out.lines() == expected_out&& err.lines() == expected_err ? 0
                                                                                               : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    sandbox::RemoteRunnerConfig config;
    auto agent = example::use_agent(argc > 1 ? argv[1] : nullptr, config);
    asio::io_context io;
    sandbox::RemoteRunner runner(io.get_executor(), config);
    return example::run_to_end(io, stream_lines(runner));
  } catch (const std::exception& e) {
    return example::report("stream_chunks", e);
  }
}
