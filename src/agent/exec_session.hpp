// The reactor of one Exec call: the writer of what its Execution gives it.
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "agent/exec_trace.hpp"
#include "agent/output_log.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

class Execution;

/// The reactor of one Exec call: writes what its Execution gives it.
///
/// One write is in flight and up to `kStagedMessages` more may wait staged: OnWriteDone
/// starts the next at once on the gRPC thread, so the hop to the execution's strand (which
/// stages more) overlaps writes instead of sitting between two (agent throughput: see
/// docs/performance.md). The write state is guarded by `mutex_`; the public fields are the
/// execution's, strand-only. Reactions only post to the strand otherwise.
///
/// Ownership: shared. gRPC's reference (`self_`) is dropped in OnDone; posted handlers hold
/// their own, so a reaction's handler never outlives the object.
class ExecSession final : public grpc::ServerWriteReactor<v1::ExecResponse>,
                          public std::enable_shared_from_this<ExecSession> {
 public:
  /// A session for `execution`; call `own()` before handing it to gRPC.
  explicit ExecSession(std::shared_ptr<Execution> execution);
  /// Keeps the session alive until OnDone.
  void own() { self_ = shared_from_this(); }

  /// What `offer()` would do with a message now.
  enum class Room { none, write, stage };
  /// Messages that may wait behind the write in flight.
  static constexpr std::size_t kStagedMessages = 4;
  /// Strand: `write` when nothing is in flight, `stage` when one write is and fewer than
  /// `kStagedMessages` wait behind it, else (or once finishing) `none`.
  [[nodiscard]] Room room();
  /// Strand: writes `message` now, or stages it behind the write in flight. Requires
  /// room() != Room::none.
  void offer(v1::ExecResponse message);
  /// Strand: ends the call with `status` once no write is in flight; drops a staged message.
  /// Idempotent.
  void finish(grpc::Status status);

  // Strand, for Execution: the cursor into its output and what this call has been given.
  OutputLog::Cursor cursor;
  bool started_sent = false;
  bool exit_sent = false;
  bool resumed = false;
  /// The call's spans: offer() reports what it sends, finish() ends them.
  ExecTrace trace;

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  std::shared_ptr<Execution> execution_;
  std::shared_ptr<ExecSession> self_;
  std::mutex mutex_;
  // Guarded by mutex_:
  v1::ExecResponse message_;  // gRPC's while writing_
  std::deque<v1::ExecResponse> staged_;
  bool writing_ = false;
  bool finish_called_ = false;
  std::optional<grpc::Status> finish_status_;
};

}  // namespace sandbox::agent
