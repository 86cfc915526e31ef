#include "agent/session_registry.hpp"

#include "agent/exec_session.hpp"

namespace sandbox::agent {

grpc::Status SessionRegistry::admit(ExecSession& session) {
  std::lock_guard lock(mutex_);
  if (closed_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent is shutting down");
  for (const ExecSession* live : sessions_) {
    if (live->exec_id() == session.exec_id()) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          "exec_id: an exec with this id is already running");
    }
  }
  sessions_.insert(&session);
  return grpc::Status::OK;
}

void SessionRegistry::remove(ExecSession& session) noexcept {
  std::lock_guard lock(mutex_);
  sessions_.erase(&session);
  if (sessions_.empty()) empty_.notify_all();
}

void SessionRegistry::close(const grpc::Status& status) {
  std::lock_guard lock(mutex_);
  closed_ = true;
  // abort() never calls into gRPC, so the session cannot reach OnDone (and remove(), which
  // takes this mutex) from inside this loop.
  for (ExecSession* session : sessions_) session->abort(status);
}

void SessionRegistry::wait_until_empty() {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [this] { return sessions_.empty(); });
}

}  // namespace sandbox::agent
