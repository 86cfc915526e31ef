// Fuzzes the client SDK's whole response handling end to end: a real RemoteRunner against an
// in-process gRPC server (sync API, on a unix socket) whose Exec replays the input.
//
// Input: pieces of one length byte N and N bytes (the last may be shorter) parsed as a
// serialized sandbox::v1::ExecResponse, as in client_response_sequence_fuzz (unparseable
// pieces are skipped), followed by one control byte (the input's last byte). A piece of
// length 0 separates the scripts of successive attempts (at most 3; later separators are
// ignored): attempt k of a call replays script k. Control byte:
//   bits 0-3  the gRPC status code (0-15) the last attempt ends with; every earlier attempt
//             ends with UNAVAILABLE, the code worth a retry;
//   bits 4-5  trailer `grpc-retry-pushback-ms` on every attempt: none, "0", "2", "no" (invalid:
//             the client must stop retrying);
//   bit 6     an attempt whose script has an exit_code message keeps the stream open after it
//             until the client cancels (an agent that does not finish after the exit);
//   bit 7     after exec(), also run the same scripts through stream().
// The call's retry policy allows one attempt per script (backoff 1 ms, no jitter), so a
// retry happens only when an attempt ends without exit or violation on UNAVAILABLE and the
// pushback allows it. The runner is created once and primed in LLVMFuzzerInitialize with a
// call that sent `started`, so it always knows that its agent reattaches (deterministic
// retry decisions). Every call gets its own exec_id, and a Command deadline of 2 s.
//
// A model kept here (the rules of docs/behavior.md, "Stream order" and "Retries and
// resume", written independently of src/client) says which messages the SDK must accept,
// and the fuzzer checks, for exec() and stream():
//   - the call completes exactly once, and within 4 s (never hangs; the io_context runs on
//     this thread, bounded);
//   - success exactly when the model accepted an exit_code message, and then exit_code(),
//     signal, timed_out, the truncation flags and the totals are that message's
//     (exit code 0 only from an exit_code 0);
//   - on an error: the model's error (protocol_error after a violation, missing_exit_code
//     after OK, else the mapped status), `exit_code() == -1` and a non-empty message;
//   - exec(): stdout/stderr are the concatenation of the chunks the model accepted over all
//     attempts (also the partial output of an error);
//   - stream(): the delivered chunks (empty ones aside) are exactly the accepted ones, in
//     order, with contiguous offsets per stream;
//   - the attempts: as many as the model made, every one with the call's exec_id, each
//     retry resuming at the byte counts accepted before it, with attach_only once a
//     `started` was accepted; after the call, every server handler has returned (the client
//     ended a stream the server held open after the exit);
//   - no crash, sanitizer report or leak.
// A broken property traps (a crash for libFuzzer).
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_context.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "sandbox/error.hpp"
#include "sandbox/runner.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace {

using namespace std::chrono_literals;
using sandbox::OutputChunk;
using sandbox::OutputStream;
using sandbox::v1::ExecRequest;
using sandbox::v1::ExecResponse;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxAttempts = 3;
constexpr auto kDeadline = 2s;         // the Command deadline of every call
constexpr auto kCompletionBound = 4s;  // a call not complete by then hangs
constexpr auto kHandlerBound = 1s;     // after completion, until the server handlers returned

void require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "client_exec_fuzz: property broken: %s\n", property);
  __builtin_trap();
}

// ---------------------------------------------------------------- the input

struct Plan {
  std::vector<std::vector<ExecResponse>> scripts{1};  // one per attempt
  grpc::StatusCode status = grpc::StatusCode::OK;     // of the last attempt
  const char* pushback = nullptr;
  bool hold_open = false;
  bool stream = false;
};

