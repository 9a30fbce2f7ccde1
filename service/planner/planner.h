// The planning core's entry point: strategies behind one interface, a registry of them, and
// MakePlan, which turns a batch into a validated-shape Plan.
//
//   fcp::Batch batch = ...;                      // documents, model, topology
//   fcp::PlanOptions options;                    // strategy "auto", block size 0 = automatic
//   absl::StatusOr<fcp::Plan> plan = fcp::MakePlan(batch, options, fcp::OutputSpec::Ranks({3}));
//
// Plain C++ (std + Abseil), no I/O, deterministic (same inputs, same plan and plan id), and
// thread-safe: MakePlan may be called concurrently; strategies keep no mutable state.
#ifndef FCP_SERVICE_PLANNER_PLANNER_H_
#define FCP_SERVICE_PLANNER_PLANNER_H_

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/planner/batch.h"
#include "service/planner/cost_model.h"
#include "service/planner/layout.h"
#include "service/planner/plan.h"

namespace fcp {

// Bumped whenever a change can alter a plan for the same inputs; part of every plan id.
inline constexpr absl::string_view kPlannerVersion = "fcp-planner/8";

struct PlanOptions {
  std::string strategy = "auto";
  int64_t block_size = 0;        // 0 = chosen per batch; else a multiple of 64
  bool include_backward = true;  // optimise forward + backward (else forward only)
  double time_budget_ms = 200;   // `auto`: stop trying further strategies after this
  // `dcp`: the imbalance (max / mean - 1) its partitioner may leave in attention FLOPs, and in
  // tokens under the whole-step objective (METIS's ubvec - 1, and the refinement's limits); in
  // [0.001, 1]. Under the attention objective only a memory cap limits dcp's tokens.
  double balance_tolerance = 0.05;
  // What plans minimise: the whole layer (linear layers + attention, under the token budget) or,
  // as an explicit choice, attention alone (model.h).
  Objective objective = Objective::kWholeStep;
  CostParams cost;
};

// What of the plan to materialise: blocks, and worker slices for which ranks.
struct OutputSpec {
  bool blocks = true;
  bool all_ranks = false;
  std::vector<int32_t> ranks;

  static OutputSpec SummaryOnly() { return {false, false, {}}; }
  static OutputSpec AllRanks() { return {true, true, {}}; }
  static OutputSpec Ranks(std::vector<int32_t> ranks) { return {true, false, std::move(ranks)}; }
};

// Everything a strategy may read. `deadline` is advisory (auto and refinement loops use it).
// `batch` is the request's batch resolved for planning: its topology.max_tokens_per_worker is the
// token budget (TokenBudget(request, options.objective); 0 = none), the one memory cap every
// strategy honours; `cost` prices the objective (linear layers included or not).
class PlanMemo;

struct PlanContext {
  const Batch& batch;
  const PlanOptions& options;
  const CostModel& cost;
  absl::Time deadline;
  // The predicted step (ms, as auto prices it) of the best plan auto has found so far: a strategy
  // may skip work that provably cannot produce a plan below it. +infinity (every caller but auto):
  // nothing is skipped. With an incumbent,
  //   - LowerBoundMs may return early, any value >= incumbent_ms, once its bound reaches it (auto
  //     skips the strategy then either way);
  //   - MakeLayout may skip the candidates whose own lower bound is >= incumbent_ms (they cannot
  //     win: auto keeps a plan only when strictly faster) and return its best remaining one, the
  //     one it returns without an incumbent whenever that one is below incumbent_ms; if it skipped
  //     every candidate, any valid layout of its own (auto prices it, and it cannot win).
  // So auto's plan is the same with and without incumbents.
  double incumbent_ms = std::numeric_limits<double>::infinity();
  // What auto's candidates share (strategies/plan_memo.h: the documents' costs in order, the
  // transfer estimate), computed once per auto call; null: each strategy computes its own. Values
  // are the same either way.
  PlanMemo* memo = nullptr;
};

// The request's batch as strategies see it (PlanContext::batch): topology.max_tokens_per_worker
// is TokenBudget(batch, objective), the one memory cap every strategy honours. The plan id is
// always computed on the request's batch, never on this.
Batch ResolveBatch(const Batch& batch, Objective objective);

// What planning a batch would cost a strategy, estimated from the batch alone (plan_size.h).
struct PlanningCost {
  // The KV transfers its plan makes: scheduling them takes about 1 ms per kTransfersPerMs.
  double kv_transfers = 0;
  // Planning time besides the transfers', ms (ring's costing of 2W chunks per document, dcp's
  // METIS partitioning).
  double ms = 0;

  // Planning throughput in KV transfers per ms, measured on one 2M-token document over W = 4096
  // (fcp 8.4M estimated transfers in 10.4 s, flashcp 8.4 s, flexdeg 7.1 s, ring 16.7M in 7.4 s),
  // rounded down.
  static constexpr double kTransfersPerMs = 800;
  // Whether it fits a time budget: both the transfers and the rest, each on its own.
  bool Fits(double time_budget_ms) const {
    return kv_transfers <= time_budget_ms * kTransfersPerMs && ms <= time_budget_ms;
  }
};

// A planning strategy. Implementations live each in one .cc, hidden, with a NewXxxPlanner()
// factory and one line in the registry (or, for an optional strategy in a library of its own, a
// RegisterStrategy call by the programs that link it).
class Planner {
 public:
  virtual ~Planner() = default;
  virtual absl::string_view name() const = 0;
  virtual absl::string_view description() const = 0;
  // Decides the layout for ctx.batch. The batch is already validated.
  virtual absl::StatusOr<Layout> MakeLayout(const PlanContext& ctx) const = 0;

