// Planner::LowerBoundMs and LayoutLowerBoundMs (packing.h) as properties: for every strategy `auto`
// may run, on random batches skewed like real data (every mask kind, mixed masks, several worker
// counts and both objectives, with and without the backward pass), each bound is at most the
// predicted step of the strategy's own plan. auto skips a strategy (or the scheduling of its
// layout) whose bound is no better than its best plan: a bound above the plan would let auto skip
// a winner.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "service/planner/planner.h"
#include "service/planner/schedule.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/strategies/flexdeg_bound.h"
#include "service/planner/strategies/flexdeg_micro.h"
#include "service/planner/strategies/flexdeg_sizing.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/plan_memo.h"
#include "service/planner/strategies/static_cp.h"
#include "service/planner/strategies/test_batches.h"

namespace fcp {
namespace {

const Mask kMasks[] = {Mask::Causal(), Mask::Full(), Mask::SlidingWindow(1024),
                       Mask::PrefixLm(512)};

// Documents of random masks (mask_kind < 0: each document draws one) and skew.
Batch RandomBatch(int32_t workers, uint64_t seed, int mask_kind) {
  std::mt19937_64 rng(seed);
  SkewedShape shape;
  shape.tokens_per_worker = 2048 + static_cast<int64_t>(rng() % 6144);
  shape.long_one_in = 5 + static_cast<int>(rng() % 30);
  shape.long_min = 1024 + static_cast<int64_t>(rng() % 4096);
  shape.long_span = 4096 + static_cast<int64_t>(rng() % 20000);
  Batch batch = SkewedBatch(workers, seed, shape);
  batch.topology.workers_per_node = 1 + static_cast<int32_t>(rng() % 8);
  for (Document& d : batch.documents) {
    d.mask = kMasks[mask_kind >= 0 ? mask_kind : rng() % std::size(kMasks)];
  }
  return batch;
}

std::vector<std::string> AutoCandidates() {
  RegisterDcpPlanner();
  std::vector<std::string> names;
  for (const StrategyInfo& s : ListStrategies()) {
    if ((*NewPlanner(s.name))->auto_order() != Planner::kNotAnAutoCandidate) {
      names.push_back(s.name);
    }
  }
  return names;
}

using Param = std::tuple<std::string, int32_t>;

class LowerBoundTest : public ::testing::TestWithParam<Param> {};

TEST_P(LowerBoundTest, IsAtMostThePredictedStepOfItsPlan) {
  const auto& [strategy, workers] = GetParam();
  std::unique_ptr<Planner> planner = *NewPlanner(strategy);
  int bounded = 0;  // cases with a bound above 0, to show the property is not vacuous
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const int mask_kind = static_cast<int>(seed % (std::size(kMasks) + 1)) - 1;
    const Batch batch = RandomBatch(workers, seed * 7919 + workers, mask_kind);
    for (Objective objective : {Objective::kWholeStep, Objective::kAttention}) {
      for (bool include_backward : {true, false}) {
        PlanOptions options;
        options.strategy = strategy;
        options.objective = objective;
        options.include_backward = include_backward;
        const std::string where =
            absl::StrCat("seed ", seed, ", ", ObjectiveName(objective),
                         include_backward ? ", fwd+bwd" : ", fwd", ", masks ", mask_kind);
        absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
        if (!plan.ok()) continue;  // no plan (a ring over the budget): nothing to bound
        const Batch resolved = ResolveBatch(batch, objective);
        const CostModel cost(resolved.model, resolved.topology, options.cost, objective);
        const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
        const double step = plan->PredictedStepMs(include_backward);
        const double bound = planner->LowerBoundMs(ctx);
        EXPECT_LE(bound, step * (1 + 1e-9)) << where;
        bounded += bound > 0;
        // The bound from the strategy's layout (auto skips scheduling it when that cannot win).
        absl::StatusOr<Layout> layout = planner->MakeLayout(ctx);
        ASSERT_TRUE(layout.ok()) << where << ": " << layout.status();
        if (layout->schedule == nullptr) {
          const double layout_bound = LayoutLowerBoundMs(ctx, *layout);
          EXPECT_GT(layout_bound, 0) << where;
          EXPECT_LE(layout_bound, step * (1 + 1e-9)) << where;
          // Stopped at a threshold (grouped's): the same answer to "at least the threshold?", and
          // the bound itself below it.
          for (const double stop : {layout_bound / 2, layout_bound, 2 * layout_bound}) {
            const double stopped = LayoutLowerBoundMs(ctx, *layout, stop);
            EXPECT_EQ(stopped >= stop, layout_bound >= stop) << where << ", stop " << stop;
            if (layout_bound < stop) EXPECT_EQ(stopped, layout_bound) << where;
          }
        }
      }
    }
  }
  // The strategies that know a bound must give one on these batches: the property is not vacuous.
  if (strategy == "ring" || strategy == "whole_doc" || strategy == "static_cp" ||
      strategy == "flexdeg" || strategy == "dcp") {
    EXPECT_GT(bounded, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Grid, LowerBoundTest,
                         ::testing::Combine(::testing::ValuesIn(AutoCandidates()),
                                            ::testing::Values(4, 16, 64)),
                         [](const ::testing::TestParamInfo<Param>& info) {
                           return absl::StrCat(std::get<0>(info.param), "_W",
                                               std::get<1>(info.param));
                         });

// The predicted step of `strategy`'s plan and its LowerBoundMs, or nullopt when it has no plan.
std::optional<std::pair<double, double>> StepAndBound(const std::string& strategy,
                                                      const Batch& batch, PlanOptions options) {
  options.strategy = strategy;
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::SummaryOnly());
  if (!plan.ok()) return std::nullopt;
  const Batch resolved = ResolveBatch(batch, options.objective);
  const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
  const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
  return std::make_pair(plan->PredictedStepMs(options.include_backward),
                        (*NewPlanner(strategy))->LowerBoundMs(ctx));
}

// flexdeg's bound reads the links, the latency, the tiles' overhead and how much of a transfer
// overlaps compute (flexdeg_bound.h): it holds for each of them, faster links across nodes than
// inside one included, with every mask, both objectives, with and without backward.
TEST(LowerBoundTest, FlexDegBoundHoldsForEveryLinkLatencyAndOverlap) {
  std::mt19937_64 rng(26);
  int cases = 0;
  for (int i = 0; i < 60; ++i) {
    const int32_t workers = std::vector<int32_t>{2, 4, 12, 16, 40}[rng() % 5];
    const int mask_kind = static_cast<int>(rng() % (std::size(kMasks) + 1)) - 1;
    Batch batch = RandomBatch(workers, rng(), mask_kind);
    const double links[][2] = {{150, 45}, {45, 150}, {5, 1}, {1, 1}};
    const auto& link = links[rng() % std::size(links)];
    batch.topology.intra_node_gbps = link[0];
    batch.topology.inter_node_gbps = link[1];
    PlanOptions options;
    options.objective = rng() % 2 ? Objective::kWholeStep : Objective::kAttention;
    options.include_backward = rng() % 3 != 0;
    options.cost.transfer_latency_us = std::vector<double>{0, 20, 500}[rng() % 3];
    options.cost.transfer_overlap = std::vector<double>{1, 0.5, 0}[rng() % 3];
    options.cost.tile_overhead_us = rng() % 2 ? 0 : 3;
    const std::optional<std::pair<double, double>> step_bound =
        StepAndBound("flexdeg", batch, options);
    if (!step_bound) continue;
    ++cases;
    EXPECT_LE(step_bound->second, step_bound->first * (1 + 1e-9))
        << "case " << i << ", W " << workers << ", links " << link[0] << "/" << link[1]
        << ", latency " << options.cost.transfer_latency_us << ", overlap "
        << options.cost.transfer_overlap << ", " << ObjectiveName(options.objective);
  }
  EXPECT_GT(cases, 40);
}

// A batch where the tokens must ride on rings (for the rings' bound): many long documents, rings
// across nodes over slow links, tight token budgets (the whole step's, or an explicit cap on
// attention alone).
std::pair<Batch, PlanOptions> RingsCase(std::mt19937_64& rng) {
  const int32_t workers = std::vector<int32_t>{8, 16, 32, 48}[rng() % 4];
  SkewedShape shape;
  shape.tokens_per_worker = 1024 + static_cast<int64_t>(rng() % 4096);
  shape.long_one_in = 2 + static_cast<int>(rng() % 8);
  shape.long_min = 2 * shape.tokens_per_worker;
  shape.long_span = 8 * shape.tokens_per_worker;
  shape.short_max = 1 + static_cast<int64_t>(rng() % 2000);
  Batch batch = SkewedBatch(workers, rng(), shape);
  const int mask_kind = static_cast<int>(rng() % (std::size(kMasks) + 1)) - 1;
  for (Document& d : batch.documents) {
    d.mask = kMasks[mask_kind >= 0 ? mask_kind : rng() % std::size(kMasks)];
  }
  batch.topology.workers_per_node = std::vector<int32_t>{1, 2, 4, 8}[rng() % 4];
  batch.topology.inter_node_gbps = std::vector<double>{1, 5, 45}[rng() % 3];
  batch.topology.intra_node_gbps = std::vector<double>{5, 150}[rng() % 2];
  batch.topology.token_slack = std::vector<double>{0.01, 0.05, 0.3}[rng() % 3];
  PlanOptions options;
  options.include_backward = rng() % 3 != 0;
  options.cost.transfer_latency_us = std::vector<double>{0, 20, 500}[rng() % 3];
  options.cost.transfer_overlap = std::vector<double>{1, 0.5}[rng() % 2];
  if (rng() % 3 == 0) {  // attention alone, under an explicit cap (no linear layers to bound)
    options.objective = Objective::kAttention;
    batch.topology.max_tokens_per_worker = static_cast<int64_t>(
        (1 + batch.topology.token_slack) * static_cast<double>(batch.TotalTokens()) / workers);
  }
  return {std::move(batch), options};
}

// The rings' bound (flexdeg_bound.h, RingsLowerBoundSeconds: the tokens must fit in the singles'
// and the rings' room) where it matters: many long documents, rings across nodes over slow links,
// tight token budgets (the whole step's, or an explicit cap on attention alone). It is above the
// bound of any groups in many of these cases, and below the plan in all.
TEST(LowerBoundTest, FlexDegRingsBoundHoldsWhereTheTokensMustRideOnRings) {
  std::mt19937_64 rng(23);
  int cases = 0, raised = 0;
  for (int i = 0; i < 80; ++i) {
    auto [batch, options] = RingsCase(rng);
    const std::optional<std::pair<double, double>> step_bound =
        StepAndBound("flexdeg", batch, options);
    if (!step_bound) continue;
    ++cases;
    const auto [step, bound] = *step_bound;
    EXPECT_LE(bound, step * (1 + 1e-9)) << "case " << i;
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    raised += bound > FlexDegLowerBoundMs(ctx) * 1.01;
  }
  EXPECT_GT(cases, 50);
  EXPECT_GT(raised, 10);
}

// flexdeg's group sizing over ctx's batch, as flexdeg makes it (its documents costliest first).
GroupSizing SizingOf(const PlanContext& ctx) {
  double total = 0;
  const std::vector<double> seconds = DocumentSeconds(ctx, &total);
  std::vector<SizingDoc> docs;
  for (int32_t d : ByCostDescending(seconds)) {
    const int64_t length = ctx.batch.documents[d].length;
    docs.push_back({d, length, seconds[d], 3 * ctx.cost.TokenSeconds(length)});
  }
  return GroupSizing(ctx.cost, ctx.batch.topology, std::move(docs), TokenCap(ctx.batch.topology));
}

// RingsBound::SecondsAbove (flexdeg_bound.h), which decides a ring candidate against auto's
// incumbent without the bisection: true only where the bisection's least step is above the step
// asked, and true wherever that least step is clearly above it. (The greedy's rings, sparse,
// against their dense sizes: the same bound.)
TEST(LowerBoundTest, FlexDegRingsBoundAboveAgreesWithItsBisection) {
  std::mt19937_64 rng(29);
  int decided = 0, below = 0;
  for (int i = 0; i < 60; ++i) {
    auto [raw, options] = RingsCase(rng);
    const Batch batch = ResolveBatch(raw, options.objective);
    const CostModel cost(batch.model, batch.topology, options.cost, options.objective);
    const PlanContext ctx{batch, options, cost, absl::InfiniteFuture()};
    const GroupSizing sizing = SizingOf(ctx);
    for (double slack : {0.0, 0.5, -1.0, -4.0}) {
      const RingsBound bound(ctx, sizing, sizing.GreedyRings(slack), BatchTokens(batch));
      const double least = bound.Seconds();
      ASSERT_EQ(least, RingsLowerBoundSeconds(ctx, sizing, sizing.Greedy(slack))) << "case " << i;
      for (double factor : {0.5, 0.99, 1 - 1e-6, 1.0, 1 + 1e-6, 1.01, 2.0}) {
        const double step = least * factor;
        const bool above = bound.SecondsAbove(step);
        const std::string where = absl::StrCat("case ", i, ", slack ", slack, ", x", factor);
        if (above) EXPECT_GT(least, step) << where;
        if (least > 0 && factor <= 1 - 1e-6) {
          EXPECT_TRUE(above) << where;
          ++decided;
        }
        below += least > 0 && factor >= 1 && !above;
      }
    }
  }
  EXPECT_GT(decided, 300);
  EXPECT_GT(below, 300);
}

// Where one document's ring must relay its KV over slow links, that relay is what a ring plan
// costs: the bound of any ring groups (FlexDegLowerBoundMs) sees it, well above the mean worker's
// compute, and so does the plan flexdeg makes (its micro-batched structure sends the document's
// KV over the same links). flexdeg's bound, the least of its structures', stays below the plan.
TEST(LowerBoundTest, FlexDegBoundSeesTheRelayOfADocumentLongerThanTheCap) {
  Batch batch;
  batch.topology.num_workers = 16;
  batch.topology.workers_per_node = 4;
  batch.topology.intra_node_gbps = 5;
  batch.topology.inter_node_gbps = 1;
  batch.documents.push_back({16 * 6000, Mask::Causal()});
  for (int i = 0; i < 16 * 8; ++i) batch.documents.push_back({500, Mask::Causal()});
  for (bool include_backward : {true, false}) {
    PlanOptions options;
    options.include_backward = include_backward;
    const std::optional<std::pair<double, double>> step_bound =
        StepAndBound("flexdeg", batch, options);
    ASSERT_TRUE(step_bound.has_value());
    const auto [step, bound] = *step_bound;
    EXPECT_LE(bound, step * (1 + 1e-9));
    // The mean worker's compute: every document whole, over the workers.
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    options.strategy = "flexdeg";
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    double total = 0;
    DocumentSeconds(ctx, &total);
    const double rings = FlexDegLowerBoundMs(ctx);
    EXPECT_GT(rings, 2 * total / 16 * 1e3) << "step " << step;
    EXPECT_GT(rings, 0.5 * step);
  }
}

// flexdeg's micro-batched structure (flexdeg_micro.h: long documents in zigzag groups, every other
// document whole on any worker with room) where it is chosen most: under a memory cap of 1.1 x the
// mean tokens, attention alone or the whole step, every mask, random batches. Its plans are among
// flexdeg's (a kDirect layout) in many cases, and the bound holds for every plan.
// A random case: W of 4 to 64, its masks (RandomBatch), the objective and the backward pass.
struct Case {
  Batch batch;
  PlanOptions options;
  int32_t workers;
  int mask_kind;
};
Case DrawCase(std::mt19937_64& rng) {
  Case c;
  c.workers = std::vector<int32_t>{4, 8, 16, 32, 64}[rng() % 5];
  c.mask_kind = static_cast<int>(rng() % (std::size(kMasks) + 1)) - 1;
  c.batch = RandomBatch(c.workers, rng(), c.mask_kind);
  c.options.objective = rng() % 2 ? Objective::kWholeStep : Objective::kAttention;
  c.options.include_backward = rng() % 4 != 0;
  return c;
}

// Half the time, a token cap of (least + step × (0..3)) × the mean tokens per worker.
void MaybeCap(std::mt19937_64& rng, double least, double step, int32_t workers, Batch* batch) {
  if (rng() % 2 != 0) return;
  batch->topology.max_tokens_per_worker =
      static_cast<int64_t>((least + step * static_cast<double>(rng() % 4)) *
                           static_cast<double>(batch->TotalTokens()) / workers);
}

TEST(LowerBoundTest, FlexDegBoundHoldsForTheMicroBatchedStructureUnderACap) {
  std::mt19937_64 rng(2026);
  std::unique_ptr<Planner> planner = *NewPlanner("flexdeg");
  int cases = 0, micro = 0;
  for (int i = 0; i < 60; ++i) {
    auto [batch, options, workers, mask_kind] = DrawCase(rng);
    if (options.objective == Objective::kAttention || rng() % 2 == 0) {
      batch.topology.max_tokens_per_worker =
          static_cast<int64_t>(1.1 * static_cast<double>(batch.TotalTokens()) / workers);
    }
    const std::optional<std::pair<double, double>> step_bound =
        StepAndBound("flexdeg", batch, options);
    if (!step_bound) continue;
    ++cases;
    const std::string where = absl::StrCat("case ", i, ", W ", workers, ", masks ", mask_kind, ", ",
                                           ObjectiveName(options.objective));
    EXPECT_LE(step_bound->second, step_bound->first * (1 + 1e-9)) << where;
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    options.strategy = "flexdeg";
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    absl::StatusOr<Layout> layout = planner->MakeLayout(ctx);
    ASSERT_TRUE(layout.ok()) << where << ": " << layout.status();
    micro += layout->kind == Layout::Kind::kDirect;
  }
  EXPECT_GT(cases, 50);
  EXPECT_GT(micro, 10);
}

// MicroLowerBoundSeconds's packings stop (flexdeg_micro.h: a worker's least compute reaching the
// level, the fluid check of the documents' least compute, the tokens' check once the groups are
// placed and on) only where the packing could not end below the level: under any level it is the
// least of the candidates' own bounds, each packing run to its end (MicroBatchedLayout), or the
// level where that is lower. Capped batches (the tokens' check needs a cap and linear layers to
// stop a packing), every mask, both objectives, with and without backward.
TEST(LowerBoundTest, FlexDegMicroBoundStopsOnlyWhereNoPackingEndsBelowTheLevel) {
  std::mt19937_64 rng(6061);
  int cases = 0;
  for (int i = 0; i < 48; ++i) {
    auto [batch, options, workers, mask_kind] = DrawCase(rng);
    batch.topology.max_tokens_per_worker =
        static_cast<int64_t>((1.01 + 0.04 * static_cast<double>(rng() % 5)) *
                             static_cast<double>(batch.TotalTokens()) / workers);
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    const GroupSizing sizing = SizingOf(ctx);
    const std::optional<GroupSizing::Solution> exact = sizing.Exact();
    const std::vector<double> whole = MicroWholeSeconds(ctx);
    double least = HUGE_VAL;  // the candidates' own bounds, packed to the end
    for (const std::vector<int32_t>& sizes : MicroSizes(ctx, sizing, exact)) {
      double estimate = 0, bound = 0;
      if (MicroBatchedLayout(ctx, sizing, sizes, &estimate, &whole, &bound).ok()) {
        least = std::min(least, bound);
      }
    }
    if (least == HUGE_VAL) continue;
    ++cases;
    const std::string where = absl::StrCat("case ", i, ", W ", workers, ", masks ", mask_kind, ", ",
                                           ObjectiveName(options.objective));
    EXPECT_EQ(MicroLowerBoundSeconds(ctx, sizing, exact, HUGE_VAL), least) << where;
    for (double factor : {0.5, 0.9, 0.999, 1 - 1e-7, 1 + 1e-7, 1.001, 1.1, 2.0}) {
      const double level = least * factor;
      EXPECT_EQ(MicroLowerBoundSeconds(ctx, sizing, exact, level), std::min(level, least))
          << where << ", level x" << factor;
    }
  }
  EXPECT_GT(cases, 36);
}

// whole_doc's first piece and static_cp's members bound their plans closely (they miss only the
// transfers and the tiles' shapes), so auto skips them wherever a plan beats theirs by 5%.
TEST(LowerBoundTest, WholeDocAndStaticCpBoundsAreWithinFivePercentOfTheirPlans) {
  const Batch batch = SkewedBatch(16, 3);
  for (const char* strategy : {"whole_doc", "static_cp"}) {
    PlanOptions options;
    options.strategy = strategy;
    const Plan plan = *MakePlan(batch, options, OutputSpec::SummaryOnly());
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    EXPECT_GE((*NewPlanner(strategy))->LowerBoundMs(ctx), 0.95 * plan.PredictedStepMs())
        << strategy;
  }
}

// whole_doc's bound is the lower bound of the piece it places first, the costliest by its own
// estimate (each piece's tiles cut at the piece bounds, plus its linear layers; the first of
// equals): computed here from QueryRangeSeconds piece by piece, it must equal the strategy's, which
// takes the pieces of documents within the cap from the shared document costs. With and without
// auto's memo.
// A drawn case's request as a strategy sees it (its batch resolved, its cost model, a context).
struct Resolved {
  Resolved(const Batch& drawn, const PlanOptions& drawn_options)
      : options(drawn_options),
        batch(ResolveBatch(drawn, options.objective)),
        cost(batch.model, batch.topology, options.cost, options.objective),
        ctx{batch, options, cost, absl::InfiniteFuture()} {}
  PlanOptions options;
  Batch batch;
  CostModel cost;
  PlanContext ctx;
};

TEST(LowerBoundTest, WholeDocBoundIsTheBoundOfItsCostliestPiece) {
  std::mt19937_64 rng(77);
  std::unique_ptr<Planner> planner = *NewPlanner("whole_doc");
  for (int i = 0; i < 60; ++i) {
    Case drawn = DrawCase(rng);
    MaybeCap(rng, 0.6, 0.3, drawn.workers, &drawn.batch);
    const Resolved request(drawn.batch, drawn.options);
    const Batch& resolved = request.batch;
    const CostModel& cost = request.cost;
    const PlanContext& ctx = request.ctx;
    const PlanOptions& options = request.options;
    const int32_t workers = drawn.workers;
    const int mask_kind = drawn.mask_kind;
    const int64_t cap = TokenCap(resolved.topology);
    double first = -1;
    int32_t first_doc = -1;
    int64_t first_begin = 0, first_end = 0;
    for (int32_t d = 0; d < static_cast<int32_t>(resolved.documents.size()); ++d) {
      const Document& doc = resolved.documents[d];
      const int64_t pieces =
          (doc.length + std::min(cap, doc.length) - 1) / std::min(cap, doc.length);
      std::vector<int64_t> bounds;
      for (int64_t p = 0; p <= pieces; ++p) bounds.push_back(ChunkBegin(doc.length, pieces, p));
      for (int64_t p = 0; p < pieces; ++p) {
        const double seconds = QueryRangeSeconds(cost, doc, bounds[p], bounds[p + 1], bounds) +
                               cost.TokenSeconds(bounds[p + 1] - bounds[p]) * 3;
        if (seconds > first) {
          first = seconds;
          first_doc = d;
          first_begin = bounds[p];
          first_end = bounds[p + 1];
        }
      }
    }
    ASSERT_GE(first_doc, 0);
    const double expected =
        QueryRangeLowerBoundSeconds(cost, resolved.documents[first_doc], first_begin, first_end,
                                    options.include_backward) *
        1e3;
    const std::string where = absl::StrCat("case ", i, ", W ", workers, ", masks ", mask_kind,
                                           ", cap ", resolved.topology.max_tokens_per_worker);
    EXPECT_EQ(planner->LowerBoundMs(ctx), expected) << where;
    PlanMemo memo(ctx);
    PlanContext shared = ctx;
    shared.memo = &memo;
    ASSERT_NE(SharedDocCosts(shared), nullptr);  // as fcp leaves it under auto
    EXPECT_EQ(planner->LowerBoundMs(shared), expected) << where;
  }
}

// A layout's predicted step (scheduled if it is not yet), infinite when it has none or breaks the
// cap.
struct Priced {
  std::string strategy;
  double ms = HUGE_VAL;  // infinite: no plan, or one over the cap
};

Priced PriceLayout(const PlanContext& ctx, absl::StatusOr<Layout> layout) {
  if (!layout.ok()) return {};
  absl::StatusOr<std::shared_ptr<const Schedule>> schedule = layout->schedule;
  if (*schedule == nullptr) schedule = NewSchedule(ctx.batch, ctx.cost, *layout);
  if (!schedule.ok()) return {};
  const int64_t cap = ctx.batch.topology.max_tokens_per_worker;
  for (const WorkerCost& c : (*schedule)->costs()) {
    if (cap > 0 && c.tokens > cap) return {};
  }
  const PlanSummary& s = (*schedule)->summary();
  return {layout->strategy,
          s.predicted_fwd_ms + (ctx.options.include_backward ? s.predicted_bwd_ms : 0)};
}

// The bounds' cheap stages (static_cp's longest document first; flexdeg's micro-batched packings
// stopped by the fluid check) decide only where they reach the incumbent: under any incumbent a
// bound is at most the plan's step, and it is either the bound made without an incumbent or at
// least the incumbent. Incumbents from far below the plan (every stage then returns as early as
// it can) to above it; random batches, every mask, both objectives, with and without a cap.
TEST(LowerBoundTest, CascadeStagesHoldUnderAnyIncumbent) {
  std::mt19937_64 rng(4242);
  std::map<std::string, int> early;  // per strategy: bounds that stopped at the incumbent
  int cases = 0;
  for (int i = 0; i < 36; ++i) {
    auto [batch, options, workers, mask_kind] = DrawCase(rng);
    MaybeCap(rng, 1.02, 0.05, workers, &batch);
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    for (const char* strategy : {"static_cp", "flexdeg", "whole_doc"}) {
      const std::unique_ptr<Planner> planner = *NewPlanner(strategy);
      options.strategy = strategy;
      const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
      const Priced plan = PriceLayout(ctx, planner->MakeLayout(ctx));
      if (plan.ms == HUGE_VAL) continue;
      ++cases;
      const double free_bound = planner->LowerBoundMs(ctx);
      for (double factor : {1e-9, 0.3, 0.9, 1.0, 1.5}) {
        PlanContext bounded = ctx;
        bounded.incumbent_ms = plan.ms * factor;
        const double bound = planner->LowerBoundMs(bounded);
        const std::string where = absl::StrCat(strategy, ", case ", i, ", W ", workers, ", masks ",
                                               mask_kind, ", incumbent x", factor);
        EXPECT_LE(bound, plan.ms * (1 + 1e-9)) << where;
        if (bound != free_bound) {
          EXPECT_GE(bound, bounded.incumbent_ms) << where;
          ++early[strategy];
        }
      }
    }
  }
  EXPECT_GT(cases, 80);
  EXPECT_GT(early["static_cp"], 20);  // its cheap stage decides in many of these
}

// StaticCpSurelyPacks (static_cp.h) is a sufficient condition: wherever it holds, the packing at
// that CP size succeeds. Batches with one-token documents, long documents, tight budgets, every CP
// size; the packing fails in some of them and the condition holds in many.
TEST(LowerBoundTest, StaticCpSurelyPacksOnlyWherePackingSucceeds) {
  std::mt19937_64 rng(65);
  int sure = 0, failed = 0;
  for (int i = 0; i < 200; ++i) {
    const int32_t workers = std::vector<int32_t>{4, 8, 12, 16, 64}[rng() % 5];
    SkewedShape shape;
    shape.tokens_per_worker = 256 + static_cast<int64_t>(rng() % 8192);
    shape.long_one_in = 2 + static_cast<int>(rng() % 40);
    shape.long_min = 1 + static_cast<int64_t>(rng() % 4096);
    shape.long_span = 1 + static_cast<int64_t>(rng() % 30000);
    shape.short_max = 1 + static_cast<int64_t>(rng() % 600);
    Batch batch = SkewedBatch(workers, rng(), shape);
    const int64_t budget =
        static_cast<int64_t>((1.0 + 0.01 * static_cast<double>(rng() % 30)) *
                             static_cast<double>(batch.TotalTokens()) / workers) +
        static_cast<int64_t>(rng() % 3);
    for (int32_t c = 1; c <= workers; c *= 2) {
      const bool surely = StaticCpSurelyPacks(batch, c, budget);
      const bool packs = PackStaticCpGroups(batch, c, budget, "static_cp").ok();
      EXPECT_TRUE(packs || !surely)
          << "case " << i << ", W " << workers << ", c " << c << ", budget " << budget;
      sure += surely;
      failed += !packs;
    }
  }
  EXPECT_GT(sure, 100);
  EXPECT_GT(failed, 20);
}

// static_cp's cheap stage (StaticCpLongestDocumentBoundMs) is at most the bound of the layout
// static_cp makes (LayoutLowerBoundMs: the same member's sum holds the same two terms), exactly,
// and it knows a bound in most cases.
TEST(LowerBoundTest, StaticCpLongestDocumentBoundIsAtMostItsLayoutsBound) {
  std::mt19937_64 rng(66);
  const std::unique_ptr<Planner> planner = *NewPlanner("static_cp");
  int cases = 0, known = 0;
  for (int i = 0; i < 60; ++i) {
    auto [batch, options, workers, mask_kind] = DrawCase(rng);
    MaybeCap(rng, 1.05, 0, workers, &batch);
    options.strategy = "static_cp";
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    absl::StatusOr<Layout> layout = planner->MakeLayout(ctx);
    const double longest = StaticCpLongestDocumentBoundMs(ctx);
    if (!layout.ok()) {
      EXPECT_EQ(longest, 0) << "case " << i;
      continue;
    }
    ++cases;
    known += longest > 0;
    EXPECT_LE(longest, LayoutLowerBoundMs(ctx, *layout)) << "case " << i << ", W " << workers;
  }
  EXPECT_GT(cases, 50);
  EXPECT_GT(known, 40);
}

// PlanContext::incumbent_ms (planner.h) changes no plan: auto, whose candidates skip what cannot
// beat the best plan so far, picks the strategy and the step of a reference loop that runs every
// candidate fully without an incumbent and keeps the first least step within the cap; and flexdeg
// given an incumbent returns its own plan when that is below it, else a plan no faster than it.
// Random batches: every mask, both objectives, with and without a cap, several worker counts.
TEST(IncumbentTest, AutoPicksWhatEveryCandidateRunFullyPicksAndFlexDegKeepsItsPlan) {
  std::mt19937_64 rng(2326);
  std::vector<std::unique_ptr<Planner>> candidates;
  for (const std::string& name : AutoCandidates()) candidates.push_back(*NewPlanner(name));
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const auto& a, const auto& b) { return a->auto_order() < b->auto_order(); });
  const std::unique_ptr<Planner> auto_planner = *NewPlanner("auto");
  const std::unique_ptr<Planner> flexdeg = *NewPlanner("flexdeg");
  int cases = 0, flexdeg_above = 0, flexdeg_below = 0;
  for (int i = 0; i < 48; ++i) {
    auto [batch, options, workers, mask_kind] = DrawCase(rng);
    MaybeCap(rng, 1.05, 0.1, workers, &batch);
    const Batch resolved = ResolveBatch(batch, options.objective);
    const CostModel cost(resolved.model, resolved.topology, options.cost, options.objective);
    const PlanContext ctx{resolved, options, cost, absl::InfiniteFuture()};
    const std::string where = absl::StrCat("case ", i, ", W ", workers, ", masks ", mask_kind, ", ",
                                           ObjectiveName(options.objective), ", cap ",
                                           batch.topology.max_tokens_per_worker);
    // The reference: every candidate that fits the time budget, run fully, no incumbent.
    Priced reference;
    Priced flexdeg_alone;
    for (const std::unique_ptr<Planner>& planner : candidates) {
      if (!planner->EstimatePlanningCost(ctx).Fits(options.time_budget_ms)) continue;
      const Priced priced = PriceLayout(ctx, planner->MakeLayout(ctx));
      if (priced.ms < reference.ms) reference = priced;
      if (planner->name() == "flexdeg") flexdeg_alone = priced;
    }
    if (reference.ms == HUGE_VAL) continue;  // no plan within the cap
    ++cases;
    const Priced chosen = PriceLayout(ctx, auto_planner->MakeLayout(ctx));
    EXPECT_EQ(chosen.strategy, reference.strategy) << where;
    EXPECT_EQ(chosen.ms, reference.ms) << where;
    // flexdeg under incumbents around its own plan's step.
    if (flexdeg_alone.ms == HUGE_VAL) continue;
    const double free_bound = flexdeg->LowerBoundMs(ctx);
    for (double factor : {0.9, 0.99, 1.0, 1.01, 1.1}) {
      PlanContext bounded = ctx;
      bounded.incumbent_ms = flexdeg_alone.ms * factor;
      const Priced priced = PriceLayout(bounded, flexdeg->MakeLayout(bounded));
      if (flexdeg_alone.ms < bounded.incumbent_ms) {
        ++flexdeg_below;
        EXPECT_EQ(priced.ms, flexdeg_alone.ms) << where << ", incumbent x" << factor;
      } else {
        ++flexdeg_above;
        EXPECT_GE(priced.ms, bounded.incumbent_ms) << where << ", incumbent x" << factor;
      }
      // Its bound: the same below the incumbent, else at least the incumbent (auto skips it).
      const double bound = flexdeg->LowerBoundMs(bounded);
      if (free_bound < bounded.incumbent_ms) {
        EXPECT_EQ(bound, free_bound) << where << ", incumbent x" << factor;
      } else {
        EXPECT_GE(bound, bounded.incumbent_ms) << where << ", incumbent x" << factor;
      }
    }
    // And under incumbents just around its bound, where the micro-batched packings' stops
    // (flexdeg_micro.h: a worker's least compute, or the fluid check) are closest to a packing
    // below the incumbent: the same bound below it, else at least the incumbent.
    for (double factor : {0.999, 1 + 1e-7, 1.0001, 1.003, 1.03}) {
      PlanContext bounded = ctx;
      bounded.incumbent_ms = free_bound * factor;
      const double bound = flexdeg->LowerBoundMs(bounded);
      if (free_bound < bounded.incumbent_ms) {
        EXPECT_EQ(bound, free_bound) << where << ", incumbent x" << factor << " of the bound";
      } else {
        EXPECT_GE(bound, bounded.incumbent_ms) << where << ", incumbent x" << factor;
      }
    }
  }
  EXPECT_GT(cases, 40);
  EXPECT_GT(flexdeg_below, 40);
  EXPECT_GT(flexdeg_above, 40);
}

}  // namespace
}  // namespace fcp
