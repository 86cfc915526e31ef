// Many execs through a proxy that keeps resetting connections and changing its latency:
// every byte must arrive exactly once, every command must run exactly once, every call must
// succeed. SANDBOX_SOAK_EXECS sets the number of execs (default 2000); SANDBOX_SOAK_SEED
// replays a run (the seed is printed).
#include <gtest/gtest.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
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
#include "support/temp_dir.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kConcurrent = 8;
constexpr std::size_t kMaxStdout = 256 * 1024;
constexpr std::size_t kMaxStderr = 8 * 1024;
// The command prints the first OUT bytes of `seq 1 60000` (348 894 bytes) on stdout and the
// first ERR bytes of `seq 1 2000` (8 893) on stderr, after logging its run.
constexpr const char* kScript =
    "echo $ID >> runs; seq 1 60000 | head -c $OUT; seq 1 2000 | head -c $ERR >&2";

std::string seq_text(int from, int to) {
  std::string text;
  for (int i = from; i <= to; ++i) text += std::to_string(i) + '\n';
  return text;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  return std::strtoull(value, nullptr, 10);
}

// What all execs found, summed.
struct Tally {
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  std::uint64_t retries = 0;  // attempts beyond the first, over all calls
  std::uint64_t bytes_checked = 0;
  std::uint64_t duplicates = 0;       // bytes delivered a second time
  std::uint64_t lost = 0;             // bytes never delivered
  std::uint64_t mismatched = 0;       // calls whose output differs otherwise (wrong bytes)
  std::vector<std::string> failures;  // the first few failures, described
};

void note_failure(Tally& tally, std::string what) {
  ++tally.failed;
  if (tally.failures.size() < 5) tally.failures.push_back(std::move(what));
}

// Compares `got` with `expected`, counting bytes missing or extra.
void check_bytes(Tally& tally, const std::string& got, const std::string& expected) {
  tally.bytes_checked += expected.size();
  if (got.size() > expected.size()) tally.duplicates += got.size() - expected.size();
  if (got.size() < expected.size()) tally.lost += expected.size() - got.size();
  if (got.size() == expected.size() && got != expected) ++tally.mismatched;
}

// One stream's bytes, placed by offset: an offset below what was held is a duplicate, above
// it a gap (lost bytes); only new bytes are kept.
struct Placed {
  std::string data;
  std::uint64_t duplicates = 0;
  std::uint64_t lost = 0;
  void add(const OutputChunk& chunk) {
    const std::uint64_t held = data.size();
    if (chunk.offset > held) {
      lost += chunk.offset - held;
      data.append(chunk.offset - held, '\0');
      data += chunk.data;
    } else {
      const std::uint64_t overlap = std::min<std::uint64_t>(held - chunk.offset, chunk.data.size());
      duplicates += overlap;
      data.append(chunk.data, overlap);
    }
  }
};

class SoakTest : public ::testing::Test, protected ProxiedAgent {
 protected:
  void SetUp() override {
    RemoteRunnerConfig config;
    // Resets come every few tens of ms: a call may meet several before it completes.
    config.retry.max_attempts = 30;
    config.retry.initial_backoff = 10ms;
    config.retry.max_backoff = 200ms;
    start_agent(config, [](agent::AgentOptions& options) {
      // An ended exec keeps its output for a reattach this long. A retry comes within a
      // second here; 60 s (the default) would hold every exec's output of the whole run.
      options.resume_retention = 5s;
    });
  }
};

struct Job {
  std::string id;
  bool use_stream = false;
  std::size_t out_bytes = 0;
  std::size_t err_bytes = 0;
};

Command command_of(const Job& job) {
  Command command{"sh", "-c", kScript};
  command.exec_id = job.id;
  command.env = {{"ID", job.id},
                 {"OUT", std::to_string(job.out_bytes)},
                 {"ERR", std::to_string(job.err_bytes)}};
  return command;
}

