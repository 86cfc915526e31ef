// One command's run, independent of the Exec calls that report it: a lost connection
// detaches a call, a retry attaches a new one, and only Cancel (or the grace) kills it.
#pragma once

#include <grpcpp/support/status.h>
#include <sys/types.h>

#include <array>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "agent/output_log.hpp"
#include "agent/process.hpp"
#include "agent/redactor.hpp"
#include "sandbox/tracing.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

class ExecRegistry;
class ExecSession;

using strand_type = asio::strand<asio::io_context::executor_type>;

/// What every execution of one server shares. Owned by the server, which outlives them.
struct ExecSettings {
  asio::io_context::executor_type executor;    ///< runs the process I/O
  std::string sandbox_id;                      ///< reported in Started
  std::chrono::milliseconds kill_grace;        ///< SIGTERM -> SIGKILL delay
  std::size_t max_chunk_bytes;                 ///< largest stdout/stderr payload per message
  std::chrono::milliseconds reattach_grace;    ///< a detached running exec is killed after this
  std::chrono::milliseconds resume_retention;  ///< an ended exec is remembered this long
  std::uint64_t resume_buffer_bytes;           ///< delivered output kept per exec for resume
  std::uint64_t max_output_bytes;              ///< the agent's per-stream cap (positive)
  std::chrono::milliseconds max_timeout;       ///< longest command timeout (and the default)
};

/// The command of one exec_id: its process, its retained output, and the call attached to it
/// (at most one at a time).
///
/// Lifecycle: start() spawns and attaches the first call. A call that is cancelled or whose
/// stream breaks detaches; while the command runs detached, a reattachable exec (one whose
/// exec_id the client chose) is killed after `reattach_grace`, any other at once. A new call
/// with the same exec_id attaches (reattach) and is sent `started{resumed}`, the output past
/// its resume offsets, then the exit; a call still attached then ends with ABORTED. Once the
/// command ended and no call is attached, the exec is remembered for `resume_retention`,
/// then leaves the registry.
///
/// Threads: every public function may be called from any thread; each posts to the strand,
/// where all state lives. Ownership: shared (registry, sessions, posted handlers).
class Execution final : public std::enable_shared_from_this<Execution> {
 public:
  /// Prepares an exec; nothing runs until start(). `fingerprint` identifies the request
  /// (everything but `resume`): a reattach with another one is refused.
  Execution(const ExecSettings& settings, ExecRegistry& registry, std::string exec_id,
            bool reattachable, std::string fingerprint, LaunchSpec spec,
            const v1::ExecRequest& request);
  ~Execution();

  Execution(const Execution&) = delete;
  Execution& operator=(const Execution&) = delete;

  /// Immutable; any thread.
  [[nodiscard]] const std::string& exec_id() const noexcept { return exec_id_; }
  [[nodiscard]] const std::string& fingerprint() const noexcept { return fingerprint_; }
  [[nodiscard]] bool reattachable() const noexcept { return reattachable_; }
  /// True once the command has ended (reaped, output drained). Any thread.
  [[nodiscard]] bool ended() const noexcept { return ended_.load(); }

  /// Spawns the command with `session` attached. Once.
  void start(std::shared_ptr<ExecSession> session);
  /// Attaches `session` from `offsets` (bytes of stdout, stderr the client holds). A resume
  /// the retained output cannot serve ends the session with DATA_LOSS or OUT_OF_RANGE.
  void attach(std::shared_ptr<ExecSession> session, std::array<std::uint64_t, 2> offsets);
  /// The Cancel RPC: signals the process group now with `signal` (SIGTERM is followed by
  /// SIGKILL after the kill grace). No-op once the command ended.
  void cancel(int signal);
  /// Agent shutdown: kills the command, ends the attached call with `status`, forgets the
  /// retention and leaves the registry as soon as the command is reaped.
  void abort(grpc::Status status);

  // From ExecSession's reactions, on the strand.
  void on_write_done(const std::shared_ptr<ExecSession>& session, bool ok, bool exit_written);
  void on_cancel(const std::shared_ptr<ExecSession>& session);

  /// Runs `function` on the strand, keeping this alive until it ran.
  template <class Function>
  void dispatch(Function function) {
    asio::post(strand_, [self = shared_from_this(), function = std::move(function)]() mutable {
      function();
    });
  }

 private:
  struct OutputPipe {
    explicit OutputPipe(const strand_type& strand) : fd(strand) {}
    asio::posix::stream_descriptor fd;
    std::unique_ptr<char[]> buffer;
    bool reading = false;  // a read is in flight
    bool paused = false;   // not reading while the attached call lags too far behind
    Redactor redactor;     // this exec's secrets, out of what the log stores
  };

  // All strand-only.
  void spawn();
  void begin_io();
  void start_read(OutputStream stream);
  void on_read(OutputStream stream, const asio::error_code& ec, std::size_t n);
  void append_output(OutputStream stream, std::string_view data);
  void close_pipe(OutputStream stream);
  void on_child_exit();
  void begin_kill(int signal);
  void maybe_ended();
  void pump();
  void update_backpressure();
  void detach(grpc::Status status);
  void on_detached();
  void schedule_retention();
  void finish_run();
  void mark_ended();
  void leave_registry();
  v1::ExecResponse started_message(bool resumed) const;
  v1::ExecResponse exit_message() const;
  OutputPipe& pipe(OutputStream stream) { return stream == OutputStream::out ? stdout_ : stderr_; }

  const ExecSettings& settings_;
  ExecRegistry& registry_;
  const std::string exec_id_;
  const bool reattachable_;
  const std::string fingerprint_;
  LaunchSpec spec_;                          // its workdir_fd is closed once the command started
  const std::chrono::milliseconds timeout_;  // the request's, clamped to the agent's
  std::atomic<bool> ended_{false};

  strand_type strand_;
  OutputLog log_;
  OutputPipe stdout_;
  OutputPipe stderr_;
  asio::posix::stream_descriptor stdin_;
  asio::posix::stream_descriptor pidfd_;
  asio::steady_timer timeout_timer_;
  asio::steady_timer kill_timer_;
  asio::steady_timer drain_timer_;
  asio::steady_timer grace_timer_;      // detached and running: kill when it fires
  asio::steady_timer retention_timer_;  // ended and detached: forget when it fires
  std::string stdin_bytes_;
  std::string redacted_;  // scratch: one read's output after redaction
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point started_at_;
  std::chrono::steady_clock::time_point ended_at_;
  ExitStatus exit_status_;
  std::optional<v1::ExecResponse> exit_;  // set once the command ended
  std::optional<grpc::Status> failure_;   // the agent could not start it: no exit to report
  std::shared_ptr<ExecSession> attached_;
  std::unique_ptr<Span> process_span_;  // `sandbox.process`, from the spawn to the exit
  OutputLog::Cursor last_cursor_;       // of the last call detached: bounds reads while detached
  bool process_started_ = false;
  bool reaped_ = false;
  bool kill_started_ = false;
  bool timed_out_ = false;
  bool aborted_ = false;
};

}  // namespace sandbox::agent
