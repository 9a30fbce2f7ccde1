#include "service/planner/planner.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "service/planner/schedule.h"

namespace fcp {

const char* TransferKindName(TransferKind kind) {
  switch (kind) {
    case TransferKind::kKv:
      return "KV";
    case TransferKind::kDkv:
      return "dKV";
    case TransferKind::kQ:
      return "Q";
    case TransferKind::kOut:
      return "Out";
    case TransferKind::kDo:
      return "dO";
    case TransferKind::kDq:
      return "dQ";
  }
  return "?";
}

const WorkerPlan* Plan::FindWorker(int32_t rank) const {
  for (const WorkerPlan& w : workers) {
    if (w.rank == rank) return &w;
  }
  return nullptr;
}

absl::Status ValidateOptions(const PlanOptions& options) {
  if (options.block_size < 0 || options.block_size % 64 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.block_size: must be 0 (automatic) or a positive multiple of 64, got ",
                     options.block_size));
  }
  if (!(options.time_budget_ms > 0)) {
    return absl::InvalidArgumentError("options.time_budget_ms: must be > 0");
  }
  if (!(options.balance_tolerance >= 0.001 && options.balance_tolerance <= 1)) {
    return absl::InvalidArgumentError("options.balance_tolerance: must be in [0.001, 1]");
  }
  if (!(options.cost.backward_efficiency >= kMinBackwardEfficiency &&
        std::isfinite(options.cost.backward_efficiency))) {
    return absl::InvalidArgumentError(
        "options.cost.backward_efficiency: must be >= 0.01 and finite");
  }
  if (!(options.cost.gemm_tflops >= kMinGemmTflops && options.cost.gemm_tflops <= kMaxGemmTflops)) {
    return absl::InvalidArgumentError("options.cost.gemm_tflops: must be in [0.001, 1e6]");
  }
  if (options.objective != Objective::kWholeStep && options.objective != Objective::kAttention) {
    return absl::InvalidArgumentError("options.objective: unknown objective");
  }
  return NewPlanner(options.strategy).status();
}

int64_t AutoBlockSize(const Batch& batch) {
  // Enough blocks per worker for the bin-packing to balance (>= ~16 of the average worker's
  // tokens), but no smaller than 512 tokens, where attention tiles stop saturating the GPU.
  const int64_t per_worker = batch.TotalTokens() / std::max(1, batch.topology.num_workers);
  int64_t block = 8192;
  while (block > 512 && block * 16 > per_worker) block /= 2;
  return block;
}

Batch ResolveBatch(const Batch& batch, Objective objective) {
  Batch resolved = batch;
  resolved.topology.max_tokens_per_worker = TokenBudget(batch, objective);
  return resolved;
}

namespace {

// Runs the strategy and schedules its layout over the resolved `batch` and `cost` (both must
// outlive the returned schedule); fills `plan` but for its id, documents, blocks, workers and
// planning time.
absl::StatusOr<std::shared_ptr<const Schedule>> ScheduleBatch(const Batch& batch,
                                                              const CostModel& cost,
                                                              const PlanOptions& options,
                                                              std::string plan_id, absl::Time start,
                                                              Plan* plan) {
  ASSIGN_OR_RETURN(std::unique_ptr<Planner> planner, NewPlanner(options.strategy));
  const PlanContext ctx{batch, options, cost, start + absl::Milliseconds(options.time_budget_ms)};
  ASSIGN_OR_RETURN(Layout layout, planner->MakeLayout(ctx));
  plan->plan_id = std::move(plan_id);
  plan->strategy = layout.strategy;
  plan->requested_strategy = options.strategy;
  plan->block_size = layout.block_size;
  std::shared_ptr<const Schedule> schedule = std::move(layout.schedule);
  if (schedule == nullptr) {
    ASSIGN_OR_RETURN(schedule, NewSchedule(batch, cost, std::move(layout)));
  }
  plan->costs = schedule->costs();
  if (const int64_t cap = batch.topology.max_tokens_per_worker; cap > 0) {
    for (size_t w = 0; w < plan->costs.size(); ++w) {
      if (plan->costs[w].tokens > cap) {
        return absl::FailedPreconditionError(
            absl::StrCat(plan->strategy, ": worker ", w, " would hold ", plan->costs[w].tokens,
                         " tokens, over the token budget of ", cap, " per worker"));
      }
    }
  }
  plan->summary = schedule->summary();
  return schedule;
}

}  // namespace

PreparedPlan::PreparedPlan(const Batch& batch, const PlanOptions& options)
    : batch_(ResolveBatch(batch, options.objective)),
      cost_(batch_.model, batch_.topology, options.cost, options.objective) {}

PreparedPlan::~PreparedPlan() = default;

WorkerPlan PreparedPlan::Slice(int32_t rank) const { return schedule_->Slice(rank); }

absl::StatusOr<std::unique_ptr<const PreparedPlan>> PreparePlan(const Batch& batch,
                                                                const PlanOptions& options) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  RETURN_IF_ERROR(ValidateOptions(options));
  return PreparePlanChecked(batch, options, ComputePlanId(batch, options));
}

absl::StatusOr<std::unique_ptr<const PreparedPlan>> PreparePlanChecked(const Batch& batch,
                                                                       const PlanOptions& options,
                                                                       std::string plan_id) {
  const absl::Time start = absl::Now();
  std::unique_ptr<PreparedPlan> prepared(new PreparedPlan(batch, options));
  ASSIGN_OR_RETURN(prepared->schedule_, ScheduleBatch(prepared->batch_, prepared->cost_, options,
                                                      std::move(plan_id), start, &prepared->plan_));
  prepared->plan_.documents = prepared->batch_.documents;
  prepared->plan_.blocks = prepared->schedule_->Blocks();
  prepared->plan_.summary.planning_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return std::unique_ptr<const PreparedPlan>(std::move(prepared));
}

absl::StatusOr<Plan> MakePlan(const Batch& batch, const PlanOptions& options,
                              const OutputSpec& output) {
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(ValidateBatch(batch));
  RETURN_IF_ERROR(ValidateOptions(options));
  for (int32_t rank : output.ranks) {
    if (rank < 0 || rank >= batch.topology.num_workers) {
      return absl::InvalidArgumentError(
          absl::StrCat("ranks: ", rank, " is not in [0, ", batch.topology.num_workers, ")"));
    }
  }
  const Batch resolved = ResolveBatch(batch, options.objective);
  const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
  Plan plan;
  ASSIGN_OR_RETURN(
      std::shared_ptr<const Schedule> schedule,
      ScheduleBatch(resolved, cost, options, ComputePlanId(batch, options), start, &plan));
  if (output.blocks || output.all_ranks || !output.ranks.empty()) {
    plan.documents = batch.documents;
    plan.blocks = schedule->Blocks();
  }
  std::vector<int32_t> ranks = output.ranks;
  if (output.all_ranks) {
    ranks.resize(batch.topology.num_workers);
    for (int32_t r = 0; r < batch.topology.num_workers; ++r) ranks[r] = r;
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  for (int32_t rank : ranks) plan.workers.push_back(schedule->Slice(rank));
  plan.summary.planning_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  return plan;
}

}  // namespace fcp
