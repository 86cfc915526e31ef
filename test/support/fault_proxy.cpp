#include "support/fault_proxy.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sandbox::test {
namespace {

using Socket = asio::generic::stream_protocol::socket;
using Endpoint = asio::generic::stream_protocol::endpoint;
using Clock = std::chrono::steady_clock;
using Stats = FaultProxy::Stats;

constexpr std::size_t kReadSize = 64 * 1024;
// Per direction, reading pauses while this much is held (latency, throttle, blackhole), so
// a slow direction pushes back on its sender instead of growing without bound.
constexpr std::size_t kMaxHeld = 1024 * 1024;
constexpr std::uint64_t kSlicesPerSecond = 50;
constexpr auto kSetterTimeout = std::chrono::seconds(10);
// No event says "the send queue is empty", so reset_after polls SIOCOUTQNSD this often, for
// at most this long (a client that stopped reading), before it resets.
constexpr auto kDrainPoll = std::chrono::milliseconds(1);
constexpr auto kDrainLimit = std::chrono::seconds(2);

Endpoint parse_upstream(const std::string& upstream) {
  for (const std::string prefix : {"unix://", "unix:"}) {
    if (upstream.starts_with(prefix) && upstream.size() > prefix.size()) {
      return asio::local::stream_protocol::endpoint(upstream.substr(prefix.size()));
    }
  }
  const auto colon = upstream.rfind(':');
  if (colon == std::string::npos || colon + 1 == upstream.size()) {
    throw std::invalid_argument("FaultProxy: upstream is not HOST:PORT or unix:PATH: " + upstream);
  }
  std::string host = upstream.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  std::size_t parsed = 0;
  unsigned long port = 0;
  try {
    port = std::stoul(upstream.substr(colon + 1), &parsed);
  } catch (const std::exception&) {
    parsed = 0;
  }
  if (ec || parsed != upstream.size() - colon - 1 || port > 65535) {
    throw std::invalid_argument("FaultProxy: upstream is not HOST:PORT or unix:PATH: " + upstream);
  }
  return asio::ip::tcp::endpoint(address, static_cast<std::uint16_t>(port));
}

void set_no_delay(Socket& socket) {
  std::error_code ignored;
  socket.set_option(asio::ip::tcp::no_delay(true), ignored);
}

class Connection;

}  // namespace

namespace detail {

// The proxy's state. Everything except `stats` (own mutex) and `port` (written before the
// io thread starts) is touched only on the io thread.
struct FaultProxyImpl {
  explicit FaultProxyImpl(Endpoint upstream) : upstream(std::move(upstream)) {}

  // Opens, binds and listens on 127.0.0.1:`at` (0: ephemeral), then accepts.
  void listen(std::uint16_t at);
  void accept();
  // Runs `f` on the io thread and waits for it; rethrows what `f` threw.
  template <typename F>
  void run(F f);
  template <typename F>
  void update_stats(F f);
  void disarm_reset_after();
  // Open connections, copied, so that closing one while iterating is safe.
  std::vector<std::shared_ptr<Connection>> snapshot() const;

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  const Endpoint upstream;
  asio::ip::tcp::acceptor acceptor{io};
  std::uint16_t port = 0;

  Clock::duration latency{};
  std::uint64_t bytes_per_second = 0;
  bool blackhole = false;
  // While armed, the reset_after budget of connections accepted from now on.
  std::optional<std::uint64_t> reset_after;
  // Owns every connection until it closes: a blackholed one has no handler keeping it alive.
  std::unordered_map<Connection*, std::shared_ptr<Connection>> connections;

  mutable std::mutex stats_mutex;
  mutable std::condition_variable stats_changed;
  Stats stats;  // guarded by stats_mutex

  std::thread thread;
};

}  // namespace detail

namespace {

using detail::FaultProxyImpl;

// One direction of a connection: reads `from`, holds each piece until it is due (latency)
// and the throttle allows it, then writes it to `to`, in order. A connection has two.
class Pipe {
 public:
  Pipe(Connection& connection, FaultProxyImpl& proxy, Socket& from, Socket& to,
       std::uint64_t Stats::*counter)
      : connection_(connection),
        proxy_(proxy),
        from_(from),
        to_(to),
        counter_(counter),
        timer_(proxy.io) {}

