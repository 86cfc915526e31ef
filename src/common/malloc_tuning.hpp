#pragma once
// How sandbox-agent and sandbox-run set up glibc's malloc for streaming output. A program's
// decision, never the library's: the SDK leaves the allocator of the program it is in alone.

namespace sandbox {

/// Raises glibc's trim threshold to 8 MiB (unless the environment sets
/// MALLOC_TRIM_THRESHOLD_ itself). Streamed output is allocated on gRPC's threads and freed
/// on others, 64 KiB at a time; with the default threshold (128 KiB) each thread's arena
/// hands the pages back to the kernel and faults them in again, about 190,000 page faults per
/// GiB streamed through sandbox-run and a quarter of its wall time (docs/performance.md).
/// Call first thing in main(), before any thread starts. No effect without glibc.
void tune_malloc_for_streaming() noexcept;

}  // namespace sandbox
