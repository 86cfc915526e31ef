#pragma once
/// @file
/// The benchmark bodies of each client; `main` registers them as rows
/// `<workload>/<client>` so that the rows of one workload sit side by side.

#include <benchmark/benchmark.h>

#include <cstdint>

namespace bench {

// raw grpc++ callback API: one ClientReadReactor per call (the baseline).
void tiny_raw_callback(benchmark::State& state);
void concurrent_raw_callback(benchmark::State& state);
/// `collect`: also append the stdout bytes to a std::string, as `exec()` must (the
/// `raw_callback_collect` rows: the baseline for what collecting alone costs).
void bulk_raw_callback(benchmark::State& state, std::uint64_t chunk_bytes, bool collect);

// raw grpc++ sync API: stub->Exec(&ctx, req) and a Read() loop on the benchmark thread.
void tiny_raw_sync(benchmark::State& state);
void bulk_raw_sync(benchmark::State& state, std::uint64_t chunk_bytes);

#ifdef SANDBOX_BENCH_WITH_SDK
// The SDK on an asio::io_context run by the benchmark thread.
void tiny_sdk_exec(benchmark::State& state);
void tiny_sdk_stream(benchmark::State& state);
/// `tiny_sdk_exec` with a tracer whose spans do nothing (tracers.hpp): the SDK's span work.
void tiny_sdk_exec_noop_tracer(benchmark::State& state);
#ifdef SANDBOX_BENCH_WITH_OTEL
/// `tiny_sdk_exec` traced into an opentelemetry-cpp SDK pipeline under a caller's span.
void tiny_sdk_exec_otel_tracer(benchmark::State& state);
#endif
void concurrent_sdk_exec(benchmark::State& state);
void concurrent_sdk_stream(benchmark::State& state);
/// `concurrent_sdk_exec` with a plain callback as the completion token instead of a
/// coroutine per call: the SDK's own cost without Asio's coroutine machinery.
void concurrent_sdk_exec_callback(benchmark::State& state);
void bulk_sdk_exec(benchmark::State& state, std::uint64_t chunk_bytes);
void bulk_sdk_stream(benchmark::State& state, std::uint64_t chunk_bytes);
#endif

}  // namespace bench
