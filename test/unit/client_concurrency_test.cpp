// The SDK's concurrency core from several threads, with no gRPC server: the completion
// wrappers every asynchronous operation goes through (posted_completion, CancelOnTerminal,
// UniqueFunction) and the consumer's side of a stream (StreamCore). Plain threads stand in
// for gRPC's; the io_context runs on two threads. Built in every preset; the TSan job (preset
// tsan) runs it and must find no race without suppressions.
//
// Every wait is a join or a bounded io_context::run_for: no sleep synchronises anything.

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "client/detail/stream_core.hpp"
#include "sandbox/detail/completion.hpp"
#include "sandbox/detail/unique_function.hpp"
#include "sandbox/error.hpp"
#include "sandbox/exec_stream.hpp"

namespace sandbox::detail {
namespace {

using namespace std::chrono_literals;
using Strand = asio::strand<asio::io_context::executor_type>;

// Far above what any test here needs (well under a second each, TSan included).
constexpr auto run_limit = 10s;

/// Runs `io` on two threads until it runs out of work, at most `run_limit`.
class IoThreads {
 public:
  explicit IoThreads(asio::io_context& io) : io_(io) {
    for (auto& thread : threads_) thread = std::thread([this] { io_.run_for(run_limit); });
  }
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;
  ~IoThreads() { join(); }

  /// Waits for both threads; true when `io` ran out of work (false: `run_limit` expired).
  bool join() {
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    return io_.stopped();
  }

 private:
  asio::io_context& io_;
  std::thread threads_[2];
};

/// Stand-ins for gRPC's threads: run the tasks given to them, in any order, on `count`
/// threads of their own.
class ForeignThreads {
 public:
  explicit ForeignThreads(int count) {
    for (int i = 0; i < count; ++i) threads_.emplace_back([this] { work(); });
  }
  ForeignThreads(const ForeignThreads&) = delete;
  ForeignThreads& operator=(const ForeignThreads&) = delete;
  ~ForeignThreads() { join(); }