Plan parse(const std::uint8_t* data, std::size_t size) {
  Plan plan;
  const std::uint8_t control = size > 0 ? data[size - 1] : 0;
  plan.status = static_cast<grpc::StatusCode>(control & 0x0f);
  static const char* const pushbacks[] = {nullptr, "0", "2", "no"};
  plan.pushback = pushbacks[(control >> 4) & 0x03];
  plan.hold_open = (control & 0x40) != 0;
  plan.stream = (control & 0x80) != 0;
  const std::size_t end = size > 0 ? size - 1 : 0;
  std::size_t pos = 0;
  ExecResponse message;
  while (pos < end) {  // bounded: each piece consumes its length byte at least
    const std::size_t length = data[pos++];
    if (length == 0) {
      if (plan.scripts.size() < kMaxAttempts) plan.scripts.emplace_back();
      continue;
    }
    const std::size_t available = length < end - pos ? length : end - pos;
    if (message.ParseFromArray(data + pos, static_cast<int>(available))) {
      plan.scripts.back().push_back(message);
    }
    pos += available;
  }
  return plan;
}

bool has_exit(const std::vector<ExecResponse>& script) {
  for (const auto& message : script) {
    if (message.event_case() == ExecResponse::kExitCode) return true;
  }
  return false;
}

// ---------------------------------------------------------------- the model

struct ExpectedRequest {
  std::uint64_t stdout_offset = 0;
  std::uint64_t stderr_offset = 0;
  bool attach_only = false;
};

struct Expected {
  std::error_code error;                  // empty: success
  const ExecResponse* exit = nullptr;     // the accepted exit_code message
  std::vector<ExpectedRequest> requests;  // one per attempt
  std::vector<OutputChunk> chunks;        // accepted, non-empty, offsets within their stream
  std::string stdout_data;
  std::string stderr_data;
};

Expected model(const Plan& plan) {
  Expected expected;
  std::uint64_t out = 0;
  std::uint64_t err = 0;
  bool seen_started = false;
  for (std::size_t attempt = 0; attempt < plan.scripts.size(); ++attempt) {
    expected.requests.push_back({out, err, seen_started});
    bool started = false;
    bool any_chunk = false;
    bool violation = false;
    for (const ExecResponse& message : plan.scripts[attempt]) {
      switch (message.event_case()) {
        case ExecResponse::kStarted:
          violation = started || any_chunk;
          started = true;
          break;
        case ExecResponse::kStdout:
        case ExecResponse::kStderr: {
          const bool is_out = message.event_case() == ExecResponse::kStdout;
          std::uint64_t& count = is_out ? out : err;
          if (started && message.offset() != count) {
            violation = true;
            break;
          }
          const std::string& bytes = is_out ? message.stdout() : message.stderr();
          if (!bytes.empty()) {
            expected.chunks.push_back(
                {is_out ? OutputStream::out : OutputStream::err, bytes, count});
          }
          (is_out ? expected.stdout_data : expected.stderr_data) += bytes;
          count += bytes.size();
          any_chunk = true;
          break;
        }
        case ExecResponse::kExitCode:
          expected.error = {};  // an earlier attempt's error was retried
          expected.exit = &message;
          return expected;
        case ExecResponse::EVENT_NOT_SET:
          violation = true;
          break;
      }
      if (violation) {
        expected.error = sandbox::errc::protocol_error;
        return expected;
      }
    }
    seen_started = seen_started || started;
    const bool last = attempt + 1 == plan.scripts.size();
    const grpc::StatusCode status = last ? plan.status : grpc::StatusCode::UNAVAILABLE;
    if (status == grpc::StatusCode::OK) {
      expected.error = sandbox::errc::missing_exit_code;
      return expected;
    }
    expected.error = static_cast<sandbox::errc>(status);  // errc mirrors the codes 1-16
    const bool stop = plan.pushback != nullptr && plan.pushback[0] == 'n';
    if (last || stop) return expected;
  }
  return expected;
}

// ---------------------------------------------------------------- the server

struct Recorded {
  std::string exec_id;
  std::uint64_t stdout_offset;
  std::uint64_t stderr_offset;
  bool attach_only;
};