// Runs jobs[next...] one after another until none is left; several run concurrently on one
// io_context, so `next` and `tally` need no lock.
asio::awaitable<void> worker(RemoteRunner& runner, const std::vector<Job>& jobs, std::size_t& next,
                             const std::string& out_text, const std::string& err_text,
                             Tally& tally) {
  while (next < jobs.size()) {
    const Job& job = jobs[next++];
    const std::string expected_out = out_text.substr(0, job.out_bytes);
    const std::string expected_err = err_text.substr(0, job.err_bytes);
    if (job.use_stream) {
      ExecStream stream = runner.stream(command_of(job));
      Placed out;
      Placed err;
      for (;;) {
        auto [ec, chunk] = co_await stream.next(asio::experimental::as_tuple(asio::use_awaitable));
        if (ec) {
          note_failure(tally,
                       "stream " + job.id + ": " + ec.message() + ": " + stream.error_message());
          break;
        }
        if (!chunk) {
          ++tally.completed;
          if (stream.exit_status().exit_code != 0) {
            note_failure(tally, "stream " + job.id + ": exit " +
                                    std::to_string(stream.exit_status().exit_code));
          }
          break;
        }
        (chunk->stream == OutputStream::out ? out : err).add(*chunk);
      }
      tally.duplicates += out.duplicates + err.duplicates;
      tally.lost += out.lost + err.lost;
      check_bytes(tally, out.data, expected_out);
      check_bytes(tally, err.data, expected_err);
      tally.retries += stream.retries().attempts - 1;
    } else {
      auto [ec, result] =
          co_await runner.exec(command_of(job), asio::experimental::as_tuple(asio::use_awaitable));
      if (ec) {
        note_failure(tally, "exec " + job.id + ": " + ec.message() + ": " + result.error_message);
      } else {
        ++tally.completed;
        if (result.exit_code() != 0) {
          note_failure(tally, "exec " + job.id + ": exit " + std::to_string(result.exit_code()));
        }
      }
      check_bytes(tally, result.stdout_data, expected_out);
      check_bytes(tally, result.stderr_data, expected_err);
      if (result.retries.attempts > 0) tally.retries += result.retries.attempts - 1;
    }
  }
}

