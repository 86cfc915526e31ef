// ExecStream against the real agent: byte-exactness, promptness, cancellation, memory.

#include <gtest/gtest.h>

#include <asio/experimental/as_tuple.hpp>
#include <fstream>
#include <string>

#include "fakes/agent_fixture.hpp"
#include "fakes/io_harness.hpp"
#include "support/agent_process.hpp"
#include "support/process_watch.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using StreamAgentTest = RealAgentTest;

struct Collected {
  std::string out;
  std::string err;
  std::vector<OutputChunk> chunks;
};

asio::awaitable<Collected> collect(ExecStream& stream) {
  Collected c;
  while (auto chunk = co_await stream.next()) {
    (chunk->stream == OutputStream::out ? c.out : c.err) += chunk->data;
    c.chunks.push_back(std::move(*chunk));
  }
  co_return c;
}

TEST_F(StreamAgentTest, AllByteValuesArriveByteExactOnBothStreamsInOrder) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  write_file("bytes", bytes);
  auto stream = runner_->stream({"sh", "-c", "cat bytes; cat bytes >&2; cat bytes; cat bytes >&2"});

  auto got = run_bounded(io_, collect(stream));

  EXPECT_EQ(stream.exit_status().exit_code, 0);
  EXPECT_EQ(got.out, bytes + bytes);
  EXPECT_EQ(got.err, bytes + bytes);
  std::uint64_t out_offset = 0;
  std::uint64_t err_offset = 0;
  for (const auto& chunk : got.chunks) {
    auto& expected = chunk.stream == OutputStream::out ? out_offset : err_offset;
    EXPECT_EQ(chunk.offset, expected) << "chunks of one stream must be contiguous";
    expected += chunk.data.size();
  }
}

TEST_F(StreamAgentTest, ALineIsDeliveredWhileTheCommandStillRuns) {
  auto stream = runner_->stream({"sh", "-c", "echo ready; exec sleep 30"});
  const auto start = std::chrono::steady_clock::now();
  auto chunk = run_bounded(io_, stream.next(), 10s);
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(chunk->data, "ready\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_FALSE(stream.finished());
}

TEST_F(StreamAgentTest, CancelMidStreamKillsTheRemoteProcessGroup) {
  auto stream = runner_->stream({"sh", "-c", "echo $$; sleep 300 & sleep 300"});
  auto first = run_bounded(io_, stream.next(), 10s);
  ASSERT_TRUE(first.has_value());
  const pid_t pid = std::stoi(first->data);
  ASSERT_FALSE(live_group_members(pid).empty()) << "the command is not running";

  stream.cancel();
  auto [ec, chunk] =
      run_bounded(io_, stream.next(asio::experimental::as_tuple(asio::use_awaitable)), 10s);

  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_TRUE(wait_until_group_gone(pid, 5s)) << "the process group outlived the cancel";
}

TEST_F(StreamAgentTest, DestroyingAnUnfinishedStreamKillsTheProcessGroup) {
  pid_t pid = 0;
  {
    auto stream = runner_->stream({"sh", "-c", "echo $$; sleep 300 & sleep 300"});
    auto first = run_bounded(io_, stream.next(), 10s);
    ASSERT_TRUE(first.has_value());
    pid = std::stoi(first->data);
  }
  EXPECT_TRUE(wait_until_group_gone(pid, 5s)) << "the process group outlived the stream";
}

// A field of /proc/self/status in bytes: VmHWM is the peak resident set, VmRSS the current.
std::size_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == field) {
      std::size_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

#if defined(__SANITIZE_ADDRESS__)
// ASan's shadow memory and allocator caches add tens of MiB of their own; what the stream
// may cost is then judged by the growth of the peak during the stream.
constexpr bool kMeasureGrowth = true;
#else
constexpr bool kMeasureGrowth = false;
#endif

// The agent runs as its own process so that only the client's memory is measured.
TEST(StreamMemoryTest, TwoHundredFiftySixMiBStreamWithClientPeakRssUnder64MiB) {
  AgentProcess agent;
  asio::io_context io;
  RemoteRunnerConfig config;
  config.address = agent.address();
  RemoteRunner runner(io.get_executor(), config);
  const std::size_t baseline = kMeasureGrowth ? status_bytes("VmRSS:") : 0;
  constexpr std::uint64_t total = 256ull << 20;
  auto stream = runner.stream({"head", "-c", std::to_string(total), "/dev/zero"});

  auto received = run_bounded(
      io,
      [&]() -> asio::awaitable<std::uint64_t> {
        std::uint64_t bytes = 0;
        while (auto chunk = co_await stream.next()) {
          EXPECT_EQ(chunk->offset, bytes);
          bytes += chunk->data.size();
        }
        co_return bytes;
      }(),
      120s);

  EXPECT_EQ(received, total);
  EXPECT_EQ(stream.exit_status().exit_code, 0);
  EXPECT_EQ(stream.exit_status().stdout_total, total);
  const auto peak = status_bytes("VmHWM:") - baseline;
  RecordProperty("client_peak_rss_bytes", std::to_string(peak));
  RecordProperty("client_baseline_rss_bytes", std::to_string(baseline));
  EXPECT_LT(peak, 64u << 20) << "peak RSS " << (peak >> 20) << " MiB"
                             << (kMeasureGrowth ? " above the baseline" : "");
}

}  // namespace
}  // namespace sandbox::test
