// Pins the planner's output: for a fixed grid of batches (seeded wikipedia and magi draws from
// ../shared/workloads, W in {1, 3, 8, 64}, the four masks, two model shapes, a memory cap and a
// tight time budget on some) x every registered strategy, the plan id (ComputePlanId) and a digest
// of the plan's content must equal the golden file tests/data/plan_pin.golden, line for line.
//
// A line is `case plan_id digest rounds comm_bytes fwd_ms bwd_ms` (or `case plan_id error CODE`
// when planning fails); the digest is a stable hash of the strategy, the blocks with their owners,
// every worker's blocks, tiles (with rounds), sends, receives and predicted costs, and the summary
// (all but the wall-clock planning time); the ms are printed at full precision.
//
// Refactoring the planner must leave this file unchanged. A change that alters plans on purpose
// must bump kPlannerVersion (service/planner/planner.h) in the same commit, and regenerate:
//
//   FCP_REGENERATE_PLAN_PIN=1 build/tests/plan_pin_test    # rewrites tests/data/plan_pin.golden
//
// then commit the new golden file together with the version bump (every plan id changes with it).
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "service/planner/planner.h"
#include "service/planner/stable_hasher.h"
#include "service/planner/strategies/dcp.h"
#include "workload/workload.h"

namespace fcp {
namespace {

// The plan ids' stable hash, over the plan's content in a canonical order.
class Digest : public StableHasher {
 public:
  void Cost(const WorkerCost& c) {
    for (double v : {c.fwd_flops, c.bwd_flops, c.compute_fwd_ms, c.fwd_ms, c.bwd_ms}) Double(v);
    for (int64_t v : {c.tokens, c.send_bytes, c.recv_bytes}) Int(v);
  }
  void Transfers(const std::vector<Transfer>& transfers) {
    Int(static_cast<int64_t>(transfers.size()));
    for (const Transfer& t : transfers) {
      for (int64_t v : {int64_t{t.round}, int64_t{t.peer}, static_cast<int64_t>(t.kind)}) Int(v);
      Int(static_cast<int64_t>(t.blocks.size()));
      for (int32_t b : t.blocks) Int(b);
    }
  }
};

std::string PlanDigest(const Plan& plan) {
  Digest h;
  h.String(plan.strategy);
  h.String(plan.requested_strategy);
  h.Int(plan.block_size);
  h.Int(static_cast<int64_t>(plan.blocks.size()));
  for (const Block& b : plan.blocks) {
    for (int64_t v : {int64_t{b.document}, b.begin, b.end, int64_t{b.owner}}) h.Int(v);
  }
  h.Int(static_cast<int64_t>(plan.workers.size()));
  for (const WorkerPlan& w : plan.workers) {
    h.Int(w.rank);
    h.Int(static_cast<int64_t>(w.blocks.size()));
    for (int32_t b : w.blocks) h.Int(b);
    h.Int(static_cast<int64_t>(w.tiles.size()));
    for (const Tile& t : w.tiles) {
      for (int64_t v : {t.q_block, t.kv_block, t.round}) h.Int(v);
    }
    h.Transfers(w.sends);
    h.Transfers(w.recvs);
    h.Cost(w.predicted);
  }
  for (const WorkerCost& c : plan.costs) h.Cost(c);
  const PlanSummary& s = plan.summary;  // all but planning_ms (wall clock)
  for (double v : {s.compute_imbalance, s.token_imbalance, s.predicted_fwd_ms, s.predicted_bwd_ms,
                   s.total_fwd_flops}) {
    h.Double(v);
  }
  for (int64_t v :
       {s.comm_bytes, s.max_worker_comm_bytes, s.inter_node_bytes, int64_t{s.rounds}, s.tiles}) {
    h.Int(v);
  }
  return h.Hex();
}

struct Case {
  std::string name;
  Batch batch;
  PlanOptions options;
};

Mask MaskFor(int kind, int64_t length) {
  switch (kind) {
    case 1:
      return Mask::Full();
    case 2:
      return Mask::SlidingWindow(1024);
    case 3:
      return Mask::PrefixLm(length / 4);
    default:
      return Mask::Causal();
  }
}

// The grid: 2 workloads x 4 W x 4 masks, the model shape alternating with the mask; at W = 8 also
// a memory cap, at W = 64 also time budgets of 0.5 and 0.01 ms (auto skips strategies), and
// 0.01 ms under a cap (auto may try none).
std::vector<Case> Grid() {
  const std::string workloads = std::string(FCP_SHARED_DIR) + "/workloads/";
  absl::StatusOr<std::vector<int64_t>> wiki = ReadLengthsFile(workloads + "wikipedia.lengths");
  absl::StatusOr<std::vector<HistogramBin>> magi =
      ReadHistogramFile(workloads + "magi_histogram.csv");
  EXPECT_TRUE(wiki.ok()) << wiki.status();
  EXPECT_TRUE(magi.ok()) << magi.status();
  if (!wiki.ok() || !magi.ok()) return {};
  struct Source {
    const char* name;
    absl::StatusOr<LengthSampler> sampler;
    uint64_t seed;
  };
  Source sources[] = {{"wiki", LengthSampler::FromLengths(*wiki), 1},
                      {"magi", LengthSampler::FromHistogram(*magi), 2}};
  const char* kMaskNames[] = {"causal", "full", "sliding", "prefix"};
  std::vector<Case> cases;
  for (Source& source : sources) {
    EXPECT_TRUE(source.sampler.ok()) << source.sampler.status();
    if (!source.sampler.ok()) return {};
    for (int32_t workers : {1, 3, 8, 64}) {
      const int64_t per_worker = 2048;
      absl::StatusOr<std::vector<int64_t>> lengths = SampleLengths(
          *source.sampler, workers * per_worker, /*max_doc_len=*/16384, source.seed + workers);
      EXPECT_TRUE(lengths.ok()) << lengths.status();
      if (!lengths.ok()) return {};
      for (int mask = 0; mask < 4; ++mask) {
        Case c;
        c.name = absl::StrCat(source.name, "/W", workers, "/", kMaskNames[mask]);
        for (int64_t length : *lengths)
          c.batch.documents.push_back({length, MaskFor(mask, length)});
        c.batch.topology.num_workers = workers;
        if (mask % 2 == 1) {  // the second model shape: MHA, fp32, linear layers, forward only
          c.batch.model = {16, 16, 64, DType::kFp32, 1e9};
          c.options.include_backward = false;
        }
        cases.push_back(c);
        if (workers == 8 && mask == 0) {
          c.name += "/cap";
          c.batch.topology.max_tokens_per_worker = per_worker * 3 / 2;
          cases.push_back(c);
        }
        if (workers == 64 && mask == 0) {
          for (double budget : {0.5, 0.01}) {  // auto skips strategies; then all of them
            Case tight = c;
            tight.name += absl::StrCat("/budget", budget);
            tight.options.time_budget_ms = budget;
            cases.push_back(tight);
          }
          c.name += "/cap/budget0.01";  // whole_doc split too: auto has nothing it may try
          c.batch.topology.max_tokens_per_worker = per_worker * 3 / 2;
          c.options.time_budget_ms = 0.01;
          cases.push_back(c);
        }
      }
    }
  }
  return cases;
}

std::string PinLine(const std::string& name, const Batch& batch, const PlanOptions& options) {
  const std::string id = ComputePlanId(batch, options);
  absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
  if (!plan.ok()) {
    return absl::StrCat(name, " ", id, " error ", absl::StatusCodeToString(plan.status().code()));
  }
  EXPECT_EQ(plan->plan_id, id) << name;
  return absl::StrFormat("%s %s %s %d %d %.17g %.17g", name, id, PlanDigest(*plan),
                         plan->summary.rounds, plan->summary.comm_bytes,
                         plan->summary.predicted_fwd_ms, plan->summary.predicted_bwd_ms);
}

TEST(PlanPinTest, PlansOfTheGridMatchTheGoldenFile) {
  std::vector<std::string> lines;
  RegisterDcpPlanner();
  for (const Case& c : Grid()) {
    for (const StrategyInfo& strategy : ListStrategies()) {
      PlanOptions options = c.options;
      options.strategy = strategy.name;
      lines.push_back(PinLine(absl::StrCat(c.name, "/", strategy.name), c.batch, options));
    }
  }
  ASSERT_GT(lines.size(), 200u);
  const std::string golden_path = FCP_PLAN_PIN_GOLDEN;
  if (const char* regenerate = std::getenv("FCP_REGENERATE_PLAN_PIN");
      regenerate != nullptr && std::string(regenerate) == "1") {
    std::ofstream out(golden_path, std::ios::trunc);
    for (const std::string& line : lines) out << line << "\n";
    ASSERT_TRUE(out.good()) << "cannot write " << golden_path;
    GTEST_SKIP() << "regenerated " << golden_path << " (" << lines.size() << " plans)";
  }
  std::ifstream in(golden_path);
  ASSERT_TRUE(in.good()) << "cannot read " << golden_path;
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> golden = absl::StrSplit(text.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(golden.size(), lines.size()) << "the grid or the strategies changed";
  int mismatches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i] == golden[i]) continue;
    if (++mismatches <= 10) ADD_FAILURE() << "expected " << golden[i] << "\n     got " << lines[i];
  }
  EXPECT_EQ(mismatches, 0) << "plans changed: bump kPlannerVersion and regenerate (see header)";
}

}  // namespace
}  // namespace fcp
