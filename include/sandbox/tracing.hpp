#pragma once
/// @file
/// The tracer the SDK (and the reference agent) report spans to: a small interface, so the
/// core depends on no tracing library. `sandbox/opentelemetry.hpp` maps it onto
/// opentelemetry-cpp; without a tracer (the default) nothing is recorded and nothing is
/// allocated. The span names and attribute keys are normative in docs/behavior.md §15.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <variant>

namespace sandbox {

/// The value of a span attribute. Strings are views: a span copies what it keeps.
using AttributeValue = std::variant<bool, std::int64_t, std::string_view>;

/// One attribute: a key from docs/behavior.md §15 and its value.
struct Attribute {
  std::string_view key;  ///< e.g. `sandbox.exec_id`
  AttributeValue value;  ///< its value, of the type §15 gives the key
};

/// The role of a span in a trace (OTel's SpanKind).
enum class SpanKind { internal, client, server };

/// Writes one header of context propagation (W3C `traceparent`, `tracestate`) into the
/// metadata of an outgoing call.
using MetadataWriter = std::function<void(std::string_view key, std::string_view value)>;
/// Reads one header of an incoming call's metadata; empty when it is absent.
using MetadataReader = std::function<std::string_view(std::string_view key)>;

/// Where a new span hangs in its trace: the caller's active span, a span extracted from an
/// incoming call, or another span. Opaque to the SDK; immutable, shareable across threads.
class SpanParent {
 public:
  virtual ~SpanParent() = default;
};

/// A span from `Tracer::start_span` until `end()`. The SDK calls one span from one thread
/// at a time (possibly different threads over its life), and calls `end()` exactly once,
/// last. Implementations must not throw.
class Span {
 public:
  virtual ~Span() = default;
  /// Sets (or replaces) one attribute.
  virtual void set_attribute(std::string_view key, AttributeValue value) noexcept = 0;
  /// Records a timestamped event with attributes.
  virtual void add_event(std::string_view name, std::span<const Attribute> attributes) noexcept = 0;
  /// Marks the span failed: OTel status ERROR with `description` (an SDK error message,
  /// which never carries a token, a secret or an env value).
  virtual void set_error(std::string_view description) noexcept = 0;
  /// Writes this span's context into outgoing metadata, so the callee's spans join the
  /// trace as its children.
  virtual void inject(const MetadataWriter& write) const noexcept = 0;
  /// The parent to give spans started as this span's children.
  [[nodiscard]] virtual std::shared_ptr<const SpanParent> as_parent() const = 0;
  /// Ends the span at the current time; nothing else is called afterwards.
  virtual void end() noexcept = 0;
};

/// Starts spans. Shared by every runner and call that uses it: thread-safe.
class Tracer {
 public:
  virtual ~Tracer() = default;
  /// The calling thread's active span as a parent (OTel: the current context), captured
  /// when a call begins: its attempts start later on gRPC threads, where it is not active.
  /// Null: no active span (the spans start a new trace).
  [[nodiscard]] virtual std::shared_ptr<const SpanParent> current() const = 0;
  /// The context an incoming call carries in its metadata (W3C `traceparent`/`tracestate`).
  /// Null: none, or not valid.
  [[nodiscard]] virtual std::shared_ptr<const SpanParent> extract(
      const MetadataReader& read) const = 0;
  /// Starts a span named `name` of `kind`, child of `parent` (null: a new trace), with
  /// `attributes`. Never returns null.
  [[nodiscard]] virtual std::unique_ptr<Span> start_span(std::string_view name, SpanKind kind,
                                                         const SpanParent* parent,
                                                         std::span<const Attribute> attributes) = 0;
};

}  // namespace sandbox
