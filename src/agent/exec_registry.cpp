#include "agent/exec_registry.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "agent/execution.hpp"

namespace sandbox::agent {
namespace {

// Bounds the memory of Cancels for ids never seen, whatever a client sends.
constexpr std::size_t kMaxTombstones = 10000;

}  // namespace

std::string request_fingerprint(const v1::ExecRequest& request) {
  v1::ExecRequest identity = request;
  identity.clear_resume();
  identity.clear_attach_only();  // set on retries: the same exec
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream output(&bytes);
    google::protobuf::io::CodedOutputStream coded(&output);
    // Map entries in key order: the same env gives the same bytes.
    coded.SetSerializationDeterministic(true);
    identity.SerializeToCodedStream(&coded);
  }
  return bytes;
}

ExecRegistry::ExecRegistry(std::chrono::milliseconds tombstone_retention, std::size_t max_running)
    : tombstone_retention_(tombstone_retention), max_running_(max_running) {}

grpc::Status ExecRegistry::admit(
    const Request& request, const std::function<std::shared_ptr<Execution>()>& create,
    const std::function<void(const std::shared_ptr<Execution>&, bool)>& run) {
  std::lock_guard lock(mutex_);
  if (closed_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent is shutting down");
  forget_expired_tombstones_locked(std::chrono::steady_clock::now());
  if (tombstones_.contains(request.exec_id)) {
    return grpc::Status(grpc::StatusCode::ABORTED,
                        "exec_id: this exec was cancelled (Cancel) before it started");
  }
  if (auto found = executions_.find(request.exec_id); found != executions_.end()) {
    const std::shared_ptr<Execution>& known = found->second;
    if (!known->reattachable()) {
      return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                          "exec_id: an exec with this id is already running");
    }
    if (known->fingerprint() != request.fingerprint) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "exec_id: already used for a different request (an exec_id names "
                          "one command; reattach with the same request)");
    }
    run(known, false);
    return grpc::Status::OK;
  }
  if (request.resumes_past_zero || request.attach_only) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        std::string(request.attach_only ? "attach_only" : "resume") +
                            ": no exec with this exec_id on this agent (it ended longer ago "
                            "than the resume retention, or the agent restarted); not "
                            "running it again");
  }
  // No queueing: a client that waits for a slot is better told at once, and can retry.
  if (running_ >= max_running_) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "agent: " + std::to_string(running_) + " execs running, at most " +
                            std::to_string(max_running_) + " (--max-concurrent)");
  }
  std::shared_ptr<Execution> execution = create();
  executions_.emplace(request.exec_id, execution);
  ++running_;
  run(execution, true);
  return grpc::Status::OK;
}

v1::CancelResponse::State ExecRegistry::cancel(const std::string& exec_id, int signal) {
  std::lock_guard lock(mutex_);
  if (auto found = executions_.find(exec_id); found != executions_.end()) {
    if (found->second->ended()) return v1::CancelResponse::STATE_FINISHED;
    found->second->cancel(signal);
    return v1::CancelResponse::STATE_RUNNING;
  }
  const auto now = std::chrono::steady_clock::now();
  forget_expired_tombstones_locked(now);
  if (tombstones_.size() >= kMaxTombstones) {
    tombstones_.erase(tombstone_order_.front().second);
    tombstone_order_.pop_front();
  }
  if (tombstones_.insert(exec_id).second) tombstone_order_.emplace_back(now, exec_id);
  return v1::CancelResponse::STATE_UNKNOWN;
}

void ExecRegistry::on_ended() noexcept {
  std::lock_guard lock(mutex_);
  --running_;
}

void ExecRegistry::remove(const Execution& execution) noexcept {
  std::lock_guard lock(mutex_);
  auto found = executions_.find(execution.exec_id());
  if (found == executions_.end() || found->second.get() != &execution) return;
  // Never the last reference: the execution calls this from a handler that holds its own.
  executions_.erase(found);
  if (executions_.empty()) empty_.notify_all();
}

void ExecRegistry::close(const grpc::Status& status) {
  std::lock_guard lock(mutex_);
  closed_ = true;
  // abort() only posts to the execution's strand: it cannot re-enter this lock here.
  for (auto& [id, execution] : executions_) execution->abort(status);
}

void ExecRegistry::wait_until_empty() {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [this] { return executions_.empty(); });
}

void ExecRegistry::forget_expired_tombstones_locked(std::chrono::steady_clock::time_point now) {
  while (!tombstone_order_.empty() && now - tombstone_order_.front().first > tombstone_retention_) {
    tombstones_.erase(tombstone_order_.front().second);
    tombstone_order_.pop_front();
  }
}

}  // namespace sandbox::agent
