// Schedule of a kDirect layout: the owner of a q-block computes its tiles; each remote KV block a
// worker needs is sent once, straight from its owner; all blocks from one owner to one receiver
// travel as one transfer, and transfers are put in rounds by bipartite edge colouring. The dK/dV
// partials go back along the same edges, in the same round numbers, in reverse round order.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"
#include "service/planner/round_scheduler.h"
#include "service/planner/schedule.h"

namespace fcp {
namespace {

class DirectSchedule final : public Schedule {
 public:
  DirectSchedule(const Batch& batch, const CostModel& cost, Layout layout)
      : batch_(batch), cost_(cost), blocks_(std::move(layout.blocks)) {}

  absl::Status Build() {
    if (absl::Status s = IndexBlocks(); !s.ok()) return s;
    BuildTransfersAndCosts();
    return absl::OkStatus();
  }

  const std::vector<WorkerCost>& costs() const override { return costs_; }
  const PlanSummary& summary() const override { return summary_; }
  std::vector<Block> Blocks() const override { return blocks_; }
  WorkerPlan Slice(int32_t rank) const override;

 private:
  // All KV blocks from one owner to one receiver; its blocks are
  // transfer_blocks_[first_block, end_block).
  struct PairTransfer {
    int32_t src, dst, round;
    int32_t first_block, end_block;
    int64_t tokens;
  };
  std::vector<int32_t> TransferBlocks(const PairTransfer& t) const {
    return {transfer_blocks_.begin() + t.first_block, transfer_blocks_.begin() + t.end_block};
  }

  struct TileSeconds {
    double fwd, bwd;
  };
  // A tile on KV from another worker (found in pass 1, grouped into transfers in pass 2).
  struct RemoteTile {
    int32_t kv, src;  // src: the kv block's owner
    double fwd;
  };

  absl::Status IndexBlocks();
  absl::Status BlockOrderError(int32_t b) const;
  // Calls fn(kv, pairs) for every required tile of q-block q (of document d).
  template <typename Fn>
  void ForEachTile(int32_t d, int32_t q, Fn fn) const;
  void ComputeTiles(CostInputs& in, std::vector<double>& local_fwd, std::vector<double>& local_bwd,
                    std::vector<int32_t>& remote_first,
                    std::unique_ptr<RemoteTile[]>& remote) const;
  // One pass over every receiver's tiles: the transfers (each remote KV block once, grouped by
  // owner), their rounds, and the compute each round of each worker waits for; then costs.
  void BuildTransfersAndCosts();
  RoundCompute SparseCompute(const std::vector<double>& local_fwd,
                             const std::vector<double>& local_bwd,
                             const std::vector<double>& transfer_fwd,
                             const std::vector<double>& transfer_bwd,
                             const std::vector<int32_t>& by_round) const;
  // 0 if the kv block is local to the q-block's owner, else the round its transfer arrives.
  int32_t TileRound(int32_t q, int32_t kv) const;

