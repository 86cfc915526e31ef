// OutputLog: what a reattaching reader is given, what is kept, what is refused.
#include "agent/output_log.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sandbox::agent {
namespace {

using ::testing::HasSubstr;

void append(OutputLog& log, OutputStream stream, const std::string& bytes) {
  log.append(stream, bytes.data(), bytes.size());
}

// Everything `cursor` can take now, in order.
std::vector<OutputLog::Piece> take_all(const OutputLog& log, OutputLog::Cursor& cursor) {
  std::vector<OutputLog::Piece> pieces;
  OutputLog::Piece piece;
  while (log.next(cursor, piece)) pieces.push_back(piece);
  return pieces;
}

OutputLog::Cursor cursor_at(const OutputLog& log, std::uint64_t out, std::uint64_t err) {
  OutputLog::Cursor cursor;
  const grpc::Status status = log.cursor_at({out, err}, cursor);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return cursor;
}

TEST(OutputLogTest, ReaderGetsBothStreamsInProductionOrderWithTheirOffsets) {
  OutputLog log(64, 1 << 20, 0);
  append(log, OutputStream::out, "abc");
  append(log, OutputStream::err, "E1");
  append(log, OutputStream::out, "de");
  OutputLog::Cursor cursor = cursor_at(log, 0, 0);
  const auto pieces = take_all(log, cursor);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].stream, OutputStream::out);
  EXPECT_EQ(pieces[0].data, "abc");
  EXPECT_EQ(pieces[0].offset, 0u);
  EXPECT_EQ(pieces[1].stream, OutputStream::err);
  EXPECT_EQ(pieces[1].data, "E1");
  EXPECT_EQ(pieces[2].data, "de");
  EXPECT_EQ(pieces[2].offset, 3u);
  EXPECT_EQ(log.unsent(cursor), 0u);
}

TEST(OutputLogTest, ConsecutiveWritesOfOneStreamCoalesceUpToTheChunkLimit) {
  OutputLog log(4, 1 << 20, 0);
  append(log, OutputStream::out, "ab");
  append(log, OutputStream::out, "cdefghij");
  OutputLog::Cursor cursor = cursor_at(log, 0, 0);
  const auto pieces = take_all(log, cursor);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].data, "abcd");
  EXPECT_EQ(pieces[1].data, "efgh");
  EXPECT_EQ(pieces[2].data, "ij");
  EXPECT_EQ(pieces[2].offset, 8u);
}

TEST(OutputLogTest, BytesAppendedToAChunkAlreadyTakenArriveOnceFromTheirOffset) {
  OutputLog log(64, 1 << 20, 0);
  OutputLog::Cursor cursor = cursor_at(log, 0, 0);
  append(log, OutputStream::out, "hello\n");
  ASSERT_EQ(take_all(log, cursor).size(), 1u);
  append(log, OutputStream::out, "world\n");
  const auto pieces = take_all(log, cursor);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].data, "world\n");
  EXPECT_EQ(pieces[0].offset, 6u);
  EXPECT_TRUE(take_all(log, cursor).empty());
}

TEST(OutputLogTest, SettledOnlyLeavesTheGrowingLastChunkToCoalesce) {
  OutputLog log(4, 1 << 20, 0);
  OutputLog::Cursor cursor = cursor_at(log, 0, 0);
  OutputLog::Piece piece;
  append(log, OutputStream::out, "ab");
  EXPECT_FALSE(log.next(cursor, piece, true)) << "the last chunk can still grow";
  append(log, OutputStream::out, "cdef");  // fills "abcd", starts "ef"
  ASSERT_TRUE(log.next(cursor, piece, true));
  EXPECT_EQ(piece.data, "abcd");
  EXPECT_FALSE(log.next(cursor, piece, true));
  ASSERT_TRUE(log.next(cursor, piece)) << "a caller that cannot wait takes it as it is";
  EXPECT_EQ(piece.data, "ef");
}

