// Internals of the plan validator (validator.h) that its two files share: the invariants' names,
// the violation format and the index of the plan that the checks build. Only validator*.cc use it.
#ifndef FCP_SERVICE_PLANNER_VALIDATOR_INTERNAL_H_
#define FCP_SERVICE_PLANNER_VALIDATOR_INTERNAL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/planner/batch.h"
#include "service/planner/mask_math.h"
#include "service/planner/plan.h"

namespace fcp {
namespace validator_internal {

struct Invariant {
  int number;
  const char* name;
};
inline constexpr Invariant kBlocks{1, "blocks"};
inline constexpr Invariant kTiles{2, "tiles"};
inline constexpr Invariant kData{3, "data"};
inline constexpr Invariant kRounds{4, "rounds"};
inline constexpr Invariant kLimits{5, "limits"};

template <typename... Args>
absl::Status Violation(Invariant inv, const Args&... args) {
  return absl::FailedPreconditionError(
      absl::StrCat("invariant ", inv.number, " (", inv.name, "): ", args...));
}

inline std::string TileName(const Tile& t) {
  return absl::StrCat("tile (q_block ", t.q_block, ", kv_block ", t.kv_block, ")");
}

inline std::string TransferName(int32_t src, int32_t dst, const Transfer& t) {
  return absl::StrCat(TransferKindName(t.kind), " transfer worker ", src, " -> worker ", dst,
                      " in round ", t.round, " (blocks ", absl::StrJoin(t.blocks, ","), ")");
}

// What the checks share: the inputs and indexes built by the earlier checks.
struct Index {
  Index(const Batch& batch, const Plan& plan) : batch(batch), plan(plan) {}

  const Batch& batch;
  const Plan& plan;
  int32_t num_workers = 0;
  std::vector<const WorkerPlan*> workers;        // by rank
  std::vector<std::vector<int32_t>> doc_blocks;  // per document, block ids in token order
  std::vector<int32_t> position;                 // block id -> index in doc_blocks[document]

  int64_t num_blocks() const { return static_cast<int64_t>(plan.blocks.size()); }
  const Block& block(int32_t id) const { return plan.blocks[id]; }
  bool ValidBlock(int64_t id) const { return id >= 0 && id < num_blocks(); }
  bool Required(int32_t q, int32_t kv) const {
    const Block& a = block(q);
    const Block& b = block(kv);
    return TileRequired(batch.documents[a.document].mask, a.begin, a.end, b.begin, b.end);
  }
};

constexpr int32_t kNever = -1;
using Arrivals = absl::flat_hash_map<int32_t, int32_t>;  // remote block -> first recv round

// Placed computation (plan.h), per worker r; `q_arrivals` are r's kQ recvs (block -> round).
// Invariant 2: every tile's q block is owned by r or received by kQ no later than its round.
absl::Status CheckQResidency(const Index& ix, int32_t r, const Arrivals& q_arrivals);
// Invariant 3: Q and dO leave their owner only; every remote q block r computes has its Out and
// dQ sent back to its owner and its dO received from it, once each; nothing else of these kinds.
absl::Status CheckPlacedReturns(const Index& ix, int32_t r, const Arrivals& q_arrivals);

}  // namespace validator_internal
}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_VALIDATOR_INTERNAL_H_
