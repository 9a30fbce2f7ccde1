// Schedule of a kZigzagRing layout (Megatron-LM / TransformerEngine context parallelism):
//
//   group of k = 4 workers, document cut into 2k = 8 chunks, member m holds chunks m and 2k-1-m:
//     chunk:   0  1  2  3  4  5  6  7
//     member:  0  1  2  3  3  2  1  0        (causal work per member is then equal)
//   round r (1..k-1): member m receives from m-1 the KV of origin (m-r) mod k (relayed around the
//   ring) and computes its chunks against it; backward sends origin's dK/dV partials straight
//   back to the origin (a shifted permutation, so each round is still a matching).
//
// Costs are analytic, O(chunks): per q-chunk the allowed pairs against the whole document and
// against the member's own chunks; the remote part is spread evenly over the k-1 rounds (exact for
// causal zigzag up to rounding); each tile adds the cost model's tile overhead, where the member
// computes it (the tile counts are O(1) per chunk). Tiles are only enumerated for the slices
// asked for.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

class RingSchedule final : public Schedule {
 public:
  RingSchedule(const Batch& batch, const CostModel& cost, Layout layout)
      : batch_(batch),
        cost_(cost),
        groups_(std::move(layout.groups)),
        doc_group_(std::move(layout.doc_group)) {}

  absl::Status Build();
  const std::vector<WorkerCost>& costs() const override { return costs_; }
  const PlanSummary& summary() const override { return summary_; }
  std::vector<Block> Blocks() const override;
  WorkerPlan Slice(int32_t rank) const override;

 private:
  int64_t GroupSize(int32_t d) const { return static_cast<int64_t>(groups_[doc_group_[d]].size()); }
  int64_t Bound(int32_t d, int64_t c) const {
    return ChunkBegin(batch_.documents[d].length, 2 * GroupSize(d), c);
  }
  int32_t MemberOfChunk(int32_t d, int64_t c) const {
    const int64_t k = GroupSize(d);
    return static_cast<int32_t>(c < k ? c : 2 * k - 1 - c);
  }
  int32_t BlockId(int32_t d, int64_t c) const {
    const int64_t length = batch_.documents[d].length, chunks = 2 * GroupSize(d);
    return doc_first_[d] + static_cast<int32_t>(length >= chunks ? c : Bound(d, c));
  }
  absl::Status CheckGroups();
  // Non-empty chunks of document d that intersect positions [first, last].
  int64_t ChunksIn(int32_t d, int64_t first, int64_t last) const;
  // Required tiles of document d (exact, for every mask).
  int64_t CountTiles(int32_t d) const;
  // Tiles of the non-empty q-chunk c of document d: the non-empty chunks holding a key it sees.
  int64_t ChunkTiles(int32_t d, int64_t c) const;
  // `bounds`: scratch for the document's chunk boundaries.
  void CostDocument(int32_t d, CostInputs* in, std::vector<double>* remote_fwd,
                    std::vector<double>* remote_bwd, std::vector<int64_t>* bounds) const;
  // Block ids of member `origin` of group g, in id order.
  std::vector<int32_t> OriginBlocks(int32_t g, int32_t origin) const;

  const Batch& batch_;
  const CostModel& cost_;
  std::vector<std::vector<int32_t>> groups_;
  std::vector<int32_t> doc_group_;
  std::vector<int32_t> group_of_, member_of_;  // per worker; -1 if in no group
  std::vector<std::vector<int32_t>> docs_of_group_;
  std::vector<int32_t> doc_first_;
  std::vector<WorkerCost> costs_;
  PlanSummary summary_;
};

