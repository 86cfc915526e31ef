// One Exec call: the command's process and the gRPC stream that reports it.
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>
#include <sys/types.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/process.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

class SessionRegistry;

/// What every session of one server shares. Owned by the server, which outlives its sessions.
struct SessionSettings {
  asio::io_context::executor_type executor;  ///< runs the process I/O
  std::string sandbox_id;                    ///< reported in Started
  std::chrono::milliseconds kill_grace;      ///< SIGTERM -> SIGKILL delay
  std::size_t max_chunk_bytes;               ///< largest stdout/stderr payload per message
};

/// The reactor of one accepted Exec call and the process it runs.
///
/// Stream: `started`, then stdout/stderr chunks (each with its stream offset) as soon as the
/// command produces them, coalesced up to `max_chunk_bytes` while a write is in flight, then
/// one `exit_code` with `exit`, then Finish(OK). On cancellation (client cancel, deadline,
/// disconnect) or abort: SIGTERM to the process group, SIGKILL after the grace period, reap,
/// then Finish with the cancel/abort status. The RPC never finishes before the child is
/// reaped and its pipes are closed.
///
/// Threads: gRPC reactions (OnWriteDone, OnCancel, OnDone) run on gRPC threads; all process
/// I/O runs on a strand of `settings.executor`. State shared by both is guarded by `mutex_`;
/// gRPC is never called with it held, because a reaction may run inline.
///
/// Ownership: created with new by the service, deleted by itself in OnDone.
class ExecSession final : public grpc::ServerWriteReactor<v1::ExecResponse> {
 public:
  /// Prepares a session; nothing runs until start(). `request` is copied where needed.
  ExecSession(const SessionSettings& settings, SessionRegistry& registry, std::string exec_id,
              LaunchSpec spec, const v1::ExecRequest& request);

  /// The exec's id (the client's, or one the agent generated). Immutable; any thread.
  const std::string& exec_id() const noexcept { return exec_id_; }

  /// Spawns the command and starts streaming. Call once, after SessionRegistry::admit, from
  /// the method handler. A command that cannot start still gets `started`, a one-line stderr
  /// chunk and exit code 126/127, like a shell.
  void start();

  /// Stops the session from outside the RPC (agent shutdown): kills the command as on
  /// cancellation and finishes with `status`. Thread-safe; never calls gRPC, never blocks.
  void abort(grpc::Status status);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  enum Stream { kStdout = 0, kStderr = 1 };

  struct Chunk {
    Stream stream;
    std::uint64_t offset;
    std::string bytes;
  };

  // One of the command's output pipes; strand-only.
  struct OutputPipe {
    explicit OutputPipe(const asio::strand<asio::io_context::executor_type>& strand) : fd(strand) {}
    asio::posix::stream_descriptor fd;
    std::unique_ptr<char[]> buffer;
    bool paused = false;      // not reading while too much output is queued
    std::uint64_t total = 0;  // every byte the command wrote, sent or not
    bool truncated = false;
  };

  // Strand side.
  void begin_io();
  void start_read(Stream stream);
  void on_read(Stream stream, const asio::error_code& ec, std::size_t n);
  void resume_reads();
  void on_child_exit();
  void begin_kill();
  void maybe_io_done();
  v1::ExecResponse exit_message() const;
  OutputPipe& pipe(Stream stream) { return stream == kStdout ? stdout_ : stderr_; }

  // Shared side; the _locked functions require mutex_.
  void pump();
  bool stop_locked(grpc::Status status);
  void append_locked(Stream stream, std::uint64_t offset, const char* data, std::size_t n);
  template <class Function>
  void post_locked(Function function);

  const SessionSettings& settings_;
  SessionRegistry& registry_;
  const std::string exec_id_;
  const LaunchSpec spec_;
  const std::uint64_t timeout_ms_;
  const std::uint64_t max_output_bytes_;  // 0 = no cap

  // Strand-only after start() posts begin_io (start() initialises them before posting).
  asio::strand<asio::io_context::executor_type> strand_;
  OutputPipe stdout_;
  OutputPipe stderr_;
  asio::posix::stream_descriptor stdin_;
  asio::posix::stream_descriptor pidfd_;
  asio::steady_timer timeout_timer_;
  asio::steady_timer kill_timer_;
  asio::steady_timer drain_timer_;
  std::string stdin_bytes_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point started_at_;
  std::chrono::steady_clock::time_point ended_at_;
  ExitStatus exit_status_;
  int ops_ = 0;  // asio operations in flight
  bool reaped_ = false;
  bool kill_started_ = false;
  bool timed_out_ = false;
  bool io_finished_ = false;

  std::mutex mutex_;
  // Guarded by mutex_:
  std::optional<v1::ExecResponse> started_message_;  // sent first
  std::deque<Chunk> queue_;                          // output not yet sent
  std::size_t queued_bytes_ = 0;
  std::optional<v1::ExecResponse> exit_message_;  // set once I/O is done; sent last
  bool io_done_ = false;          // process reaped, pipes closed, no asio op in flight
  int posts_ = 0;                 // handlers posted to the strand and not yet finished
  bool process_started_ = false;  // a child exists (begin_io posted)
  bool reads_paused_ = false;     // a pipe stopped reading for backpressure
  bool write_in_flight_ = false;  // current_ belongs to gRPC until OnWriteDone
  bool exit_sent_ = false;
  bool stopped_ = false;  // cancelled or aborted: send nothing more
  bool finish_called_ = false;
  grpc::Status stop_status_;
  v1::ExecResponse current_;
};

}  // namespace sandbox::agent
