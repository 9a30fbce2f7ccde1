#include "kernels/tile_scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace fcp {
namespace kernels {
namespace internal {
namespace {

using ::testing::ElementsAre;

TEST(GroupByOverlapTest, OverlapIsTransitiveAndAdjacencyIsNot) {
  // Tiles 0 and 3 overlap, 3 and 1 overlap (so 0, 1, 3 group); 2 only touches 1's end.
  const std::vector<WriteRange> ranges = {
      {100, 110, 0}, {115, 130, 1}, {130, 140, 2}, {105, 120, 3}, {500, 510, 4}};
  EXPECT_THAT(GroupByOverlap(ranges),
              ElementsAre(ElementsAre(0, 1, 3), ElementsAre(2), ElementsAre(4)));
}

TEST(GroupByOverlapTest, SeveralRangesPerTileAndEmptyRanges) {
  // Tile 0 writes two places; tile 2 overlaps the second. Tile 1's range is empty.
  const std::vector<WriteRange> ranges = {{0, 10, 0}, {50, 60, 0}, {7, 7, 1}, {55, 56, 2}};
  EXPECT_THAT(GroupByOverlap(ranges), ElementsAre(ElementsAre(0, 2)));
}

TEST(GroupByOverlapTest, RangeOfCountsElements) {
  const float x[4] = {};
  const WriteRange r = RangeOf(x + 1, 2, 9);
  EXPECT_EQ(r.end - r.begin, 2 * sizeof(float));
  EXPECT_EQ(r.tile, 9);
}

TEST(ParallelForTest, RunsEveryUnitOnce) {
  for (int threads : {1, 4}) {
    std::vector<std::atomic<int>> runs(100);
    ParallelFor(std::vector<double>(runs.size(), 1.0), threads, [&](size_t u) { ++runs[u]; });
    for (const auto& r : runs) EXPECT_EQ(r.load(), 1);
  }
}

TEST(ParallelForTest, ResolvesNonPositiveThreadsToHardware) {
  EXPECT_GE(ResolveThreads(0), 1);
  EXPECT_EQ(ResolveThreads(3), 3);
}

}  // namespace
}  // namespace internal
}  // namespace kernels
}  // namespace fcp