class ReplayService final : public sandbox::v1::SandboxExecService::Service {
 public:
  void set_plan(std::shared_ptr<const Plan> plan) {
    std::lock_guard lock(mutex_);
    plan_ = std::move(plan);
    recorded_.clear();
  }

  std::vector<Recorded> recorded() const {
    std::lock_guard lock(mutex_);
    return recorded_;
  }

  // Whether every handler returned within `bound`.
  bool wait_idle(std::chrono::milliseconds bound) const {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, bound, [this] { return active_ == 0; });
  }

  grpc::Status Exec(grpc::ServerContext* context, const ExecRequest* request,
                    grpc::ServerWriter<ExecResponse>* writer) override {
    std::shared_ptr<const Plan> plan;
    std::size_t attempt = 0;
    {
      std::lock_guard lock(mutex_);
      plan = plan_;
      for (const auto& call : recorded_) attempt += call.exec_id == request->exec_id();
      recorded_.push_back({request->exec_id(), request->resume().stdout_offset(),
                           request->resume().stderr_offset(), request->attach_only()});
      ++active_;
    }
    const grpc::Status status = replay(plan, attempt, *context, *writer);
    std::lock_guard lock(mutex_);
    --active_;
    idle_.notify_all();  // under the lock: a waiter checks active_ under it
    return status;
  }

  grpc::Status Cancel(grpc::ServerContext*, const sandbox::v1::CancelRequest*,
                      sandbox::v1::CancelResponse*) override {
    return {grpc::StatusCode::UNIMPLEMENTED, ""};  // never sent: cancel_timeout is 0
  }

 private:
  static grpc::Status replay(const std::shared_ptr<const Plan>& plan, std::size_t attempt,
                             grpc::ServerContext& context,
                             grpc::ServerWriter<ExecResponse>& writer) {
    if (!plan || attempt >= plan->scripts.size()) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "fuzz: an attempt past the scripts"};
    }
    const auto& script = plan->scripts[attempt];
    for (const auto& message : script) {
      if (!writer.Write(message)) break;
    }
    if (plan->hold_open && has_exit(script)) {
      const auto until = Clock::now() + 5s;  // past the call's deadline
      while (!context.IsCancelled() && Clock::now() < until) std::this_thread::sleep_for(1ms);
    }
    if (plan->pushback != nullptr) {
      context.AddTrailingMetadata("grpc-retry-pushback-ms", plan->pushback);
    }
    if (attempt + 1 < plan->scripts.size()) {
      return {grpc::StatusCode::UNAVAILABLE, "fuzz: connection lost"};
    }
    if (plan->status == grpc::StatusCode::OK) return grpc::Status::OK;
    return {plan->status, "fuzz: status " + std::to_string(plan->status)};
  }

  mutable std::mutex mutex_;
  mutable std::condition_variable idle_;
  std::shared_ptr<const Plan> plan_;  // guarded by mutex_
  std::vector<Recorded> recorded_;    // guarded by mutex_
  int active_ = 0;                    // guarded by mutex_: handlers running
};

// Created once, never destroyed (the process exits under them).
struct World {
  ReplayService service;
  std::unique_ptr<grpc::Server> server;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::unique_ptr<sandbox::RemoteRunner> runner;
  unsigned calls = 0;
};

World* world = nullptr;
const bool verbose = std::getenv("SANDBOX_FUZZ_VERBOSE") != nullptr;

void report(const char* call, std::error_code error, const sandbox::ExitStatus& status,
            unsigned attempts, const std::string& message) {
  if (!verbose) return;
  std::fprintf(stderr, "%s: %s, exit_code %d, %u attempt(s)%s%s\n", call,
               error ? std::string(sandbox::error_name(error)).c_str() : "ok", status.exit_code,
               attempts, message.empty() ? "" : ": ", message.c_str());
}

