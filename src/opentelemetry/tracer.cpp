// sandbox::Tracer on the opentelemetry-cpp API: contexts as parents, spans as spans,
// propagation through the global propagator or W3C Trace Context.
#include <cstdlib>
#include <exception>
#include <string>
#include <utility>

#include "opentelemetry/common/key_value_iterable.h"
#include "opentelemetry/context/propagation/global_propagator.h"
#include "opentelemetry/context/propagation/text_map_propagator.h"
#include "opentelemetry/context/runtime_context.h"
#include "opentelemetry/trace/context.h"
#include "opentelemetry/trace/noop.h"
#include "opentelemetry/trace/propagation/http_trace_context.h"
#include "opentelemetry/trace/provider.h"
#include "opentelemetry/trace/span_metadata.h"
#include "opentelemetry/trace/span_startoptions.h"
#include "sandbox/opentelemetry.hpp"
#include "sandbox/version.hpp"

namespace sandbox::otel {
namespace {

namespace api = opentelemetry::trace;
namespace context = opentelemetry::context;
namespace nostd = opentelemetry::nostd;
namespace propagation = opentelemetry::context::propagation;
namespace common = opentelemetry::common;

common::AttributeValue to_otel(const AttributeValue& value) {
  return std::visit(
      [](const auto& v) -> common::AttributeValue {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string_view>) {
          return nostd::string_view(v.data(), v.size());
        } else {
          return v;
        }
      },
      value);
}

nostd::string_view view(std::string_view text) { return {text.data(), text.size()}; }

// The SDK's attributes as OTel's iterable; the OTel SDK copies what it keeps.
class Attributes final : public common::KeyValueIterable {
 public:
  explicit Attributes(std::span<const Attribute> attributes) : attributes_(attributes) {}
  bool ForEachKeyValue(nostd::function_ref<bool(nostd::string_view, common::AttributeValue)>
                           callback) const noexcept override {
    for (const Attribute& attribute : attributes_) {
      if (!callback(view(attribute.key), to_otel(attribute.value))) return false;
    }
    return true;
  }
  std::size_t size() const noexcept override { return attributes_.size(); }

 private:
  std::span<const Attribute> attributes_;
};

// The propagator of the moment: the global one when a program set one (the no-op default
// declares no fields), else W3C Trace Context.
nostd::shared_ptr<propagation::TextMapPropagator> propagator() {
  static const nostd::shared_ptr<propagation::TextMapPropagator> w3c(
      new api::propagation::HttpTraceContext());
  auto global = propagation::GlobalTextMapPropagator::GetGlobalPropagator();
  bool has_fields = false;
  if (global) {
    global->Fields([&has_fields](nostd::string_view) {
      has_fields = true;
      return false;
    });
  }
  return has_fields ? global : w3c;
}

class WriterCarrier final : public propagation::TextMapCarrier {
 public:
  explicit WriterCarrier(const MetadataWriter& write) : write_(write) {}
  nostd::string_view Get(nostd::string_view) const noexcept override { return {}; }
  void Set(nostd::string_view key, nostd::string_view value) noexcept override {
    try {
      write_(std::string_view(key.data(), key.size()),
             std::string_view(value.data(), value.size()));
    } catch (...) {  // Span::inject must not throw; a header lost to bad_alloc is no harm
    }
  }

 private:
  const MetadataWriter& write_;
};

class ReaderCarrier final : public propagation::TextMapCarrier {
 public:
  explicit ReaderCarrier(const MetadataReader& read) : read_(read) {}
  nostd::string_view Get(nostd::string_view key) const noexcept override {
    try {
      return view(read_(std::string_view(key.data(), key.size())));
    } catch (...) {
      return {};
    }
  }
  void Set(nostd::string_view, nostd::string_view) noexcept override {}

 private:
  const MetadataReader& read_;
};

// A parent: an OTel context holding the span to hang new spans under. Contexts are
// immutable; copies share their (reference-counted) data, so one is safe on any thread.
class ContextParent final : public SpanParent {
 public:
  explicit ContextParent(context::Context context) : context_(std::move(context)) {}
  const context::Context& context() const noexcept { return context_; }

