// ExecStream against a scripted fake agent: order, end, errors, cancellation.

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>

#include "fakes/fake_agent.hpp"
#include "fakes/io_harness.hpp"
#include "sandbox/sandbox.hpp"

namespace sandbox::test {
namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;

// Waits (bounded) until `predicate` holds, running `io` meanwhile.
template <typename Predicate>
bool eventually(asio::io_context& io, Predicate predicate) {
  return sandbox::test::eventually(predicate, 10s, &io);
}

TEST(StreamFakeAgentTest, ChunksArriveInAgentOrderThenTheEnd) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id(), "sb-7", "strict"));
    writer.Write(stdout_message("one ", 0));
    writer.Write(stderr_message("warn", 0));
    writer.Write(stdout_message("two", 4));
    auto exit = exit_message(9);
    exit.mutable_exit()->set_stdout_bytes(7);
    writer.Write(exit);
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto stream = runner.stream({"make"});

  auto chunks = run_bounded(io, [&]() -> asio::awaitable<std::vector<OutputChunk>> {
    std::vector<OutputChunk> seen;
    while (auto chunk = co_await stream.next()) seen.push_back(std::move(*chunk));
    co_return seen;
  }());

  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].data, "one ");
  EXPECT_EQ(chunks[1].stream, OutputStream::err);
  EXPECT_EQ(chunks[1].data, "warn");
  EXPECT_EQ(chunks[2].data, "two");
  EXPECT_EQ(chunks[2].offset, 4u);
  EXPECT_TRUE(stream.finished());
  EXPECT_EQ(stream.exit_status().exit_code, 9);
  EXPECT_EQ(stream.exit_status().stdout_total, 7u);
  EXPECT_EQ(stream.info().sandbox_id, "sb-7");
  EXPECT_EQ(stream.info().effective_profile, "strict");
}

TEST(StreamFakeAgentTest, EndWithoutExitCodeIsAnErrorAfterTheChunksReceived) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message("partial", 0));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto stream = runner.stream({"make"});

  auto [first_ec, first] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  auto [second_ec, second] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));

  EXPECT_FALSE(first_ec);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->data, "partial");
  EXPECT_EQ(second_ec, errc::missing_exit_code);
  EXPECT_FALSE(second.has_value());
  EXPECT_NE(stream.error_message().find("exit_code"), std::string::npos);
  EXPECT_EQ(stream.exit_status().exit_code, -1);
}

TEST(StreamFakeAgentTest, InvalidCommandFailsOnFirstNextWithoutAnRpc) {
  FakeAgent agent(replying("", "", 0));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto stream = runner.stream(Command{});
  auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_TRUE(agent.calls().empty());
}

TEST(StreamFakeAgentTest, DestroyingAnUnfinishedStreamCancelsTheRpc) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen, "tick"));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  {
    auto stream = runner.stream({"tail", "-f", "log"});
    auto chunk = run_bounded(io, stream.next());
    ASSERT_TRUE(chunk.has_value());
  }
  EXPECT_TRUE(eventually(io, [&] { return cancels_seen.load() == 1; }))
      << "the agent never saw the cancellation";
}

TEST(StreamFakeAgentTest, CancellingAfterTheExitArrivedStillDeliversWhatWasReadAhead) {
  FakeAgent agent([](grpc::ServerContext&, const v1::ExecRequest& request, ExecWriter& writer) {
    writer.Write(started_message(request.exec_id()));
    writer.Write(stdout_message("a", 0));
    writer.Write(stdout_message("b", 1));
    writer.Write(stdout_message("c", 2));
    writer.Write(exit_message(0));
    return grpc::Status::OK;
  });
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));  // reads 4 messages ahead
  auto stream = runner.stream({"make"});
  ASSERT_TRUE(eventually(io, [&] { return stream.finished(); })) << "the exit never arrived";
  stream.cancel();  // too late: the command is over and its output is here
  std::string out;
  while (auto chunk = run_bounded(io, stream.next())) out += chunk->data;
  EXPECT_EQ(out, "abc") << "a complete-looking stream with output missing";
  EXPECT_EQ(stream.exit_status().exit_code, 0);
}

TEST(StreamFakeAgentTest, TerminalCancellationOfNextAbortsTheStream) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto stream = runner.stream({"sleep", "300"});
  asio::cancellation_signal signal;
  std::optional<std::error_code> outcome;
  stream.next(asio::bind_cancellation_slot(
      signal.slot(), [&](std::error_code ec, std::optional<OutputChunk>) { outcome = ec; }));
  ASSERT_TRUE(eventually(io, [&] { return !agent.calls().empty(); }));
  asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
  ASSERT_TRUE(eventually(io, [&] { return outcome.has_value(); })) << "next() never completed";
  EXPECT_EQ(*outcome, asio::error::operation_aborted);
  auto [again, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  EXPECT_EQ(again, asio::error::operation_aborted) << "a cancelled stream stays cancelled";
  EXPECT_TRUE(eventually(io, [&] { return cancels_seen.load() == 1; }));
}

TEST(StreamFakeAgentTest, CloseEndsAStreamWithRunnerClosed) {
  std::atomic<int> cancels_seen{0};
  FakeAgent agent(waiting_for_cancel(cancels_seen));
  asio::io_context io;
  RemoteRunner runner(io.get_executor(), runner_config(agent));
  auto stream = runner.stream({"sleep", "300"});
  ASSERT_TRUE(eventually(io, [&] { return !agent.calls().empty(); }));
  runner.close();
  auto [ec, chunk] = run_bounded(io, stream.next(as_tuple(asio::use_awaitable)));
  EXPECT_EQ(ec, errc::runner_closed);
  EXPECT_TRUE(eventually(io, [&] { return cancels_seen.load() == 1; }))
      << "the agent never saw the close";
}

}  // namespace
}  // namespace sandbox::test