// Runs the io_context on this thread until `done()` or the completion bound.
void run_until(const std::function<bool()>& done) {
  const auto until = Clock::now() + kCompletionBound;
  while (!done()) {
    const auto now = Clock::now();
    require(now < until, "the call did not complete within 4 s (deadline 2 s)");
    world->io.run_one_for(until - now);
  }
  world->io.poll();  // a second completion, if any, runs now and traps
}

sandbox::Command command_for(const Plan& plan) {
  sandbox::Command command{"fuzz"};
  command.exec_id = "fuzz-" + std::to_string(++world->calls);
  command.deadline = std::chrono::duration_cast<std::chrono::milliseconds>(kDeadline);
  sandbox::RetryPolicy retry;
  retry.max_attempts = static_cast<unsigned>(plan.scripts.size());
  retry.initial_backoff = 1ms;
  retry.max_backoff = 1ms;
  retry.multiplier = 1.0;
  retry.jitter = 0.0;
  command.retry = retry;
  return command;
}

void check_attempts(const Expected& expected, const std::string& exec_id, unsigned attempts) {
  require(attempts == expected.requests.size(), "retries().attempts is not the model's");
  require(world->service.wait_idle(kHandlerBound),
          "a server handler still runs after the call completed (stream left open)");
  const auto recorded = world->service.recorded();
  require(recorded.size() == expected.requests.size(), "the server saw another number of attempts");
  for (std::size_t i = 0; i < recorded.size(); ++i) {
    require(recorded[i].exec_id == exec_id, "an attempt with another exec_id");
    require(recorded[i].stdout_offset == expected.requests[i].stdout_offset,
            "a retry resumed stdout at another offset than the bytes accepted");
    require(recorded[i].stderr_offset == expected.requests[i].stderr_offset,
            "a retry resumed stderr at another offset than the bytes accepted");
    require(recorded[i].attach_only == expected.requests[i].attach_only,
            "attach_only is not 'an earlier attempt accepted started'");
  }
}

void check_status(const Expected& expected, const sandbox::ExitStatus& status) {
  if (expected.error) {
    require(status.exit_code == -1, "an error with an exit code other than -1");
    return;
  }
  const ExecResponse& exit = *expected.exit;
  require(status.exit_code == exit.exit_code(), "exit_code is not the accepted exit's");
  require(status.signal == exit.exit().signal(), "signal is not the accepted exit's");
  require(status.timed_out == exit.exit().timed_out(), "timed_out is not the accepted exit's");
  require(status.stdout_truncated == exit.exit().stdout_truncated(), "stdout_truncated differs");
  require(status.stderr_truncated == exit.exit().stderr_truncated(), "stderr_truncated differs");
  const std::uint64_t out_total =
      exit.has_exit() ? exit.exit().stdout_bytes() : expected.stdout_data.size();
  const std::uint64_t err_total =
      exit.has_exit() ? exit.exit().stderr_bytes() : expected.stderr_data.size();
  require(status.stdout_total == out_total, "stdout_total is not the exit's (or the received)");
  require(status.stderr_total == err_total, "stderr_total is not the exit's (or the received)");
}

void run_exec(const std::shared_ptr<const Plan>& plan, const Expected& expected) {
  world->service.set_plan(plan);
  sandbox::Command command = command_for(*plan);
  const std::string exec_id = command.exec_id;
  struct Outcome {
    int completions = 0;
    std::error_code error;
    sandbox::ExecResult result;
  };
  auto outcome = std::make_shared<Outcome>();
  world->runner->exec(std::move(command),
                      [outcome](std::error_code error, sandbox::ExecResult result) {
                        require(++outcome->completions == 1, "exec() completed twice");
                        outcome->error = error;
                        outcome->result = std::move(result);
                      });
  run_until([&] { return outcome->completions > 0; });

  const sandbox::ExecResult& result = outcome->result;
  report("exec", outcome->error, result.status, result.retries.attempts, result.error_message);
  require(outcome->error == expected.error, "exec() error is not the model's");
  require(result.error_message.empty() == !expected.error, "error_message empty iff success");
  check_status(expected, result.status);
  require(result.stdout_data == expected.stdout_data, "exec() stdout is not the accepted chunks");
  require(result.stderr_data == expected.stderr_data, "exec() stderr is not the accepted chunks");
  check_attempts(expected, exec_id, result.retries.attempts);
}

