// A loopback TCP proxy that injects network faults between a client and a real server.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sandbox::test {

namespace detail {
class FaultProxyImpl;
}

/// Sits between a client (a gRPC channel) and a real server and injects faults on demand:
/// latency, throttling, resets (now, or after exactly N bytes), a blackhole, refused connects.
///
/// Each accepted connection gets its own upstream connection; bytes are forwarded in order in
/// both directions, and a half-close (EOF) is forwarded once what precedes it was delivered.
/// A read error or reset on one side resets the other side too.
///
/// @par Thread safety
///   Every member except the destructor may be called from any thread while traffic flows.
///   Work runs on one internal thread. A setter returns once that thread has applied it, so
///   it is in effect for everything that happens after the call returns.
class FaultProxy {
 public:
  /// What the proxy did since construction. `upstream_bytes` counts client->server bytes
  /// written to the server, `downstream_bytes` server->client bytes written to the client.
  /// Byte counts are added when a write completes, so they may trail what a peer already
  /// received (wait with wait_for_stats); a reset or close is counted before it is sent.
  struct Stats {
    std::uint64_t accepted = 0;         ///< connections accepted in total
    std::uint64_t resets_injected = 0;  ///< connections reset by reset_all / reset_after
    std::uint64_t upstream_bytes = 0;
    std::uint64_t downstream_bytes = 0;
    std::size_t open_connections = 0;  ///< accepted and not yet closed
  };

  /// Listens on 127.0.0.1 with an ephemeral port and forwards each accepted connection to
  /// `upstream`: "127.0.0.1:PORT" / "localhost:PORT" (TCP, localhost meaning 127.0.0.1) or
  /// "unix:/path" (also "unix:///path"). Starts its internal thread.
  /// @throws std::invalid_argument when `upstream` is not one of those forms.
  /// @throws std::runtime_error when it cannot listen.
  explicit FaultProxy(std::string upstream);

  /// Closes the listener and every connection (plain close, not a reset) and joins the
  /// internal thread. Must not race with other calls on this object.
  ~FaultProxy();

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  /// "127.0.0.1:PORT", usable as a gRPC target. Constant for the proxy's lifetime.
  std::string address() const;

  /// The listening port. Constant for the proxy's lifetime (set_refuse keeps it).
  std::uint16_t port() const;

  /// Holds each piece read from now on for `one_way` before forwarding it, in each
  /// direction; byte order is kept and reading continues meanwhile (up to 1 MiB held per
  /// direction). 0 turns it off. Pieces already held keep the delay they were read with.
  void set_latency(std::chrono::milliseconds one_way);

  /// Caps each direction of each connection at `bytes_per_second` (0 = unlimited): writes
  /// are sliced to 1/50 s worth of bytes and spaced so the average never exceeds the cap.
  void set_throttle(std::uint64_t bytes_per_second);

  /// Resets every open connection now: SO_LINGER 0 then close on both sides, so a TCP peer
  /// sees ECONNRESET (a unix-socket server just sees the close). Bytes the proxy still holds
  /// are dropped. Adds one to `resets_injected` per connection.
  void reset_all();

  /// Arms a one-shot reset: the first connection that writes `downstream_bytes` more
  /// server->client bytes from now on (connections open now and accepted later alike) gets
  /// exactly that many bytes delivered, then is reset as by reset_all. Before the reset it
  /// waits (at most 2 s) until the kernel has transmitted those bytes, so a reading client
  /// receives all of them before the ECONNRESET. 0 resets the first connection with
  /// server->client data to forward, before any of it. Calling it again re-arms with the
  /// new count.
  void reset_after(std::uint64_t downstream_bytes);

  /// While on, forwards nothing in either direction: the proxy stops reading both sides, so
  /// data waits in kernel buffers (senders eventually block) and whatever the proxy already
  /// held waits with it. Connections stay open and new ones are still accepted (and held).
  /// Off resumes forwarding everything that waited, in order; nothing is dropped.
  void set_blackhole(bool on);

  /// On closes the listener, so connect() gets ECONNREFUSED; open connections are not
  /// touched. Off listens again on the same port.
  /// @throws std::system_error when the port cannot be bound again.
  void set_refuse(bool on);

  /// A consistent snapshot of the counters.
  Stats stats() const;

  /// Blocks until `done(stats())` holds or `timeout` passes; returns whether it held.
  /// `done` is called with an internal lock held: it must not call this proxy.
  bool wait_for_stats(const std::function<bool(const Stats&)>& done,
                      std::chrono::milliseconds timeout) const;

  /// Blocks until at least `n` connections were accepted in total, or `timeout` passes;
  /// returns whether it happened.
  bool wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const;

 private:
  std::unique_ptr<detail::FaultProxyImpl> impl_;
};

}  // namespace sandbox::test
