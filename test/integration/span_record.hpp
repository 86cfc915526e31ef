#pragma once
// Finished spans in one shape, whether they come from opentelemetry-cpp's in-memory exporter
// or arrive over OTLP: what the tracing tests compare (§15's names, kinds, ids, attributes).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace sandbox::test {

/// An attribute value as the tests compare it.
using SpanValue = std::variant<bool, std::int64_t, std::string>;

struct SpanEventRecord {
  std::string name;
  std::map<std::string, SpanValue> attributes;
};

/// One finished span. Ids are lowercase hex (32 / 16 digits); a root's parent is "".
struct SpanRecord {
  std::string service;  // the resource's service.name (OTLP only)
  std::string scope;    // the instrumentation scope's name (OTLP only)
  std::string name;
  std::string kind;  // "client", "server", "internal", "producer", "consumer"
  std::string trace_id;
  std::string span_id;
  std::string parent_span_id;
  bool error = false;  // status ERROR
  std::string status_description;
  std::map<std::string, SpanValue> attributes;
  std::vector<SpanEventRecord> events;

  /// The attribute's keys.
  std::set<std::string> keys() const {
    std::set<std::string> out;
    for (const auto& [key, value] : attributes) out.insert(key);
    return out;
  }
  /// Every string the span carries: name, status, string attributes, events.
  std::vector<std::string> strings() const {
    std::vector<std::string> out{name, status_description};
    const auto add = [&out](const std::map<std::string, SpanValue>& attributes) {
      for (const auto& [key, value] : attributes) {
        out.push_back(key);
        if (const auto* text = std::get_if<std::string>(&value)) out.push_back(*text);
      }
    };
    add(attributes);
    for (const SpanEventRecord& event : events) {
      out.push_back(event.name);
      add(event.attributes);
    }
    return out;
  }
  const SpanValue* find(const std::string& key) const {
    const auto it = attributes.find(key);
    return it == attributes.end() ? nullptr : &it->second;
  }
  std::string text(const std::string& key) const {
    const SpanValue* value = find(key);
    const auto* text = value ? std::get_if<std::string>(value) : nullptr;
    return text ? *text : std::string();
  }
  std::int64_t number(const std::string& key, std::int64_t otherwise = -1) const {
    const SpanValue* value = find(key);
    const auto* number = value ? std::get_if<std::int64_t>(value) : nullptr;
    return number ? *number : otherwise;
  }
};

/// The keys docs/behavior.md §15 gives a client span of a call that ended with the exit
/// over TCP (`server.port`, no `network.transport`), with a requested profile, first attempt.
inline std::set<std::string> client_span_keys_of_an_exit() {
  return {"rpc.system",
          "rpc.service",
          "rpc.method",
          "rpc.grpc.status_code",
          "server.address",
          "server.port",
          "sandbox.id",
          "sandbox.exec_id",
          "sandbox.profile.requested",
          "sandbox.profile.effective",
          "sandbox.exit_code",
          "sandbox.timed_out",
          "sandbox.retry.attempt",
          "sandbox.stdout.bytes_received",
          "sandbox.stderr.bytes_received"};
}

}  // namespace sandbox::test
