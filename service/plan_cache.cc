#include "service/plan_cache.h"

#include <utility>

namespace fcp {

std::shared_ptr<const CachedPlan> PlanCache::Lookup(absl::string_view plan_id) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(plan_id);
  if (it == index_.end()) return nullptr;
  entries_.splice(entries_.begin(), entries_, it->second);
  return *it->second;
}

void PlanCache::Insert(std::shared_ptr<const CachedPlan> plan) {
  if (plan == nullptr || plan->charge_bytes() > capacity_bytes_) return;
  absl::MutexLock lock(&mu_);
  if (auto it = index_.find(plan->plan_id()); it != index_.end()) EraseLocked(it->second);
  stats_.bytes += plan->charge_bytes();
  ++stats_.entries;
  entries_.push_front(std::move(plan));
  index_[entries_.front()->plan_id()] = entries_.begin();
  while (stats_.bytes > capacity_bytes_) {
    EraseLocked(std::prev(entries_.end()));
    ++stats_.evictions;
  }
}

PlanCache::Stats PlanCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void PlanCache::EraseLocked(Entries::iterator it) {
  stats_.bytes -= (*it)->charge_bytes();
  --stats_.entries;
  index_.erase((*it)->plan_id());
  entries_.erase(it);
}

}  // namespace fcp
