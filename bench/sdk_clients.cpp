// The SDK rows: what a user writes, on an asio::io_context run by the benchmark thread.
// Errors come back through `as_tuple` so that a failed call marks the row instead of
// throwing through Google Benchmark's loop.

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <string>

#include "bench_support.hpp"
#include "rows.hpp"
#include "sandbox/sandbox.hpp"
#include "synth_server.hpp"
#include "tracers.hpp"

namespace bench {
namespace {

constexpr auto tuple = asio::experimental::as_tuple(asio::use_awaitable);

/// The runner's configuration: the SDK's defaults (its own channel arguments included),
/// only the address set (and a tracer for the tracing rows).
sandbox::RemoteRunnerConfig runner_config(std::shared_ptr<sandbox::Tracer> tracer = nullptr) {
  sandbox::RemoteRunnerConfig config;
  config.address = server_address();
  config.tracer = std::move(tracer);
  return config;
}

/// A synth command; bulk commands raise the per-stream cap to their size, as a user who
/// expects that much output would.
sandbox::Command synth_command(std::uint64_t total, std::uint64_t chunk) {
  sandbox::Command cmd(synth_argv(total, chunk));
  if (total > (std::uint64_t{16} << 20)) cmd.max_output_bytes = total;
  return cmd;
}

/// The benchmark thread's io_context, kept from running out of work between operations.
///
/// The SDK posts a completion and only then releases the work it held, on a gRPC thread;
/// the handler may already have run by then. Without the guard that late release can bring
/// the work count to zero after a batch finished, which stops an io_context, and the next
/// batch's `run_one()` would return at once, its completions still to come.
struct IoLoop {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);

  /// Runs handlers on this thread until `done` (set by one of them); false if no handler
  /// became ready for 30 s (a completion that never came).
  bool run_until(const bool& done) {
    while (!done) {
      if (io.run_one_for(std::chrono::seconds(30)) == 0) return false;
    }
    return true;
  }
};

constexpr const char* kLostCompletion = "no SDK completion arrived for 30 s (a lost completion)";

/// Runs `body(runner)` as a coroutine on a fresh io_context with a fresh runner, then
/// destroys the runner (which waits until gRPC finished its calls) before the io_context.
template <typename Body>
void run_coroutine(benchmark::State& state, Body body,
                   std::shared_ptr<sandbox::Tracer> tracer = nullptr) {
  IoLoop loop;
  bool done = false;
  std::exception_ptr error;
  {
    sandbox::RemoteRunner runner(loop.io.get_executor(), runner_config(std::move(tracer)));
    asio::co_spawn(loop.io, body(runner), [&](std::exception_ptr e) {
      error = e;
      done = true;
    });
    if (!loop.run_until(done)) {
      state.SkipWithError(kLostCompletion);
      runner.close();
    }
  }
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      state.SkipWithError((std::string("exception: ") + e.what()).c_str());
    }
  }
}

std::string describe(const std::error_code& ec, const std::string& message) {
  return ec.message() + (message.empty() ? "" : ": " + message);
}

/// What is wrong with one exec's outcome; an empty string when nothing is.
std::string exec_problem(const std::error_code& ec, const sandbox::ExecResult& result,
                         std::uint64_t expected_bytes) {
  if (ec) return describe(ec, result.error_message);
  if (result.exit_code() != 0) return "exit code " + std::to_string(result.exit_code());
  if (result.stdout_data.size() != expected_bytes) {
    return "got " + std::to_string(result.stdout_data.size()) + " stdout bytes";
  }
  return {};
}

/// One exec; an empty string on success, else what went wrong.
asio::awaitable<std::string> exec_once(sandbox::RemoteRunner& runner, const sandbox::Command& cmd,
                                       std::uint64_t expected_bytes) {
  auto [ec, result] = co_await runner.exec(cmd, tuple);
  co_return exec_problem(ec, result, expected_bytes);
}

/// One stream drained chunk by chunk, counting bytes; an empty string on success.
asio::awaitable<std::string> stream_once(sandbox::RemoteRunner& runner, const sandbox::Command& cmd,
                                         std::uint64_t expected_bytes) {
  auto stream = runner.stream(cmd);
  std::uint64_t bytes = 0;
  for (;;) {
    auto [ec, chunk] = co_await stream.next(tuple);
    if (ec) co_return describe(ec, stream.error_message());
    if (!chunk) break;
    if (chunk->stream == sandbox::OutputStream::out) {
      if (chunk->offset != bytes) co_return "bad offset " + std::to_string(chunk->offset);
      bytes += chunk->data.size();
    }
  }
  if (stream.exit_status().exit_code != 0)
    co_return "exit code " + std::to_string(stream.exit_status().exit_code);
  if (bytes != expected_bytes) co_return "got " + std::to_string(bytes) + " stdout bytes";
  co_return std::string();
}

using CallFn = asio::awaitable<std::string> (*)(sandbox::RemoteRunner&, const sandbox::Command&,
                                                std::uint64_t);

