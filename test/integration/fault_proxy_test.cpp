// FaultProxy against a real echo server (TCP and unix socket) and plain blocking clients.

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/fault_proxy.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = 10s;  // bound of every wait that should succeed

std::string random_bytes(std::size_t n, unsigned seed = 1) {
  std::mt19937 random(seed);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  return bytes;
}

// Echoes every byte back on each accepted connection; optionally sends `greeting` first.
// Records how each connection ended (the error of its last read or write).
template <typename Protocol>
class EchoServer {
 public:
  explicit EchoServer(const typename Protocol::endpoint& where, std::string greeting = {})
      : acceptor_(io_, where), greeting_(std::move(greeting)) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    io_.stop();
    thread_.join();
  }

  typename Protocol::endpoint endpoint() const { return acceptor_.local_endpoint(); }

  std::size_t bytes_received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

  // The end of the first connection that ended, waiting up to kWait for it.
  std::optional<std::error_code> first_end() const {
    std::unique_lock lock(mutex_);
    if (!ended_cv_.wait_for(lock, kWait, [&] { return !ends_.empty(); })) return std::nullopt;
    return ends_.front();
  }

 private:
  using Socket = typename Protocol::socket;
  struct Session {
    explicit Session(Socket s) : socket(std::move(s)) {}
    Socket socket;
    std::array<char, 64 * 1024> buffer;
  };

  void accept() {
    acceptor_.async_accept([this](std::error_code ec, Socket socket) {
      if (ec) return;
      auto session = std::make_shared<Session>(std::move(socket));
      if (greeting_.empty()) {
        read(session);
      } else {
        asio::async_write(
            session->socket, asio::buffer(greeting_),
            [this, session](std::error_code ec, std::size_t) { ec ? end(ec) : read(session); });
      }
      accept();
    });
  }

  void read(std::shared_ptr<Session> session) {
    session->socket.async_read_some(
        asio::buffer(session->buffer), [this, session](std::error_code ec, std::size_t n) {
          if (ec) return end(ec);
          {
            std::lock_guard lock(mutex_);
            received_ += n;
          }
          asio::async_write(
              session->socket, asio::buffer(session->buffer.data(), n),
              [this, session](std::error_code ec, std::size_t) { ec ? end(ec) : read(session); });
        });
  }

  void end(std::error_code ec) {
    {
      std::lock_guard lock(mutex_);
      ends_.push_back(ec);
    }
    ended_cv_.notify_all();
  }

  asio::io_context io_;
  typename Protocol::acceptor acceptor_;
  const std::string greeting_;
  mutable std::mutex mutex_;
  mutable std::condition_variable ended_cv_;
  std::size_t received_ = 0;           // guarded by mutex_
  std::vector<std::error_code> ends_;  // guarded by mutex_
  std::thread thread_;
};

using TcpEcho = EchoServer<asio::ip::tcp>;
using UnixEcho = EchoServer<asio::local::stream_protocol>;

std::string tcp_address(const TcpEcho& server) {
  return "127.0.0.1:" + std::to_string(server.endpoint().port());
}

// A blocking loopback client. Every read and write gives up after kWait (SO_RCVTIMEO,
// SO_SNDTIMEO), so a test that goes wrong fails instead of hanging.
class Client {
 public:
  struct Received {
    std::string bytes;
    int error = 0;  // errno of the read that failed; EAGAIN: nothing arrived for kWait
    bool eof = false;
  };

  // `receive_buffer` > 0 sets SO_RCVBUF: a small one makes the sender's data wait unsent.
  explicit Client(std::uint16_t port, int receive_buffer = 0)
      : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    const timeval bound{std::chrono::seconds(kWait).count(), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      connect_error_ = errno;
    }
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int connect_error() const { return connect_error_; }

  // 0, or the errno of the send that failed.
  int send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return 0;
  }

  void close_write() { ::shutdown(fd_, SHUT_WR); }

  // Reads until `n` bytes arrived, EOF or an error.
  Received receive(std::size_t n) {
    Received received;
    std::array<char, 64 * 1024> buffer;
    while (received.bytes.size() < n) {
      const std::size_t want = std::min(buffer.size(), n - received.bytes.size());
      const ssize_t got = ::recv(fd_, buffer.data(), want, 0);
      if (got > 0) {
        received.bytes.append(buffer.data(), static_cast<std::size_t>(got));
      } else if (got == 0) {
        received.eof = true;
        break;
      } else if (errno != EINTR) {
        received.error = errno;
        break;
      }
    }
    return received;
  }

  // Sends `bytes` from another thread while reading as many back.
  std::string echo(const std::string& bytes) {
    std::jthread sender([&] { send(bytes); });
    return receive(bytes.size()).bytes;
  }

  // Whether anything (data, EOF, an error) becomes readable within `timeout`.
  bool readable_within(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

 private:
  int fd_;
  int connect_error_ = 0;
};

