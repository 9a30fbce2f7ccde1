// The strategy registry: adding a built-in strategy is one file with a NewXxxPlanner() factory and
// one line here; an optional strategy (its own library) is added by RegisterStrategy at run time.
// Also what a strategy tells `auto` when it says nothing more (planner.h).
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/plan_memo.h"

namespace fcp {

std::unique_ptr<Planner> NewAutoPlanner();
std::unique_ptr<Planner> NewRingPlanner();
std::unique_ptr<Planner> NewPerDocPlanner();
std::unique_ptr<Planner> NewWholeDocPlanner();
std::unique_ptr<Planner> NewFcpPlanner();
std::unique_ptr<Planner> NewFlashCpPlanner();
std::unique_ptr<Planner> NewFlexDegPlanner();
std::unique_ptr<Planner> NewStaticCpPlanner();
std::unique_ptr<Planner> NewGroupedPlanner();

namespace {

constexpr PlannerFactory kBuiltIn[] = {
    NewAutoPlanner,    NewRingPlanner,    NewPerDocPlanner,   NewWholeDocPlanner, NewFcpPlanner,
    NewFlashCpPlanner, NewFlexDegPlanner, NewStaticCpPlanner, NewGroupedPlanner,
};

ABSL_CONST_INIT absl::Mutex registry_mutex(absl::kConstInit);
std::vector<PlannerFactory>& Registered() ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mutex) {
  static auto* const registered = new std::vector<PlannerFactory>;
  return *registered;
}

// The built-in factories, then the registered ones.
std::vector<PlannerFactory> Factories() {
  std::vector<PlannerFactory> all(std::begin(kBuiltIn), std::end(kBuiltIn));
  absl::MutexLock lock(&registry_mutex);
  all.insert(all.end(), Registered().begin(), Registered().end());
  return all;
}

}  // namespace

PlanningCost Planner::EstimatePlanningCost(const PlanContext& ctx) const {
  return {static_cast<double>(SharedBalancedTransfers(ctx)), 0};
}

void RegisterStrategy(PlannerFactory factory) {
  const std::unique_ptr<Planner> planner = factory();
  for (PlannerFactory f : kBuiltIn) {
    if (f()->name() == planner->name()) return;
  }
  absl::MutexLock lock(&registry_mutex);
  for (PlannerFactory f : Registered()) {
    if (f()->name() == planner->name()) return;
  }
  Registered().push_back(factory);
}

std::vector<StrategyInfo> ListStrategies() {
  std::vector<StrategyInfo> out;
  for (PlannerFactory f : Factories()) {
    std::unique_ptr<Planner> p = f();
    out.push_back({std::string(p->name()), std::string(p->description())});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Planner>> NewPlanner(absl::string_view name) {
  std::vector<std::string> names;
  for (PlannerFactory f : Factories()) {
    std::unique_ptr<Planner> p = f();
    if (p->name() == name) return p;
    names.emplace_back(p->name());
  }
  return absl::InvalidArgumentError(absl::StrCat("options.strategy: unknown strategy '", name,
                                                 "' (known: ", absl::StrJoin(names, ", "), ")"));
}

}  // namespace fcp
