#pragma once
/// @file
/// The bridge between Asio completion handlers and the SDK's non-template core: a handler is
/// wrapped so that the core may complete it from any thread (a gRPC thread included) and the
/// handler still runs as if posted to its associated executor, after its cancellation slot
/// was cleared there.

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <memory>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "sandbox/detail/unique_function.hpp"

namespace sandbox::detail {

/// Something a cancellation slot can cancel. `cancel()` is safe from any thread, any number
/// of times, also after the operation completed.
class Cancellable {
 public:
  virtual ~Cancellable() = default;
  /// Requests cancellation; the operation still completes exactly once.
  virtual void cancel() noexcept = 0;
};

/// An operation created by the core, started after the caller installed its cancellation
/// handler (so a completion can never race the installation).
class Operation : public Cancellable {
 public:
  /// Starts the I/O. Called once.
  virtual void start() = 0;
};

/// Cancellation-slot handler: terminal cancellation cancels the target. Holds it weakly so a
/// slot that outlives the operation keeps nothing alive.
class CancelOnTerminal {
 public:
  explicit CancelOnTerminal(std::weak_ptr<Cancellable> target) : target_(std::move(target)) {}
  void operator()(asio::cancellation_type type) const {
    if ((type & asio::cancellation_type::terminal) != asio::cancellation_type::none) {
      if (auto target = target_.lock()) target->cancel();
    }
  }

 private:
  std::weak_ptr<Cancellable> target_;
};

/// The executor `executor` holds, if it is a `Target`; null otherwise (and always without
/// RTTI). Asio 1.22's `target<T>()` casts without checking the type, so it is checked here.
template <typename Target>
const Target* target_if(const asio::any_io_executor& executor) noexcept {
#if !defined(ASIO_NO_TYPEID)
  if (executor && executor.target_type() == typeid(Target)) return executor.target<Target>();
#endif
  return nullptr;
}

/// Posts `function` to `executor`. An `any_io_executor` that holds an io_context's executor
/// (with or without tracked work) is unwrapped first: posting through the type-erased
/// executor wraps the function twice (two allocations on the completing thread, each freed
/// on the io_context's), the io_context's own executor once.
template <typename Executor, typename Function>
void post_unwrapped(const Executor& executor, Function&& function) {
  if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
    using plain = asio::io_context::executor_type;
    using tracked = std::decay_t<decltype(asio::prefer(std::declval<const plain&>(),
                                                       asio::execution::outstanding_work.tracked))>;
    if (const auto* io = target_if<tracked>(executor)) {
      return asio::post(*io, std::forward<Function>(function));
    }
    if (const auto* io = target_if<plain>(executor)) {
      return asio::post(*io, std::forward<Function>(function));
    }
  }
  asio::post(executor, std::forward<Function>(function));
}

/// Wraps `handler` into a `UniqueFunction<void(Args...)>` that, when called from any thread,
/// posts the handler to its associated executor (falling back to `fallback`), clears the
/// handler's cancellation slot there, then invokes it. Outstanding work is tracked on that
/// executor until then. Call the result exactly once.
template <typename... Args, typename Handler, typename Executor>
UniqueFunction<void(Args...)> posted_completion(Handler handler, const Executor& fallback) {
  auto executor = asio::get_associated_executor(handler, fallback);
  auto slot = asio::get_associated_cancellation_slot(handler);
  return [handler = std::move(handler), work = asio::make_work_guard(executor),
          slot](Args&&... args) mutable {
    auto target = work.get_executor();
    // The work guard travels with the handler and is released on the target executor right
    // after the handler ran, as Asio's own operations do. Released on the completing gRPC
    // thread instead, it could drop the io_context's work count to zero at some later
    // moment and stop a run() that the user's next operation still needed.
    post_unwrapped(target, [handler = std::move(handler), work = std::move(work), slot,
                            ... args = std::move(args)]() mutable {
      if (slot.is_connected()) slot.clear();
      std::move(handler)(std::move(args)...);
      work.reset();
    });
  };
}

}  // namespace sandbox::detail
