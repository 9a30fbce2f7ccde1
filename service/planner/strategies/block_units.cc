#include "service/planner/strategies/block_units.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "service/planner/mask_math.h"
#include "service/planner/strategies/fcp_packer.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// In the grouped shape, a document left without a group is cut so that its last block carries at
// most this share of a worker's mean work.
constexpr double kGroupedFineShare = 0.1;
// Smallest block for documents cut finer than the block size, tokens.
constexpr int64_t kMinBlock = 256;

// Cuts the batch into packing units (`items`, pinned when grouped) and returns the block count.
class UnitBuilder {
 public:
  UnitBuilder(const PlanContext& ctx, UnitShape shape, const DocCosts& costs)
      : ctx_(ctx),
        batch_(ctx.batch),
        shape_(shape),
        automatic_(ctx.options.block_size == 0),
        costs_(costs),
        doc_seconds_(costs.seconds),
        mean_seconds_(std::max(costs.total / batch_.topology.num_workers, 1e-12)) {}

  void Build(std::vector<PackItem>* items) {
    const int32_t docs = static_cast<int32_t>(batch_.documents.size());
    std::vector<int32_t> group_of(docs, -1);
    std::vector<int32_t> group_sizes;
    if (grouped() && automatic_) ChooseGroups(&group_of, &group_sizes);
    const std::vector<std::vector<int32_t>> members = PlaceGroups(group_sizes, batch_.topology);
    const int64_t block = costs_.block_size;
    items->reserve(docs + costs_.tokens / block);
    whole_item_.assign(docs, -1);
    for (int32_t d = 0; d < docs; ++d) {
      const Document& doc = batch_.documents[d];
      if (group_of[d] >= 0) {
        const std::vector<int32_t>& group = members[group_of[d]];
        const int64_t k = static_cast<int64_t>(group.size());
        const int64_t n = GroupChunks(doc, k);
        bounds_.resize(n + 1);
        for (int64_t c = 0; c <= n; ++c) bounds_[c] = ChunkBegin(doc.length, n, c);
        AddUnits(d, items, &group);
      } else if (doc.length <= block ||
                 (grouped() && automatic_ && doc_seconds_[d] <= mean_seconds_)) {
        AddWhole(d, items, nullptr);  // most documents: short, one unit
      } else {
        CutFine(doc, block);
        AddUnits(d, items, nullptr);
      }
    }
  }
  int32_t blocks() const { return blocks_; }
  // The unpinned units that are whole documents, most costly first (ties: document order, as the
  // units are made), for Packer::Pack.
  std::vector<int32_t> WholeUnitsByCost() const {
    std::vector<int32_t> units;
    units.reserve(whole_item_.size());
    for (int32_t d : costs_.by_cost) {
      if (whole_item_[d] >= 0) units.push_back(whole_item_[d]);
    }
    return units;
  }
  int64_t largest() const { return largest_; }

 private:
  bool grouped() const { return shape_ != UnitShape::kFine; }

  // Documents worth more than one worker, costliest first, each a group of ceil(cost / fill)
  // workers while workers remain (group members take short documents beside their group's).
  void ChooseGroups(std::vector<int32_t>* group_of, std::vector<int32_t>* sizes) const {
    const int32_t workers = batch_.topology.num_workers;
    const int64_t cap = TokenCap(batch_.topology);
    const double fill = shape_ == UnitShape::kGroupedFull ? 1.0 : GroupFill();
    int32_t left = workers;
    for (int32_t d : costs_.by_cost) {
      const double share = doc_seconds_[d] / mean_seconds_;
      if (share <= 1) break;
      const int64_t length = batch_.documents[d].length;
      int64_t k = static_cast<int64_t>(std::ceil(share / fill - 1e-9));
      if (length > cap / 2) k = std::max<int64_t>(k, 2 * ((length + cap - 1) / cap));
      k = std::min<int64_t>(k, length);
      if (k < 2 || k > left) continue;
      (*group_of)[d] = static_cast<int32_t>(sizes->size());
      sizes->push_back(static_cast<int32_t>(k));
      left -= static_cast<int32_t>(k);
    }
  }

