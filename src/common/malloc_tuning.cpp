#include "common/malloc_tuning.hpp"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sandbox {

void tune_malloc_for_streaming() noexcept {
#if defined(__GLIBC__)
  constexpr int kTrimThresholdBytes = 8 << 20;
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) {
    (void)mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes);
  }
#endif
}

}  // namespace sandbox
