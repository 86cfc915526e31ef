#pragma once
// Runs a coroutine on an io_context with a bound, so a test that would hang fails instead.

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>

namespace sandbox::test {

/// Runs `task` to completion on `io` (this thread) within `limit`; rethrows its exception.
/// Fails the test (and returns a default T) if it did not finish in time.
template <typename T>
T run_bounded(asio::io_context& io, asio::awaitable<T> task,
              std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  bool done = false;
  std::exception_ptr failure;
  std::optional<T> value;
  if constexpr (std::is_void_v<T>) {
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
      failure = e;
      done = true;
      io.stop();
    });
  } else {
    asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T v) {
      failure = e;
      value = std::move(v);
      done = true;
      io.stop();
    });
  }
  io.restart();
  io.run_for(limit);
  io.restart();
  if (!done) {
    ADD_FAILURE() << "the coroutine did not finish within " << limit.count() << " ms";
    if constexpr (!std::is_void_v<T>)
      return T{};
    else
      return;
  }
  if (failure) std::rethrow_exception(failure);
  if constexpr (!std::is_void_v<T>) return std::move(*value);
}

/// Waits until `predicate` holds, at most `limit`, running `io` meanwhile (if given).
/// Returns whether it held; callers assert with a message saying what did not happen.
template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = std::chrono::seconds(10),
                asio::io_context* io = nullptr) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!predicate()) {
    if (std::chrono::steady_clock::now() > until) return false;
    if (io != nullptr) {
      io->restart();
      io->run_for(std::chrono::milliseconds(2));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  return true;
}

}  // namespace sandbox::test
