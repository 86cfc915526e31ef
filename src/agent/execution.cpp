#include "agent/execution.hpp"

#include <signal.h>

#include <algorithm>
#include <asio/write.hpp>
#include <system_error>
#include <variant>

#include "agent/exec_registry.hpp"
#include "agent/exec_session.hpp"
#include "agent/log.hpp"

namespace sandbox::agent {
namespace {

// One pipe read; a pipe holds 64 KiB by default, so this empties it in one call.
constexpr std::size_t kReadBufferBytes = 64 * 1024;
// Stop reading the pipes while the attached call (or the last one, while detached) lags more
// than this behind the command, and resume below half of it: a slow client then slows the
// command (it blocks on a full pipe) and memory stays bounded.
constexpr std::uint64_t kHighWaterBytes = 256 * 1024;
constexpr std::uint64_t kLowWaterBytes = kHighWaterBytes / 2;

// 0 (no wish) is the agent's maximum; anything else is clamped to it.
std::chrono::milliseconds effective_timeout(std::uint64_t requested_ms,
                                            std::chrono::milliseconds max) {
  const auto max_ms = static_cast<std::uint64_t>(max.count());
  return std::chrono::milliseconds(requested_ms == 0 ? max_ms : std::min(requested_ms, max_ms));
}

std::uint64_t effective_output_cap(std::uint64_t requested, std::uint64_t max) {
  return requested == 0 ? max : std::min(requested, max);
}

}  // namespace

Execution::Execution(const ExecSettings& settings, ExecRegistry& registry, std::string exec_id,
                     bool reattachable, std::string fingerprint, LaunchSpec spec,
                     const v1::ExecRequest& request)
    : settings_(settings),
      registry_(registry),
      exec_id_(std::move(exec_id)),
      reattachable_(reattachable),
      fingerprint_(std::move(fingerprint)),
      spec_(std::move(spec)),
      timeout_(effective_timeout(request.timeout_ms(), settings.max_timeout)),
      strand_(asio::make_strand(settings.executor)),
      log_(settings.max_chunk_bytes, settings.resume_buffer_bytes,
           effective_output_cap(request.max_output_bytes(), settings.max_output_bytes)),
      stdout_(strand_),
      stderr_(strand_),
      stdin_(strand_),
      pidfd_(strand_),
      timeout_timer_(strand_),
      kill_timer_(strand_),
      drain_timer_(strand_),
      grace_timer_(strand_),
      retention_timer_(strand_),
      stdin_bytes_(request.stdin()) {
  // One redactor per stream: a secret split across two reads of one pipe is still found;
  // the other stream's bytes never complete it.
  stdout_.redactor = Redactor(spec_.secrets);
  stderr_.redactor = Redactor(spec_.secrets);
}

Execution::~Execution() {
  if (process_span_) process_span_->end();  // the agent stopped before the exit
}

// ---------------------------------------------------------------- entry points (any thread)

void Execution::start(std::shared_ptr<ExecSession> session) {
  dispatch([this, session = std::move(session)]() mutable {
    attached_ = std::move(session);
    spawn();
    pump();
  });
}

void Execution::attach(std::shared_ptr<ExecSession> session, std::array<std::uint64_t, 2> offsets) {
  dispatch([this, session = std::move(session), offsets]() mutable {
    if (aborted_) {
      session->finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent is shutting down"));
      return;
    }
    if (failure_) {  // admitted just before the failed exec left the registry
      session->finish(*failure_);
      return;
    }
    OutputLog::Cursor cursor;
    if (grpc::Status status = log_.cursor_at(offsets, cursor); !status.ok()) {
      log("info", "exec.resume_refused",
          {{"exec_id", exec_id_}, {"reason", status.error_message()}});
      session->finish(std::move(status));
      return;
    }
    if (attached_) {
      // The newer call is the client's retry; the older one is a stream it gave up on.
      attached_->finish(
          grpc::Status(grpc::StatusCode::ABORTED, "exec_id: another call reattached to this exec"));
    }
    grace_timer_.cancel();
    retention_timer_.cancel();
    session->cursor = cursor;
    session->resumed = true;
    attached_ = std::move(session);
    log("info", "exec.reattached",
        {{"exec_id", exec_id_},
         {"stdout_offset", std::to_string(offsets[0])},
         {"stderr_offset", std::to_string(offsets[1])},
         {"ended", ended() ? "true" : "false"}});
    update_backpressure();
    pump();
  });
}

void Execution::cancel(int signal) {
  dispatch([this, signal] {
    if (!process_started_ || reaped_) return;
    log("info", "exec.cancelled", {{"exec_id", exec_id_}, {"signal", std::to_string(signal)}});
    grace_timer_.cancel();
    begin_kill(signal);
  });
}

void Execution::abort(grpc::Status status) {
  dispatch([this, status = std::move(status)]() mutable {
    aborted_ = true;
    grace_timer_.cancel();
    retention_timer_.cancel();
    if (attached_) {
      attached_->finish(std::move(status));
      attached_.reset();
    }
    begin_kill(SIGTERM);
    update_backpressure();  // nobody will read what is left: drain it
    if (ended()) leave_registry();
  });
}

// ---------------------------------------------------------------- the attached call

void Execution::on_write_done(const std::shared_ptr<ExecSession>& session, bool ok,
                              bool exit_written) {
  if (session != attached_) return;
  if (!ok) {
    // The stream broke: like a lost connection, the command keeps running for a reattach.
    log("info", "exec.detached", {{"exec_id", exec_id_}, {"reason", "write failed"}});
    detach(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
    return;
  }
  if (exit_written) {
    session->finish(grpc::Status::OK);
    last_cursor_ = session->cursor;
    attached_.reset();
    on_detached();
    return;
  }
  pump();
}

void Execution::on_cancel(const std::shared_ptr<ExecSession>& session) {
  // A client may cancel once it holds exit_code: that call has detached already.
  if (session != attached_) return;
  log("info", "exec.detached", {{"exec_id", exec_id_}, {"reason", "call cancelled"}});
  detach(grpc::Status::CANCELLED);
}

void Execution::detach(grpc::Status status) {
  last_cursor_ = attached_->cursor;
  attached_->finish(std::move(status));
  attached_.reset();
  on_detached();
}

void Execution::on_detached() {
  if (ended()) return schedule_retention();
  if (aborted_) return;
  if (!reattachable_ || settings_.reattach_grace.count() == 0) {
    // No client can come back for it: a cancelled call kills its command at once.
    begin_kill(SIGTERM);
  } else {
    grace_timer_.expires_after(settings_.reattach_grace);
    grace_timer_.async_wait([this, self = shared_from_this()](const asio::error_code& ec) {
      if (ec || attached_ || reaped_) return;
      log("info", "exec.reattach_grace_expired", {{"exec_id", exec_id_}});
      begin_kill(SIGTERM);
    });
  }
  update_backpressure();
}

void Execution::pump() {
  // One message in flight and a few staged behind it (ExecSession::offer). Only settled
  // output is staged: while a write is in flight, the last chunk keeps coalescing.
  for (;;) {
    if (!attached_ || attached_->exit_sent) return;
    const ExecSession::Room room = attached_->room();
    if (room == ExecSession::Room::none) return;
    ExecSession& session = *attached_;
    v1::ExecResponse message;
    OutputLog::Piece piece;
    if (!session.started_sent) {
      session.started_sent = true;
      message = started_message(session.resumed);
    } else if (log_.next(session.cursor, piece, room == ExecSession::Room::stage && !ended())) {
      if (piece.stream == OutputStream::out) {
        message.set_stdout(std::move(piece.data));
      } else {
        message.set_stderr(std::move(piece.data));
      }
      message.set_offset(piece.offset);
      log_.release(session.cursor);
      update_backpressure();
    } else if (exit_) {
      session.exit_sent = true;
      message = *exit_;
    } else {
      return;
    }
    session.offer(std::move(message));
  }
}

void Execution::update_backpressure() {
  const std::uint64_t unsent = log_.unsent(attached_ ? attached_->cursor : last_cursor_);
  // Once the main process is gone (or nobody will ever read), only its pipes' last bytes
  // are left: always drain them.
  const bool drain = reaped_ || aborted_;
  for (OutputStream stream : {OutputStream::out, OutputStream::err}) {
    OutputPipe& p = pipe(stream);
    if (!p.fd.is_open()) continue;
    if (!drain && unsent > kHighWaterBytes) {
      p.paused = true;
    } else if (drain || unsent <= kLowWaterBytes) {
      p.paused = false;
      if (!p.reading) start_read(stream);
    }
  }
}

void Execution::schedule_retention() {
  if (aborted_ || !reattachable_ || settings_.resume_retention.count() == 0) {
    return leave_registry();
  }
  retention_timer_.expires_after(settings_.resume_retention);
  retention_timer_.async_wait([this, self = shared_from_this()](const asio::error_code& ec) {
    if (!ec && !attached_) leave_registry();
  });
}

// Once per execution (finish_run, or a spawn the agent itself failed): frees its slot among
// the running execs now, not when it leaves the registry after its retention.
void Execution::mark_ended() {
  ended_ = true;
  registry_.on_ended();
}

void Execution::leave_registry() { registry_.remove(*this); }

// ---------------------------------------------------------------- the process

void Execution::spawn() {
  started_at_ = std::chrono::steady_clock::now();
  std::variant<ChildProcess, SpawnFailure> spawned;
  try {
    spawned = spawn_process(spec_);
    spec_.workdir_fd = UniqueFd();  // the child has its cwd: no descriptor held for the exec
  } catch (const std::system_error& error) {
    log("error", "exec.spawn_failed", {{"exec_id", exec_id_}, {"error", error.what()}});
    reaped_ = true;
    mark_ended();
    failure_ = grpc::Status(grpc::StatusCode::INTERNAL,
                            std::string("agent cannot start commands: ") + error.what());
    attached_->finish(*failure_);
    attached_.reset();
    leave_registry();
    return;
  }
  if (auto* child = std::get_if<ChildProcess>(&spawned)) {
    pid_ = child->pid;
    stdout_.buffer = std::make_unique<char[]>(kReadBufferBytes);
    stderr_.buffer = std::make_unique<char[]>(kReadBufferBytes);
    stdout_.fd.assign(child->stdout_fd.release());
    stderr_.fd.assign(child->stderr_fd.release());
    stdin_.assign(child->stdin_fd.release());
    pidfd_.assign(child->pidfd.release());
    process_started_ = true;
    process_span_ = attached_->trace.start_process();
    log("info", "exec.start",
        {{"exec_id", exec_id_}, {"pid", std::to_string(pid_)}, {"argv0", spec_.argv[0]}});
    begin_io();
  } else {
    // A shell's behaviour: the exec "ran" and failed, reported on stderr with 126/127.
    const SpawnFailure& failure = std::get<SpawnFailure>(spawned);
    log_.append(OutputStream::err, failure.message.data(), failure.message.size());
    exit_status_ = ExitStatus{failure.exit_code, 0};
    reaped_ = true;
    log("info", "exec.not_started",
        {{"exec_id", exec_id_},
         {"exit_code", std::to_string(failure.exit_code)},
         {"argv0", spec_.argv[0]}});
    finish_run();
  }
}

void Execution::begin_io() {
  start_read(OutputStream::out);
  start_read(OutputStream::err);
  if (stdin_bytes_.empty()) {
    stdin_.close();
  } else {
    asio::async_write(stdin_, asio::buffer(stdin_bytes_),
                      [this, self = shared_from_this()](const asio::error_code&, std::size_t) {
                        // EPIPE is fine: the command did not read all its input. Closing
                        // sends EOF.
                        asio::error_code ignored;
                        stdin_.close(ignored);
                      });
  }
  pidfd_.async_wait(asio::posix::descriptor_base::wait_read,
                    [this, self = shared_from_this()](const asio::error_code& ec) {
                      if (!ec) on_child_exit();
                    });
  // Always armed: a request without a timeout gets the agent's maximum.
  timeout_timer_.expires_after(timeout_);
  timeout_timer_.async_wait([this, self = shared_from_this()](const asio::error_code& ec) {
    if (ec || reaped_ || kill_started_) return;
    timed_out_ = true;
    log("info", "exec.timeout",
        {{"exec_id", exec_id_}, {"timeout_ms", std::to_string(timeout_.count())}});
    begin_kill(SIGTERM);
  });
}

void Execution::start_read(OutputStream stream) {
  OutputPipe& p = pipe(stream);
  p.reading = true;
  p.fd.async_read_some(asio::buffer(p.buffer.get(), kReadBufferBytes),
                       [this, self = shared_from_this(), stream](
                           const asio::error_code& ec, std::size_t n) { on_read(stream, ec, n); });
}

void Execution::on_read(OutputStream stream, const asio::error_code& ec, std::size_t n) {
  OutputPipe& p = pipe(stream);
  p.reading = false;
  if (n > 0 && !aborted_) append_output(stream, std::string_view(p.buffer.get(), n));
  if (ec) {
    close_pipe(stream);  // EOF, or closed by the drain timer
    maybe_ended();
  } else if (!p.paused && !p.reading) {
    start_read(stream);
  }
}

// The log (and so the client, a resume, the cap and the totals) only ever sees the output
// redacted.
void Execution::append_output(OutputStream stream, std::string_view data) {
  OutputPipe& p = pipe(stream);
  std::string_view out = data;
  if (p.redactor.active()) {
    redacted_.clear();
    p.redactor.feed(data, redacted_);
    out = redacted_;
  }
  if (out.empty()) return;  // all held: the start of what may be a secret
  log_.append(stream, out.data(), out.size());
  update_backpressure();  // may pause this pipe, or restart its read
  pump();
}

// Closes the pipe (idempotent) and releases what its redactor still held: at EOF a held
// prefix is no secret.
void Execution::close_pipe(OutputStream stream) {
  OutputPipe& p = pipe(stream);
  asio::error_code ignored;
  p.fd.close(ignored);
  if (p.redactor.held() == 0) return;
  redacted_.clear();
  p.redactor.finish(redacted_);
  if (!aborted_) log_.append(stream, redacted_.data(), redacted_.size());
  pump();
}

void Execution::on_child_exit() {
  // The pidfd is readable: the child is a zombie until reaped, so its pid cannot be reused
  // and the group signal cannot hit a stranger. Kill what the command left in background so
  // nothing keeps the pipes open, then reap.
  signal_process_group(pid_, SIGKILL);
  exit_status_ = reap_process(pid_);
  reaped_ = true;
  asio::error_code ignored;
  pidfd_.close(ignored);
  timeout_timer_.cancel();
  kill_timer_.cancel();
  grace_timer_.cancel();
  stdin_.close(ignored);  // a pending stdin write can never complete now
  update_backpressure();  // drain what is left
  if (stdout_.fd.is_open() || stderr_.fd.is_open()) {
    // A descendant that left the process group could hold the pipes open forever: drain for
    // at most the grace period, then close them.
    drain_timer_.expires_after(settings_.kill_grace);
    drain_timer_.async_wait([this, self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return;
      close_pipe(OutputStream::out);
      close_pipe(OutputStream::err);
      maybe_ended();
    });
  }
  maybe_ended();
}

void Execution::begin_kill(int signal) {
  if (reaped_ || pid_ <= 0) return;
  if (signal == SIGKILL) {
    signal_process_group(pid_, SIGKILL);
    kill_started_ = true;
    kill_timer_.cancel();
    timeout_timer_.cancel();
    return;
  }
  if (kill_started_) return;
  kill_started_ = true;
  signal_process_group(pid_, signal);
  timeout_timer_.cancel();
  kill_timer_.expires_after(settings_.kill_grace);
  kill_timer_.async_wait([this, self = shared_from_this()](const asio::error_code& ec) {
    if (!ec && !reaped_) signal_process_group(pid_, SIGKILL);
  });
}

void Execution::maybe_ended() {
  if (ended() || !reaped_ || stdout_.fd.is_open() || stderr_.fd.is_open()) return;
  drain_timer_.cancel();
  finish_run();
}

void Execution::finish_run() {
  ended_at_ = std::chrono::steady_clock::now();
  exit_ = exit_message();
  if (process_span_) {
    end_process_span(*process_span_, *exit_);
    process_span_.reset();
  }
  mark_ended();
  const v1::ExitDetails& details = exit_->exit();
  log("info", "exec.exit",
      {{"exec_id", exec_id_},
       {"exit_code", std::to_string(exit_->exit_code())},
       {"signal", std::to_string(details.signal())},
       {"timed_out", details.timed_out() ? "true" : "false"},
       {"duration_ms", std::to_string(details.duration_ms())},
       {"stdout_bytes", std::to_string(details.stdout_bytes())},
       {"stderr_bytes", std::to_string(details.stderr_bytes())}});
  if (aborted_) return leave_registry();
  if (attached_) return pump();
  schedule_retention();
}

v1::ExecResponse Execution::started_message(bool resumed) const {
  v1::ExecResponse message;
  v1::Started* info = message.mutable_started();
  info->set_exec_id(exec_id_);
  info->set_sandbox_id(settings_.sandbox_id);
  info->set_effective_profile(spec_.effective_profile);
  info->set_resumed(resumed);
  if (process_started_) info->set_pid(pid_);
  return message;
}

v1::ExecResponse Execution::exit_message() const {
  v1::ExecResponse message;
  message.set_exit_code(timed_out_ ? 124 : exit_status_.exit_code);
  v1::ExitDetails* details = message.mutable_exit();
  details->set_signal(exit_status_.signal);
  details->set_timed_out(timed_out_);
  details->set_stdout_truncated(log_.truncated(OutputStream::out));
  details->set_stderr_truncated(log_.truncated(OutputStream::err));
  details->set_stdout_bytes(log_.total(OutputStream::out));
  details->set_stderr_bytes(log_.total(OutputStream::err));
  details->set_duration_ms(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(ended_at_ - started_at_).count()));
  details->set_effective_profile(spec_.effective_profile);
  return message;
}

}  // namespace sandbox::agent
