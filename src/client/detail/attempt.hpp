#pragma once
// One attempt of an Exec call: one RPC, as a gRPC read reactor that hands every reaction to
// its call. Attempts of a call run one after another; each has its own ClientContext.

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_callback.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "client/detail/response_sequence.hpp"
#include "client/detail/tsan_annotations.hpp"
#include "sandbox/tracing.hpp"
#include "sandbox/v1/sandbox_exec.grpc.pb.h"

namespace sandbox::detail {

class RunnerCore;

class CallBase;

/// Owns itself from `bind()` until OnDone and keeps its call alive that long, so a call
/// (and its runner membership) ends only after every ClientContext it used is gone.
/// Reactions run on gRPC threads; `cancel()` and `read_next()` may be called from any.
class Attempt final : public grpc::ClientReadReactor<v1::ExecResponse> {
  // First, so it is destroyed last: the call leaves the runner only after this attempt's
  // ClientContext (and with it the grpc call) is gone, before the channel may go.
  std::shared_ptr<CallBase> call_;

 public:
  /// `resume_*`: the offsets the request asks to resume from; chunks must continue there.
  Attempt(std::shared_ptr<CallBase> call, std::uint64_t resume_stdout, std::uint64_t resume_stderr)
      : call_(std::move(call)),
        sequence(resume_stdout, resume_stderr),
        resumed_stdout(resume_stdout),
        resumed_stderr(resume_stderr) {}

  /// Creates the RPC for `request` (which must outlive it) and adds `holds` holds; no
  /// reaction can run before `start()`. Binding runs no reaction, so a caller may hold a lock.
  void bind(const std::shared_ptr<Attempt>& self, RunnerCore& core, const v1::ExecRequest& request,
            int holds);
  /// Issues the first read and starts the call.
  void start();
  /// Starts the next read (at most one in flight; the call's rules decide when).
  void read_next() {
    ordered_before(this);
    StartRead(&response);
  }
  /// Cancels the RPC (TryCancel); its reactions then end with failures and OnDone.
  void cancel() noexcept { context.TryCancel(); }
  /// Whether the agent's initial metadata arrived (the request reached a server).
  [[nodiscard]] bool answered() const noexcept { return answered_.load(); }

  grpc::ClientContext context;
  v1::ExecResponse response;
  ResponseSequence sequence;
  /// Where this attempt's output began (its resume offsets).
  const std::uint64_t resumed_stdout;
  const std::uint64_t resumed_stderr;
  /// This attempt's span (null without a tracer): touched by its reactions, ended by the
  /// call when the attempt is done.
  std::unique_ptr<Span> span;

 private:
  void OnReadInitialMetadataDone(bool ok) override {
    ordered_after(this);
    answered_.store(ok);
    ordered_before(this);
  }
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  std::shared_ptr<Attempt> self_;
  std::atomic<bool> answered_{false};
};

}  // namespace sandbox::detail
