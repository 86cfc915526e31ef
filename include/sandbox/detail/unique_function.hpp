#pragma once
/// @file
/// A move-only `std::function` (C++23's `move_only_function` is not in C++20), used to pass
/// completion handlers, which are move-only, from the header templates into `src/`.

#include <memory>
#include <type_traits>
#include <utility>

namespace sandbox::detail {

template <typename Signature>
class UniqueFunction;

/// Owns one callable of signature `R(Args...)`; invoking it consumes nothing, but the
/// completion wrappers built on it are invoked at most once.
template <typename R, typename... Args>
class UniqueFunction<R(Args...)> {
 public:
  UniqueFunction() = default;

  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, UniqueFunction>>>
  UniqueFunction(F&& f)  // NOLINT(google-explicit-constructor): a function wrapper converts
      : impl_(std::make_unique<Impl<std::decay_t<F>>>(std::forward<F>(f))) {}

  explicit operator bool() const noexcept { return impl_ != nullptr; }

  R operator()(Args... args) { return impl_->call(std::forward<Args>(args)...); }

 private:
  // By reference from here on: an argument taken by value at each layer was moved once per
  // layer (an ExecResult: six strings and a vector, per move).
  struct Base {
    virtual ~Base() = default;
    virtual R call(Args&&... args) = 0;
  };
  template <typename F>
  struct Impl final : Base {
    explicit Impl(F&& f) : fn(std::move(f)) {}
    explicit Impl(const F& f) : fn(f) {}
    R call(Args&&... args) override { return fn(std::forward<Args>(args)...); }
    F fn;
  };
  std::unique_ptr<Base> impl_;
};

}  // namespace sandbox::detail