// Compares without printing a mebibyte on failure.
::testing::AssertionResult same_bytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  const auto diff = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
  return ::testing::AssertionFailure()
         << "got " << got.size() << " bytes, want " << want.size()
         << "; first difference at offset " << (diff.first - got.begin());
}

bool was_reset(const Client::Received& received) {
  return received.error == ECONNRESET || received.eof;
}

class FaultProxyTest : public ::testing::Test {
 protected:
  TcpEcho server_{{asio::ip::make_address("127.0.0.1"), 0}};
  FaultProxy proxy_{tcp_address(server_)};
};

TEST_F(FaultProxyTest, AddressIsLoopbackWithTheListeningPort) {
  EXPECT_NE(proxy_.port(), 0);
  EXPECT_EQ(proxy_.address(), "127.0.0.1:" + std::to_string(proxy_.port()));
}

TEST(FaultProxyConstructionTest, RejectsAnUpstreamThatIsNeitherHostPortNorUnixPath) {
  EXPECT_THROW(FaultProxy("nonsense"), std::invalid_argument);
  EXPECT_THROW(FaultProxy("127.0.0.1:port"), std::invalid_argument);
  EXPECT_THROW(FaultProxy("127.0.0.1:70000"), std::invalid_argument);
  EXPECT_THROW(FaultProxy("unix:"), std::invalid_argument);
}

TEST_F(FaultProxyTest, ForwardsAMebibyteBothWaysByteExactOverTcp) {
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);
  const std::string bytes = random_bytes(1 << 20);

  EXPECT_TRUE(same_bytes(client.echo(bytes), bytes));
}

TEST(FaultProxyUnixTest, ForwardsAMebibyteBothWaysByteExactToAUnixSocketUpstream) {
  TempDir dir;
  const std::string path = (dir.path() / "echo.sock").string();
  UnixEcho server{asio::local::stream_protocol::endpoint(path)};
  FaultProxy proxy("unix:" + path);
  Client client(proxy.port());
  ASSERT_EQ(client.connect_error(), 0);
  const std::string bytes = random_bytes(1 << 20);

  EXPECT_TRUE(same_bytes(client.echo(bytes), bytes));
}

TEST_F(FaultProxyTest, AcceptsLocalhostAsTheUpstreamHost) {
  FaultProxy proxy("localhost:" + std::to_string(server_.endpoint().port()));
  Client client(proxy.port());
  ASSERT_EQ(client.connect_error(), 0);

  EXPECT_EQ(client.echo("hello"), "hello");
}

TEST_F(FaultProxyTest, ForwardsAHalfCloseAfterTheBytesBeforeIt) {
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);
  ASSERT_EQ(client.send("bye"), 0);
  client.close_write();

  // The echo server answers EOF by closing, which the proxy forwards back.
  const auto received = client.receive(1024);
  EXPECT_EQ(received.bytes, "bye");
  EXPECT_TRUE(received.eof) << "no EOF: " << std::strerror(received.error);
}

TEST_F(FaultProxyTest, ResetAllResetsBothSidesOfEveryOpenConnection) {
  Client first(proxy_.port());
  Client second(proxy_.port());
  ASSERT_EQ(first.echo("1"), "1");
  ASSERT_EQ(second.echo("2"), "2");

  proxy_.reset_all();

  EXPECT_EQ(first.receive(1).error, ECONNRESET);
  EXPECT_EQ(second.receive(1).error, ECONNRESET);
  EXPECT_EQ(server_.first_end(), asio::error::connection_reset);
  const auto stats = proxy_.stats();
  EXPECT_EQ(stats.resets_injected, 2u);
  EXPECT_EQ(stats.open_connections, 0u);
}

