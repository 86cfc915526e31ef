// What a command wrote, kept so that a reattaching client can be served the bytes it missed.
#pragma once

#include <grpcpp/support/status.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace sandbox::agent {

/// The command's two output streams.
enum class OutputStream : int { out = 0, err = 1 };

/// The output of one exec in production order, as chunks of at most `max_chunk_bytes` of one
/// stream each. Sans-io: no threads, no clocks; the caller serialises access.
///
/// Bounds: per stream only the first `cap` bytes are stored (0 = no cap); later bytes are
/// counted (`total`) and dropped. Of what is stored, chunks that every reader has been given
/// (`release`) are dropped from the front once more than `retain_bytes` are stored, so the
/// memory of one exec is about `retain_bytes` plus what its reader has not taken yet (which
/// the caller bounds by pausing the pipes).
class OutputLog {
 public:
  /// A reader's position: per stream, the offset of the next byte it has not been given.
  struct Cursor {
    std::array<std::uint64_t, 2> next{};
    std::uint64_t sequence = 0;  // index of the chunk to look at first
  };

  /// One piece of output for a reader.
  struct Piece {
    OutputStream stream;
    std::uint64_t offset;  // position of data[0] within its stream
    std::string data;
  };

  OutputLog(std::size_t max_chunk_bytes, std::uint64_t retain_bytes, std::uint64_t cap);

  /// Records `n` bytes the command wrote on `stream`: coalesced into the last chunk while it
  /// is of the same stream and below `max_chunk_bytes`.
  void append(OutputStream stream, const char* data, std::size_t n);

  /// A cursor that starts after `offsets` (bytes the client already holds), or an error:
  /// DATA_LOSS when some of the bytes past them were already dropped, OUT_OF_RANGE when an
  /// offset is past what the command has written so far.
  grpc::Status cursor_at(const std::array<std::uint64_t, 2>& offsets, Cursor& cursor) const;

  /// Moves the next bytes `cursor` has not been given into `piece` and advances it; false when
  /// it has everything stored so far. With `settled_only`, also false (nothing taken) when
  /// those bytes are the start of the last chunk while it can still grow: a caller that can
  /// wait gets one larger piece later instead of a small one now.
  bool next(Cursor& cursor, Piece& piece, bool settled_only = false) const;

  /// Stored bytes `cursor` has not been given yet.
  [[nodiscard]] std::uint64_t unsent(const Cursor& cursor) const;

  /// Marks everything before `cursor` as delivered: such chunks may be dropped (oldest first)
  /// while more than `retain_bytes` are stored.
  void release(const Cursor& cursor);

  /// Every byte the command wrote on `stream`, stored or not.
  [[nodiscard]] std::uint64_t total(OutputStream stream) const { return total_[index(stream)]; }
  /// True when `stream` wrote more than the cap.
  [[nodiscard]] bool truncated(OutputStream stream) const {
    return total(stream) > stored_end(stream);
  }
  /// Bytes of `stream` stored (dropped ones included): the offset after the last stored byte.
  [[nodiscard]] std::uint64_t stored_end(OutputStream stream) const { return end_[index(stream)]; }
  /// Bytes held in memory now.
  [[nodiscard]] std::uint64_t retained_bytes() const { return retained_; }

 private:
  struct Chunk {
    OutputStream stream;
    std::uint64_t offset;
    std::string data;
  };
  static std::size_t index(OutputStream stream) { return static_cast<std::size_t>(stream); }

  const std::size_t max_chunk_bytes_;
  const std::uint64_t retain_bytes_;
  const std::uint64_t cap_;
  std::deque<Chunk> chunks_;
  std::uint64_t first_sequence_ = 0;        // sequence number of chunks_.front()
  std::array<std::uint64_t, 2> total_{};    // written
  std::array<std::uint64_t, 2> end_{};      // stored (= offset after the last stored byte)
  std::array<std::uint64_t, 2> dropped_{};  // offset below which bytes were dropped
  std::uint64_t retained_ = 0;
};

}  // namespace sandbox::agent
