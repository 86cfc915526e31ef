#pragma once
/// @file
/// The tracers of the `tiny_exec/sdk_exec_*tracer` rows: what tracing costs an exec.

#include <memory>

#include "sandbox/tracing.hpp"

namespace bench {

/// A `sandbox::Tracer` whose spans do nothing: the cost of the SDK's own instrumentation
/// (attributes built, virtual calls, metadata injected: here none) without a tracing library.
std::shared_ptr<sandbox::Tracer> noop_tracer();

#ifdef SANDBOX_BENCH_WITH_OTEL
/// `sandbox::otel::make_tracer()` on an opentelemetry-cpp SDK pipeline (always-on sampler,
/// batch processor) whose exporter drops the batches: OTel's span recording and W3C
/// injection as a traced service pays for them, without a collector's I/O.
std::shared_ptr<sandbox::Tracer> otel_sdk_tracer();
/// Starts a span of the same pipeline and makes it the calling thread's active span until
/// the result is dropped: the caller's span a traced service's request would have.
std::shared_ptr<void> otel_caller_span();
#endif

}  // namespace bench
