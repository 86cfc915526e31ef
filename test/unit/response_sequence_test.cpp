#include "client/detail/response_sequence.hpp"

#include <gtest/gtest.h>

#include "fakes/fake_agent.hpp"

namespace sandbox::detail {
namespace {

using test::exit_message;
using test::stderr_message;
using test::stdout_message;

v1::ExecResponse started() { return test::started_message("id-1", "sb-1", "strict"); }
v1::ExecResponse out(const std::string& bytes, std::uint64_t offset) {
  return stdout_message(bytes, offset);
}
v1::ExecResponse err(const std::string& bytes, std::uint64_t offset) {
  return stderr_message(bytes, offset);
}
v1::ExecResponse exit_with(int code) {
  auto m = exit_message(code, 9);
  m.mutable_exit()->set_stdout_bytes(100);
  m.mutable_exit()->set_duration_ms(12);
  return m;
}

TEST(ResponseSequenceTest, StartedChunksExitIsTheNormalOrder) {
  ResponseSequence seq;
  EXPECT_EQ(seq.accept(started()), ResponseKind::started);
  EXPECT_EQ(seq.info().sandbox_id, "sb-1");
  EXPECT_EQ(seq.info().effective_profile, "strict");
  EXPECT_EQ(seq.accept(out("ab", 0)), ResponseKind::chunk);
  EXPECT_EQ(seq.accept(err("x", 0)), ResponseKind::chunk);
  EXPECT_EQ(seq.accept(out("cd", 2)), ResponseKind::chunk);
  EXPECT_EQ(seq.received(OutputStream::out), 4u);
  EXPECT_EQ(seq.received(OutputStream::err), 1u);
  EXPECT_EQ(seq.accept(exit_with(137)), ResponseKind::exit);
  EXPECT_EQ(seq.exit_status().exit_code, 137);
  EXPECT_EQ(seq.exit_status().signal, 9);
  EXPECT_EQ(seq.exit_status().stdout_total, 100u);
  EXPECT_EQ(seq.exit_status().duration.count(), 12);
}

TEST(ResponseSequenceTest, AnythingAfterExitIsAViolation) {
  ResponseSequence seq;
  seq.accept(started());
  seq.accept(exit_with(0));
  EXPECT_EQ(seq.accept(out("late", 0)), ResponseKind::violation);
  EXPECT_NE(seq.violation().find("exit_code"), std::string::npos);
}

TEST(ResponseSequenceTest, OffsetGapIsAViolationOnceStartedPromisedOffsets) {
  ResponseSequence seq;
  seq.accept(started());
  seq.accept(out("abc", 0));
  EXPECT_EQ(seq.accept(out("def", 4)), ResponseKind::violation);
  EXPECT_NE(seq.violation().find("expected 3"), std::string::npos) << seq.violation();
}

TEST(ResponseSequenceTest, OlderAgentWithoutStartedIsNotHeldToOffsets) {
  ResponseSequence seq;
  EXPECT_EQ(seq.accept(out("abc", 0)), ResponseKind::chunk);
  EXPECT_EQ(seq.accept(out("def", 0)), ResponseKind::chunk);
  v1::ExecResponse bare_exit;
  bare_exit.set_exit_code(3);
  EXPECT_EQ(seq.accept(bare_exit), ResponseKind::exit);
  EXPECT_EQ(seq.exit_status().stdout_total, 6u);
}

TEST(ResponseSequenceTest, StartedAfterOutputOrTwiceIsAViolation) {
  ResponseSequence late;
  late.accept(out("x", 0));
  EXPECT_EQ(late.accept(started()), ResponseKind::violation);
  ResponseSequence twice;
  twice.accept(started());
  EXPECT_EQ(twice.accept(started()), ResponseKind::violation);
}

TEST(ResponseSequenceTest, MessageWithoutEventIsAViolationAndSticks) {
  ResponseSequence seq;
  EXPECT_EQ(seq.accept(v1::ExecResponse{}), ResponseKind::violation);
  EXPECT_EQ(seq.accept(exit_with(0)), ResponseKind::violation);
  EXPECT_FALSE(seq.exited());
}

}  // namespace
}  // namespace sandbox::detail
