// The executions of one server, by exec_id: who starts, who reattaches, what Cancel finds.
#pragma once

#include <grpcpp/support/status.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "sandbox/v1/sandbox_exec.pb.h"

namespace sandbox::agent {

class Execution;

/// What identifies the command of a request: everything but `resume`, serialised
/// deterministically. Two calls with one exec_id must carry the same fingerprint.
std::string request_fingerprint(const v1::ExecRequest& request);

/// Tracks every execution from its start until it leaves (after its retention, or at once
/// when it cannot be reattached), so that one exec_id never runs twice, a retry finds the
/// run it belongs to, Cancel finds what to kill, and shutdown can stop everything and wait.
/// Thread-safe. Outlives every execution it admits.
class ExecRegistry {
 public:
  /// `tombstone_retention`: how long a Cancel of an unknown exec_id keeps that id from
  /// starting later (an Exec that arrives after the Cancel of the same call, e.g. reordered
  /// across connections). `max_running`: how many admitted executions may be running (not
  /// yet ended) at once; a new one beyond is refused.
  ExecRegistry(std::chrono::milliseconds tombstone_retention, std::size_t max_running);

  /// What an Exec call with this exec_id is to do.
  struct Request {
    const std::string& exec_id;
    const std::string& fingerprint;  ///< identifies the command (everything but `resume`)
    bool resumes_past_zero;          ///< non-zero resume offsets: the client holds output
    bool attach_only = false;        ///< the client saw `started`: never run it anew
  };

  /// Decides, under the registry's lock, between starting a new execution (`create()` makes
  /// it, then `run(execution, true)`) and reattaching to the known one (`run(execution,
  /// false)`). `run` is called under the lock, so what it posts to the execution's strand
  /// is ordered before any Cancel or shutdown that follows. Returns, without calling either:
  /// UNAVAILABLE once closed; ABORTED for an id a Cancel already ended; FAILED_PRECONDITION
  /// for a known id with another command; ALREADY_EXISTS for a running id the agent
  /// assigned; NOT_FOUND for non-zero resume offsets of an id it does not know (running the
  /// command again would run it twice); RESOURCE_EXHAUSTED for a new execution while
  /// `max_running` run (a reattach to a known one is never refused for that).
  grpc::Status admit(const Request& request,
                     const std::function<std::shared_ptr<Execution>()>& create,
                     const std::function<void(const std::shared_ptr<Execution>&, bool)>& run);

  /// The Cancel RPC: signals the execution of `exec_id` (`Execution::cancel`) and says what
  /// it found. An unknown id is remembered (see the constructor).
  v1::CancelResponse::State cancel(const std::string& exec_id, int signal);

  /// Told exactly once by each admitted execution when its command has ended (or could not
  /// be started at all): frees its running slot. It may stay registered for reattach.
  void on_ended() noexcept;

  /// Forgets `execution` (if it is still the one registered under its id). Wakes
  /// wait_until_empty.
  void remove(const Execution& execution) noexcept;

  /// Refuses every later admit and aborts each execution with `status`
  /// (`Execution::abort`: it kills the command and ends its call).
  void close(const grpc::Status& status);

  /// Blocks until every admitted execution has left.
  void wait_until_empty();

 private:
  void forget_expired_tombstones_locked(std::chrono::steady_clock::time_point now);

  const std::chrono::milliseconds tombstone_retention_;
  const std::size_t max_running_;
  std::mutex mutex_;
  std::condition_variable empty_;
  std::map<std::string, std::shared_ptr<Execution>, std::less<>> executions_;  // guarded
  // Cancelled unknown ids, oldest first; guarded by mutex_.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> tombstone_order_;
  std::set<std::string, std::less<>> tombstones_;
  std::size_t running_ = 0;  // admitted and not ended; guarded by mutex_
  bool closed_ = false;      // guarded by mutex_
};

}  // namespace sandbox::agent
