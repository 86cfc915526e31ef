// The SDK's retries against the real agent, through a FaultProxy: refused connects, resets
// after N bytes, a blackholed connection found by keepalive, answers that are never retried,
// a flapping proxy under many calls, and cancellation racing the retries. Every test checks
// what the user sees (each byte once, in order) and what the agent did (the command ran once).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent_server.hpp"
#include "common/uuid.hpp"
#include "fakes/io_harness.hpp"
#include "integration/proxied_agent_fixture.hpp"
#include "sandbox/sandbox.hpp"
#include "support/fault_proxy.hpp"
#include "support/fifo_gate.hpp"
#include "support/temp_dir.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// What `seq from to` prints.
std::string seq_text(int from, int to) {
  std::string text;
  for (int i = from; i <= to; ++i) text += std::to_string(i) + '\n';
  return text;
}

std::int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A stream read to its end, with the offset of every chunk checked against what came before.
struct Drained {
  std::string out;
  std::string err;
  std::error_code error;
  std::string message;
  bool ended = false;  // next() yielded the end (the exit arrived)
  // Chunks whose offset was not where the previous chunk of their stream ended: a
  // duplicate (earlier) or a gap (later). The first one is described.
  int offset_breaks = 0;
  std::string first_break;
};

// Reads `stream` to its end or its error, appending to `into` (which may already hold the
// first chunks, read by the test). Returns `into.ended` (run_bounded needs a value).
asio::awaitable<bool> drain_into(ExecStream& stream, Drained& into) {
  for (;;) {
    auto [ec, chunk] = co_await stream.next(asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      into.error = ec;
      into.message = stream.error_message();
      co_return false;
    }
    if (!chunk) {
      into.ended = true;
      co_return true;
    }
    std::string& target = chunk->stream == OutputStream::out ? into.out : into.err;
    if (chunk->offset != target.size()) {
      if (into.offset_breaks++ == 0) {
        into.first_break = "chunk at offset " + std::to_string(chunk->offset) + " after " +
                           std::to_string(target.size()) + " bytes";
      }
    }
    target += chunk->data;
  }
}

asio::awaitable<Drained> drain(ExecStream& stream) {
  Drained drained;
  co_await drain_into(stream, drained);
  co_return drained;
}

bool all_unavailable(const RetryHistory& history) {
  for (const AttemptFailure& failure : history.failures) {
    if (failure.error != errc::unavailable) return false;
  }
  return true;
}

std::string describe(const RetryHistory& history) {
  std::string text = std::to_string(history.attempts) + " attempts;";
  for (const AttemptFailure& failure : history.failures) {
    text += " [" + std::string(error_name(failure.error)) + ": " + failure.message + ", then " +
            std::to_string(failure.backoff.count()) + " ms]";
  }
  return text;
}

class RetryAgentTest : public ::testing::Test, protected ProxiedAgent {
 protected:
  void start(RemoteRunnerConfig config = {}, std::size_t max_concurrent = 64) {
    start_agent(std::move(config),
                [&](agent::AgentOptions& options) { options.max_concurrent = max_concurrent; });
  }

  std::tuple<std::error_code, ExecResult> exec(Command command, std::chrono::milliseconds limit) {
    return run_bounded(
        io_, runner_->exec(std::move(command), asio::experimental::as_tuple(asio::use_awaitable)),
        limit);
  }

  // One exec that reaches `started`: from then on the runner knows this agent reattaches.
  // Before any `started`, the SDK cannot tell the agent from one of the older generation,
  // which runs every request it receives again, so it retries only failures before the
  // request left the client (refused connects); the tests of a retry after the request was
  // sent need this first (or an attempt of the same call that saw `started`).
  void warm_up() {
    auto [ec, result] = exec(Command{"true"}, 10s);
    ASSERT_FALSE(ec) << "warm-up exec failed: " << ec.message() << ": " << result.error_message;
  }

  // Lines of the workspace's `runs`, counted per distinct line.
  std::map<std::string, int> runs_by_line() {
    std::map<std::string, int> lines;
    std::ifstream in(workspace_.path() / "runs");
    for (std::string line; std::getline(in, line);) ++lines[line];
    return lines;
  }

