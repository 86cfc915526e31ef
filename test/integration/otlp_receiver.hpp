#pragma once
// A collector in the test: an OTLP/gRPC TraceService on 127.0.0.1 (ephemeral port) that
// keeps every span it receives, from any number of exporters (the SDK's, the agent's).

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "integration/span_record.hpp"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

namespace sandbox::test {

namespace otlp_proto {
namespace collector = opentelemetry::proto::collector::trace::v1;
namespace common = opentelemetry::proto::common::v1;
namespace trace = opentelemetry::proto::trace::v1;

inline std::string hex_of(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char byte : bytes) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0xf];
  }
  return out;
}

inline std::map<std::string, SpanValue> values_of(
    const google::protobuf::RepeatedPtrField<common::KeyValue>& attributes) {
  std::map<std::string, SpanValue> out;
  for (const common::KeyValue& attribute : attributes) {
    const common::AnyValue& value = attribute.value();
    switch (value.value_case()) {
      case common::AnyValue::kBoolValue:
        out[attribute.key()] = value.bool_value();
        break;
      case common::AnyValue::kIntValue:
        out[attribute.key()] = static_cast<std::int64_t>(value.int_value());
        break;
      case common::AnyValue::kStringValue:
        out[attribute.key()] = value.string_value();
        break;
      default:
        out[attribute.key()] = std::string("<a type section 15 does not use>");
    }
  }
  return out;
}

inline std::string kind_of(trace::Span::SpanKind kind) {
  switch (kind) {
    case trace::Span::SPAN_KIND_CLIENT:
      return "client";
    case trace::Span::SPAN_KIND_SERVER:
      return "server";
    case trace::Span::SPAN_KIND_INTERNAL:
      return "internal";
    case trace::Span::SPAN_KIND_PRODUCER:
      return "producer";
    case trace::Span::SPAN_KIND_CONSUMER:
      return "consumer";
    default:
      return "unspecified";
  }
}
}  // namespace otlp_proto

/// Not copyable; every member may be called from any thread.
class OtlpReceiver {
 public:
  OtlpReceiver() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    if (!server_ || port_ == 0) throw std::runtime_error("OtlpReceiver: cannot listen");
  }
  ~OtlpReceiver() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5)); }
  OtlpReceiver(const OtlpReceiver&) = delete;
  OtlpReceiver& operator=(const OtlpReceiver&) = delete;

  /// What an exporter is given: "http://127.0.0.1:PORT".
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

  /// Every span received so far, in arrival order.
  std::vector<SpanRecord> spans() const {
    std::lock_guard lock(service_.mutex);
    return service_.spans;
  }
  /// How many Export calls arrived.
  std::size_t exports() const {
    std::lock_guard lock(service_.mutex);
    return service_.exports;
  }

  /// The spans for which `match` holds, once there are `n` (or after `timeout`: fewer).
  std::vector<SpanRecord> wait_for(std::size_t n,
                                   const std::function<bool(const SpanRecord&)>& match,
                                   std::chrono::milliseconds timeout) const {
    std::unique_lock lock(service_.mutex);
    std::vector<SpanRecord> matching;
    service_.arrived.wait_for(lock, timeout, [&] {
      matching.clear();
      std::copy_if(service_.spans.begin(), service_.spans.end(), std::back_inserter(matching),
                   match);
      return matching.size() >= n;
    });
    return matching;
  }

 private:
  // Runs on gRPC's server threads.
  struct Service final : otlp_proto::collector::TraceService::Service {
    grpc::Status Export(grpc::ServerContext*,
                        const otlp_proto::collector::ExportTraceServiceRequest* request,
                        otlp_proto::collector::ExportTraceServiceResponse*) override {
      std::vector<SpanRecord> received;
      for (const auto& resource_spans : request->resource_spans()) {
        const auto resource = otlp_proto::values_of(resource_spans.resource().attributes());
        const auto service_name = resource.find("service.name");
        for (const auto& scope_spans : resource_spans.scope_spans()) {
          for (const auto& span : scope_spans.spans()) {
            SpanRecord& record = received.emplace_back();
            if (service_name != resource.end()) {
              if (const auto* text = std::get_if<std::string>(&service_name->second)) {
                record.service = *text;
              }
            }
            record.scope = scope_spans.scope().name();
            record.name = span.name();
            record.kind = otlp_proto::kind_of(span.kind());
            record.trace_id = otlp_proto::hex_of(span.trace_id());
            record.span_id = otlp_proto::hex_of(span.span_id());
            record.parent_span_id = otlp_proto::hex_of(span.parent_span_id());
            record.error = span.status().code() == otlp_proto::trace::Status::STATUS_CODE_ERROR;
            record.status_description = span.status().message();
            record.attributes = otlp_proto::values_of(span.attributes());
            for (const auto& event : span.events()) {
              record.events.push_back({event.name(), otlp_proto::values_of(event.attributes())});
            }
          }
        }
      }
      {
        std::lock_guard lock(mutex);
        ++exports;
        spans.insert(spans.end(), received.begin(), received.end());
      }
      arrived.notify_all();
      return grpc::Status::OK;
    }

    mutable std::mutex mutex;
    mutable std::condition_variable arrived;
    std::vector<SpanRecord> spans;  // guarded by mutex
    std::size_t exports = 0;        // guarded by mutex
  };

  int port_ = 0;
  mutable Service service_;
  // After the service it runs: destroyed (stopped) first.
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace sandbox::test