absl::Status RingSchedule::CheckGroups() {
  const int32_t workers = batch_.topology.num_workers;
  group_of_.assign(workers, -1);
  member_of_.assign(workers, -1);
  for (int32_t g = 0; g < static_cast<int32_t>(groups_.size()); ++g) {
    if (groups_[g].empty()) return absl::InternalError(absl::StrCat("ring group ", g, " is empty"));
    for (int32_t m = 0; m < static_cast<int32_t>(groups_[g].size()); ++m) {
      const int32_t w = groups_[g][m];
      if (w < 0 || w >= workers || group_of_[w] != -1) {
        return absl::InternalError(absl::StrCat("ring group ", g, ": worker ", w, " invalid"));
      }
      group_of_[w] = g;
      member_of_[w] = m;
    }
  }
  if (doc_group_.size() != batch_.documents.size()) {
    return absl::InternalError("ring layout: doc_group has the wrong size");
  }
  docs_of_group_.assign(groups_.size(), {});
  doc_first_.assign(batch_.documents.size() + 1, 0);
  for (int32_t d = 0; d < static_cast<int32_t>(doc_group_.size()); ++d) {
    if (doc_group_[d] < 0 || doc_group_[d] >= static_cast<int32_t>(groups_.size())) {
      return absl::InternalError(absl::StrCat("ring layout: document ", d, " has no group"));
    }
    docs_of_group_[doc_group_[d]].push_back(d);
    doc_first_[d + 1] = doc_first_[d] + static_cast<int32_t>(std::min<int64_t>(
                                            batch_.documents[d].length, 2 * GroupSize(d)));
  }
  return absl::OkStatus();
}

void RingSchedule::CostDocument(int32_t d, CostInputs* in, std::vector<double>* remote_fwd,
                                std::vector<double>* remote_bwd,
                                std::vector<int64_t>* bounds) const {
  const Document& doc = batch_.documents[d];
  const std::vector<int32_t>& members = groups_[doc_group_[d]];
  const int64_t k = static_cast<int64_t>(members.size()), chunks = 2 * k;
  const int64_t nonempty = std::min(doc.length, chunks);
  const int64_t kv_len = std::max<int64_t>(1, doc.length / nonempty);
  const double overhead = cost_.params().tile_overhead_us * 1e-6;
  std::vector<int64_t>& b = *bounds;
  b.resize(chunks + 1);
  for (int64_t c = 0; c <= chunks; ++c) b[c] = ChunkBegin(doc.length, chunks, c);
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t qb = b[c], qe = b[c + 1];
    if (qb == qe) continue;
    const int64_t partner = chunks - 1 - c;
    const int32_t w = members[MemberOfChunk(d, c)];
    const int64_t total = AllowedPairs(doc.mask, qb, qe, 0, doc.length);
    // A group of one holds both chunks: everything is local.
    const int64_t own = k == 1 ? total : AllowedPairs(doc.mask, qb, qe, qb, qe);
    const int64_t partnered =
        k == 1 ? 0 : AllowedPairs(doc.mask, qb, qe, b[partner], b[partner + 1]);
    const int64_t local = own + partnered;
    const double spp = cost_.SecondsPerPair(qe - qb, kv_len);
    in->tokens[w] += qe - qb;
    in->fwd_pairs[w] += static_cast<double>(total);
    in->compute.fwd(w, 0) += static_cast<double>(local) * spp;
    in->compute.bwd(w, 0) += static_cast<double>(local) * spp * cost_.BackwardFactor();
    (*remote_fwd)[w] += static_cast<double>(total - local) * spp;
    (*remote_bwd)[w] += static_cast<double>(total - local) * spp * cost_.BackwardFactor();
    if (overhead > 0) {  // forward and backward alike (CostModel::BackwardFromForward)
      const int64_t tiles = ChunkTiles(d, c);
      const int64_t local_tiles = k == 1 ? tiles : (own > 0) + (partnered > 0);
      const double local_overhead = static_cast<double>(local_tiles) * overhead;
      const double remote_overhead = static_cast<double>(tiles - local_tiles) * overhead;
      in->compute.fwd(w, 0) += local_overhead;
      in->compute.bwd(w, 0) += local_overhead;
      (*remote_fwd)[w] += remote_overhead;
      (*remote_bwd)[w] += remote_overhead;
    }
  }
  in->tiles += CountTiles(d);
}

