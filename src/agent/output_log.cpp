#include "agent/output_log.hpp"

#include <algorithm>

namespace sandbox::agent {
namespace {

const char* stream_name(std::size_t i) { return i == 0 ? "stdout_offset" : "stderr_offset"; }

}  // namespace

OutputLog::OutputLog(std::size_t max_chunk_bytes, std::uint64_t retain_bytes, std::uint64_t cap)
    : max_chunk_bytes_(std::max<std::size_t>(1, max_chunk_bytes)),
      retain_bytes_(retain_bytes),
      cap_(cap) {}

void OutputLog::append(OutputStream stream, const char* data, std::size_t n) {
  const std::size_t s = index(stream);
  total_[s] += n;
  if (cap_ > 0) {
    const std::uint64_t room = cap_ > end_[s] ? cap_ - end_[s] : 0;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, room));
  }
  end_[s] += n;
  retained_ += n;
  std::uint64_t offset = end_[s] - n;
  if (!chunks_.empty() && chunks_.back().stream == stream &&
      chunks_.back().data.size() < max_chunk_bytes_) {
    // Fewer, larger messages: a reader that already took part of this chunk is given the
    // rest from its own offset.
    Chunk& tail = chunks_.back();
    const std::size_t take = std::min(n, max_chunk_bytes_ - tail.data.size());
    tail.data.append(data, take);
    data += take;
    offset += take;
    n -= take;
  }
  while (n > 0) {
    const std::size_t take = std::min(n, max_chunk_bytes_);
    chunks_.push_back(Chunk{stream, offset, std::string(data, take)});
    data += take;
    offset += take;
    n -= take;
  }
}

grpc::Status OutputLog::cursor_at(const std::array<std::uint64_t, 2>& offsets,
                                  Cursor& cursor) const {
  for (std::size_t s = 0; s < 2; ++s) {
    if (offsets[s] > end_[s]) {
      return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                          std::string("resume.") + stream_name(s) + ": " +
                              std::to_string(offsets[s]) + " is past the " +
                              std::to_string(end_[s]) + " bytes the command has written");
    }
    // Bytes at or past the cap were never stored, so an offset there misses nothing.
    if (offsets[s] < dropped_[s]) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          std::string("resume.") + stream_name(s) + ": bytes from " +
                              std::to_string(offsets[s]) + " to " + std::to_string(dropped_[s]) +
                              " are no longer retained by the agent");
    }
  }
  cursor.next = offsets;
  cursor.sequence = first_sequence_;
  return grpc::Status::OK;
}

bool OutputLog::next(Cursor& cursor, Piece& piece, bool settled_only) const {
  cursor.sequence = std::max(cursor.sequence, first_sequence_);
  while (cursor.sequence < first_sequence_ + chunks_.size()) {
    const Chunk& chunk = chunks_[static_cast<std::size_t>(cursor.sequence - first_sequence_)];
    const bool last = cursor.sequence + 1 == first_sequence_ + chunks_.size();
    std::uint64_t& next = cursor.next[index(chunk.stream)];
    const std::uint64_t end = chunk.offset + chunk.data.size();
    if (next < end) {
      if (settled_only && last && chunk.data.size() < max_chunk_bytes_) return false;
      const std::uint64_t from = std::max(next, chunk.offset);
      piece.stream = chunk.stream;
      piece.offset = from;
      piece.data.assign(chunk.data, static_cast<std::size_t>(from - chunk.offset));
      next = end;
      // The last chunk may still grow: stay on it.
      if (!last) ++cursor.sequence;
      return true;
    }
    if (last) return false;
    ++cursor.sequence;
  }
  return false;
}

std::uint64_t OutputLog::unsent(const Cursor& cursor) const {
  std::uint64_t unsent = 0;
  for (std::size_t s = 0; s < 2; ++s) {
    if (end_[s] > cursor.next[s]) unsent += end_[s] - cursor.next[s];
  }
  return unsent;
}

void OutputLog::release(const Cursor& cursor) {
  while (retained_ > retain_bytes_ && !chunks_.empty()) {
    const Chunk& front = chunks_.front();
    const std::size_t s = index(front.stream);
    const std::uint64_t end = front.offset + front.data.size();
    if (cursor.next[s] < end) break;
    dropped_[s] = end;
    retained_ -= front.data.size();
    chunks_.pop_front();
    ++first_sequence_;
  }
}

}  // namespace sandbox::agent
