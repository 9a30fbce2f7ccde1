// PlanCache: the coordinator's bounded cache of plans, least recently used first out, bounded by
// bytes (CachedPlan::charge_bytes), keyed by plan id. A training step's W ranks, a retry, or a
// second coordinator call for the same batch (e.g. `fcp plan --coordinator` validating what it
// planned) are answered from here without planning again.
//
//   fcp::PlanCache cache(/*capacity_bytes=*/512 << 20);
//   cache.Insert(std::make_shared<const fcp::CachedPlan>(std::move(plan)));
//   if (std::shared_ptr<const fcp::CachedPlan> hit = cache.Lookup(plan_id)) ...
//
// Entries are shared: an evicted plan stays alive while a response still refers to it. A plan
// larger than the whole capacity is not kept. Thread-safe.
#ifndef FCP_SERVICE_PLAN_CACHE_H_
#define FCP_SERVICE_PLAN_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/cached_plan.h"

namespace fcp {

class PlanCache {
 public:
  struct Stats {
    size_t bytes = 0;  // sum of the entries' charge_bytes
    size_t entries = 0;
    int64_t evictions = 0;  // entries dropped to make room, since construction
  };

  explicit PlanCache(size_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}

  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;

  // The plan with this id, now the most recently used; nullptr if absent.
  std::shared_ptr<const CachedPlan> Lookup(absl::string_view plan_id);

  // Adds `plan` as the most recently used entry (replacing one with the same id), then evicts
  // least recently used entries until the total fits the capacity.
  void Insert(std::shared_ptr<const CachedPlan> plan);

  Stats stats() const;
  size_t capacity_bytes() const { return capacity_bytes_; }

 private:
  using Entries = std::list<std::shared_ptr<const CachedPlan>>;  // most recently used first

  void EraseLocked(Entries::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_bytes_;
  mutable absl::Mutex mu_;
  Entries entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entries::iterator> index_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLAN_CACHE_H_
