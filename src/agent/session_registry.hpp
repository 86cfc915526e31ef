// The set of live Exec sessions of one server.
#pragma once

#include <grpcpp/support/status.h>

#include <condition_variable>
#include <mutex>
#include <set>

namespace sandbox::agent {

class ExecSession;

/// Tracks live sessions so that shutdown can stop them and wait for them, and so that one
/// exec_id never runs twice at the same time. Thread-safe. Outlives every session it admits.
class SessionRegistry {
 public:
  /// Registers `session` before it starts. Returns UNAVAILABLE once closed, ALREADY_EXISTS
  /// when a live session has the same exec_id; the session must not start then.
  grpc::Status admit(ExecSession& session);

  /// Unregisters `session` (from its OnDone). Wakes wait_until_empty.
  void remove(ExecSession& session) noexcept;

  /// Refuses every later admit and asks each live session to stop with `status`
  /// (ExecSession::abort: it kills the command and finishes the RPC once reaped).
  void close(const grpc::Status& status);

  /// Blocks until every admitted session has been removed.
  void wait_until_empty();

 private:
  std::mutex mutex_;
  std::condition_variable empty_;
  std::set<ExecSession*> sessions_;  // guarded by mutex_
  bool closed_ = false;              // guarded by mutex_
};

}  // namespace sandbox::agent
