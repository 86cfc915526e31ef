#include "agent/exec_session.hpp"

#include <signal.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <system_error>
#include <variant>

#include "agent/log.hpp"
#include "agent/session_registry.hpp"

namespace sandbox::agent {
namespace {

// One pipe read; a pipe holds 64 KiB by default, so this empties it in one call.
constexpr std::size_t kReadBufferBytes = 64 * 1024;
// Stop reading the pipes above this much unsent output and resume below half of it: a slow
// client then slows the command (it blocks on a full pipe) and memory stays bounded.
constexpr std::size_t kHighWaterBytes = 256 * 1024;
constexpr std::size_t kLowWaterBytes = kHighWaterBytes / 2;

constexpr const char* kEffectiveProfile = "none";

}  // namespace

template <class Function>
void ExecSession::post_locked(Function function) {
  ++posts_;
  asio::post(strand_, [this, function = std::move(function)]() mutable {
    function();
    {
      std::lock_guard lock(mutex_);
      --posts_;
    }
    pump();  // last: it may finish the RPC, after which the session may be gone
  });
}

ExecSession::ExecSession(const SessionSettings& settings, SessionRegistry& registry,
                         std::string exec_id, LaunchSpec spec, const v1::ExecRequest& request)
    : settings_(settings),
      registry_(registry),
      exec_id_(std::move(exec_id)),
      spec_(std::move(spec)),
      timeout_ms_(request.timeout_ms()),
      max_output_bytes_(request.max_output_bytes()),
      strand_(asio::make_strand(settings.executor)),
      stdout_(strand_),
      stderr_(strand_),
      stdin_(strand_),
      pidfd_(strand_),
      timeout_timer_(strand_),
      kill_timer_(strand_),
      drain_timer_(strand_),
      stdin_bytes_(request.stdin()) {}

void ExecSession::start() {
  {
    std::lock_guard lock(mutex_);
    if (!stopped_) {
      v1::ExecResponse started;
      v1::Started* info = started.mutable_started();
      info->set_exec_id(exec_id_);
      info->set_sandbox_id(settings_.sandbox_id);
      info->set_effective_profile(kEffectiveProfile);
      started_at_ = std::chrono::steady_clock::now();
      std::variant<ChildProcess, SpawnFailure> spawned;
      try {
        spawned = spawn_process(spec_);
      } catch (const std::system_error& error) {
        log("error", "exec.spawn_failed", {{"exec_id", exec_id_}, {"error", error.what()}});
        stop_locked(grpc::Status(grpc::StatusCode::INTERNAL,
                                 std::string("agent cannot start commands: ") + error.what()));
      }
      if (auto* child = std::get_if<ChildProcess>(&spawned)) {
        pid_ = child->pid;
        info->set_pid(pid_);
        stdout_.buffer = std::make_unique<char[]>(kReadBufferBytes);
        stderr_.buffer = std::make_unique<char[]>(kReadBufferBytes);
        stdout_.fd.assign(child->stdout_fd.release());
        stderr_.fd.assign(child->stderr_fd.release());
        stdin_.assign(child->stdin_fd.release());
        pidfd_.assign(child->pidfd.release());
        started_message_ = std::move(started);
        process_started_ = true;
        log("info", "exec.start",
            {{"exec_id", exec_id_}, {"pid", std::to_string(pid_)}, {"argv0", spec_.argv[0]}});
        // Posted under the lock: a later stop's post cannot overtake it on the strand.
        post_locked([this] { begin_io(); });
      } else if (auto* failure = std::get_if<SpawnFailure>(&spawned)) {
        // A shell's behaviour: the exec "ran" and failed, reported on stderr with 126/127.
        started_message_ = std::move(started);
        stderr_.total = failure->message.size();
        append_locked(kStderr, 0, failure->message.data(), failure->message.size());
        exit_status_ = ExitStatus{failure->exit_code, 0};
        ended_at_ = std::chrono::steady_clock::now();
        exit_message_ = exit_message();
        log("info", "exec.not_started",
            {{"exec_id", exec_id_},
             {"exit_code", std::to_string(failure->exit_code)},
             {"argv0", spec_.argv[0]}});
      }
    }
    if (!process_started_) io_done_ = true;  // no process, no I/O to wait for
  }
  pump();
}

void ExecSession::abort(grpc::Status status) {
  std::lock_guard lock(mutex_);
  if (finish_called_) return;
  stop_locked(std::move(status));
  // Finish from the strand, never from here: the caller holds the registry lock, and OnDone
  // (which takes it) may run inline with Finish.
  post_locked([] {});
}

void ExecSession::OnWriteDone(bool ok) {
  {
    std::lock_guard lock(mutex_);
    write_in_flight_ = false;
    // A failed write means the stream is gone (cancelled or broken): stop as on cancel.
    if (!ok) stop_locked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
  }
  pump();
}

void ExecSession::OnCancel() {
  {
    std::lock_guard lock(mutex_);
    // A client may cancel once it holds exit_code: the exec already ended, nothing to report.
    if (stop_locked(grpc::Status::CANCELLED) && !exit_sent_) {
      log("info", "exec.cancelled", {{"exec_id", exec_id_}});
    }
  }
  pump();
}

void ExecSession::OnDone() {
  // OnDone runs after every other reaction, and pump() finishes only when no strand handler
  // or asio operation refers to this session any more: nothing touches it after this.
  registry_.remove(*this);
  delete this;
}

// ---------------------------------------------------------------- shared side

bool ExecSession::stop_locked(grpc::Status status) {
  if (stopped_ || finish_called_) return false;
  stopped_ = true;
  stop_status_ = std::move(status);
  started_message_.reset();
  queue_.clear();
  queued_bytes_ = 0;
  exit_message_.reset();
  reads_paused_ = false;
  if (process_started_) {
    post_locked([this] {
      begin_kill();
      resume_reads();  // keep draining so the command never blocks on a full pipe
    });
  }
  return true;
}

void ExecSession::append_locked(Stream stream, std::uint64_t offset, const char* data,
                                std::size_t n) {
  queued_bytes_ += n;
  const std::size_t limit = settings_.max_chunk_bytes;
  if (!queue_.empty() && queue_.back().stream == stream && queue_.back().bytes.size() < limit) {
    // Coalesce with the unsent tail of the same stream: fewer, larger messages.
    Chunk& tail = queue_.back();
    const std::size_t take = std::min(n, limit - tail.bytes.size());
    tail.bytes.append(data, take);
    data += take;
    offset += take;
    n -= take;
  }
  while (n > 0) {
    const std::size_t take = std::min(n, limit);
    queue_.push_back(Chunk{stream, offset, std::string(data, take)});
    data += take;
    offset += take;
    n -= take;
  }
}

void ExecSession::pump() {
  std::unique_lock lock(mutex_);
  if (write_in_flight_ || finish_called_) return;
  const bool idle = io_done_ && posts_ == 0;
  if (stopped_ || exit_sent_) {
    if (!idle) return;
    finish_called_ = true;
    grpc::Status status = stopped_ ? stop_status_ : grpc::Status::OK;
    lock.unlock();
    Finish(std::move(status));
    return;  // the session may already be deleted
  }
  if (started_message_) {
    current_ = std::move(*started_message_);
    started_message_.reset();
  } else if (!queue_.empty()) {
    Chunk& chunk = queue_.front();
    current_.Clear();
    if (chunk.stream == kStdout) {
      current_.set_stdout(std::move(chunk.bytes));
    } else {
      current_.set_stderr(std::move(chunk.bytes));
    }
    current_.set_offset(chunk.offset);
    queued_bytes_ -= (chunk.stream == kStdout ? current_.stdout() : current_.stderr()).size();
    queue_.pop_front();
    if (reads_paused_ && queued_bytes_ <= kLowWaterBytes) {
      reads_paused_ = false;
      post_locked([this] { resume_reads(); });
    }
  } else if (exit_message_) {
    current_ = std::move(*exit_message_);
    exit_message_.reset();
    exit_sent_ = true;
  } else {
    return;
  }
  write_in_flight_ = true;
  lock.unlock();
  StartWrite(&current_);
}

// ---------------------------------------------------------------- strand side

void ExecSession::begin_io() {
  start_read(kStdout);
  start_read(kStderr);
  if (stdin_bytes_.empty()) {
    stdin_.close();
  } else {
    ++ops_;
    asio::async_write(stdin_, asio::buffer(stdin_bytes_),
                      [this](const asio::error_code&, std::size_t) {
                        --ops_;
                        // EPIPE is fine: the command did not read all its input. Closing sends EOF.
                        asio::error_code ignored;
                        stdin_.close(ignored);
                        maybe_io_done();
                      });
  }
  ++ops_;
  pidfd_.async_wait(asio::posix::descriptor_base::wait_read, [this](const asio::error_code&) {
    --ops_;
    on_child_exit();
  });
  if (timeout_ms_ > 0 && !kill_started_) {
    ++ops_;
    // Clamped so that a huge timeout cannot overflow the clock arithmetic.
    constexpr std::uint64_t kMaxTimeoutMs = 366ull * 24 * 3600 * 1000;
    timeout_timer_.expires_after(std::chrono::milliseconds(std::min(timeout_ms_, kMaxTimeoutMs)));
    timeout_timer_.async_wait([this](const asio::error_code& ec) {
      --ops_;
      if (!ec && !reaped_ && !kill_started_) {
        timed_out_ = true;
        log("info", "exec.timeout", {{"exec_id", exec_id_}});
        begin_kill();
      }
      maybe_io_done();
    });
  }
}

void ExecSession::start_read(Stream stream) {
  OutputPipe& p = pipe(stream);
  ++ops_;
  p.fd.async_read_some(asio::buffer(p.buffer.get(), kReadBufferBytes),
                       [this, stream](const asio::error_code& ec, std::size_t n) {
                         --ops_;
                         on_read(stream, ec, n);
                       });
}

void ExecSession::on_read(Stream stream, const asio::error_code& ec, std::size_t n) {
  OutputPipe& p = pipe(stream);
  if (n > 0) {
    const std::uint64_t offset = p.total;
    p.total += n;
    std::size_t keep = n;
    if (max_output_bytes_ > 0) {
      // Past the cap, bytes are counted but not sent; the pipe keeps draining.
      const std::uint64_t room = offset < max_output_bytes_ ? max_output_bytes_ - offset : 0;
      keep = static_cast<std::size_t>(std::min<std::uint64_t>(n, room));
      if (keep < n) p.truncated = true;
    }
    bool wrote = false;
    {
      std::lock_guard lock(mutex_);
      if (!stopped_ && keep > 0) {
        append_locked(stream, offset, p.buffer.get(), keep);
        wrote = true;
        if (queued_bytes_ > kHighWaterBytes) {
          reads_paused_ = true;
          p.paused = true;
        }
      }
    }
    if (wrote) pump();  // cannot finish the RPC here: io_done_ is still false
  }
  if (ec) {
    asio::error_code ignored;
    p.fd.close(ignored);  // EOF, or closed by the drain timer
  } else if (!p.paused) {
    start_read(stream);
  }
  maybe_io_done();
}

void ExecSession::resume_reads() {
  for (Stream stream : {kStdout, kStderr}) {
    OutputPipe& p = pipe(stream);
    if (p.paused) {
      p.paused = false;
      if (p.fd.is_open()) start_read(stream);
    }
  }
}

void ExecSession::on_child_exit() {
  // The pidfd is readable: the child is a zombie until reaped, so its pid cannot be reused
  // and the group signal cannot hit a stranger. Kill what the command left in background so
  // nothing keeps the pipes open, then reap.
  signal_process_group(pid_, SIGKILL);
  exit_status_ = reap_process(pid_);
  ended_at_ = std::chrono::steady_clock::now();
  reaped_ = true;
  asio::error_code ignored;
  pidfd_.close(ignored);
  timeout_timer_.cancel();
  kill_timer_.cancel();
  stdin_.close(ignored);  // a pending stdin write can never complete now
  if (stdout_.fd.is_open() || stderr_.fd.is_open()) {
    // A descendant that left the process group could hold the pipes open forever: drain for
    // at most the grace period, then close them.
    ++ops_;
    drain_timer_.expires_after(settings_.kill_grace);
    drain_timer_.async_wait([this](const asio::error_code& ec) {
      --ops_;
      if (!ec) {
        asio::error_code ignored_close;
        stdout_.fd.close(ignored_close);
        stderr_.fd.close(ignored_close);
      }
      maybe_io_done();
    });
  }
  maybe_io_done();
}

void ExecSession::begin_kill() {
  if (kill_started_ || reaped_ || pid_ <= 0) return;
  kill_started_ = true;
  signal_process_group(pid_, SIGTERM);
  timeout_timer_.cancel();
  ++ops_;
  kill_timer_.expires_after(settings_.kill_grace);
  kill_timer_.async_wait([this](const asio::error_code& ec) {
    --ops_;
    if (!ec && !reaped_) signal_process_group(pid_, SIGKILL);
    maybe_io_done();
  });
}

void ExecSession::maybe_io_done() {
  if (io_finished_ || !reaped_ || stdout_.fd.is_open() || stderr_.fd.is_open()) return;
  drain_timer_.cancel();
  if (ops_ > 0) return;  // cancelled operations still have to deliver their handlers
  io_finished_ = true;
  const v1::ExecResponse exit = exit_message();
  log("info", "exec.exit",
      {{"exec_id", exec_id_},
       {"exit_code", std::to_string(exit.exit_code())},
       {"signal", std::to_string(exit.exit().signal())},
       {"timed_out", exit.exit().timed_out() ? "true" : "false"},
       {"duration_ms", std::to_string(exit.exit().duration_ms())},
       {"stdout_bytes", std::to_string(exit.exit().stdout_bytes())},
       {"stderr_bytes", std::to_string(exit.exit().stderr_bytes())}});
  {
    std::lock_guard lock(mutex_);
    io_done_ = true;
    if (!stopped_) exit_message_ = exit;
  }
  pump();  // last: it may finish the RPC
}

v1::ExecResponse ExecSession::exit_message() const {
  v1::ExecResponse message;
  message.set_exit_code(timed_out_ ? 124 : exit_status_.exit_code);
  v1::ExitDetails* details = message.mutable_exit();
  details->set_signal(exit_status_.signal);
  details->set_timed_out(timed_out_);
  details->set_stdout_truncated(stdout_.truncated);
  details->set_stderr_truncated(stderr_.truncated);
  details->set_stdout_bytes(stdout_.total);
  details->set_stderr_bytes(stderr_.total);
  details->set_duration_ms(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(ended_at_ - started_at_).count()));
  details->set_effective_profile(kEffectiveProfile);
  return message;
}

}  // namespace sandbox::agent