  // The share of a member's mean load its group's document may take. Without a memory cap, all
  // of it. With one, the workers outside groups can hold at most `cap` tokens each, so the group
  // members must take the rest as whole short documents, whose attention work (at the batch's
  // short-document density) has to fit beside the group's document.
  double GroupFill() const {
    const int64_t cap = TokenCap(batch_.topology);
    if (cap == TokenCap(Topology{})) return 1;
    double short_seconds = 0, short_tokens = 0, group_workers = 0, group_tokens = 0;
    for (size_t d = 0; d < doc_seconds_.size(); ++d) {
      const double share = doc_seconds_[d] / mean_seconds_;
      const double length = static_cast<double>(batch_.documents[d].length);
      if (share > 1) {
        group_workers += std::ceil(share);
        group_tokens += length;
      } else {
        short_seconds += doc_seconds_[d];
        short_tokens += length;
      }
    }
    if (group_workers < 1 || short_tokens <= 0) return 1;
    const double others = batch_.topology.num_workers - group_workers;
    const double must_hold = static_cast<double>(costs_.tokens) - others * cap;
    const double filler = std::max(0.0, must_hold - group_tokens) / group_workers;
    const double filler_share = filler * (short_seconds / short_tokens) / mean_seconds_;
    return std::clamp(1 - filler_share, 0.5, 1.0);
  }

  // Blocks of at most `block` tokens; in automatic mode smaller (down to kMinBlock) while the
  // document's last block alone would carry more than a worker's mean attention work.
  void CutFine(const Document& doc, int64_t block) {
    int64_t doc_block = block;
    if (automatic_ && doc.length > doc_block) {
      // Beside pinned groups the gaps left to fill are uneven: finer units fill them better.
      const double per_worker_pairs = PairsPerWorker() * (grouped() ? kGroupedFineShare : 1.0);
      while (doc_block > kMinBlock && doc.length > doc_block &&
             static_cast<double>(AllowedPairs(doc.mask, doc.length - doc_block, doc.length, 0,
                                              doc.length)) > per_worker_pairs) {
        doc_block = std::max(kMinBlock, doc_block / 2);
      }
    }
    if (doc.length <= doc_block) {
      bounds_ = {0, doc.length};
    } else {
      bounds_ = SplitEvenly(doc.length, doc_block);
    }
  }

  double PairsPerWorker() {
    if (pairs_per_worker_ < 0) {
      double total = 0;
      for (const Document& doc : batch_.documents) {
        total += static_cast<double>(AllowedPairs(doc.mask, 0, doc.length, 0, doc.length));
      }
      pairs_per_worker_ = total / batch_.topology.num_workers;
    }
    return pairs_per_worker_;
  }

  // The whole document d as one unit (one tile, already costed: DocumentSeconds).
  void AddWhole(int32_t d, std::vector<PackItem>* items, const std::vector<int32_t>* group) {
    const int64_t length = batch_.documents[d].length;
    PackItem item{d, 0, length, doc_seconds_[d]};
    item.block = blocks_++;
    item.sole = true;
    if (group != nullptr) item.owner = group->front();
    if (group == nullptr) whole_item_[d] = static_cast<int32_t>(items->size());
    largest_ = std::max(largest_, length);
    items->push_back(item);
  }

  // Units of document d cut at bounds_: zigzag pairs (block i with n-1-i) for causal-like masks,
  // so every holder of a late block also holds an early one; pinned to `group` if given.
  void AddUnits(int32_t d, std::vector<PackItem>* items, const std::vector<int32_t>* group) {
    const Document& doc = batch_.documents[d];
    const bool pair = PairsZigzag(doc);
    const size_t n = bounds_.size() - 1;
    if (n == 1) {
      AddWhole(d, items, group);
      return;
    }
    // The middle pair of an even cut is two neighbouring blocks on one worker, which merge into
    // one (MergeNeighbours, causal masks, automatic mode): cost the tiles as they will be.
    const bool merge_middle =
        automatic_ && doc.mask.kind == MaskKind::kCausal && n >= 2 && n % 2 == 0;
    if (merge_middle) {
      tile_bounds_ = bounds_;
      tile_bounds_.erase(tile_bounds_.begin() + n / 2);
    }
    const std::vector<int64_t>& tiles = merge_middle ? tile_bounds_ : bounds_;
    auto seconds = [&](int64_t begin, int64_t end) {
      return QueryRangeSeconds(ctx_.cost, doc, begin, end, tiles) +
             3 * ctx_.cost.TokenSeconds(end - begin);
    };
    largest_ = std::max(largest_, bounds_[1] - bounds_[0]);
    for (size_t i = 0; i < (pair ? (n + 1) / 2 : n); ++i) {
      const size_t j = n - 1 - i;
      const bool middle = merge_middle && j == i + 1;
      PackItem item{
          d, bounds_[i], bounds_[i + 1],
          middle ? seconds(bounds_[i], bounds_[j + 1]) : seconds(bounds_[i], bounds_[i + 1])};
      item.block = blocks_ + static_cast<int32_t>(i);
      if (pair && j != i) {
        item.begin2 = bounds_[j];
        item.end2 = bounds_[j + 1];
        if (!middle) item.seconds += seconds(bounds_[j], bounds_[j + 1]);
        item.block2 = blocks_ + static_cast<int32_t>(j);
      }
      if (group != nullptr) item.owner = (*group)[i % group->size()];
      items->push_back(item);
    }
    blocks_ += static_cast<int32_t>(n);
  }

