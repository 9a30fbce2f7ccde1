// Token dispatch: which tokens of a batch each rank holds under a plan, in which order, and the way
// back. The global index of a token is its position in the batch's documents concatenated in
// request order; a rank's local order is its slice's block list (WorkerPlan::blocks), the order its
// q/k/v rows take in the executor. Blocks cover documents exactly, so no document is ever padded.
//
//   ASSIGN_OR_RETURN(RankTokens mine, RankTokensOf(plan, rank));
//   x_local[i] = x_global[mine.global_index[i]];    // and RoPE at mine.position[i]
//
// Canonical order (OwnedTokens) is what any rank can compute for any other from plan.blocks alone
// (the blocks a rank owns by increasing id), without that rank's slice: row exchanges
// (worker/executor/row_exchange.h) move rows in it.
#ifndef FCP_SERVICE_PLANNER_TOKEN_DISPATCH_H_
#define FCP_SERVICE_PLANNER_TOKEN_DISPATCH_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "service/planner/plan.h"

namespace fcp {

struct RankTokens {
  std::vector<int64_t> global_index;  // by local row
  std::vector<int64_t> position;      // by local row: position within its document
};

// Global index of each document's first token (documents.size() + 1 entries; the last is the
// total).
std::vector<int64_t> DocumentOffsets(const Plan& plan);
int64_t TotalTokens(const Plan& plan);

// `rank`'s rows in its slice's order. InvalidArgument naming `rank` when the plan holds no slice
// for it (plans requested for some ranks only) or a block id is out of range.
absl::StatusOr<RankTokens> RankTokensOf(const Plan& plan, int32_t rank);

// Global indices of the tokens `rank` owns, blocks by increasing id (canonical order).
std::vector<int64_t> OwnedTokens(const Plan& plan, int32_t rank);

// For `rank`'s slice: canonical row c is local row local_of_canonical[c].
absl::StatusOr<std::vector<int64_t>> CanonicalToLocal(const Plan& plan, int32_t rank);

// The inverse of dispatch: for every global token, its owner and row in the owner's local order.
// Needs every rank's slice (InvalidArgument naming the first missing rank).
struct TokenLocation {
  int32_t rank = 0;
  int64_t row = 0;
};
absl::StatusOr<std::vector<TokenLocation>> LocateTokens(const Plan& plan, int32_t world_size);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_TOKEN_DISPATCH_H_