  // Starts what may run now: a read unless enough is held, a write of the first piece, or
  // forwarding the EOF once everything before it was written.
  void pump();
  void cancel() { timer_.cancel(); }
  // Bytes written to `to`, counting a write in flight: what a reset_after budget adds to.
  std::uint64_t committed() const { return forwarded_ + in_flight_; }

  // When set, the connection is reset once exactly this many bytes were written to `to`.
  std::optional<std::uint64_t> limit;

 private:
  struct Piece {
    std::vector<char> bytes;
    std::size_t offset = 0;
    Clock::time_point due;
  };

  void read();
  void write_when_due();
  void write();

  Connection& connection_;
  FaultProxyImpl& proxy_;
  Socket& from_;
  Socket& to_;
  std::uint64_t Stats::*counter_;
  asio::steady_timer timer_;
  std::array<char, kReadSize> buffer_;
  std::deque<Piece> held_;
  std::size_t held_bytes_ = 0;
  bool reading_ = false;
  bool writing_ = false;  // a write, or the wait before it, is in progress
  bool eof_ = false;
  bool finished_ = false;  // EOF forwarded
  std::uint64_t forwarded_ = 0;
  std::uint64_t in_flight_ = 0;
  Clock::time_point next_slot_{};  // throttle: the earliest start of the next write
};

// How a connection ends: FIN, RST mirroring a peer's error, RST the test asked for.
enum class Close { fin, rst, injected_rst };

// A client connection and its upstream connection. Lives on the io thread; every handler
// holds a shared_ptr to it, and so does the proxy until it closes.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(FaultProxyImpl& proxy, Socket client) : proxy_(proxy), client_(std::move(client)) {
    if (proxy.reset_after) down_.limit = *proxy.reset_after;
  }

  // Connects upstream, then forwards.
  void start();
  void pump() {
    up_.pump();
    down_.pump();
  }
  void close(Close how);
  bool forwarding() const { return state_ == State::open; }
  Pipe& downstream() { return down_; }

  // A pipe forwarded its EOF; after both, the connection closes.
  void finished() {
    if (++finished_pipes_ == 2) close(Close::fin);
  }
  // The downstream pipe wrote exactly its limit: reset once the kernel has sent it.
  void limit_reached() {
    proxy_.disarm_reset_after();
    state_ = State::draining;
    reset_when_sent(Clock::now() + kDrainLimit);
  }

 private:
  enum class State { connecting, open, draining, closed };

  void reset_when_sent(Clock::time_point give_up);

  FaultProxyImpl& proxy_;
  Socket client_;
  Socket server_{proxy_.io};
  Pipe up_{*this, proxy_, client_, server_, &Stats::upstream_bytes};
  Pipe down_{*this, proxy_, server_, client_, &Stats::downstream_bytes};
  asio::steady_timer drain_timer_{proxy_.io};
  State state_ = State::connecting;
  int finished_pipes_ = 0;
};

void Pipe::pump() {
  if (!connection_.forwarding() || proxy_.blackhole) return;
  if (!reading_ && !eof_ && held_bytes_ < kMaxHeld) read();
  if (writing_) return;
  if (!held_.empty()) {
    write_when_due();
  } else if (eof_ && !finished_) {
    finished_ = true;
    std::error_code ignored;
    to_.shutdown(asio::socket_base::shutdown_send, ignored);
    connection_.finished();
  }
}

void Pipe::read() {
  reading_ = true;
  from_.async_read_some(asio::buffer(buffer_), [this, self = connection_.shared_from_this()](
                                                   std::error_code ec, std::size_t n) {
    reading_ = false;
    if (!connection_.forwarding()) return;
    if (ec == asio::error::eof) {
      eof_ = true;
    } else if (ec) {
      connection_.close(Close::rst);
      return;
    } else {
      held_.push_back({std::vector<char>(buffer_.data(), buffer_.data() + n), 0,
                       Clock::now() + proxy_.latency});
      held_bytes_ += n;
    }
    pump();
  });
}

