#include "service/plan_cache.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace fcp {
namespace {

// A cached plan of `workers` empty slices with the given id.
std::shared_ptr<const CachedPlan> Entry(const std::string& id, int workers = 2) {
  Plan plan;
  plan.plan_id = id;
  for (int r = 0; r < workers; ++r) {
    WorkerPlan w;
    w.rank = r;
    w.tiles.resize(100);
    plan.workers.push_back(w);
  }
  plan.costs.resize(workers);
  return std::make_shared<const CachedPlan>(std::move(plan));
}

TEST(PlanCacheTest, LookupFindsInsertedPlans) {
  PlanCache cache(1 << 20);
  EXPECT_EQ(cache.Lookup("a"), nullptr);
  cache.Insert(Entry("a"));
  ASSERT_NE(cache.Lookup("a"), nullptr);
  EXPECT_EQ(cache.Lookup("a")->plan_id(), "a");
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.stats().bytes, cache.Lookup("a")->charge_bytes());
}

TEST(PlanCacheTest, EvictsLeastRecentlyUsedToStayWithinBytes) {
  const size_t one = Entry("x")->charge_bytes();
  PlanCache cache(3 * one);
  cache.Insert(Entry("a"));
  cache.Insert(Entry("b"));
  cache.Insert(Entry("c"));
  ASSERT_NE(cache.Lookup("a"), nullptr);  // "b" is now the least recently used
  cache.Insert(Entry("d"));
  EXPECT_EQ(cache.Lookup("b"), nullptr);
  EXPECT_NE(cache.Lookup("a"), nullptr);
  EXPECT_NE(cache.Lookup("c"), nullptr);
  EXPECT_NE(cache.Lookup("d"), nullptr);
  EXPECT_LE(cache.stats().bytes, 3 * one);
  EXPECT_EQ(cache.stats().evictions, 1);
}

TEST(PlanCacheTest, ReinsertReplacesAndOversizedPlansAreNotKept) {
  PlanCache cache(Entry("x")->charge_bytes() * 2);
  cache.Insert(Entry("a"));
  cache.Insert(Entry("a"));
  EXPECT_EQ(cache.stats().entries, 1u);
  cache.Insert(Entry("huge", 100));
  EXPECT_EQ(cache.Lookup("huge"), nullptr);
  EXPECT_NE(cache.Lookup("a"), nullptr);
}

TEST(PlanCacheTest, EvictedPlansStayAliveWhileShared) {
  PlanCache cache(Entry("x")->charge_bytes());
  cache.Insert(Entry("a"));
  std::shared_ptr<const CachedPlan> held = cache.Lookup("a");
  cache.Insert(Entry("b"));
  EXPECT_EQ(cache.Lookup("a"), nullptr);
  EXPECT_EQ(held->plan_id(), "a");
}

}  // namespace
}  // namespace fcp