TEST_F(FaultProxyTest, ResetAfterDeliversExactlyThatManyBytesThenResets) {
  constexpr std::size_t kLimit = 100'000;  // not a multiple of any read size
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);
  proxy_.reset_after(kLimit);
  const std::string bytes = random_bytes(300'000);

  std::jthread sender([&] { client.send(bytes); });
  const auto received = client.receive(bytes.size());

  EXPECT_TRUE(same_bytes(received.bytes, bytes.substr(0, kLimit)));
  EXPECT_TRUE(was_reset(received)) << std::strerror(received.error);
  EXPECT_EQ(server_.first_end(), asio::error::connection_reset);
  EXPECT_EQ(proxy_.stats().resets_injected, 1u);
}

TEST_F(FaultProxyTest, ResetAfterDeliversEveryByteToAClientWithASmallWindow) {
  // The client's tiny window leaves the last forwarded bytes unsent in the proxy's socket
  // when the limit is reached; resetting right then would drop them.
  constexpr std::size_t kLimit = 500'000;
  Client client(proxy_.port(), 4096);
  ASSERT_EQ(client.connect_error(), 0);
  proxy_.reset_after(kLimit);
  const std::string bytes = random_bytes(1'000'000);

  std::jthread sender([&] { client.send(bytes); });
  const auto received = client.receive(bytes.size());

  EXPECT_TRUE(same_bytes(received.bytes, bytes.substr(0, kLimit)));
  EXPECT_TRUE(was_reset(received)) << std::strerror(received.error);
}