  // What `auto` knows of a strategy before running it, from the inputs alone (never the clock, so
  // every replica and every client's local fallback pick the same plan).
  //
  // Whether auto tries this strategy, and when: candidates run in increasing order (best plans
  // first, so that the lower bounds of the later ones skip them); kNotAnAutoCandidate: never.
  static constexpr int kNotAnAutoCandidate = -1;
  virtual int auto_order() const { return kNotAnAutoCandidate; }
  // A lower bound on the predicted step time in ms (forward + backward, or forward only as
  // ctx.options asks) of this strategy's plan of ctx.batch; 0 when none is known. auto skips the
  // strategy when the bound is no better than the best plan it has.
  virtual double LowerBoundMs(const PlanContext& ctx) const { return 0; }
  // What planning ctx.batch would cost this strategy; auto skips it when that does not fit
  // ctx.options.time_budget_ms. Default: a balanced plan's estimated KV transfers
  // (EstimatedBalancedTransfers), nothing else.
  virtual PlanningCost EstimatePlanningCost(const PlanContext& ctx) const;
};

struct StrategyInfo {
  std::string name;
  std::string description;
};
// Every registered strategy, in a stable order ("auto" first, the built-in ones, then the
// optional ones in registration order).
std::vector<StrategyInfo> ListStrategies();
// The strategy called `name`, or InvalidArgument listing the known ones.
absl::StatusOr<std::unique_ptr<Planner>> NewPlanner(absl::string_view name);

using PlannerFactory = std::unique_ptr<Planner> (*)();
// Registers an optional strategy, one that needs more than the core and lives in a library of its
// own (dcp and METIS: fcp_planner_dcp, strategies/dcp.h). Programs that offer it call this (or the
// library's RegisterXxxPlanner()) before planning; registering a name again is a no-op.
// Thread-safe.
void RegisterStrategy(PlannerFactory factory);

// Checks the options (`options.block_size: must be a multiple of 64`, unknown strategy, ...).
absl::Status ValidateOptions(const PlanOptions& options);

class Schedule;

// A planned batch whose worker slices are materialised on demand: planning costs what the summary
// costs, and each rank pays for its own slice (what a coordinator caches). Immutable; Slice() is
// thread-safe.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<const fcp::PreparedPlan> prepared,
//                    fcp::PreparePlan(batch, options));
//   const fcp::Plan& summary = prepared->plan();       // no workers
//   fcp::WorkerPlan mine = prepared->Slice(rank);
class PreparedPlan {
 public:
  ~PreparedPlan();
  PreparedPlan(const PreparedPlan&) = delete;
  PreparedPlan& operator=(const PreparedPlan&) = delete;

  // Documents, blocks, every worker's predicted cost and the summary; `workers` is empty.
  const Plan& plan() const { return plan_; }
  int32_t num_workers() const { return batch_.topology.num_workers; }
  // The slice of `rank`, 0 <= rank < num_workers(). Cost: proportional to that rank's tiles.
  WorkerPlan Slice(int32_t rank) const;

 private:
  friend absl::StatusOr<std::unique_ptr<const PreparedPlan>> PreparePlan(const Batch&,
                                                                         const PlanOptions&);
  friend absl::StatusOr<std::unique_ptr<const PreparedPlan>> PreparePlanChecked(const Batch&,
                                                                                const PlanOptions&,
                                                                                std::string);
  PreparedPlan(const Batch& batch, const PlanOptions& options);

  Batch batch_;
  CostModel cost_;
  std::shared_ptr<const Schedule> schedule_;  // refers to batch_ and cost_
  Plan plan_;
};

// Validates the batch and options, runs the strategy, and schedules and costs the layout; blocks
// are materialised, slices are not. Errors as MakePlan's.
absl::StatusOr<std::unique_ptr<const PreparedPlan>> PreparePlan(const Batch& batch,
                                                                const PlanOptions& options);

// PreparePlan for a caller that has already checked `batch` and `options` (ValidateBatch,
// ValidateOptions) and computed `plan_id` = ComputePlanId(batch, options): the coordinator, which
// keys its cache on the id before it plans. Neither is done again; the plan is PreparePlan's.
absl::StatusOr<std::unique_ptr<const PreparedPlan>> PreparePlanChecked(const Batch& batch,
                                                                       const PlanOptions& options,
                                                                       std::string plan_id);

// Validates the batch and options, runs the strategy, schedules and costs the layout, and
// materialises what `output` asks for. InvalidArgument for bad input (naming the field),
// Internal if a strategy produced an inconsistent layout.
absl::StatusOr<Plan> MakePlan(const Batch& batch, const PlanOptions& options,
                              const OutputSpec& output = OutputSpec::AllRanks());

// Stable hex id of the planning inputs (documents, model, topology, options) + kPlannerVersion.
std::string ComputePlanId(const Batch& batch, const PlanOptions& options);

// Block size for automatic mode (options.block_size == 0), a multiple of 64.
int64_t AutoBlockSize(const Batch& batch);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_PLANNER_H_