 private:
  context::Context context_;
};

// A context with `span` and nothing else (no baggage of the caller's).
context::Context context_of(const nostd::shared_ptr<api::Span>& span) {
  context::Context empty;
  return api::SetSpan(empty, span);
}

class OtelSpan final : public Span {
 public:
  explicit OtelSpan(nostd::shared_ptr<api::Span> span) : span_(std::move(span)) {}

  void set_attribute(std::string_view key, AttributeValue value) noexcept override {
    span_->SetAttribute(view(key), to_otel(value));
  }
  void add_event(std::string_view name, std::span<const Attribute> attributes) noexcept override {
    span_->AddEvent(view(name), Attributes(attributes));
  }
  void set_error(std::string_view description) noexcept override {
    span_->SetStatus(api::StatusCode::kError, view(description));
  }
  void inject(const MetadataWriter& write) const noexcept override {
    WriterCarrier carrier(write);
    try {
      propagator()->Inject(carrier, context_of(span_));
    } catch (...) {
    }
  }
  std::shared_ptr<const SpanParent> as_parent() const override {
    return std::make_shared<ContextParent>(context_of(span_));
  }
  void end() noexcept override { span_->End(); }

 private:
  nostd::shared_ptr<api::Span> span_;
};

class OtelTracer final : public Tracer {
 public:
  explicit OtelTracer(nostd::shared_ptr<api::Tracer> tracer) : tracer_(std::move(tracer)) {
    // Through std::shared_ptr: NoopTracer::StartSpan calls shared_from_this().
    if (!tracer_) {
      tracer_ = nostd::shared_ptr<api::Tracer>(
          std::shared_ptr<api::Tracer>(std::make_shared<api::NoopTracer>()));
    }
  }

  std::shared_ptr<const SpanParent> current() const override {
    context::Context current = context::RuntimeContext::GetCurrent();
    if (!api::GetSpan(current)->GetContext().IsValid()) return nullptr;
    return std::make_shared<ContextParent>(std::move(current));
  }

  std::shared_ptr<const SpanParent> extract(const MetadataReader& read) const override {
    ReaderCarrier carrier(read);
    context::Context empty;
    context::Context extracted = propagator()->Extract(carrier, empty);
    if (!api::GetSpan(extracted)->GetContext().IsValid()) return nullptr;
    return std::make_shared<ContextParent>(std::move(extracted));
  }

  std::unique_ptr<Span> start_span(std::string_view name, SpanKind kind, const SpanParent* parent,
                                   std::span<const Attribute> attributes) override {
    api::StartSpanOptions options;
    switch (kind) {
      case SpanKind::internal:
        options.kind = api::SpanKind::kInternal;
        break;
      case SpanKind::client:
        options.kind = api::SpanKind::kClient;
        break;
      case SpanKind::server:
        options.kind = api::SpanKind::kServer;
        break;
    }
    // Every parent the SDK passes is one of ours. Without one, a root span: OTel would
    // otherwise take whatever is active on this (gRPC) thread.
    if (const auto* ours = dynamic_cast<const ContextParent*>(parent)) {
      options.parent = ours->context();
    } else {
      context::Context root;
      options.parent = root.SetValue(api::kIsRootSpanKey, true);
    }
    return std::make_unique<OtelSpan>(
        tracer_->StartSpan(view(name), Attributes(attributes), options));
  }

 private:
  nostd::shared_ptr<api::Tracer> tracer_;
};

}  // namespace

std::shared_ptr<Tracer> make_tracer(nostd::shared_ptr<api::Tracer> tracer) {
  return std::make_shared<OtelTracer>(std::move(tracer));
}

std::shared_ptr<Tracer> make_tracer() {
  return make_tracer(api::Provider::GetTracerProvider()->GetTracer(view(kInstrumentationScope),
                                                                   SANDBOX_VERSION_STRING));
}

std::string otlp_endpoint_from_environment() {
  for (const char* name : {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') return value;
  }
  return {};
}

}  // namespace sandbox::otel
