#pragma once
// How sandbox-agent and sandbox-run set up glibc's malloc for streaming output. A program's
// decision, never the library's: the SDK leaves the allocator of the program it is in alone
// (so this is header-only, and no library calls it).

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sandbox {

/// Raises glibc's trim threshold to 8 MiB (unless the environment sets
/// MALLOC_TRIM_THRESHOLD_ itself). Streamed output is allocated on gRPC's threads and freed
/// on others, 64 KiB at a time; with the default threshold (128 KiB) each thread's arena
/// hands the pages back to the kernel and faults them in again: up to about 200,000 page
/// faults per GiB streamed through sandbox-run (docs/performance.md). Call first thing in main(),
/// before any thread starts. No effect without glibc.
inline void tune_malloc_for_streaming() noexcept {
#if defined(__GLIBC__)
  constexpr int kTrimThresholdBytes = 8 << 20;
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) {
    (void)mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes);
  }
#endif
}

}  // namespace sandbox
