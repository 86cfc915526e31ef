// Fuzzes the client's Exec response rules (ResponseSequence, docs/behavior.md "Stream order").
//
// Input: a sequence of pieces, each one length byte N followed by N bytes (the last piece may
// be shorter) that are parsed as a serialized sandbox::v1::ExecResponse; a piece that does not
// parse is skipped. The messages are fed to one ResponseSequence in order, and a model kept
// here checks after each one that:
//   - accept() never crashes and the loop is bounded (every piece consumes at least one byte);
//   - what accept() returns matches the message's event (a chunk only for stdout/stderr, an
//     exit only for exit_code, started only for started, first and once);
//   - after an `exit` or a `violation`, every further message is a violation;
//   - exited() is true exactly when a message with the exit_code event was accepted as exit;
//   - received() on each stream is the sum of the accepted chunks' sizes on it, and once
//     started() every accepted chunk was at exactly that offset;
//   - exit_status() is the accepted exit message's (exit_code 0 only from exit_code 0).
// A broken property traps (a crash for libFuzzer).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "client/detail/response_sequence.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace {

using sandbox::OutputStream;
using sandbox::detail::ResponseKind;
using sandbox::detail::ResponseSequence;
using sandbox::v1::ExecResponse;

void require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "client_response_sequence_fuzz: property broken: %s\n", property);
  __builtin_trap();
}

// What the sequence must have done so far, kept independently of it.
struct Model {
  bool started = false;
  bool any_chunk = false;
  bool ended = false;  // an exit or a violation was returned
  bool exited = false;
  std::int32_t exit_code = 0;
  std::uint64_t stdout_bytes = 0;
  std::uint64_t stderr_bytes = 0;
};

void check_one(ResponseSequence& sequence, Model& model, const ExecResponse& message) {
  const std::uint64_t stdout_before = sequence.received(OutputStream::out);
  const std::uint64_t stderr_before = sequence.received(OutputStream::err);
  const bool was_ended = model.ended;
  const ResponseKind kind = sequence.accept(message);

  if (was_ended) require(kind == ResponseKind::violation, "a message after the end is accepted");
  switch (kind) {
    case ResponseKind::started:
      require(message.event_case() == ExecResponse::kStarted, "started for another event");
      require(!model.started, "a second started accepted");
      require(!model.any_chunk, "started accepted after output");
      model.started = true;
      require(sequence.started(), "started() false after started");
      break;
    case ResponseKind::chunk: {
      const bool out = message.event_case() == ExecResponse::kStdout;
      require(out || message.event_case() == ExecResponse::kStderr, "chunk for another event");
      if (model.started) {
        require(message.offset() == (out ? stdout_before : stderr_before),
                "chunk accepted at the wrong offset");
      }
      (out ? model.stdout_bytes : model.stderr_bytes) +=
          out ? message.stdout().size() : message.stderr().size();
      model.any_chunk = true;
      break;
    }
    case ResponseKind::exit:
      require(message.event_case() == ExecResponse::kExitCode, "exit for another event");
      model.ended = true;
      model.exited = true;
      model.exit_code = message.exit_code();
      break;
    case ResponseKind::violation:
      require(!sequence.violation().empty(), "a violation without a rule");
      model.ended = true;
      break;
  }

  require(sequence.exited() == model.exited, "exited() disagrees with the accepted messages");
  require(sequence.started() == model.started, "started() disagrees with the accepted messages");
  require(sequence.received(OutputStream::out) == model.stdout_bytes,
          "received(out) is not the sum of accepted stdout chunks");
  require(sequence.received(OutputStream::err) == model.stderr_bytes,
          "received(err) is not the sum of accepted stderr chunks");
  if (model.exited) {
    require(sequence.exit_status().exit_code == model.exit_code,
            "exit_status().exit_code is not the accepted exit_code");
  } else {
    require(sequence.exit_status().exit_code != 0, "exit code 0 reported without an exit");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ResponseSequence sequence;
  Model model;
  ExecResponse message;
  std::size_t pos = 0;
  while (pos < size) {  // bounded: each piece consumes its length byte at least
    const std::size_t length = data[pos++];
    const std::size_t available = length < size - pos ? length : size - pos;
    const bool parsed = message.ParseFromArray(data + pos, static_cast<int>(available));
    pos += available;
    if (parsed) check_one(sequence, model, message);
  }
  return 0;
}
