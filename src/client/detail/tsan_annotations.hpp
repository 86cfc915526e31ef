#pragma once
// Tells ThreadSanitizer about orderings it cannot see. gRPC orders the reactions of one call
// (a read's reaction runs after the StartRead that asked for it; OnDone after every other
// reaction), but Debian's libgrpc is not TSan-built, so a TSan build reports the SDK's
// state handed from one reaction to the next as races. No code outside TSan builds.

#if defined(__SANITIZE_THREAD__)
#define SANDBOX_TSAN_ANNOTATIONS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SANDBOX_TSAN_ANNOTATIONS 1
#endif
#endif

#ifdef SANDBOX_TSAN_ANNOTATIONS
extern "C" void __tsan_acquire(void* address);  // NOLINT(bugprone-reserved-identifier)
extern "C" void __tsan_release(void* address);  // NOLINT(bugprone-reserved-identifier)
#endif

namespace sandbox::detail {

/// What this thread did so far happens before what a later `ordered_after(same)` does.
inline void ordered_before([[maybe_unused]] void* token) noexcept {
#ifdef SANDBOX_TSAN_ANNOTATIONS
  __tsan_release(token);
#endif
}

/// Everything done before an `ordered_before(same)` happens before what follows.
inline void ordered_after([[maybe_unused]] void* token) noexcept {
#ifdef SANDBOX_TSAN_ANNOTATIONS
  __tsan_acquire(token);
#endif
}

}  // namespace sandbox::detail
