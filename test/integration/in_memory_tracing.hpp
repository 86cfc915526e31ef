#pragma once
// An OTel SDK pipeline of a test's own (tracer provider -> simple processor -> in-memory
// exporter) and its finished spans as SpanRecords: what the in-memory tracing tests read.

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fakes/io_harness.hpp"
#include "integration/span_record.hpp"
#include "opentelemetry/exporters/memory/in_memory_span_exporter.h"
#include "opentelemetry/sdk/trace/simple_processor_factory.h"
#include "opentelemetry/sdk/trace/span_data.h"
#include "opentelemetry/sdk/trace/tracer_provider.h"
#include "sandbox/opentelemetry.hpp"
#include "sandbox/version.hpp"

namespace sandbox::test {

namespace api = opentelemetry::trace;
namespace sdktrace = opentelemetry::sdk::trace;
namespace memory = opentelemetry::exporter::memory;
namespace nostd = opentelemetry::nostd;

inline constexpr const char* kExecSpanName = "sandbox.v1.SandboxExecService/Exec";

template <std::size_t N>
std::string hex(const std::array<char, N>& digits) {
  return std::string(digits.data(), digits.size());
}
inline std::string hex(api::TraceId id) {
  std::array<char, 32> digits{};
  id.ToLowerBase16(digits);
  return hex(digits);
}
inline std::string hex(api::SpanId id) {
  if (!id.IsValid()) return {};
  std::array<char, 16> digits{};
  id.ToLowerBase16(digits);
  return hex(digits);
}

inline std::string kind_name(api::SpanKind kind) {
  switch (kind) {
    case api::SpanKind::kClient:
      return "client";
    case api::SpanKind::kServer:
      return "server";
    case api::SpanKind::kInternal:
      return "internal";
    case api::SpanKind::kProducer:
      return "producer";
    case api::SpanKind::kConsumer:
      return "consumer";
  }
  return "?";
}

template <typename Map>
std::map<std::string, SpanValue> values_of(const Map& attributes) {
  std::map<std::string, SpanValue> out;
  for (const auto& [key, value] : attributes) {
    if (const auto* b = nostd::get_if<bool>(&value)) {
      out[key] = *b;
    } else if (const auto* i = nostd::get_if<std::int64_t>(&value)) {
      out[key] = *i;
    } else if (const auto* i32 = nostd::get_if<std::int32_t>(&value)) {
      out[key] = std::int64_t{*i32};
    } else if (const auto* s = nostd::get_if<std::string>(&value)) {
      out[key] = *s;
    } else {
      out[key] = std::string("<a type §15 does not use>");
    }
  }
  return out;
}

inline SpanRecord record_of(const sdktrace::SpanData& span) {
  SpanRecord record;
  record.name = std::string(span.GetName());
  record.kind = kind_name(span.GetSpanKind());
  record.trace_id = hex(span.GetTraceId());
  record.span_id = hex(span.GetSpanId());
  record.parent_span_id = hex(span.GetParentSpanId());
  record.error = span.GetStatus() == api::StatusCode::kError;
  record.status_description = std::string(span.GetDescription());
  record.attributes = values_of(span.GetAttributes());
  for (const auto& event : span.GetEvents()) {
    record.events.push_back({std::string(event.GetName()), values_of(event.GetAttributes())});
  }
  return record;
}

// An OTel SDK pipeline of the test's own: tracer provider -> simple processor -> memory.
class InMemoryTracing {
 public:
  InMemoryTracing() {
    auto exporter = std::make_unique<memory::InMemorySpanExporter>(10000);
    data_ = exporter->GetData();
    provider_ = std::make_shared<sdktrace::TracerProvider>(
        sdktrace::SimpleSpanProcessorFactory::Create(std::move(exporter)));
  }
  ~InMemoryTracing() { provider_->Shutdown(); }

  // The test's own spans (the caller's active span).
  nostd::shared_ptr<api::Tracer> app_tracer() { return provider_->GetTracer("tracing-test"); }
  // What RemoteRunnerConfig::tracer gets.
  std::shared_ptr<Tracer> sdk_tracer() {
    return otel::make_tracer(provider_->GetTracer("sandbox-exec", SANDBOX_VERSION_STRING));
  }

  // Every span finished so far, in the order they ended.
  std::vector<SpanRecord> spans() {
    std::lock_guard lock(mutex_);
    for (const auto& span : data_->GetSpans()) taken_.push_back(record_of(*span));
    return taken_;
  }
  // The spans named `name`, once there are `n` of them (bounded); a failure says how many.
  std::vector<SpanRecord> wait_for(std::size_t n, const std::string& name = kExecSpanName) {
    std::vector<SpanRecord> named;
    const bool arrived = eventually(
        [&] {
          named.clear();
          for (SpanRecord& span : spans()) {
            if (span.name == name) named.push_back(span);
          }
          return named.size() >= n;
        },
        std::chrono::seconds(10));
    EXPECT_TRUE(arrived) << n << " spans named " << name << " did not end within 10 s; "
                         << named.size() << " did";
    return named;
  }

 private:
  std::shared_ptr<memory::InMemorySpanData> data_;
  std::shared_ptr<sdktrace::TracerProvider> provider_;
  std::mutex mutex_;
  std::vector<SpanRecord> taken_;
};

}  // namespace sandbox::test
