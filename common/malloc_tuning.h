// Allocator settings for a process that plans batch after batch (the coordinator, the `fcp` CLI,
// the planner benchmark).
//
// A plan at W = 1024 allocates and frees tens of MB of short-lived vectors (tiles, transfers,
// per-worker tables). With glibc's defaults, blocks above the dynamic mmap threshold are fresh
// mappings, and the free memory at the top of the heap is returned to the kernel after each
// plan, so every plan page-faults its memory in again: measured on the 2-core build machine,
// ~25% of `auto`'s planning time at W = 1024 (33 ms → 25 ms) and a third of per_doc's, most of it
// in the kernel. Raising both thresholds keeps that memory in the process for the next plan.
//
//   int main(int argc, char** argv) {
//     fcp::RetainFreedMemoryForReplanning();
//     ...
//
// The price: the process keeps up to kRetainedTopBytes of freed heap (and blocks up to
// kHeapBlockBytes come from the heap) instead of handing them back. Environment settings
// (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES) are overridden. A library never
// calls this: the trainers that link fcp's client keep their own allocator settings.
#ifndef FCP_COMMON_MALLOC_TUNING_H_
#define FCP_COMMON_MALLOC_TUNING_H_

#include <cstdint>

namespace fcp {

// Blocks up to this size come from the heap (glibc's largest mmap threshold on 64-bit).
inline constexpr int64_t kHeapBlockBytes = int64_t{32} << 20;
// Free memory up to this size stays at the top of the heap.
inline constexpr int64_t kRetainedTopBytes = int64_t{512} << 20;

// Applies the settings above; true when the allocator took them (glibc), false elsewhere (other C
// libraries, sanitizer builds, whose allocator ignores them).
bool RetainFreedMemoryForReplanning();

}  // namespace fcp

#endif  // FCP_COMMON_MALLOC_TUNING_H_
