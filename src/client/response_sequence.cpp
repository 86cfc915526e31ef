#include "client/detail/response_sequence.hpp"

namespace sandbox::detail {

ResponseKind ResponseSequence::fail(std::string rule) {
  failed_ = true;
  violation_ = std::move(rule);
  return ResponseKind::violation;
}

ResponseKind ResponseSequence::accept_chunk(OutputStream stream, const v1::ExecResponse& message,
                                            std::uint64_t& received) {
  // An agent that sent `started` promises offsets; an older one sends none (all zero).
  if (started_ && message.offset() != received) {
    return fail(std::string(stream == OutputStream::out ? "stdout" : "stderr") +
                " chunk at offset " + std::to_string(message.offset()) + ", expected " +
                std::to_string(received));
  }
  const auto size = stream == OutputStream::out ? message.stdout().size() : message.stderr().size();
  received += size;
  any_chunk_ = true;
  return ResponseKind::chunk;
}

ResponseKind ResponseSequence::accept(const v1::ExecResponse& message) {
  if (failed_) return ResponseKind::violation;
  if (exited_) return fail("a message followed exit_code");
  switch (message.event_case()) {
    case v1::ExecResponse::kStarted: {
      if (started_) return fail("a second started message");
      if (any_chunk_) return fail("started after output: it must be the first message");
      started_ = true;
      const auto& started = message.started();
      if (!started.exec_id().empty()) info_.exec_id = started.exec_id();
      info_.sandbox_id = started.sandbox_id();
      info_.effective_profile = started.effective_profile();
      return ResponseKind::started;
    }
    case v1::ExecResponse::kStdout:
      return accept_chunk(OutputStream::out, message, stdout_received_);
    case v1::ExecResponse::kStderr:
      return accept_chunk(OutputStream::err, message, stderr_received_);
    case v1::ExecResponse::kExitCode: {
      exited_ = true;
      const auto& details = message.exit();
      exit_.exit_code = message.exit_code();
      exit_.signal = details.signal();
      exit_.timed_out = details.timed_out();
      exit_.stdout_truncated = details.stdout_truncated();
      exit_.stderr_truncated = details.stderr_truncated();
      // An agent without totals (older generation) reports what was received.
      exit_.stdout_total = message.has_exit() ? details.stdout_bytes() : stdout_received_;
      exit_.stderr_total = message.has_exit() ? details.stderr_bytes() : stderr_received_;
      exit_.duration = std::chrono::milliseconds(details.duration_ms());
      if (!details.effective_profile().empty() && info_.effective_profile.empty()) {
        info_.effective_profile = details.effective_profile();
      }
      return ResponseKind::exit;
    }
    case v1::ExecResponse::EVENT_NOT_SET:
      break;
  }
  return fail("a message with no event (none of stdout, stderr, exit_code, started)");
}

}  // namespace sandbox::detail