void tiny(benchmark::State& state, CallFn call, std::shared_ptr<sandbox::Tracer> tracer = nullptr) {
  run_coroutine(
      state,
      [&state, call](sandbox::RemoteRunner& runner) -> asio::awaitable<void> {
        const auto bytes = workload().tiny_bytes;
        const auto cmd = synth_command(bytes, bytes);
        if (auto error = co_await call(runner, cmd, bytes); !error.empty()) {
          state.SkipWithError(error.c_str());
          co_return;
        }
        LatencySamples latencies;
        latencies.reserve(static_cast<std::size_t>(state.max_iterations));
        CpuMeter cpu;
        cpu.start();
        for (auto _ : state) {
          const auto t0 = Clock::now();
          auto error = co_await call(runner, cmd, bytes);
          latencies.add(Clock::now() - t0);
          if (!error.empty()) {
            state.SkipWithError(error.c_str());
            co_return;
          }
        }
        cpu.report(state, static_cast<double>(state.iterations()), "exec");
        latencies.report(state);
      },
      std::move(tracer));
}

/// The concurrent row: batches of n execs in flight on one runner. `start_one(io, runner,
/// cmd, bytes, done)` starts one call that reports its problem (empty: none) to `done` on the
/// io_context's thread.
template <typename StartOne>
void concurrent_row(benchmark::State& state, StartOne start_one) {
  const auto bytes = workload().tiny_bytes;
  const auto cmd = synth_command(bytes, bytes);
  const int n = workload().concurrency;
  IoLoop loop;
  sandbox::RemoteRunner runner(loop.io.get_executor(), runner_config());

  int remaining = 0;
  bool done = false;
  std::string error;
  const auto on_done = [&](const std::string& problem) {
    if (!problem.empty() && error.empty()) error = problem;
    done = --remaining == 0;
  };
  // Starts `count` calls; `done` when the last one completed.
  auto start_batch = [&](int count) {
    remaining = count;
    done = false;
    for (int i = 0; i < count; ++i) start_one(loop.io, runner, cmd, bytes, on_done);
  };

  start_batch(1);
  if (!loop.run_until(done)) return state.SkipWithError(kLostCompletion);
  if (!error.empty()) return state.SkipWithError(error.c_str());

  CpuMeter cpu;
  cpu.start();
  for (auto _ : state) {
    start_batch(n);
    if (!loop.run_until(done)) return state.SkipWithError(kLostCompletion);
    if (!error.empty()) return state.SkipWithError(error.c_str());
  }
  state.SetItemsProcessed(state.iterations() * n);
  cpu.report(state, static_cast<double>(state.iterations()) * n, "exec");
}

/// Each call a coroutine, as a coroutine user writes it.
void concurrent(benchmark::State& state, CallFn call) {
  concurrent_row(state, [call](asio::io_context& io, sandbox::RemoteRunner& runner,
                               const sandbox::Command& cmd, std::uint64_t bytes, const auto& done) {
    asio::co_spawn(io, call(runner, cmd, bytes),
                   [done](const std::exception_ptr& e, const std::string& result) {
                     done(e ? std::string("exception") : result);
                   });
  });
}

void bulk(benchmark::State& state, std::uint64_t chunk_bytes, CallFn call) {
  run_coroutine(
      state, [&state, chunk_bytes, call](sandbox::RemoteRunner& runner) -> asio::awaitable<void> {
        const auto total = workload().bulk_bytes;
        if (auto error = co_await call(runner, synth_command(16, 16), 16); !error.empty()) {
          state.SkipWithError(error.c_str());
          co_return;
        }
        const auto cmd = synth_command(total, chunk_bytes);
        CpuMeter cpu;
        cpu.start();
        const auto t0 = Clock::now();
        for (auto _ : state) {
          if (auto error = co_await call(runner, cmd, total); !error.empty()) {
            state.SkipWithError(error.c_str());
            co_return;
          }
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        cpu.report(state, static_cast<double>(state.iterations() * total) / (1 << 20), "MiB");
        report_bulk(state, total, seconds);
      });
}

}  // namespace

void tiny_sdk_exec(benchmark::State& state) { tiny(state, exec_once); }
void tiny_sdk_stream(benchmark::State& state) { tiny(state, stream_once); }
void tiny_sdk_exec_noop_tracer(benchmark::State& state) { tiny(state, exec_once, noop_tracer()); }
#ifdef SANDBOX_BENCH_WITH_OTEL
void tiny_sdk_exec_otel_tracer(benchmark::State& state) {
  const auto caller = otel_caller_span();  // the benchmark thread runs the io_context
  tiny(state, exec_once, otel_sdk_tracer());
}
#endif
void concurrent_sdk_exec(benchmark::State& state) { concurrent(state, exec_once); }
void concurrent_sdk_stream(benchmark::State& state) { concurrent(state, stream_once); }
void concurrent_sdk_exec_callback(benchmark::State& state) {
  concurrent_row(state, [](asio::io_context& /*io*/, sandbox::RemoteRunner& runner,
                           const sandbox::Command& cmd, std::uint64_t bytes, const auto& done) {
    runner.exec(cmd, [done, bytes](std::error_code ec, const sandbox::ExecResult& result) {
      done(exec_problem(ec, result, bytes));
    });
  });
}
void bulk_sdk_exec(benchmark::State& state, std::uint64_t chunk_bytes) {
  bulk(state, chunk_bytes, exec_once);
}
void bulk_sdk_stream(benchmark::State& state, std::uint64_t chunk_bytes) {
  bulk(state, chunk_bytes, stream_once);
}

}  // namespace bench