void run_stream(const std::shared_ptr<const Plan>& plan, const Expected& expected) {
  world->service.set_plan(plan);
  sandbox::Command command = command_for(*plan);
  const std::string exec_id = command.exec_id;
  sandbox::ExecStream stream = world->runner->stream(std::move(command));
  std::vector<OutputChunk> chunks;
  std::uint64_t next_offset[3] = {0, 0, 0};  // by OutputStream value
  bool ended = false;
  bool pending = false;
  std::error_code error;
  std::function<void()> pull = [&] {
    pending = true;
    stream.next([&](std::error_code ec, std::optional<OutputChunk> chunk) {
      require(pending, "next() completed twice");
      pending = false;
      if (ec || !chunk) {
        require(!chunk, "a chunk with an error");
        error = ec;
        ended = true;
        return;
      }
      const auto index = static_cast<std::size_t>(chunk->stream);
      require(index == 1 || index == 2, "a chunk of no stream");
      require(chunk->offset == next_offset[index], "stream() chunk offsets are not contiguous");
      next_offset[index] += chunk->data.size();
      if (!chunk->data.empty()) chunks.push_back(std::move(*chunk));
      pull();
    });
  };
  pull();
  run_until([&] { return ended; });

  report("stream", error, stream.exit_status(), stream.retries().attempts, stream.error_message());
  require(error == expected.error, "stream() error is not the model's");
  require(stream.finished(), "finished() false after the end");
  require(stream.error_message().empty() == !expected.error, "error_message empty iff success");
  check_status(expected, stream.exit_status());
  require(chunks.size() == expected.chunks.size(), "stream() delivered other chunks than accepted");
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    require(chunks[i].stream == expected.chunks[i].stream, "a chunk on the wrong stream");
    require(chunks[i].offset == expected.chunks[i].offset, "a chunk at another offset");
    require(chunks[i].data == expected.chunks[i].data, "a chunk with other bytes");
  }
  check_attempts(expected, exec_id, stream.retries().attempts);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Silences "invalid UTF-8" parse errors, which only say that a piece is skipped.
  google::protobuf::SetLogHandler(nullptr);
  world = new World;
  std::string dir = (std::filesystem::temp_directory_path() / "client-exec-fuzz-XXXXXX").string();
  require(::mkdtemp(dir.data()) != nullptr, "mkdtemp");
  static std::string socket_dir = dir;
  std::atexit([] {
    std::error_code ignored;
    std::filesystem::remove_all(socket_dir, ignored);
  });
  const std::string address = "unix:" + dir + "/agent.sock";
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&world->service);
  world->server = builder.BuildAndStart();
  require(world->server != nullptr, "the replay server could not listen");

  sandbox::RemoteRunnerConfig config;
  config.address = address;
  config.cancel_timeout = 0ms;
  world->runner = std::make_unique<sandbox::RemoteRunner>(world->io.get_executor(), config);

  // Primes the runner: from now on it knows its agent reattaches, whatever the input order.
  auto plan = std::make_shared<Plan>();
  plan->scripts[0].emplace_back().mutable_started()->set_exec_id("prime");
  plan->scripts[0].emplace_back().set_exit_code(0);
  run_exec(plan, model(*plan));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto plan = std::make_shared<const Plan>(parse(data, size));
  const Expected expected = model(*plan);
  run_exec(plan, expected);
  if (plan->stream) run_stream(plan, expected);
  return 0;
}