TEST_F(SoakTest, EveryExecRunsOnceAndDeliversEveryByteOnceThroughRandomFaults) {
  const std::uint64_t execs = env_number("SANDBOX_SOAK_EXECS", 2000);
  const std::uint64_t seed = env_number("SANDBOX_SOAK_SEED", std::random_device{}());
  std::cout << "soak: seed=" << seed << " (SANDBOX_SOAK_SEED replays the job list)\n";
  std::mt19937_64 random(seed);

  // One exec that reaches `started` first: until then the runner cannot tell this agent
  // from the older generation that cannot reattach, and does not retry a call that may have
  // reached it.
  {
    auto [ec, result] = run_bounded(
        io_, runner_->exec(Command{"true"}, asio::experimental::as_tuple(asio::use_awaitable)),
        10s);
    ASSERT_FALSE(ec) << "warm-up exec failed: " << ec.message() << ": " << result.error_message;
  }

  std::vector<Job> jobs(execs);
  std::uniform_int_distribution<std::size_t> out_size(0, kMaxStdout);
  std::uniform_int_distribution<std::size_t> err_size(0, kMaxStderr);
  for (Job& job : jobs) {
    job.id = random_uuid();
    job.use_stream = random() % 2 == 0;
    job.out_bytes = out_size(random);
    job.err_bytes = err_size(random);
  }
  const std::string out_text = seq_text(1, 60000);
  const std::string err_text = seq_text(1, 2000);
  ASSERT_GE(out_text.size(), kMaxStdout);
  ASSERT_GE(err_text.size(), kMaxStderr);

  // The faults: a reset after a random number of downstream bytes, re-armed once it fired
  // (or after a while anyway), and a latency of 0-5 ms switched now and then.
  std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;
  std::thread faults([&, seed] {
    std::mt19937_64 own(seed ^ 0x9e3779b97f4a7c15ULL);
    std::uniform_int_distribution<std::uint64_t> reset_at(0, 512 * 1024);
    std::uniform_int_distribution<int> wait_ms(10, 100);
    std::uniform_int_distribution<int> latency_ms(0, 5);
    for (;;) {
      {
        std::unique_lock lock(mutex);
        if (stopping) break;
      }
      const auto injected = proxy_->stats().resets_injected;
      proxy_->reset_after(reset_at(own));
      proxy_->wait_for_stats(
          [injected](const FaultProxy::Stats& s) { return s.resets_injected > injected; },
          std::chrono::milliseconds(wait_ms(own)));
      if (own() % 4 == 0) {
        const int latency = own() % 2 == 0 ? 0 : latency_ms(own);
        proxy_->set_latency(std::chrono::milliseconds(latency));
      }
      std::unique_lock lock(mutex);
      changed.wait_for(lock, std::chrono::milliseconds(wait_ms(own)), [&] { return stopping; });
    }
  });
  const auto stop_faults = [&] {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    changed.notify_all();
    if (faults.joinable()) faults.join();
  };
  struct Joined {
    const std::function<void()> stop;
    ~Joined() { stop(); }
  } join_faults{stop_faults};

  Tally tally;
  std::size_t next = 0;
  int workers_done = 0;
  const auto started = Clock::now();
  for (int i = 0; i < kConcurrent; ++i) {
    asio::co_spawn(io_, worker(*runner_, jobs, next, out_text, err_text, tally),
                   [&](std::exception_ptr e) {
                     ++workers_done;
                     if (e) std::rethrow_exception(e);
                   });
  }
  const auto limit = std::chrono::milliseconds(60000 + 100 * execs);
  const bool finished = eventually([&] { return workers_done == kConcurrent; }, limit, &io_);
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  stop_faults();
  proxy_->set_latency(0ms);
  ASSERT_TRUE(finished) << "the soak did not finish within " << limit.count() << " ms";

  std::map<std::string, int> runs;
  {
    std::ifstream in(workspace_.path() / "runs");
    for (std::string line; std::getline(in, line);) ++runs[line];
  }
  std::uint64_t ran_once = 0;
  std::string first_wrong_run;
  for (const Job& job : jobs) {
    const auto found = runs.find(job.id);
    const int count = found == runs.end() ? 0 : found->second;
    if (count == 1) {
      ++ran_once;
    } else if (first_wrong_run.empty()) {
      first_wrong_run = job.id + " ran " + std::to_string(count) + " times";
    }
  }

  std::cout << "soak: execs=" << execs << " resets_injected=" << proxy_->stats().resets_injected
            << " retries=" << tally.retries << " bytes_checked=" << tally.bytes_checked
            << " duplicates=" << tally.duplicates << " lost_bytes=" << tally.lost
            << " elapsed_ms=" << elapsed << "\n";
  for (const std::string& failure : tally.failures)
    std::cout << "soak: failed: " << failure << "\n";

  EXPECT_EQ(tally.duplicates, 0u);
  EXPECT_EQ(tally.lost, 0u);
  EXPECT_EQ(tally.mismatched, 0u) << "calls whose output had the right size but wrong bytes";
  EXPECT_EQ(tally.failed, 0u) << (tally.failures.empty() ? "" : tally.failures.front());
  EXPECT_EQ(tally.completed, execs);
  EXPECT_EQ(ran_once, execs) << first_wrong_run;
  EXPECT_EQ(static_cast<std::uint64_t>(runs.size()), execs) << "runs logged an id no job had";
  EXPECT_GT(proxy_->stats().resets_injected, 0u)
      << "no fault was injected: the soak proved nothing";
}

}  // namespace
}  // namespace sandbox::test
