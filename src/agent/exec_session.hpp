// The reactor of one Exec call: the writer of what its Execution gives it.
#pragma once

#include <grpcpp/support/server_callback.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <optional>

#include "agent/output_log.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

class Execution;

/// The reactor of one Exec call: writes what its Execution gives it. Every member but the
/// reactions runs on the execution's strand; the reactions only post there.
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

  /// Strand: starts writing `message`; requires !writing().
  void write(v1::ExecResponse message);
  /// Strand: ends the call with `status` once no write is in flight. Idempotent.
  void finish(grpc::Status status);
  /// Strand.
  [[nodiscard]] bool writing() const noexcept { return writing_; }
  /// Strand: finish() was called.
  [[nodiscard]] bool finishing() const noexcept { return finish_status_.has_value(); }

  // Strand, for Execution: the cursor into its output and what this call has been sent.
  OutputLog::Cursor cursor;
  bool started_sent = false;
  bool exit_sent = false;
  bool resumed = false;

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  /// Strand: a write completed; returns false when the call is finishing.
  bool write_done();

  std::shared_ptr<Execution> execution_;
  std::shared_ptr<ExecSession> self_;
  v1::ExecResponse message_;
  bool writing_ = false;
  bool finish_called_ = false;
  std::optional<grpc::Status> finish_status_;
};

}  // namespace sandbox::agent