TEST(OutputLogTest, ResumeSkipsWhatTheClientHoldsPerStreamEvenMidChunk) {
  OutputLog log(64, 1 << 20, 0);
  append(log, OutputStream::out, "0123456789");
  append(log, OutputStream::err, "abcdef");
  append(log, OutputStream::out, "XYZ");
  OutputLog::Cursor cursor = cursor_at(log, 4, 6);
  const auto pieces = take_all(log, cursor);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].data, "456789");
  EXPECT_EQ(pieces[0].offset, 4u);
  EXPECT_EQ(pieces[1].data, "XYZ");
  EXPECT_EQ(pieces[1].offset, 10u);
}

TEST(OutputLogTest, ResumePastWhatWasWrittenIsOutOfRange) {
  OutputLog log(64, 1 << 20, 0);
  append(log, OutputStream::out, "abc");
  OutputLog::Cursor cursor;
  const grpc::Status status = log.cursor_at({4, 0}, cursor);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(status.error_message(),
            "resume.stdout_offset: 4 is past the 3 bytes the command has written");
}

TEST(OutputLogTest, DeliveredChunksBeyondTheRetentionAreDroppedOldestFirst) {
  OutputLog log(4, 8, 0);
  OutputLog::Cursor reader = cursor_at(log, 0, 0);
  append(log, OutputStream::out, "aaaabbbbccccdddd");  // four chunks of 4
  EXPECT_EQ(log.retained_bytes(), 16u);
  log.release(reader);  // nothing taken yet: nothing may go
  EXPECT_EQ(log.retained_bytes(), 16u);
  ASSERT_EQ(take_all(log, reader).size(), 4u);
  log.release(reader);
  EXPECT_EQ(log.retained_bytes(), 8u);

  OutputLog::Cursor late;
  const grpc::Status lost = log.cursor_at({7, 0}, late);
  EXPECT_EQ(lost.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(lost.error_message(), HasSubstr("bytes from 7 to 8 are no longer retained"));
  OutputLog::Cursor kept = cursor_at(log, 8, 0);
  const auto pieces = take_all(log, kept);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].data, "cccc");
  EXPECT_EQ(pieces[0].offset, 8u);
}

TEST(OutputLogTest, ACursorBehindTheDroppedChunksIsMovedToTheFront) {
  OutputLog log(4, 4, 0);
  OutputLog::Cursor reader = cursor_at(log, 0, 0);
  append(log, OutputStream::out, "aaaabbbb");
  ASSERT_EQ(take_all(log, reader).size(), 2u);
  log.release(reader);
  append(log, OutputStream::out, "cc");
  const auto pieces = take_all(log, reader);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].data, "cc");
}

TEST(OutputLogTest, TheCapStoresTheFirstBytesAndCountsTheRest) {
  OutputLog log(64, 1 << 20, 5);
  append(log, OutputStream::out, "abc");
  append(log, OutputStream::out, "defgh");
  append(log, OutputStream::err, "12");
  OutputLog::Cursor cursor = cursor_at(log, 0, 0);
  const auto pieces = take_all(log, cursor);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].data, "abcde");
  EXPECT_EQ(log.total(OutputStream::out), 8u);
  EXPECT_EQ(log.stored_end(OutputStream::out), 5u);
  EXPECT_TRUE(log.truncated(OutputStream::out));
  EXPECT_FALSE(log.truncated(OutputStream::err));
  // The client can hold at most the stored bytes.
  OutputLog::Cursor past;
  EXPECT_EQ(log.cursor_at({6, 0}, past).error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

TEST(OutputLogTest, UnsentCountsWhatTheReaderHasNotTakenOnBothStreams) {
  OutputLog log(64, 1 << 20, 0);
  OutputLog::Cursor cursor = cursor_at(log, 0, 0);
  append(log, OutputStream::out, "abc");
  append(log, OutputStream::err, "de");
  EXPECT_EQ(log.unsent(cursor), 5u);
  OutputLog::Piece piece;
  ASSERT_TRUE(log.next(cursor, piece));
  EXPECT_EQ(log.unsent(cursor), 2u);
}

}  // namespace
}  // namespace sandbox::agent
