// OtlpExport: OTLP/gRPC exporter -> batch span processor -> tracer provider, owned together.
#include <stdexcept>
#include <utility>

#include "opentelemetry/exporters/otlp/otlp_grpc_exporter_factory.h"
#include "opentelemetry/exporters/otlp/otlp_grpc_exporter_options.h"
#include "opentelemetry/sdk/resource/resource.h"
#include "opentelemetry/sdk/trace/batch_span_processor_factory.h"
#include "opentelemetry/sdk/trace/batch_span_processor_options.h"
#include "opentelemetry/sdk/trace/samplers/always_on.h"
#include "opentelemetry/sdk/trace/samplers/parent.h"
#include "opentelemetry/sdk/trace/tracer_provider.h"
#include "sandbox/opentelemetry.hpp"
#include "sandbox/version.hpp"

namespace sandbox::otel {
namespace {

namespace sdk = opentelemetry::sdk;
namespace otlp = opentelemetry::exporter::otlp;
namespace nostd = opentelemetry::nostd;

constexpr std::chrono::milliseconds kShutdownTimeout{5000};

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

struct OtlpExport::Pipeline {
  std::shared_ptr<sdk::trace::TracerProvider> provider;
};

OtlpExport::OtlpExport(std::string endpoint, std::string service_name)
    : endpoint_(std::move(endpoint)) {
  if (endpoint_.empty()) throw std::invalid_argument("OtlpExport: empty endpoint");
  if (service_name.empty()) throw std::invalid_argument("OtlpExport: empty service name");

  // The defaults read OTEL_EXPORTER_OTLP_* (headers, timeout, certificate, compression); the
  // endpoint and its security are the caller's. opentelemetry-cpp parses the endpoint as a
  // URL whose scheme defaults to http: a bare host:port is cleartext.
  otlp::OtlpGrpcExporterOptions options;
  options.endpoint = endpoint_;
  options.use_ssl_credentials = starts_with(endpoint_, "https://");

  // 200 ms instead of OTel's 5 s: spans reach the collector while one still looks at the
  // trace, and a short-lived program's destructor has less to flush.
  sdk::trace::BatchSpanProcessorOptions batch;
  batch.schedule_delay_millis = std::chrono::milliseconds(200);

  // Resource::Create merges the SDK's telemetry.sdk.* and OTEL_RESOURCE_ATTRIBUTES; the
  // attributes given here win.
  const auto resource = sdk::resource::Resource::Create(
      {{"service.name", service_name}, {"service.version", std::string(SANDBOX_VERSION_STRING)}});
  // Parent-based, as OTel's default: a caller that does not sample its trace is followed.
  auto sampler = std::make_unique<sdk::trace::ParentBasedSampler>(
      std::make_shared<sdk::trace::AlwaysOnSampler>());

  pipeline_ = std::make_unique<Pipeline>();
  pipeline_->provider = std::make_shared<sdk::trace::TracerProvider>(
      sdk::trace::BatchSpanProcessorFactory::Create(otlp::OtlpGrpcExporterFactory::Create(options),
                                                    batch),
      resource, std::move(sampler));
  tracer_ = make_tracer(pipeline_->provider->GetTracer(
      nostd::string_view(kInstrumentationScope.data(), kInstrumentationScope.size()),
      SANDBOX_VERSION_STRING));
}

std::unique_ptr<OtlpExport> OtlpExport::from_environment(std::string service_name) {
  std::string endpoint = otlp_endpoint_from_environment();
  if (endpoint.empty()) return nullptr;
  return std::make_unique<OtlpExport>(std::move(endpoint), std::move(service_name));
}

OtlpExport::~OtlpExport() {
  pipeline_->provider->ForceFlush(kShutdownTimeout);
  pipeline_->provider->Shutdown(kShutdownTimeout);
}

nostd::shared_ptr<opentelemetry::trace::TracerProvider> OtlpExport::provider() const {
  return nostd::shared_ptr<opentelemetry::trace::TracerProvider>(
      std::shared_ptr<opentelemetry::trace::TracerProvider>(pipeline_->provider));
}

bool OtlpExport::force_flush(std::chrono::milliseconds timeout) {
  return pipeline_->provider->ForceFlush(timeout);
}

}  // namespace sandbox::otel
