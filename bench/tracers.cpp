#include "tracers.hpp"

#ifdef SANDBOX_BENCH_WITH_OTEL
#include "opentelemetry/sdk/trace/batch_span_processor_factory.h"
#include "opentelemetry/sdk/trace/batch_span_processor_options.h"
#include "opentelemetry/sdk/trace/exporter.h"
#include "opentelemetry/sdk/trace/span_data.h"
#include "opentelemetry/sdk/trace/tracer_provider_factory.h"
#include "opentelemetry/trace/scope.h"
#include "sandbox/opentelemetry.hpp"
#endif

namespace bench {
namespace {

class NoopSpan final : public sandbox::Span {
 public:
  void set_attribute(std::string_view, sandbox::AttributeValue) noexcept override {}
  void add_event(std::string_view, std::span<const sandbox::Attribute>) noexcept override {}
  void set_error(std::string_view) noexcept override {}
  void inject(const sandbox::MetadataWriter&) const noexcept override {}
  [[nodiscard]] std::shared_ptr<const sandbox::SpanParent> as_parent() const override {
    return nullptr;  // the SDK's client spans have no children in-process
  }
  void end() noexcept override {}
};

class NoopTracer final : public sandbox::Tracer {
 public:
  // An active caller's span, as in a traced service: no call root span.
  [[nodiscard]] std::shared_ptr<const sandbox::SpanParent> current() const override {
    return parent_;
  }
  [[nodiscard]] std::shared_ptr<const sandbox::SpanParent> extract(
      const sandbox::MetadataReader&) const override {
    return nullptr;
  }
  [[nodiscard]] std::unique_ptr<sandbox::Span> start_span(
      std::string_view, sandbox::SpanKind, const sandbox::SpanParent*,
      std::span<const sandbox::Attribute>) override {
    return std::make_unique<NoopSpan>();
  }

 private:
  std::shared_ptr<const sandbox::SpanParent> parent_ = std::make_shared<sandbox::SpanParent>();
};

#ifdef SANDBOX_BENCH_WITH_OTEL
namespace sdktrace = opentelemetry::sdk::trace;

class DroppingExporter final : public sdktrace::SpanExporter {
 public:
  std::unique_ptr<sdktrace::Recordable> MakeRecordable() noexcept override {
    return std::make_unique<sdktrace::SpanData>();
  }
  opentelemetry::sdk::common::ExportResult Export(
      const opentelemetry::nostd::span<std::unique_ptr<sdktrace::Recordable>>&) noexcept override {
    return opentelemetry::sdk::common::ExportResult::kSuccess;
  }
  bool ForceFlush(std::chrono::microseconds) noexcept override { return true; }
  bool Shutdown(std::chrono::microseconds) noexcept override { return true; }
};
#endif

}  // namespace

std::shared_ptr<sandbox::Tracer> noop_tracer() { return std::make_shared<NoopTracer>(); }

#ifdef SANDBOX_BENCH_WITH_OTEL
namespace {

opentelemetry::trace::TracerProvider& otel_provider() {
  // One pipeline for the process (the rows run one after another); never shut down.
  static const auto provider = [] {
    auto processor = sdktrace::BatchSpanProcessorFactory::Create(
        std::make_unique<DroppingExporter>(), sdktrace::BatchSpanProcessorOptions{});
    return std::shared_ptr<opentelemetry::trace::TracerProvider>(
        sdktrace::TracerProviderFactory::Create(std::move(processor)));
  }();
  return *provider;
}

class CallerSpan {
 public:
  CallerSpan()
      : span_(otel_provider().GetTracer("bench-app")->StartSpan("request")), scope_(span_) {}
  CallerSpan(const CallerSpan&) = delete;
  CallerSpan& operator=(const CallerSpan&) = delete;
  ~CallerSpan() { span_->End(); }

 private:
  opentelemetry::nostd::shared_ptr<opentelemetry::trace::Span> span_;
  opentelemetry::trace::Scope scope_;
};

}  // namespace

std::shared_ptr<sandbox::Tracer> otel_sdk_tracer() {
  return sandbox::otel::make_tracer(otel_provider().GetTracer("bench"));
}

std::shared_ptr<void> otel_caller_span() { return std::make_shared<CallerSpan>(); }
#endif

}  // namespace bench
