// The strategy registry: adding a strategy is one file with a NewXxxPlanner() factory and one line
// here.
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/planner/planner.h"

namespace fcp {

std::unique_ptr<Planner> NewAutoPlanner();
std::unique_ptr<Planner> NewRingPlanner();
std::unique_ptr<Planner> NewPerDocPlanner();
std::unique_ptr<Planner> NewWholeDocPlanner();
std::unique_ptr<Planner> NewFcpPlanner();
std::unique_ptr<Planner> NewFlashCpPlanner();
std::unique_ptr<Planner> NewFlexDegPlanner();
std::unique_ptr<Planner> NewDcpPlanner();
std::unique_ptr<Planner> NewStaticCpPlanner();

namespace {

using Factory = std::unique_ptr<Planner> (*)();
constexpr Factory kFactories[] = {
    NewAutoPlanner,    NewRingPlanner,    NewPerDocPlanner, NewWholeDocPlanner, NewFcpPlanner,
    NewFlashCpPlanner, NewFlexDegPlanner, NewDcpPlanner,    NewStaticCpPlanner,
};

}  // namespace

std::vector<StrategyInfo> ListStrategies() {
  std::vector<StrategyInfo> out;
  for (Factory f : kFactories) {
    std::unique_ptr<Planner> p = f();
    out.push_back({std::string(p->name()), std::string(p->description())});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Planner>> NewPlanner(absl::string_view name) {
  std::vector<std::string> names;
  for (Factory f : kFactories) {
    std::unique_ptr<Planner> p = f();
    if (p->name() == name) return p;
    names.emplace_back(p->name());
  }
  return absl::InvalidArgumentError(absl::StrCat("options.strategy: unknown strategy '", name,
                                                 "' (known: ", absl::StrJoin(names, ", "), ")"));
}

}  // namespace fcp