  const Batch& batch_;
  const CostModel& cost_;
  std::vector<Block> blocks_;
  std::vector<int32_t> doc_first_;  // blocks of document d: [doc_first_[d], [d+1])
  // Blocks owned by worker w, in id order: owned_[owned_first_[w] .. owned_first_[w + 1]); and
  // transfers sent by w: out_[out_first_[w] .. out_first_[w + 1]) (indices into transfers_).
  // Only slices need them: indexed by the first Slice (a summary never pays for them).
  void IndexForSlices() const;
  mutable absl::once_flag slices_indexed_;
  mutable std::vector<int32_t> owned_first_, owned_, out_first_, out_;
  // Transfers in receiver order, each receiver's by sender: those into w are
  // transfers_[in_first_[w] .. in_first_[w + 1]).
  std::vector<PairTransfer> transfers_;
  std::vector<int32_t> in_first_;
  std::vector<int32_t> transfer_blocks_;
  std::vector<WorkerCost> costs_;
  PlanSummary summary_;
};

// (Out of IndexBlocks' loop: its registers are for the walk.)
ABSL_ATTRIBUTE_NOINLINE absl::Status DirectSchedule::BlockOrderError(int32_t b) const {
  const Block& block = blocks_[b];
  return absl::InternalError(absl::StrCat("layout block ", b, " (document ", block.document, ", [",
                                          block.begin, ", ", block.end, "), owner ", block.owner,
                                          ") breaks the block order"));
}

absl::Status DirectSchedule::IndexBlocks() {
  const int32_t workers = batch_.topology.num_workers;
  const int32_t docs = static_cast<int32_t>(batch_.documents.size());
  doc_first_.assign(docs + 1, 0);
  int32_t d = 0;
  int64_t next = 0, length = batch_.documents[0].length;  // of document d
  for (int32_t b = 0; b < static_cast<int32_t>(blocks_.size()); ++b) {
    const Block& block = blocks_[b];
    if (next == length && d + 1 < docs) {  // document d is covered: the block starts d + 1
      doc_first_[++d] = b;
      next = 0;
      length = batch_.documents[d].length;
    }
    if (block.document != d || block.begin != next || block.end <= next || block.end > length ||
        static_cast<uint32_t>(block.owner) >= static_cast<uint32_t>(workers)) {
      return BlockOrderError(b);
    }
    next = block.end;
  }
  if (d != docs - 1 || next != length) {
    return absl::InternalError("layout blocks do not cover every document");
  }
  doc_first_[docs] = static_cast<int32_t>(blocks_.size());
  return absl::OkStatus();
}

// Items 0..n-1 grouped by key(i) in [0, groups), ascending within a group: those of group g are
// (*items)[(*first)[g] .. (*first)[g + 1]).
template <typename Key>
void GroupBy(int32_t groups, int32_t n, Key key, std::vector<int32_t>* first,
             std::vector<int32_t>* items) {
  first->assign(groups + 1, 0);
  for (int32_t i = 0; i < n; ++i) ++(*first)[key(i) + 1];
  for (int32_t g = 0; g < groups; ++g) (*first)[g + 1] += (*first)[g];
  items->resize(n);
  std::vector<int32_t> fill(first->begin(), first->end() - 1);
  for (int32_t i = 0; i < n; ++i) (*items)[fill[key(i)]++] = i;
}

void DirectSchedule::IndexForSlices() const {
  const int32_t workers = batch_.topology.num_workers;
  GroupBy(
      workers, static_cast<int32_t>(blocks_.size()), [&](int32_t b) { return blocks_[b].owner; },
      &owned_first_, &owned_);
  GroupBy(
      workers, static_cast<int32_t>(transfers_.size()),
      [&](int32_t i) { return transfers_[i].src; }, &out_first_, &out_);
}

template <typename Fn>
void DirectSchedule::ForEachTile(int32_t d, int32_t q, Fn fn) const {
  const Mask& mask = batch_.documents[d].mask;
  const Block& qb = blocks_[q];
  if (mask.kind == MaskKind::kCausal) {
    // The document's blocks before q lie wholly below the diagonal (every pair allowed), q's own
    // tile is the triangle, and the blocks after q lie above it (AllowedPairs' fast paths).
    const int64_t n = qb.tokens();
    for (int32_t kv = doc_first_[d]; kv < q; ++kv) fn(kv, n * blocks_[kv].tokens());
    fn(q, n * (n + 1) / 2);
    return;
  }
  // Beyond the diagonal (blocks after q) only PREFIX_LM (prefix columns) and FULL have pairs.
  const int32_t last = mask.kind == MaskKind::kSlidingWindow ? q + 1 : doc_first_[d + 1];
  for (int32_t kv = doc_first_[d]; kv < last; ++kv) {
    const Block& kb = blocks_[kv];
    const int64_t pairs = AllowedPairs(mask, qb.begin, qb.end, kb.begin, kb.end);
    if (pairs > 0) fn(kv, pairs);
  }
}

// Pass 1, over the documents in block order (sequential memory): every tile's pairs and
// compute; local tiles (most: a whole short document is one block, one local tile) are summed
// into their owner's round 0 here, remote ones are listed by receiver for pass 2 (those into w:
// remote[remote_first[w] .. remote_first[w + 1])). Every sum is made in the order a walk of each
// worker's q blocks by id, each block's tiles by kv block, would make it.
void DirectSchedule::ComputeTiles(CostInputs& in, std::vector<double>& local_fwd,
                                  std::vector<double>& local_bwd,
                                  std::vector<int32_t>& remote_first,
                                  std::unique_ptr<RemoteTile[]>& remote) const {
  const int32_t workers = batch_.topology.num_workers;
  const int32_t docs = static_cast<int32_t>(batch_.documents.size());
  // Remote tiles counted by receiver first, so that the list is allocated once at its size (a
  // list grown, or reserved far beyond its use, costs more in fresh pages than the count).
  remote_first.assign(workers + 1, 0);
  for (int32_t d = 0; d < docs; ++d) {
    if (doc_first_[d + 1] - doc_first_[d] == 1) continue;
    for (int32_t q = doc_first_[d]; q < doc_first_[d + 1]; ++q) {
      const int32_t dst = blocks_[q].owner;
      ForEachTile(d, q, [&](int32_t kv, int64_t) {
        if (blocks_[kv].owner != dst) ++remote_first[dst + 1];
      });
    }
  }
  for (int32_t w = 0; w < workers; ++w) remote_first[w + 1] += remote_first[w];
  remote.reset(new RemoteTile[remote_first[workers]]);  // uninitialised: every slot is written
  std::vector<int32_t> fill(remote_first.begin(), remote_first.end() - 1);
  std::vector<double> kv_efficiency;  // of the current document's blocks, as KV blocks
  const bool same_halves = cost_.params().tile_q_half_tokens == cost_.params().tile_kv_half_tokens;
  // The tile of a whole document of n tokens.
  const auto whole_tile = [&](int64_t n, int64_t pairs) {
    // (Both factors are one when the two half-efficiency lengths are: one division.)
    const double q_efficiency = cost_.QEfficiency(n);
    const double k_efficiency = same_halves ? q_efficiency : cost_.KvEfficiency(n);
    TileSeconds seconds;
    seconds.fwd = cost_.TileForwardSecondsAt(q_efficiency, k_efficiency, pairs);
    seconds.bwd = cost_.BackwardFromForward(seconds.fwd);
    return seconds;
  };
  // Whole causal documents of one length cost the same: priced once per length below
  // kCachedLength tokens (most documents; a batch of 33K holds a few thousand lengths there).
  constexpr int64_t kCachedLength = 4096;
  std::vector<TileSeconds> causal_tile(kCachedLength, TileSeconds{-1, 0});  // -1: not yet
  for (int32_t d = 0; d < docs; ++d) {
    const int32_t first = doc_first_[d], last = doc_first_[d + 1];
    if (last - first == 1) {  // whole on one worker: one tile, on local KV
      const Block& b = blocks_[first];
      const int32_t w = b.owner;
      const int64_t n = b.tokens();
      in.tokens[w] += n;
      const Mask& mask = batch_.documents[d].mask;
      const bool causal = mask.kind == MaskKind::kCausal;
      // (A causal document's tile is its triangle, AllowedPairs' diagonal case.)
      const int64_t pairs =
          causal ? n * (n + 1) / 2 : AllowedPairs(mask, b.begin, b.end, b.begin, b.end);
      if (pairs <= 0) continue;
      ++in.tiles;
      in.fwd_pairs[w] += static_cast<double>(pairs);
      TileSeconds seconds;
      if (causal && n < kCachedLength) {
        TileSeconds& cached = causal_tile[n];
        if (cached.fwd < 0) cached = whole_tile(n, pairs);
        seconds = cached;
      } else {
        seconds = whole_tile(n, pairs);
      }
      local_fwd[w] += seconds.fwd;
      local_bwd[w] += seconds.bwd;
      continue;
    }
    kv_efficiency.resize(last - first);
    for (int32_t b = first; b < last; ++b) {
      kv_efficiency[b - first] = cost_.KvEfficiency(blocks_[b].tokens());
      in.tokens[blocks_[b].owner] += blocks_[b].tokens();
    }
    for (int32_t q = first; q < last; ++q) {
      const int32_t dst = blocks_[q].owner;
      const double q_efficiency = cost_.QEfficiency(blocks_[q].tokens());
      ForEachTile(d, q, [&](int32_t kv, int64_t pairs) {
        ++in.tiles;
        in.fwd_pairs[dst] += static_cast<double>(pairs);
        const double fwd =
            cost_.TileForwardSecondsAt(q_efficiency, kv_efficiency[kv - first], pairs);
        const int32_t src = blocks_[kv].owner;
        if (src == dst) {
          local_fwd[dst] += fwd;
          local_bwd[dst] += cost_.BackwardFromForward(fwd);
        } else {
          remote[fill[dst]++] = {kv, src, fwd};
        }
      });
    }
  }
}

void DirectSchedule::BuildTransfersAndCosts() {
  const int32_t workers = batch_.topology.num_workers;
  CostInputs in;
  in.fwd_pairs.assign(workers, 0);
  in.tokens.assign(workers, 0);
  // Compute of tiles on local KV (round 0) per worker, and of tiles waiting for each transfer
  // (summed in the same tile order as per round: a receiver has one transfer per round).
  std::vector<double> local_fwd(workers, 0), local_bwd(workers, 0);
  std::vector<int32_t> remote_first;
  std::unique_ptr<RemoteTile[]> by_dst;
  ComputeTiles(in, local_fwd, local_bwd, remote_first, by_dst);
  std::vector<double> transfer_fwd, transfer_bwd;
  // Per receiver, by sender: the compute of its tiles on that sender's KV.
  std::vector<double> from_fwd(workers, 0), from_bwd(workers, 0);
  // The current receiver's senders as a bitset (read out ascending: no sort).
  std::vector<uint64_t> sender_bits((workers + 63) / 64, 0);
  std::vector<int32_t> stamp(blocks_.size(), -1);  // the last receiver that asked for a block
  std::vector<int32_t> wanted;   // remote kv blocks of the current receiver, first seen first
  std::vector<int32_t> senders;  // senders of the current receiver
  std::vector<int32_t> from_count(workers, 0);  // per sender: its blocks in `wanted`, then offsets
  std::vector<Edge> edges;
  in_first_.assign(workers + 1, 0);
  // Few transfers per block in practice: reserving avoids regrowing (and copying) them.
  const size_t expected = blocks_.size() + static_cast<size_t>(workers);
  for (auto* v : {&transfer_fwd, &transfer_bwd}) v->reserve(expected);
  edges.reserve(expected);
  transfers_.reserve(expected);
  transfer_blocks_.reserve(expected);
  for (int32_t dst = 0; dst < workers; ++dst) {
    wanted.clear();
    senders.clear();
    for (int32_t i = remote_first[dst]; i < remote_first[dst + 1]; ++i) {
      const RemoteTile& t = by_dst[i];
      const int32_t kv = t.kv, src = t.src;
      if (stamp[kv] != dst) {
        stamp[kv] = dst;
        sender_bits[src >> 6] |= uint64_t{1} << (src & 63);
        wanted.push_back(kv);
        ++from_count[src];
      }
      from_fwd[src] += t.fwd;
      from_bwd[src] += cost_.BackwardFromForward(t.fwd);
    }
    // One transfer per sender, by sender (read out of the bitset ascending), each its blocks
    // ascending: a counting sort by sender
    // (blocks arrive mostly ascending already: each range is sorted only if it is not).
    for (size_t word = 0; word < sender_bits.size(); ++word) {
      for (uint64_t bits = sender_bits[word]; bits != 0; bits &= bits - 1) {
        senders.push_back(static_cast<int32_t>(word * 64 + __builtin_ctzll(bits)));
      }
      sender_bits[word] = 0;
    }
    const int32_t base = static_cast<int32_t>(transfer_blocks_.size());
    int32_t at = base;
    for (int32_t src : senders) {
      const int32_t blocks = from_count[src];
      from_count[src] = at;
      at += blocks;
    }
    transfer_blocks_.resize(at);
    for (int32_t kv : wanted) transfer_blocks_[from_count[blocks_[kv].owner]++] = kv;
    at = base;
    for (int32_t src : senders) {
      const int32_t first_block = at, end_block = from_count[src];
      from_count[src] = 0;
      at = end_block;
      const auto first = transfer_blocks_.begin() + first_block;
      const auto last = transfer_blocks_.begin() + end_block;
      if (!std::is_sorted(first, last)) std::sort(first, last);
      int64_t tokens = 0;
      for (auto it = first; it != last; ++it) tokens += blocks_[*it].tokens();
      // (Built field by field: a struct assembled on the stack and copied stalls the store.)
      Edge& edge = edges.emplace_back();
      edge.src = src;
      edge.dst = dst;
      edge.bytes = cost_.KvBytes(tokens);
      transfer_fwd.push_back(from_fwd[src]);
      transfer_bwd.push_back(from_bwd[src]);
      PairTransfer& t = transfers_.emplace_back();
      t.src = src;
      t.dst = dst;
      t.round = 0;
      t.first_block = first_block;
      t.end_block = end_block;
      t.tokens = tokens;
    }
    for (int32_t src : senders) from_fwd[src] = from_bwd[src] = 0;
    in_first_[dst + 1] = static_cast<int32_t>(transfers_.size());
  }
  const std::vector<int32_t> rounds = ScheduleRounds(edges, workers);
  for (size_t i = 0; i < transfers_.size(); ++i) {
    transfers_[i].round = rounds[i];
    summary_.rounds = std::max(summary_.rounds, rounds[i]);
  }
  // Transfers in round order (stable), as the timeline walks them: a counting sort here spares
  // it sorting copies.
  const int32_t count = static_cast<int32_t>(transfers_.size());
  std::vector<int32_t> at(summary_.rounds + 2, 0);
  for (const PairTransfer& t : transfers_) ++at[t.round + 1];
  for (int32_t r = 1; r <= summary_.rounds + 1; ++r) at[r] += at[r - 1];
  in.kv.resize(count);
  std::vector<int32_t> by_round(count);
  for (int32_t i = 0; i < count; ++i) {
    const PairTransfer& t = transfers_[i];
    const int32_t slot = at[t.round]++;
    in.kv[slot] = {t.round, t.src, t.dst, edges[i].bytes};
    by_round[slot] = i;
  }
  in.dkv_mirrors_kv = true;  // the partials go back along the same edges, in the same rounds
  in.compute = SparseCompute(local_fwd, local_bwd, transfer_fwd, transfer_bwd, by_round);
  SummarizeCosts(cost_, std::move(in), &costs_, &summary_);
}

// Each worker's round 0 (local tiles), then one round per transfer into it (a receiver's
// transfers have distinct rounds), in round order: `by_round` lists the transfers so.
RoundCompute DirectSchedule::SparseCompute(const std::vector<double>& local_fwd,
                                           const std::vector<double>& local_bwd,
                                           const std::vector<double>& transfer_fwd,
                                           const std::vector<double>& transfer_bwd,
                                           const std::vector<int32_t>& by_round) const {
  const int32_t workers = batch_.topology.num_workers;
  const size_t entries = workers + transfers_.size();
  std::vector<int32_t> row_first(workers + 1);
  RoundCompute::Rounds round(entries);  // every entry is written below
  RoundCompute::Seconds fwd(entries), bwd(entries);
  std::vector<int32_t> fill(workers);  // the next entry of each worker's row
  for (int32_t w = 0; w <= workers; ++w) row_first[w] = w + in_first_[w];
  for (int32_t w = 0; w < workers; ++w) {
    const int32_t e = row_first[w];
    round[e] = 0;
    fwd[e] = local_fwd[w];
    bwd[e] = local_bwd[w];
    fill[w] = e + 1;
  }
  for (const int32_t i : by_round) {
    const PairTransfer& t = transfers_[i];
    const int32_t e = fill[t.dst]++;
    round[e] = t.round;
    fwd[e] = transfer_fwd[i];
    bwd[e] = transfer_bwd[i];
  }
  return RoundCompute(summary_.rounds, std::move(row_first), std::move(round), std::move(fwd),
                      std::move(bwd));
}

int32_t DirectSchedule::TileRound(int32_t q, int32_t kv) const {
  const int32_t src = blocks_[kv].owner, dst = blocks_[q].owner;
  if (src == dst) return 0;
  const auto first = transfers_.begin() + in_first_[dst];
  const auto last = transfers_.begin() + in_first_[dst + 1];
  const auto it = std::lower_bound(first, last, src,
                                   [](const PairTransfer& t, int32_t s) { return t.src < s; });
  return it->round;
}

WorkerPlan DirectSchedule::Slice(int32_t rank) const {
  WorkerPlan slice;
  slice.rank = rank;
  absl::call_once(slices_indexed_, [this] { IndexForSlices(); });
  slice.blocks.assign(owned_.begin() + owned_first_[rank], owned_.begin() + owned_first_[rank + 1]);
  slice.predicted = costs_[rank];
  for (int32_t q : slice.blocks) {
    ForEachTile(blocks_[q].document, q, [&](int32_t kv, int64_t) {
      slice.tiles.push_back({q, kv, TileRound(q, kv)});
    });
  }
  for (int32_t i = out_first_[rank]; i < out_first_[rank + 1]; ++i) {
    const PairTransfer& t = transfers_[out_[i]];
    slice.sends.push_back({t.round, t.dst, TransferBlocks(t), TransferKind::kKv});
    slice.recvs.push_back({t.round, t.dst, TransferBlocks(t), TransferKind::kDkv});
  }
  for (int32_t i = in_first_[rank]; i < in_first_[rank + 1]; ++i) {
    const PairTransfer& t = transfers_[i];
    slice.recvs.push_back({t.round, t.src, TransferBlocks(t), TransferKind::kKv});
    slice.sends.push_back({t.round, t.src, TransferBlocks(t), TransferKind::kDkv});
  }
  SortSlice(&slice);
  return slice;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Schedule>> NewDirectSchedule(const Batch& batch,
                                                            const CostModel& cost, Layout layout) {
  auto schedule = std::make_unique<DirectSchedule>(batch, cost, std::move(layout));
  if (absl::Status s = schedule->Build(); !s.ok()) return s;
  return std::unique_ptr<Schedule>(std::move(schedule));
}

}  // namespace fcp
