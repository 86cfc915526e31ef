#pragma once
/// @file
/// `sandbox::Tracer` on opentelemetry-cpp (target `sandbox::opentelemetry`, built when
/// opentelemetry-cpp is found): `make_tracer()` over any OTel tracer, and `OtlpExport`, an
/// OTLP/gRPC pipeline of its own for programs that have none.
///
///     sandbox::otel::OtlpExport otlp(sandbox::otel::otlp_endpoint_from_environment(), "my-app");
///     config.tracer = otlp.tracer();
///
/// Spans, keys and propagation are those of docs/behavior.md §15.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "opentelemetry/nostd/shared_ptr.h"
#include "opentelemetry/trace/tracer.h"
#include "opentelemetry/trace/tracer_provider.h"
#include "sandbox/tracing.hpp"

/// The adapter onto opentelemetry-cpp. Not `sandbox::opentelemetry`: inside `sandbox`, that
/// name would hide the library's own top-level namespace.
namespace sandbox::otel {

/// The instrumentation scope of the spans `make_tracer()` starts: "sandbox-exec", version
/// `SANDBOX_VERSION_STRING`.
inline constexpr std::string_view kInstrumentationScope = "sandbox-exec";

/// A `sandbox::Tracer` that starts its spans on `tracer`.
///
/// - `current()` captures the calling thread's OTel context
///   (`opentelemetry::context::RuntimeContext::GetCurrent()`): a span made active with
///   `opentelemetry::trace::Scope` around `exec()`/`stream()` becomes the parent of the
///   call's spans. Null when that context holds no valid span.
/// - Spans get the kind, parent and attributes the SDK gives; a span without a parent is a
///   root span (never a child of whatever happens to be active on a gRPC thread).
/// - Propagation (`Span::inject`, `Tracer::extract`) uses the global TextMapPropagator
///   (`opentelemetry::context::propagation::GlobalTextMapPropagator`) when one is set, else
///   W3C Trace Context (`traceparent`, `tracestate`), so injection works without any
///   propagator configured. Only the span's context is injected: no baggage.
///
/// @par Thread safety
///   The returned tracer is thread-safe (as `sandbox::Tracer` requires) when `tracer` is, as
///   every opentelemetry-cpp tracer is.
/// @par Object lifetimes
///   The returned tracer holds `tracer`. Null `tracer`: a tracer whose spans record nothing.
[[nodiscard]] std::shared_ptr<Tracer> make_tracer(
    opentelemetry::nostd::shared_ptr<opentelemetry::trace::Tracer> tracer);

/// `make_tracer()` on the global TracerProvider's tracer for scope "sandbox-exec" (the
/// project's version). The provider is looked up now: set it
/// (`opentelemetry::trace::Provider::SetTracerProvider`) before calling this; without one,
/// OTel's no-op provider records nothing.
[[nodiscard]] std::shared_ptr<Tracer> make_tracer();

/// The OTLP traces endpoint the environment names: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// else `OTEL_EXPORTER_OTLP_ENDPOINT`, else empty (no export configured).
[[nodiscard]] std::string otlp_endpoint_from_environment();

/// An OTLP/gRPC export pipeline owned by one object: exporter, batch span processor and
/// tracer provider with resource `service.name`. It does not touch OTel's global provider.
///
///     if (auto endpoint = sandbox::otel::otlp_endpoint_from_environment(); !endpoint.empty()) {
///       otlp.emplace(endpoint, "sandbox-agent");
///       options.tracer = otlp->tracer();
///     }
///
/// Spans are exported in batches from the processor's own thread (at most every 200 ms), so
/// an exec never waits for the collector; a collector that is down or slow loses spans
/// (queue of 2048), it never delays or fails a call.
///
/// @par Thread safety
///   `tracer()`, `provider()` and `force_flush()` may be called from any thread
///   concurrently; the destructor must not race with them.
/// @par Object lifetimes
///   Tracers from `tracer()` and `provider()` may outlive this object: spans ended after its
///   destruction are dropped.
class OtlpExport {
 public:
  /// Builds the pipeline; connects lazily (a collector that is not there yet is no error).
  ///
  /// @param endpoint      the collector: `host:port`, `http://host:port` (cleartext) or
  ///                      `https://host:port` (TLS, the system's roots, or
  ///                      `OTEL_EXPORTER_OTLP_CERTIFICATE`). Other `OTEL_EXPORTER_OTLP_*`
  ///                      variables (headers, timeout, compression) apply as opentelemetry-cpp
  ///                      reads them.
  /// @param service_name  the resource's `service.name` (other resource attributes come from
  ///                      `OTEL_RESOURCE_ATTRIBUTES` and the OTel SDK's defaults).
  /// @throws std::invalid_argument for an empty `endpoint` or `service_name`.
  OtlpExport(std::string endpoint, std::string service_name);

  /// A pipeline for `otlp_endpoint_from_environment()`; null when it is empty.
  [[nodiscard]] static std::unique_ptr<OtlpExport> from_environment(std::string service_name);

  /// Flushes what is queued (bounded: 5 s) and shuts the pipeline down.
  ~OtlpExport();
  OtlpExport(const OtlpExport&) = delete;
  OtlpExport& operator=(const OtlpExport&) = delete;

  /// A `sandbox::Tracer` on this pipeline (`make_tracer()` over the provider's tracer for
  /// scope "sandbox-exec"); the same object on every call.
  [[nodiscard]] std::shared_ptr<Tracer> tracer() const { return tracer_; }

  /// The pipeline's provider, for the program's own spans (a parent span around an exec
  /// must come from a tracer of the same pipeline to be exported with it).
  [[nodiscard]] opentelemetry::nostd::shared_ptr<opentelemetry::trace::TracerProvider> provider()
      const;

  /// Hands every span ended so far to the exporter and waits (at most `timeout`) until it
  /// is done. False: `timeout` passed first. A collector that refused or never got the spans
  /// still gives true; opentelemetry-cpp reports failed exports only in its own log
  /// (stderr, `[Error] ... Export() failed`).
  bool force_flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  /// The endpoint given to the constructor.
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  struct Pipeline;
  std::string endpoint_;
  std::unique_ptr<Pipeline> pipeline_;
  std::shared_ptr<Tracer> tracer_;
};

}  // namespace sandbox::otel