  void run(UniqueFunction<void()> task) {
    {
      std::lock_guard lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    wake_.notify_one();
  }

  /// Runs what was queued, then ends the threads.
  void join() {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  void work() {
    for (;;) {
      UniqueFunction<void()> task;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [this] { return closing_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<UniqueFunction<void()>> tasks_;
  bool closing_ = false;
  std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------- posted_completion

TEST(PostedCompletionTest, CompletionsFromForeignThreadsRunEachHandlerOnceOnItsStrand) {
  constexpr int ops = 2000;
  asio::io_context io(2);
  Strand strand = asio::make_strand(io);
  std::vector<std::atomic<int>> runs(ops);
  std::atomic<int> off_strand{0};
  int serialised = 0;  // touched only by handlers: the strand is its only protection

  std::vector<UniqueFunction<void(int)>> completions;
  for (int i = 0; i < ops; ++i) {
    completions.push_back(
        posted_completion<int>(asio::bind_executor(strand,
                                                   [&](int op) {
                                                     if (!strand.running_in_this_thread())
                                                       ++off_strand;
                                                     ++serialised;
                                                     ++runs[op];
                                                   }),
                               io.get_executor()));
  }
  IoThreads io_threads(io);  // kept running by the completions' outstanding work
  {
    ForeignThreads grpc(4);
    for (int i = 0; i < ops; ++i) {
      grpc.run([&completions, i] { completions[i](i); });
    }
  }
  ASSERT_TRUE(io_threads.join()) << "the handlers did not all run within the limit";

  EXPECT_EQ(off_strand.load(), 0) << "handlers ran outside their associated strand";
  EXPECT_EQ(serialised, ops);
  for (int i = 0; i < ops; ++i) EXPECT_EQ(runs[i].load(), 1) << "handler " << i;
}

TEST(PostedCompletionTest, HandlerWithoutAssociatedExecutorRunsOnTheFallback) {
  constexpr int ops = 1000;
  asio::io_context io(2);
  Strand strand = asio::make_strand(io);
  std::atomic<int> runs{0};
  std::atomic<int> off_fallback{0};

  std::vector<UniqueFunction<void()>> completions;
  for (int i = 0; i < ops; ++i) {
    completions.push_back(posted_completion<>(
        [&] {
          if (!strand.running_in_this_thread()) ++off_fallback;
          ++runs;
        },
        asio::any_io_executor(strand)));
  }
  IoThreads io_threads(io);
  {
    ForeignThreads grpc(2);
    for (auto& completion : completions) grpc.run([&completion] { completion(); });
  }
  ASSERT_TRUE(io_threads.join()) << "the handlers did not all run within the limit";

  EXPECT_EQ(runs.load(), ops);
  EXPECT_EQ(off_fallback.load(), 0) << "handlers ran outside the fallback strand";
}

// The unwrapping of posted completions (post_unwrapped) takes only an io_context's own
// executor, with or without tracked work: a strand (or anything else) in an any_io_executor
// keeps going through it. Asio 1.22's target<T>() alone would have cast a strand.
TEST(PostedCompletionTest, OnlyAnIoContextsOwnExecutorIsUnwrapped) {
  asio::io_context io;
  using Plain = asio::io_context::executor_type;
  using Tracked = std::decay_t<decltype(asio::prefer(io.get_executor(),
                                                     asio::execution::outstanding_work.tracked))>;
  const asio::any_io_executor plain(io.get_executor());
  const asio::any_io_executor tracked(
      asio::prefer(io.get_executor(), asio::execution::outstanding_work.tracked));
  const asio::any_io_executor strand(asio::make_strand(io));
  EXPECT_NE(target_if<Plain>(plain), nullptr);
  EXPECT_EQ(target_if<Tracked>(plain), nullptr);
  EXPECT_NE(target_if<Tracked>(tracked), nullptr);
  EXPECT_EQ(target_if<Plain>(tracked), nullptr);
  EXPECT_EQ(target_if<Plain>(strand), nullptr);
  EXPECT_EQ(target_if<Tracked>(strand), nullptr);
  EXPECT_EQ(target_if<Plain>(asio::any_io_executor()), nullptr);
}

// Each handler starts the next operation, completed by a foreign thread, the way a
// coroutine awaits one call after another: run() must not return between two of them.
TEST(PostedCompletionTest, OutstandingCompletionKeepsRunGoingAcrossForeignThreadHops) {
  constexpr int hops = 1000;
  asio::io_context io(2);
  ForeignThreads grpc(2);
  std::atomic<int> off_io{0};
  int done = 0;  // one operation at a time: each hop happens-after the previous one

  struct Chain {
    asio::io_context& io;
    ForeignThreads& grpc;
    std::atomic<int>& off_io;
    int& done;
    void start() {
      auto completion = posted_completion<>([this] { on_done(); }, io.get_executor());
      grpc.run([completion = std::move(completion)]() mutable { completion(); });
    }
    void on_done() {
      if (!io.get_executor().running_in_this_thread()) ++off_io;
      if (++done < hops) start();
    }
  } chain{io, grpc, off_io, done};

  chain.start();
  IoThreads io_threads(io);
  ASSERT_TRUE(io_threads.join()) << "the chain did not finish within the limit";
  grpc.join();

  EXPECT_EQ(done, hops) << "run() returned while an operation was still outstanding";
  EXPECT_EQ(off_io.load(), 0);
}

// ---------------------------------------------------------------- cancellation slots

/// An operation of the core as the SDK writes them: completes exactly once, either with its
/// result (from a foreign thread) or, after cancel() from any thread, with operation_aborted.
class FakeOperation final : public Operation {
 public:
  void arm(UniqueFunction<void(std::error_code)> done) { done_ = std::move(done); }
  void start() override {}
  void cancel() noexcept override {
    ++cancels;
    complete(asio::error::operation_aborted);
  }
  void complete(std::error_code error) {
    UniqueFunction<void(std::error_code)> done;
    {
      std::lock_guard lock(mutex_);
      done = std::move(done_);
    }
    if (done) done(error);
  }

  std::atomic<int> cancels{0};

 private:
  std::mutex mutex_;
  UniqueFunction<void(std::error_code)> done_;
};

// Terminal cancellation is emitted on the consumer's strand while a foreign thread
// completes the same operation: whichever wins, the handler runs once, on the strand, with
// its slot already cleared, so a later emit reaches nothing.
TEST(CancellationSlotTest, TerminalEmitRacingCompletionCompletesOnceWithTheSlotCleared) {
  constexpr int ops = 1000;
  asio::io_context io(2);
  Strand strand = asio::make_strand(io);
  auto signals = std::make_unique<asio::cancellation_signal[]>(ops);
  std::vector<std::shared_ptr<FakeOperation>> operations(ops);
  std::vector<int> runs(ops, 0);  // strand only
  int off_strand = 0;             // strand only, as are the counters below
  int slot_still_set = 0;
  int cancelled_after_completion = 0;
  int aborted = 0;
  int succeeded = 0;
  ForeignThreads grpc(2);

  for (int i = 0; i < ops; ++i) {
    // The initiation, on the consumer's strand as async_initiate runs it.
    asio::post(strand, [&, i] {
      auto operation = std::make_shared<FakeOperation>();
      operations[i] = operation;
      auto slot = signals[i].slot();
      slot.emplace<CancelOnTerminal>(operation);
      auto handler = [&, i, operation = operation.get()](std::error_code error) {
        if (!strand.running_in_this_thread()) ++off_strand;
        ++runs[i];
        (error == asio::error::operation_aborted ? aborted : succeeded) += 1;
        if (signals[i].slot().has_handler()) ++slot_still_set;
        const int before = operation->cancels.load();
        signals[i].emit(asio::cancellation_type::terminal);
        if (operation->cancels.load() != before) ++cancelled_after_completion;
      };
      operation->arm(posted_completion<std::error_code>(
          asio::bind_cancellation_slot(slot, asio::bind_executor(strand, std::move(handler))),
          io.get_executor()));
      grpc.run([operation] { operation->complete({}); });
      asio::post(strand, [&, i] { signals[i].emit(asio::cancellation_type::terminal); });
    });
  }
  IoThreads io_threads(io);
  ASSERT_TRUE(io_threads.join()) << "the handlers did not all run within the limit";
  grpc.join();

  for (int i = 0; i < ops; ++i) ASSERT_EQ(runs[i], 1) << "handler " << i;
  EXPECT_EQ(off_strand, 0);
  EXPECT_EQ(slot_still_set, 0) << "handlers ran with their cancellation slot still set";
  EXPECT_EQ(cancelled_after_completion, 0) << "an emit after completion reached the operation";
  EXPECT_EQ(aborted + succeeded, ops);
  int cancels = 0;
  for (auto& operation : operations) cancels += operation->cancels.load();
  EXPECT_LE(aborted, cancels) << "an operation_aborted without a cancel()";
}

/// Counts cancel() calls and fails the test if one reaches it after its destruction began.
class CountingTarget final : public Cancellable {
 public:
  CountingTarget(std::atomic<int>& cancels, std::atomic<int>& destroyed)
      : cancels_(cancels), destroyed_(destroyed) {}
  ~CountingTarget() override {
    dead_.store(true);
    ++destroyed_;
  }
  void cancel() noexcept override {
    EXPECT_FALSE(dead_.load()) << "cancel() reached a target being destroyed";
    ++cancels_;
  }

 private:
  std::atomic<int>& cancels_;
  std::atomic<int>& destroyed_;
  std::atomic<bool> dead_{false};
};

// A slot handler may outlive its operation and be invoked from any thread while the last
// owner lets go of the operation: it keeps nothing alive, cancels a live target, never one
// being destroyed, and only on terminal cancellation.
TEST(CancellationSlotTest, CancelOnTerminalRacingTheTargetsReleaseCancelsOnlyALiveTarget) {
  constexpr int rounds = 300;
  constexpr int calls = 20;
  std::atomic<int> cancels{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> weaker_cancels{0};
  std::atomic<int> weaker_destroyed{0};
  auto weaker_target = std::make_shared<CountingTarget>(weaker_cancels, weaker_destroyed);
  const CancelOnTerminal weaker{std::weak_ptr<Cancellable>(weaker_target)};
  for (int round = 0; round < rounds; ++round) {
    auto target = std::make_shared<CountingTarget>(cancels, destroyed);
    const CancelOnTerminal handler{std::weak_ptr<Cancellable>(target)};
    handler(asio::cancellation_type::terminal);  // alive: cancelled
    std::thread terminal([&] {
      for (int i = 0; i < calls; ++i) handler(asio::cancellation_type::terminal);
    });
    std::thread partial([&] {
      for (int i = 0; i < calls; ++i) {
        weaker(asio::cancellation_type::partial | asio::cancellation_type::total);
      }
    });
    target.reset();
    terminal.join();
    partial.join();
    ASSERT_EQ(destroyed.load(), round + 1) << "the slot handler kept its target alive";
    handler(asio::cancellation_type::terminal);  // released: nothing to cancel
  }
  EXPECT_GE(cancels.load(), rounds);
  EXPECT_LE(cancels.load(), rounds * (calls + 1));
  EXPECT_EQ(weaker_cancels.load(), 0) << "partial or total cancellation cancelled";
}

// ---------------------------------------------------------------- UniqueFunction

TEST(UniqueFunctionTest, MovedToAnotherThreadItRunsThereAndDestroysItsCaptureOnce) {
  constexpr int functions = 2000;
  struct Payload {
    std::vector<int> values;
    std::atomic<int>* destroyed;
    ~Payload() { ++*destroyed; }
  };
  std::atomic<int> destroyed{0};
  std::atomic<long> sum{0};
  std::atomic<int> calls{0};
  {
    ForeignThreads consumers(2);
    auto produce = [&](int first) {
      for (int i = first; i < functions; i += 2) {
        std::unique_ptr<Payload> payload(new Payload{{i, i, i}, &destroyed});
        UniqueFunction<void(int)> f = [payload = std::move(payload), &sum](int factor) {
          for (int v : payload->values) sum += static_cast<long>(v) * factor;
        };
        UniqueFunction<void(int)> moved = std::move(f);
        EXPECT_FALSE(f) << "a moved-from UniqueFunction still holds its callable";
        consumers.run([moved = std::move(moved), &calls]() mutable {
          moved(1);
          ++calls;
        });
      }
    };
    std::thread even(produce, 0);
    std::thread odd(produce, 1);
    even.join();
    odd.join();
  }
  EXPECT_EQ(calls.load(), functions);
  EXPECT_EQ(destroyed.load(), functions) << "captures leaked or destroyed more than once";
  EXPECT_EQ(sum.load(), 3L * (functions - 1) * functions / 2);
}

// ---------------------------------------------------------------- StreamCore

OutputChunk chunk_of(std::uint64_t offset) {
  OutputChunk chunk;
  chunk.data = std::to_string(offset);
  chunk.offset = offset;
  return chunk;
}

/// Reads `stream` on `strand` until the end or an error, one next() at a time, as a
/// consumer coroutine would. Each next() gets a cancellation slot that is emitted on the
/// strand right after the initiation, racing whatever completes it.
struct Consumer {
  Consumer(ExecStream& stream, Strand strand, int limit)
      : stream(stream), strand(std::move(strand)), limit(limit) {}

  ExecStream& stream;
  Strand strand;
  const int limit;  // next() calls at most
  asio::cancellation_signal signal;
  std::vector<OutputChunk> chunks;
  std::vector<std::error_code> errors;
  int ends = 0;
  int calls = 0;
  int off_strand = 0;
  int inline_completions = 0;
  bool initiating = false;

  void next() {
    ++calls;
    initiating = true;
    stream.next(asio::bind_cancellation_slot(
        signal.slot(),
        asio::bind_executor(strand, [this](std::error_code error, std::optional<OutputChunk> c) {
          if (!strand.running_in_this_thread()) ++off_strand;
          if (initiating) ++inline_completions;
          if (error) {
            errors.push_back(error);
          } else if (c) {
            chunks.push_back(std::move(*c));
          } else {
            ++ends;
          }
          if (calls < limit && ends == 0) next();
        })));
    initiating = false;
    // Terminal cancellation reaches StreamCore::cancel(): with no RPC (the weak reactor
    // pointer is empty) it must do nothing, whatever it races.
    asio::post(strand, [this] { signal.emit(asio::cancellation_type::terminal); });
  }
};

// fail() runs before the ExecStream exists (StreamRpc::start, inside RemoteRunner::stream):
// it does not complete a pending next(), so it cannot race one by contract. What can race:
// next() on the consumer's strand, slot emission there, and cancel() from any thread.
TEST(StreamCoreTest, FailedStreamCompletesEveryNextWithItsErrorOnTheStrandWhileCancelled) {
  constexpr int nexts = 500;
  asio::io_context io(2);
  auto core = std::make_shared<StreamCore>(4);
  core->fail(errc::runner_closed, "the runner is closed");
  ExecStream stream(core, io.get_executor());
  Consumer consumer(stream, asio::make_strand(io), nexts);

  asio::post(consumer.strand, [&] { consumer.next(); });
  std::atomic<bool> consumed{false};
  std::thread canceller([&] {
    // ExecStream::cancel() is the one thread-safe member: hammer it while next() runs.
    while (!consumed.load()) {
      stream.cancel();
      EXPECT_TRUE(core->finished());
      EXPECT_EQ(core->error_message(), "the runner is closed");
    }
  });
  IoThreads io_threads(io);
  const bool ran_out = io_threads.join();
  consumed = true;
  canceller.join();
  ASSERT_TRUE(ran_out) << "the consumer did not finish within the limit";

  EXPECT_EQ(consumer.calls, nexts);
  ASSERT_EQ(consumer.errors.size(), static_cast<std::size_t>(nexts))
      << "every next() completes exactly once with the outcome";
  for (auto error : consumer.errors) EXPECT_EQ(error, make_error_code(errc::runner_closed));
  EXPECT_TRUE(consumer.chunks.empty());
  EXPECT_EQ(consumer.off_strand, 0);
  EXPECT_EQ(consumer.inline_completions, 0) << "a handler ran inside next()";
}

/// The reactor's side of a StreamCore, reduced to what OnReadDone does with a chunk or the
/// exit under the core's mutex (no hold, so next() never starts a read): hands a chunk to a
/// waiting next() when nothing is queued, queues it otherwise; completes outside the lock.
void deliver_from_reactor(StreamCore& s, std::optional<OutputChunk> chunk) {
  NextCompletion deliver;
  {
    std::lock_guard lock(s.mutex);
    if (!chunk) {
      s.exit.exit_code = 7;
      s.outcome = std::error_code{};
      s.ended = true;
    }
    if (s.waiting && s.ready.empty()) {
      deliver = std::move(s.waiting);
    } else if (chunk) {
      s.ready.push_back(std::move(*chunk));
      chunk.reset();
    }
  }
  if (deliver) deliver({}, std::move(chunk));
}

// A foreign thread delivers chunks while the consumer reads them on its strand: each chunk
// arrives once, in order, then the end, whichever of the two paths (straight to a waiting
// next(), or through the queue) each one took.
TEST(StreamCoreTest, ChunksDeliveredFromAForeignThreadArriveOnceInOrderThenTheEnd) {
  constexpr int chunks = 2000;
  asio::io_context io(2);
  // The queue never exceeds read_ahead: this fake reactor reads as fast as it likes.
  auto core = std::make_shared<StreamCore>(chunks);
  ExecStream stream(core, io.get_executor());
  Consumer consumer(stream, asio::make_strand(io), chunks + 1);

  asio::post(consumer.strand, [&] { consumer.next(); });
  std::thread reactor([&] {
    for (int i = 0; i < chunks; ++i) deliver_from_reactor(*core, chunk_of(i));
    deliver_from_reactor(*core, std::nullopt);
  });
  IoThreads io_threads(io);
  const bool ran_out = io_threads.join();
  reactor.join();
  ASSERT_TRUE(ran_out) << "the consumer did not reach the end within the limit";

  EXPECT_TRUE(consumer.errors.empty()) << consumer.errors.front().message();
  EXPECT_EQ(consumer.ends, 1);
  ASSERT_EQ(consumer.chunks.size(), static_cast<std::size_t>(chunks));
  for (int i = 0; i < chunks; ++i) {
    EXPECT_EQ(consumer.chunks[i].offset, static_cast<std::uint64_t>(i));
    EXPECT_EQ(consumer.chunks[i].data, std::to_string(i));
  }
  EXPECT_EQ(consumer.off_strand, 0);
  EXPECT_EQ(consumer.inline_completions, 0) << "a handler ran inside next()";
  EXPECT_EQ(stream.exit_status().exit_code, 7);
  EXPECT_TRUE(stream.finished());
}

}  // namespace
}  // namespace sandbox::detail