  const PlanContext& ctx_;
  const Batch& batch_;
  UnitShape shape_;
  bool automatic_;
  const DocCosts& costs_;
  const std::vector<double>& doc_seconds_;
  double mean_seconds_;
  std::vector<int32_t> whole_item_;  // per document, its unit if whole and unpinned, else -1
  double pairs_per_worker_ = -1;
  std::vector<int64_t> bounds_;
  std::vector<int64_t> tile_bounds_;  // bounds_ as tiles will be cut (after merging)
  int32_t blocks_ = 0;
  int64_t largest_ = 0;
};

// Blocks in position order; neighbouring blocks of one document on one worker become one block
// (larger tiles, same transfers: for CAUSAL and FULL masks a receiver needs all of either or
// none of the merged range). Only in automatic mode, where no block size was promised.
void MergeNeighbours(const Batch& batch, std::vector<Block>* blocks) {
  size_t out = 0;
  for (size_t i = 0; i < blocks->size(); ++i) {
    const Block& b = (*blocks)[i];
    if (out > 0) {
      Block& last = (*blocks)[out - 1];
      if (last.document == b.document && last.owner == b.owner && last.end == b.begin) {
        const MaskKind kind = batch.documents[b.document].mask.kind;  // (only for neighbours)
        if (kind == MaskKind::kCausal || kind == MaskKind::kFull) {
          last.end = b.end;
          continue;
        }
      }
    }
    (*blocks)[out++] = b;
  }
  blocks->resize(out);
}

}  // namespace

DocCosts DocCosts::Of(const PlanContext& ctx) {
  DocCosts costs;
  costs.seconds = DocumentSeconds(ctx, &costs.total);
  costs.by_cost = ByCostDescending(costs.seconds, ctx.batch.documents);
  costs.tokens = ctx.batch.TotalTokens();
  costs.block_size = RequestedBlockSize(ctx);
  return costs;
}

Layout PackBlocks(const PlanContext& ctx, UnitShape shape, const DocCosts& costs) {
  const Batch& batch = ctx.batch;
  UnitBuilder builder(ctx, shape, costs);
  std::vector<PackItem> items;
  builder.Build(&items);
  Packer packer(batch.topology, &items);
  packer.Pack(static_cast<int32_t>(batch.documents.size()), builder.WholeUnitsByCost());
  packer.Refine(batch.topology.num_workers);
  Layout layout;
  layout.kind = Layout::Kind::kDirect;
  layout.blocks.resize(builder.blocks());
  for (const PackItem& it : items) {
    layout.blocks[it.block] = {it.document, it.begin, it.end, it.owner};
    if (it.block2 >= 0) layout.blocks[it.block2] = {it.document, it.begin2, it.end2, it.owner};
  }
  // Units too coarse for the room left under the token budget: cut to fit. It cannot fail (the
  // budget holds the batch: ValidateBatch, TokenBudget), and MakePlan checks the result anyway.
  FitTokenBudget(batch.topology.num_workers, TokenCap(batch.topology), &layout.blocks)
      .IgnoreError();
  if (ctx.options.block_size > 0) {
    layout.block_size = ctx.options.block_size;
    return layout;
  }
  MergeNeighbours(batch, &layout.blocks);
  for (const Block& b : layout.blocks) layout.block_size = std::max(layout.block_size, b.tokens());
  return layout;
}

}  // namespace fcp