int64_t RingSchedule::ChunksIn(int32_t d, int64_t first, int64_t last) const {
  if (first > last) return 0;
  const int64_t length = batch_.documents[d].length, chunks = 2 * GroupSize(d);
  if (length < chunks) return last - first + 1;  // every non-empty chunk holds one token
  // Chunk of position p: the largest c with floor(c·L/n) <= p.
  auto chunk_of = [&](int64_t p) {
    return static_cast<int64_t>((static_cast<__int128>(p + 1) * chunks - 1) / length);
  };
  return chunk_of(last) - chunk_of(first) + 1;
}

int64_t RingSchedule::CountTiles(int32_t d) const {
  const Document& doc = batch_.documents[d];
  const int64_t n = std::min(doc.length, 2 * GroupSize(d));  // non-empty chunks
  switch (doc.mask.kind) {
    case MaskKind::kFull:
      return n * n;
    case MaskKind::kCausal:
      return n * (n + 1) / 2;
    default:
      break;
  }
  int64_t tiles = 0;
  for (int64_t c = 0; c < 2 * GroupSize(d); ++c) {
    if (Bound(d, c) != Bound(d, c + 1)) tiles += ChunkTiles(d, c);
  }
  return tiles;
}

int64_t RingSchedule::ChunkTiles(int32_t d, int64_t c) const {
  const Document& doc = batch_.documents[d];
  const int64_t qb = Bound(d, c), qe = Bound(d, c + 1);
  // Keys of a causal q-chunk [qb, qe) are [0, qe - 1]; of a sliding window the contiguous range
  // [qb - w + 1, qe - 1]; a prefix-LM q-chunk sees [0, qe - 1] plus [qe, p - 1].
  switch (doc.mask.kind) {
    case MaskKind::kFull:
      return std::min(doc.length, 2 * GroupSize(d));
    case MaskKind::kCausal:
      return ChunksIn(d, 0, qe - 1);
    case MaskKind::kSlidingWindow:
      return ChunksIn(d, std::max<int64_t>(0, qb - doc.mask.window + 1), qe - 1);
    default:
      return ChunksIn(d, 0, std::max(qe, std::min(doc.mask.prefix, doc.length)) - 1);
  }
}

absl::Status RingSchedule::Build() {
  if (absl::Status s = CheckGroups(); !s.ok()) return s;
  const int32_t workers = batch_.topology.num_workers;
  int32_t rounds = 0;
  for (const auto& g : groups_) rounds = std::max<int32_t>(rounds, g.size() - 1);
  CostInputs in;
  in.compute = RoundCompute(workers, rounds);
  in.fwd_pairs.assign(workers, 0);
  in.tokens.assign(workers, 0);
  std::vector<double> remote_fwd(workers, 0), remote_bwd(workers, 0);
  std::vector<int64_t> bounds;
  for (int32_t d = 0; d < static_cast<int32_t>(batch_.documents.size()); ++d) {
    CostDocument(d, &in, &remote_fwd, &remote_bwd, &bounds);
  }
  size_t transfers = 0;
  for (const auto& g : groups_) transfers += g.size() * (g.size() - 1);
  in.kv.reserve(transfers);
  in.dkv.reserve(transfers);
  for (const std::vector<int32_t>& members : groups_) {
    const int32_t k = static_cast<int32_t>(members.size());
    for (int32_t m = 0; m < k; ++m) {
      const int32_t w = members[m];
      for (int32_t r = 1; r < k; ++r) {
        in.compute.fwd(w, r) = remote_fwd[w] / (k - 1);
        in.compute.bwd(w, r) = remote_bwd[w] / (k - 1);
        const int32_t origin = members[(m - r + k) % k];
        const int64_t bytes = cost_.KvBytes(in.tokens[origin]);
        if (bytes == 0) continue;
        in.kv.push_back({r, members[(m - 1 + k) % k], w, bytes});
        in.dkv.push_back({r, w, origin, bytes});
      }
    }
  }
  SummarizeCosts(cost_, std::move(in), &costs_, &summary_);
  return absl::OkStatus();
}