void Pipe::write_when_due() {
  writing_ = true;
  Clock::time_point due = held_.front().due;
  if (proxy_.bytes_per_second != 0) due = std::max(due, next_slot_);
  if (due <= Clock::now()) {
    write();
    return;
  }
  timer_.expires_at(due);
  timer_.async_wait([this, self = connection_.shared_from_this()](std::error_code ec) {
    if (ec || !connection_.forwarding()) return;
    if (proxy_.blackhole) {
      writing_ = false;  // set_blackhole(false) pumps again
      return;
    }
    write();
  });
}

void Pipe::write() {
  const Piece& piece = held_.front();
  std::size_t n = piece.bytes.size() - piece.offset;
  const std::uint64_t rate = proxy_.bytes_per_second;
  if (rate != 0) {
    n = std::min<std::uint64_t>(n,
                                std::clamp<std::uint64_t>(rate / kSlicesPerSecond, 1, kReadSize));
  }
  if (limit) n = std::min<std::uint64_t>(n, *limit - forwarded_);
  if (n == 0) {
    connection_.limit_reached();
    return;
  }
  if (rate != 0) {
    next_slot_ = std::max(next_slot_, Clock::now()) +
                 std::chrono::nanoseconds(n * std::uint64_t{1'000'000'000} / rate);
  }
  in_flight_ = n;
  asio::async_write(
      to_, asio::buffer(piece.bytes.data() + piece.offset, n),
      [this, self = connection_.shared_from_this(), n](std::error_code ec, std::size_t) {
        in_flight_ = 0;
        if (!connection_.forwarding()) return;
        if (ec) {
          connection_.close(Close::rst);
          return;
        }
        forwarded_ += n;
        proxy_.update_stats([&](Stats& stats) { stats.*counter_ += n; });
        Piece& front = held_.front();
        front.offset += n;
        held_bytes_ -= n;
        if (front.offset == front.bytes.size()) held_.pop_front();
        writing_ = false;
        if (limit && forwarded_ >= *limit) {
          connection_.limit_reached();
          return;
        }
        pump();
      });
}

void Connection::start() {
  set_no_delay(client_);
  server_.async_connect(proxy_.upstream, [this, self = shared_from_this()](std::error_code ec) {
    if (state_ != State::connecting) return;
    if (ec) {
      close(Close::rst);
      return;
    }
    if (proxy_.upstream.protocol().family() != AF_UNIX) set_no_delay(server_);
    state_ = State::open;
    pump();
  });
}

void Connection::reset_when_sent(Clock::time_point give_up) {
  if (state_ != State::draining) return;
  int unsent = 0;
  if (::ioctl(client_.native_handle(), SIOCOUTQNSD, &unsent) == 0 && unsent > 0 &&
      Clock::now() < give_up) {
    drain_timer_.expires_after(kDrainPoll);
    drain_timer_.async_wait([this, self = shared_from_this(), give_up](std::error_code ec) {
      if (!ec) reset_when_sent(give_up);
    });
    return;
  }
  close(Close::injected_rst);
}

void Connection::close(Close how) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  // Counted first, so a test that saw the reset also sees it counted.
  proxy_.update_stats([&](Stats& stats) {
    --stats.open_connections;
    if (how == Close::injected_rst) ++stats.resets_injected;
  });
  for (Socket* socket : {&client_, &server_}) {
    std::error_code ignored;
    // Linger 0: the explicit close() sends RST instead of FIN (a unix socket just closes).
    if (how != Close::fin) socket->set_option(asio::socket_base::linger(true, 0), ignored);
    socket->close(ignored);
  }
  up_.cancel();
  down_.cancel();
  drain_timer_.cancel();
  proxy_.connections.erase(this);  // a caller up the stack still holds a shared_ptr
}

}  // namespace

namespace detail {

void FaultProxyImpl::listen(std::uint16_t at) {
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), at);
  try {
    acceptor.open(endpoint.protocol());
    // Accepted connections keep using the port: rebinding it after set_refuse needs this.
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
  } catch (...) {
    std::error_code ignored;
    acceptor.close(ignored);
    throw;
  }
  if (at == 0) port = acceptor.local_endpoint().port();  // before the io thread starts
  accept();
}

