#include "common/malloc_tuning.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fcp {

bool RetainFreedMemoryForReplanning() {
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
  // Each setting on its own: glibc fixes the mmap threshold once it is set (no dynamic raise).
  const bool heap_blocks = mallopt(M_MMAP_THRESHOLD, static_cast<int>(kHeapBlockBytes)) == 1;
  const bool retained_top = mallopt(M_TRIM_THRESHOLD, static_cast<int>(kRetainedTopBytes)) == 1;
  return heap_blocks && retained_top;
#else
  return false;
#endif
}

}  // namespace fcp