std::vector<Block> RingSchedule::Blocks() const {
  std::vector<Block> blocks;
  blocks.reserve(doc_first_.back());
  for (int32_t d = 0; d < static_cast<int32_t>(batch_.documents.size()); ++d) {
    const std::vector<int32_t>& members = groups_[doc_group_[d]];
    for (int64_t c = 0; c < 2 * GroupSize(d); ++c) {
      const int64_t b = Bound(d, c), e = Bound(d, c + 1);
      if (b < e) blocks.push_back({d, b, e, members[MemberOfChunk(d, c)]});
    }
  }
  return blocks;
}

std::vector<int32_t> RingSchedule::OriginBlocks(int32_t g, int32_t origin) const {
  std::vector<int32_t> ids;
  const int64_t k = static_cast<int64_t>(groups_[g].size());
  for (int32_t d : docs_of_group_[g]) {
    for (int64_t c : {int64_t{origin}, 2 * k - 1 - origin}) {
      if (Bound(d, c) < Bound(d, c + 1)) ids.push_back(BlockId(d, c));
    }
  }
  return ids;
}

WorkerPlan RingSchedule::Slice(int32_t rank) const {
  WorkerPlan slice;
  slice.rank = rank;
  slice.predicted = costs_[rank];
  const int32_t g = group_of_[rank];
  if (g < 0) return slice;
  const std::vector<int32_t>& members = groups_[g];
  const int32_t k = static_cast<int32_t>(members.size()), m = member_of_[rank];
  slice.blocks = OriginBlocks(g, m);
  for (int32_t d : docs_of_group_[g]) {
    const Document& doc = batch_.documents[d];
    for (int64_t qc : {int64_t{m}, int64_t{2} * k - 1 - m}) {
      const int64_t qb = Bound(d, qc), qe = Bound(d, qc + 1);
      if (qb == qe) continue;
      for (int64_t kc = 0; kc < 2 * k; ++kc) {
        const int64_t kb = Bound(d, kc), ke = Bound(d, kc + 1);
        if (kb == ke || !TileRequired(doc.mask, qb, qe, kb, ke)) continue;
        const int32_t round = (m - MemberOfChunk(d, kc) + k) % k;
        slice.tiles.push_back({BlockId(d, qc), BlockId(d, kc), round});
      }
    }
  }
  for (int32_t r = 1; r < k; ++r) {
    const int32_t next = members[(m + 1) % k], prev = members[(m - 1 + k) % k];
    const int32_t sent_origin = (m - r + 1 + k) % k, recv_origin = (m - r + k) % k;
    if (std::vector<int32_t> ids = OriginBlocks(g, sent_origin); !ids.empty()) {
      slice.sends.push_back({r, next, std::move(ids), TransferKind::kKv});
    }
    if (std::vector<int32_t> ids = OriginBlocks(g, recv_origin); !ids.empty()) {
      slice.recvs.push_back({r, prev, ids, TransferKind::kKv});
      slice.sends.push_back({r, members[recv_origin], std::move(ids), TransferKind::kDkv});
    }
    if (!slice.blocks.empty()) {  // member m + r received my blocks in round r
      slice.recvs.push_back({r, members[(m + r) % k], slice.blocks, TransferKind::kDkv});
    }
  }
  SortSlice(&slice);
  return slice;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Schedule>> NewRingSchedule(const Batch& batch, const CostModel& cost,
                                                          Layout layout) {
  auto schedule = std::make_unique<RingSchedule>(batch, cost, std::move(layout));
  if (absl::Status s = schedule->Build(); !s.ok()) return s;
  return std::unique_ptr<Schedule>(std::move(schedule));
}

}  // namespace fcp
