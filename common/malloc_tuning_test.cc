// RetainFreedMemoryForReplanning: after it, a plan-sized block comes from the heap and stays there
// once freed (what the next plan reuses instead of page-faulting it in again).
#include "common/malloc_tuning.h"

#include <cstdlib>
#include <cstring>

#include "gtest/gtest.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace fcp {
namespace {

TEST(MallocTuningTest, APlanSizedBlockComesFromTheHeapAndStaysAfterFree) {
#if !defined(__GLIBC__) || defined(__SANITIZE_ADDRESS__)
  EXPECT_FALSE(RetainFreedMemoryForReplanning());
  GTEST_SKIP() << "not glibc's allocator (sanitizer build or another C library): the settings do "
                  "not apply";
#else
  ASSERT_TRUE(RetainFreedMemoryForReplanning());
  constexpr size_t kBlock = size_t{16} << 20;  // above glibc's default mmap threshold (128 KiB)
  const struct mallinfo2 before = mallinfo2();
  void* block = std::malloc(kBlock);
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, kBlock);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblks, before.hblks) << "the block was mapped on its own";
  EXPECT_GE(during.arena, before.arena + kBlock);  // from the heap
  std::free(block);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_GE(after.fordblks, kBlock) << "the freed block went back to the kernel";
  EXPECT_EQ(after.arena, during.arena);  // not trimmed
#endif
}

}  // namespace
}  // namespace fcp