void FaultProxyImpl::accept() {
  auto socket = std::make_shared<Socket>(io);
  acceptor.async_accept(*socket, [this, socket](std::error_code ec) {
    if (ec == asio::error::operation_aborted) return;  // the listener closed
    if (!ec) {
      auto connection = std::make_shared<Connection>(*this, std::move(*socket));
      connections.emplace(connection.get(), connection);
      update_stats([](Stats& stats) {
        ++stats.accepted;
        ++stats.open_connections;
      });
      connection->start();
    }
    accept();
  });
}

template <typename F>
void FaultProxyImpl::run(F f) {
  auto task = std::make_shared<std::packaged_task<void()>>(std::move(f));
  std::future<void> done = task->get_future();
  asio::post(io, [task] { (*task)(); });
  if (done.wait_for(kSetterTimeout) != std::future_status::ready) {
    throw std::runtime_error("FaultProxy: its thread did not apply a setting within 10 s");
  }
  done.get();
}

template <typename F>
void FaultProxyImpl::update_stats(F f) {
  {
    std::lock_guard lock(stats_mutex);
    f(stats);
  }
  stats_changed.notify_all();
}

void FaultProxyImpl::disarm_reset_after() {
  reset_after.reset();
  for (auto& [_, connection] : connections) connection->downstream().limit.reset();
}

std::vector<std::shared_ptr<Connection>> FaultProxyImpl::snapshot() const {
  std::vector<std::shared_ptr<Connection>> open;
  for (const auto& [_, connection] : connections) open.push_back(connection);
  return open;
}

}  // namespace detail

FaultProxy::FaultProxy(std::string upstream)
    : impl_(std::make_unique<detail::FaultProxyImpl>(parse_upstream(upstream))) {
  try {
    impl_->listen(0);
  } catch (const std::system_error& e) {
    throw std::runtime_error(std::string("FaultProxy: cannot listen on 127.0.0.1: ") + e.what());
  }
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

FaultProxy::~FaultProxy() {
  asio::post(impl_->io, [impl = impl_.get()] {
    std::error_code ignored;
    impl->acceptor.close(ignored);
    for (auto& connection : impl->snapshot()) connection->close(Close::fin);
  });
  impl_->work.reset();
  impl_->thread.join();
}

std::string FaultProxy::address() const { return "127.0.0.1:" + std::to_string(port()); }

std::uint16_t FaultProxy::port() const { return impl_->port; }

void FaultProxy::set_latency(std::chrono::milliseconds one_way) {
  impl_->run([impl = impl_.get(), one_way] { impl->latency = one_way; });
}

void FaultProxy::set_throttle(std::uint64_t bytes_per_second) {
  impl_->run([impl = impl_.get(), bytes_per_second] { impl->bytes_per_second = bytes_per_second; });
}

void FaultProxy::reset_all() {
  impl_->run([impl = impl_.get()] {
    for (auto& connection : impl->snapshot()) connection->close(Close::injected_rst);
  });
}

void FaultProxy::reset_after(std::uint64_t downstream_bytes) {
  impl_->run([impl = impl_.get(), downstream_bytes] {
    impl->reset_after = downstream_bytes;
    for (auto& [_, connection] : impl->connections) {
      Pipe& down = connection->downstream();
      down.limit = down.committed() + downstream_bytes;
    }
  });
}

void FaultProxy::set_blackhole(bool on) {
  impl_->run([impl = impl_.get(), on] {
    impl->blackhole = on;
    if (!on) {
      for (auto& connection : impl->snapshot()) connection->pump();
    }
  });
}

void FaultProxy::set_refuse(bool on) {
  impl_->run([impl = impl_.get(), on] {
    if (on) {
      std::error_code ignored;
      impl->acceptor.close(ignored);
    } else if (!impl->acceptor.is_open()) {
      impl->listen(impl->port);
    }
  });
}

FaultProxy::Stats FaultProxy::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

bool FaultProxy::wait_for_stats(const std::function<bool(const Stats&)>& done,
                                std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->stats_mutex);
  return impl_->stats_changed.wait_for(lock, timeout, [&] { return done(impl_->stats); });
}

bool FaultProxy::wait_for_connections(std::size_t n, std::chrono::milliseconds timeout) const {
  return wait_for_stats([n](const Stats& stats) { return stats.accepted >= n; }, timeout);
}

}  // namespace sandbox::test