  // Resets the proxied connection after 300 000 downstream bytes, then, armed as soon as
  // that reset was injected (long before the retry's 100 ms backoff ends, so it hits the
  // second attempt's output), after 700 000 more. Join the thread after the call.
  std::thread arm_two_resets() {
    proxy_->reset_after(300000);
    return std::thread([this] {
      const auto first = [](const FaultProxy::Stats& s) { return s.resets_injected >= 1; };
      if (proxy_->wait_for_stats(first, 20s)) proxy_->reset_after(700000);
    });
  }

  std::optional<FifoGate> gate_;
};

// A thread that injects faults until stopped: `body` runs once and returns when `pause()`
// says it was stopped. Stopped and joined on destruction, so a test that fails
// early never leaves it behind.
class FaultThread {
 public:
  explicit FaultThread(std::function<void(FaultThread&)> body)
      : thread_([this, body = std::move(body)] { body(*this); }) {}
  ~FaultThread() { stop(); }
  FaultThread(const FaultThread&) = delete;
  FaultThread& operator=(const FaultThread&) = delete;

  // Waits `delay` (the fault's timing, not a synchronisation); false when stopped first.
  bool pause(std::chrono::microseconds delay) {
    std::unique_lock lock(mutex_);
    return !changed_.wait_for(lock, delay, [this] { return stopping_; });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members it uses exist
};

// One stream of the concurrency test, read to its end by `consume`.
struct StreamOutcome {
  std::string id = random_uuid();
  Drained got;
  RetryHistory history;
  bool done = false;
};

asio::awaitable<void> consume(ExecStream stream, StreamOutcome& outcome) {
  co_await drain_into(stream, outcome.got);
  outcome.history = stream.retries();
  outcome.done = true;
}

TEST_F(RetryAgentTest, RefusedConnectsAreRetriedUntilTheAgentListens) {
  RemoteRunnerConfig config;
  // ~4 s of attempts: the listener comes back after 300 ms, the channel's reconnect backoff
  // (aligned with this policy) finds it within a few of them.
  config.retry.max_attempts = 30;
  config.retry.initial_backoff = 50ms;
  config.retry.max_backoff = 200ms;
  start(config);
  proxy_->set_refuse(true);
  // A fresh runner: it has never seen `started`, yet refused connects are retried (the
  // request never left the client).
  FaultThread listen_again([&](FaultThread& self) {
    if (self.pause(300ms)) proxy_->set_refuse(false);
  });

  auto [ec, result] = exec(Command{"sh", "-c", "echo run >> runs; echo hello"}, 15s);

  ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message << "; "
                   << describe(result.retries);
  EXPECT_EQ(result.stdout_data, "hello\n");
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_GT(result.retries.attempts, 1u) << "the first attempt cannot have met a listener";
  EXPECT_EQ(result.retries.failures.size(), result.retries.attempts - 1);
  EXPECT_TRUE(all_unavailable(result.retries)) << describe(result.retries);
  EXPECT_EQ(runs(), 1);
}

TEST_F(RetryAgentTest, RefusedPastTheDeadlineEndsWithDeadlineExceededAtTheDeadline) {
  RemoteRunnerConfig config;
  config.retry.max_attempts = 100;
  config.retry.initial_backoff = 100ms;
  config.retry.multiplier = 2.0;
  config.retry.max_backoff = 5000ms;
  config.retry.jitter = 0.0;
  start(config);
  proxy_->set_refuse(true);
  Command command{"true"};
  command.deadline = 1500ms;

  const auto started = Clock::now();
  auto [ec, result] = exec(command, 10s);
  const auto elapsed = ms_since(started);

  EXPECT_EQ(ec, errc::deadline_exceeded) << ec.message() << ": " << result.error_message;
  EXPECT_GE(elapsed, 1400) << "ended before the deadline";
  EXPECT_LE(elapsed, 1600) << "ended well after the deadline";
  // Attempts at 0, 100, 300 and 700 ms (each refused at once); the next backoff, 800 ms,
  // would end past the deadline, so the call waits until the deadline and reports it.
  EXPECT_EQ(result.retries.attempts, 4u) << describe(result.retries);
  ASSERT_EQ(result.retries.failures.size(), 4u) << describe(result.retries);
  EXPECT_TRUE(all_unavailable(result.retries)) << describe(result.retries);
  EXPECT_EQ(result.retries.failures[0].backoff, 100ms);
  EXPECT_EQ(result.retries.failures[1].backoff, 200ms);
  EXPECT_EQ(result.retries.failures[2].backoff, 400ms);
  EXPECT_LT(result.retries.failures[3].backoff, 800ms) << "the last backoff was not cut";
  EXPECT_THAT(result.error_message, HasSubstr("deadline"));
}

// ~2 MB, so that resets at 300 000 and 700 000 more downstream bytes land mid-output.
constexpr int kLongSeq = 300000;
constexpr const char* kLongCommand = "echo run >> runs; seq 1 300000";

TEST_F(RetryAgentTest, StreamResetTwiceMidOutputDeliversEveryByteOnceAndRunsOnce) {
  start();
  const std::string expected = seq_text(1, kLongSeq);
  std::thread rearm = arm_two_resets();

  auto stream = runner_->stream(Command{"sh", "-c", kLongCommand});
  const Drained got = run_bounded(io_, drain(stream), 30s);
  rearm.join();

  ASSERT_TRUE(got.ended) << got.error.message() << ": " << got.message << "; "
                         << describe(stream.retries());
  EXPECT_EQ(got.offset_breaks, 0) << got.first_break;
  EXPECT_EQ(got.out.size(), expected.size());
  EXPECT_TRUE(got.out == expected) << "the output differs from seq 1 " << kLongSeq;
  EXPECT_EQ(got.err, "");
  EXPECT_EQ(stream.exit_status().exit_code, 0);
  EXPECT_EQ(proxy_->stats().resets_injected, 2u);
  const RetryHistory history = stream.retries();
  EXPECT_GE(history.attempts, 3u) << describe(history);
  EXPECT_TRUE(all_unavailable(history)) << describe(history);
  EXPECT_EQ(runs(), 1) << "a retry ran the command again";
}

TEST_F(RetryAgentTest, ExecResetTwiceMidOutputCollectsEveryByteOnceAndRunsOnce) {
  start();
  const std::string expected = seq_text(1, kLongSeq);
  std::thread rearm = arm_two_resets();

  auto [ec, result] = exec(Command{"sh", "-c", kLongCommand}, 30s);
  rearm.join();

  ASSERT_FALSE(ec) << ec.message() << ": " << result.error_message << "; "
                   << describe(result.retries);
  EXPECT_EQ(result.stdout_data.size(), expected.size());
  EXPECT_TRUE(result.stdout_data == expected) << "stdout differs from seq 1 " << kLongSeq;
  EXPECT_EQ(result.exit_code(), 0);
  EXPECT_EQ(proxy_->stats().resets_injected, 2u);
  EXPECT_GE(result.retries.attempts, 3u) << describe(result.retries);
  EXPECT_TRUE(all_unavailable(result.retries)) << describe(result.retries);
  EXPECT_EQ(runs(), 1) << "a retry ran the command again";
}

TEST_F(RetryAgentTest, BlackholedConnectionIsFoundByKeepaliveWithinFiveSecondsAndResumed) {
  RemoteRunnerConfig config;
  // A dead connection is found about 2 s after the last bytes (a ping after 1 s idle, 1 s
  // for its answer); the agent accepts a ping every second, so no limit is needed.
  config.keepalive.time = 1000ms;
  config.keepalive.timeout = 1000ms;
  config.keepalive.max_pings_without_data = 0;
  start(config);
  gate_.emplace(workspace_.path());
  auto stream =
      runner_->stream(Command{"sh", "-c", "echo run >> runs; echo first; cat gate; seq 1 1000"});
  Drained got;
  got.out = next_data(stream);
  ASSERT_EQ(got.out, "first\n");  // then the command waits at the gate: nothing else to read

  proxy_->set_blackhole(true);
  const auto blackholed = Clock::now();
  const bool found = eventually([&] { return !stream.retries().failures.empty(); }, 10s);
  const auto detection = ms_since(blackholed);
  proxy_->set_blackhole(false);

  ASSERT_TRUE(found) << "no attempt failed within 10 s of the blackhole";
  EXPECT_LT(detection, 5000) << "keepalive took " << detection << " ms";
  EXPECT_EQ(stream.retries().failures.front().error, errc::unavailable)
      << describe(stream.retries());
  gate_->open();
  run_bounded(io_, drain_into(stream, got), 20s);
  ASSERT_TRUE(got.ended) << got.error.message() << ": " << got.message << "; "
                         << describe(stream.retries());
  EXPECT_EQ(got.out, "first\ngo\n" + seq_text(1, 1000));
  EXPECT_EQ(got.offset_breaks, 0) << got.first_break;
  EXPECT_EQ(stream.exit_status().exit_code, 0);
  EXPECT_GE(stream.retries().attempts, 2u);
  EXPECT_EQ(runs(), 1) << "the reattach ran the command again";
}

TEST_F(RetryAgentTest, AgentsInvalidArgumentIsNeverRetriedEvenWhenListedRetryable) {
  start();
  ASSERT_NO_FATAL_FAILURE(warm_up());  // so that only the error's code can stop a retry here
  const auto accepted = proxy_->stats().accepted;
  Command command{"true"};
  command.workdir = "../outside";  // the SDK passes it on; the agent refuses it
  RetryPolicy policy;
  policy.retryable_codes = {errc::unavailable, errc::invalid_argument};
  command.retry = policy;

  auto [ec, result] = exec(command, 10s);

  EXPECT_EQ(ec, errc::invalid_argument) << ec.message();
  EXPECT_THAT(result.error_message, HasSubstr("workdir"));
  EXPECT_EQ(result.retries.attempts, 1u) << describe(result.retries);
  ASSERT_EQ(result.retries.failures.size(), 1u);
  EXPECT_EQ(result.retries.failures[0].error, errc::invalid_argument);
  EXPECT_EQ(proxy_->stats().accepted, accepted) << "the answer came over a new connection?";
}

TEST_F(RetryAgentTest, ManyConcurrentStreamsThroughAFlappingProxyAllCompleteExactlyOnce) {
  RemoteRunnerConfig config;
  config.retry.max_attempts = 20;
  config.retry.initial_backoff = 20ms;
  config.retry.max_backoff = 200ms;
  start(config);
  ASSERT_NO_FATAL_FAILURE(warm_up());
  constexpr int kStreams = 32;
  // ~230 KB each; the pause keeps every call in flight while the proxy flaps.
  const std::string expected = seq_text(1, 40000);
  std::vector<StreamOutcome> consumers(kStreams);
  for (StreamOutcome& consumer : consumers) {
    Command command{"sh", "-c", "echo $ID >> runs; seq 1 20000; sleep 0.3; seq 20001 40000"};
    command.env["ID"] = consumer.id;
    command.exec_id = consumer.id;
    asio::co_spawn(io_, consume(runner_->stream(command), consumer), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  FaultThread flapper([&](FaultThread& self) {
    for (int i = 0; i < 20 && self.pause(50ms); ++i) proxy_->reset_all();
  });

  const bool all_done = eventually(
      [&] {
        return std::all_of(consumers.begin(), consumers.end(),
                           [](const StreamOutcome& c) { return c.done; });
      },
      60s, &io_);
  flapper.stop();

  ASSERT_TRUE(all_done) << "not every stream completed within 60 s";
  EXPECT_GT(proxy_->stats().resets_injected, 0u);
  unsigned retried = 0;
  for (const StreamOutcome& consumer : consumers) {
    SCOPED_TRACE("exec " + consumer.id);
    EXPECT_TRUE(consumer.got.ended) << consumer.got.error.message() << ": " << consumer.got.message
                                    << "; " << describe(consumer.history);
    EXPECT_EQ(consumer.got.offset_breaks, 0) << consumer.got.first_break;
    EXPECT_TRUE(consumer.got.out == expected)
        << "output of " << consumer.got.out.size() << " bytes, expected " << expected.size();
    if (consumer.history.attempts > 1) ++retried;
  }
  EXPECT_GT(retried, 0u) << "no stream met a reset: the test proved nothing";
  const auto lines = runs_by_line();
  EXPECT_EQ(lines.size(), consumers.size());
  for (const StreamOutcome& consumer : consumers) {
    const auto found = lines.find(consumer.id);
    EXPECT_TRUE(found != lines.end() && found->second == 1)
        << "exec " << consumer.id << " ran " << (found == lines.end() ? 0 : found->second)
        << " times";
  }
}

TEST_F(RetryAgentTest, CancelAtARandomPointCompletesEachOfAThousandExecsExactlyOnce) {
  constexpr int kExecs = 1000;
  constexpr int kWave = 8;
  RemoteRunnerConfig config;
  config.retry.initial_backoff = 5ms;
  config.retry.max_backoff = 50ms;
  // A cancelled exec() completes without waiting for the agent, which may still be starting
  // and killing the commands of earlier waves: room for all of them, so that no exec is
  // refused RESOURCE_EXHAUSTED.
  start(config, kExecs + 2 * kWave);
  ASSERT_NO_FATAL_FAILURE(warm_up());
  // One uncancelled wave, timed: the cancel delays span 0 to 1.5 times it (at least 3 ms), so
  // a cancel lands anywhere from before the first attempt to after the completion.
  int wave_left = kWave;
  const auto wave_start = Clock::now();
  for (int k = 0; k < kWave; ++k) {
    runner_->exec(Command{"echo", "ok"}, [&](std::error_code ec, ExecResult) {
      EXPECT_FALSE(ec) << ec.message();
      --wave_left;
    });
  }
  ASSERT_TRUE(eventually([&] { return wave_left == 0; }, 10s, &io_)) << "the timed wave hung";
  const auto wave_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - wave_start).count();
  const int max_delay_us = std::max<int>(3000, static_cast<int>(wave_us * 3 / 2));
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> delay_us(0, max_delay_us);

  FaultThread resetter([&](FaultThread& self) {
    std::mt19937 own(std::random_device{}());
    std::uniform_int_distribution<int> pause_ms(20, 150);
    while (self.pause(std::chrono::milliseconds(pause_ms(own)))) proxy_->reset_all();
  });

  std::vector<int> completions(kExecs, 0);
  int ok = 0;
  int aborted = 0;
  int killed = 0;
  int unexpected = 0;
  std::string first_unexpected;
  for (int wave = 0; wave < kExecs / kWave; ++wave) {
    std::vector<asio::cancellation_signal> signals(kWave);
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
    int pending = 2 * kWave;  // each op's completion and its timer
    for (int k = 0; k < kWave; ++k) {
      const int index = wave * kWave + k;
      runner_->exec(
          Command{"echo", "ok"},
          asio::bind_cancellation_slot(
              signals[k].slot(), [&, index](std::error_code ec, ExecResult result) {
                ++completions[index];
                --pending;
                if (!ec && result.stdout_data == "ok\n" && result.exit_code() == 0) {
                  ++ok;
                } else if (!ec && result.status.signal == SIGKILL && result.stdout_data.empty()) {
                  // Completed normally, but the command was SIGKILLed before it wrote
                  // (seen only while other test binaries ran on the host, with no Cancel
                  // for this exec in the agent's log: a stale pid signalled elsewhere).
                  ++killed;
                } else if (ec == asio::error::operation_aborted) {
                  ++aborted;
                } else if (unexpected++ == 0) {
                  first_unexpected = "exec " + result.info.exec_id + ": " + ec.message() + ": " +
                                     result.error_message + " (exit " +
                                     std::to_string(result.exit_code()) + ", signal " +
                                     std::to_string(result.status.signal) + ", stdout '" +
                                     result.stdout_data + "'; " + describe(result.retries) + ")";
                }
              }));
      auto& timer = *timers.emplace_back(
          std::make_unique<asio::steady_timer>(io_, std::chrono::microseconds(delay_us(random))));
      timer.async_wait([&, k](std::error_code) {
        signals[k].emit(asio::cancellation_type::terminal);
        --pending;
      });
    }
    ASSERT_TRUE(eventually([&] { return pending <= 0; }, 20s, &io_))
        << "wave " << wave << ": " << pending << " completions or timers still pending";
  }
  resetter.stop();
  // The destructor waits until gRPC finished every call and posted its handler: a second
  // completion would be in the queue now.
  runner_.reset();
  io_.restart();
  io_.poll();

  for (int i = 0; i < kExecs; ++i) {
    ASSERT_EQ(completions[i], 1) << "exec " << i << " completed " << completions[i] << " times";
  }
  EXPECT_EQ(unexpected, 0) << first_unexpected;
  std::cout << "cancel race: ok=" << ok << " aborted=" << aborted << " killed=" << killed
            << " max_delay_us=" << max_delay_us
            << " resets_injected=" << proxy_->stats().resets_injected << "\n";
  EXPECT_GT(ok, 0) << "no cancel came after a completion: the race was not covered";
  EXPECT_GT(aborted, 0) << "no cancel came before a completion: the race was not covered";
}

}  // namespace
}  // namespace sandbox::test