TEST_F(FaultProxyTest, ResetAfterCountsOnlyBytesForwardedAfterTheCall) {
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);
  const std::string before = random_bytes(50'000, 1);
  ASSERT_TRUE(same_bytes(client.echo(before), before));

  proxy_.reset_after(10'000);
  const std::string after = random_bytes(50'000, 2);
  std::jthread sender([&] { client.send(after); });
  const auto received = client.receive(after.size());

  EXPECT_TRUE(same_bytes(received.bytes, after.substr(0, 10'000)));
  EXPECT_TRUE(was_reset(received)) << std::strerror(received.error);
}

TEST_F(FaultProxyTest, ResetAfterResetsOnlyTheFirstConnectionToReachIt) {
  {
    Client first(proxy_.port());
    ASSERT_EQ(first.connect_error(), 0);
    proxy_.reset_after(1000);
    const std::string bytes = random_bytes(5000);
    std::jthread sender([&] { first.send(bytes); });
    const auto received = first.receive(bytes.size());
    ASSERT_EQ(received.bytes.size(), 1000u);
    ASSERT_TRUE(was_reset(received)) << std::strerror(received.error);
  }

  Client second(proxy_.port());
  ASSERT_EQ(second.connect_error(), 0);
  const std::string bytes = random_bytes(300'000);
  EXPECT_TRUE(same_bytes(second.echo(bytes), bytes));
  EXPECT_EQ(proxy_.stats().resets_injected, 1u);
}

TEST(FaultProxyBlackholeTest, HoldsBothDirectionsUntilTurnedOff) {
  // The server greets first, so there is server->client data to hold from the start.
  TcpEcho server({asio::ip::make_address("127.0.0.1"), 0}, "hello");
  FaultProxy proxy(tcp_address(server));
  proxy.set_blackhole(true);
  Client client(proxy.port());
  ASSERT_EQ(client.connect_error(), 0);
  ASSERT_TRUE(proxy.wait_for_connections(1, kWait)) << "the proxy accepted no connection";
  ASSERT_EQ(client.send("ping"), 0);

  // Proving absence needs a window: nothing may arrive within it.
  EXPECT_FALSE(client.readable_within(300ms)) << "data passed the blackhole";
  EXPECT_EQ(server.bytes_received(), 0u) << "data passed the blackhole";

  proxy.set_blackhole(false);
  EXPECT_EQ(client.receive(9).bytes, "helloping");
  const auto stats = proxy.stats();
  EXPECT_EQ(stats.accepted, 1u);
  EXPECT_EQ(stats.open_connections, 1u);
}

TEST_F(FaultProxyTest, BlackholeOnAFlowingConnectionHoldsLaterBytes) {
  Client client(proxy_.port());
  ASSERT_EQ(client.echo("a"), "a");
  ASSERT_TRUE(proxy_.wait_for_stats(
      [](const auto& s) { return s.upstream_bytes == 1 && s.downstream_bytes == 1; }, kWait));

  proxy_.set_blackhole(true);
  ASSERT_EQ(client.send("b"), 0);
  EXPECT_FALSE(client.readable_within(300ms)) << "data passed the blackhole";
  EXPECT_EQ(proxy_.stats().upstream_bytes, 1u);

  proxy_.set_blackhole(false);
  EXPECT_EQ(client.receive(1).bytes, "b");
}

TEST_F(FaultProxyTest, RefuseGivesConnectionRefusedAndOffListensAgainOnTheSamePort) {
  const std::uint16_t port = proxy_.port();
  proxy_.set_refuse(true);
  Client refused(port);
  EXPECT_EQ(refused.connect_error(), ECONNREFUSED);

  proxy_.set_refuse(false);
  Client accepted(port);
  ASSERT_EQ(accepted.connect_error(), 0);
  EXPECT_EQ(accepted.echo("again"), "again");
  EXPECT_EQ(proxy_.port(), port);
  EXPECT_EQ(proxy_.stats().accepted, 1u);
}

TEST_F(FaultProxyTest, RefuseLeavesOpenConnectionsForwarding) {
  Client client(proxy_.port());
  ASSERT_EQ(client.echo("before"), "before");

  proxy_.set_refuse(true);

  EXPECT_EQ(client.echo("after"), "after");
}

TEST_F(FaultProxyTest, LatencyDelaysEachDirectionByAtLeastTheLatency) {
  proxy_.set_latency(100ms);
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);

  const auto start = Clock::now();
  ASSERT_EQ(client.echo("x"), "x");

  // There and back: at least twice the one-way latency. No upper bound: machines are slow.
  EXPECT_GE(Clock::now() - start, 200ms);
}

TEST_F(FaultProxyTest, LatencyKeepsByteOrderAcrossManySmallWrites) {
  proxy_.set_latency(20ms);
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);
  const std::string bytes = random_bytes(200 * 1000);

  std::jthread sender([&] {
    for (std::size_t at = 0; at < bytes.size(); at += 1000) {
      if (client.send(std::string_view(bytes).substr(at, 1000)) != 0) return;
    }
  });
  const auto received = client.receive(bytes.size());

  EXPECT_TRUE(same_bytes(received.bytes, bytes));
}

TEST_F(FaultProxyTest, ThrottleCapsTheRateOfEachDirection) {
  constexpr std::uint64_t kRate = 256 * 1024;
  proxy_.set_throttle(kRate);
  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);
  const std::string bytes = random_bytes(128 * 1024);

  const auto start = Clock::now();
  EXPECT_TRUE(same_bytes(client.echo(bytes), bytes));

  // 128 KiB at 256 KiB/s takes about 0.5 s one way (the first 1/50 s slice goes at once);
  // the directions overlap. 0.4 s leaves a wide margin; no upper bound.
  EXPECT_GE(Clock::now() - start, 400ms);
}

TEST_F(FaultProxyTest, StatsCountConnectionsBytesAndCloses) {
  {
    Client first(proxy_.port());
    Client second(proxy_.port());
    ASSERT_TRUE(same_bytes(first.echo(random_bytes(1000)), random_bytes(1000)));
    ASSERT_TRUE(same_bytes(second.echo(random_bytes(2000)), random_bytes(2000)));

    EXPECT_TRUE(proxy_.wait_for_stats(
        [](const auto& s) {
          return s.accepted == 2 && s.open_connections == 2 && s.upstream_bytes == 3000 &&
                 s.downstream_bytes == 3000;
        },
        kWait))
        << "counters did not reach 2 connections and 3000 bytes each way";
  }

  EXPECT_TRUE(proxy_.wait_for_stats([](const auto& s) { return s.open_connections == 0; }, kWait))
      << "closed clients still count as open connections";
  const auto stats = proxy_.stats();
  EXPECT_EQ(stats.accepted, 2u);
  EXPECT_EQ(stats.resets_injected, 0u);
}

TEST_F(FaultProxyTest, WaitForConnectionsTellsWhetherEnoughArrived) {
  EXPECT_FALSE(proxy_.wait_for_connections(1, 50ms));

  Client client(proxy_.port());
  ASSERT_EQ(client.connect_error(), 0);

  EXPECT_TRUE(proxy_.wait_for_connections(1, kWait));
}

}  // namespace
}  // namespace sandbox::test
