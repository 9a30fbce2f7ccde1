#include "service/planner/token_dispatch.h"

#include "absl/strings/str_cat.h"

namespace fcp {
namespace {

absl::StatusOr<const WorkerPlan*> SliceOf(const Plan& plan, int32_t rank) {
  const WorkerPlan* worker = plan.FindWorker(rank);
  if (worker == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank: the plan holds no slice for rank ", rank, " (", plan.workers.size(),
                     " slices; plan with every rank to dispatch any of them)"));
  }
  for (int32_t b : worker->blocks) {
    if (b < 0 || b >= static_cast<int32_t>(plan.blocks.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("rank: slice ", rank, " lists block ", b, " of ", plan.blocks.size()));
    }
  }
  return worker;
}

}  // namespace

std::vector<int64_t> DocumentOffsets(const Plan& plan) {
  std::vector<int64_t> offsets(plan.documents.size() + 1, 0);
  for (size_t d = 0; d < plan.documents.size(); ++d) {
    offsets[d + 1] = offsets[d] + plan.documents[d].length;
  }
  return offsets;
}

int64_t TotalTokens(const Plan& plan) { return DocumentOffsets(plan).back(); }

absl::StatusOr<RankTokens> RankTokensOf(const Plan& plan, int32_t rank) {
  absl::StatusOr<const WorkerPlan*> worker = SliceOf(plan, rank);
  if (!worker.ok()) return worker.status();
  const std::vector<int64_t> offsets = DocumentOffsets(plan);
  RankTokens out;
  for (int32_t b : (*worker)->blocks) {
    const Block& block = plan.blocks[b];
    for (int64_t p = block.begin; p < block.end; ++p) {
      out.global_index.push_back(offsets[block.document] + p);
      out.position.push_back(p);
    }
  }
  return out;
}

std::vector<int64_t> OwnedTokens(const Plan& plan, int32_t rank) {
  const std::vector<int64_t> offsets = DocumentOffsets(plan);
  std::vector<int64_t> out;
  for (const Block& block : plan.blocks) {
    if (block.owner != rank) continue;
    for (int64_t p = block.begin; p < block.end; ++p) out.push_back(offsets[block.document] + p);
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> CanonicalToLocal(const Plan& plan, int32_t rank) {
  absl::StatusOr<const WorkerPlan*> worker = SliceOf(plan, rank);
  if (!worker.ok()) return worker.status();
  // First local row of each block, then the owned blocks walked by id.
  std::vector<int64_t> first(plan.blocks.size(), -1);
  int64_t row = 0;
  for (int32_t b : (*worker)->blocks) {
    first[b] = row;
    row += plan.blocks[b].tokens();
  }
  std::vector<int64_t> out;
  out.reserve(row);
  for (size_t b = 0; b < plan.blocks.size(); ++b) {
    if (plan.blocks[b].owner != rank) continue;
    if (first[b] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("rank: block ", b, " is owned by rank ", rank,
                                                     " but missing from its slice"));
    }
    for (int64_t i = 0; i < plan.blocks[b].tokens(); ++i) out.push_back(first[b] + i);
  }
  if (static_cast<int64_t>(out.size()) != row) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank: slice ", rank, " lists blocks it does not own"));
  }
  return out;
}

absl::StatusOr<std::vector<TokenLocation>> LocateTokens(const Plan& plan, int32_t world_size) {
  std::vector<TokenLocation> out(TotalTokens(plan));
  for (int32_t r = 0; r < world_size; ++r) {
    absl::StatusOr<RankTokens> tokens = RankTokensOf(plan, r);
    if (!tokens.ok()) return tokens.status();
    for (size_t i = 0; i < tokens->global_index.size(); ++i) {
      out[tokens->global_index[i]] = {r, static_cast<int64_t>(i)};
    }
  }
  return out;
}

}  // namespace fcp
