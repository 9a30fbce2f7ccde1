// The bin-packer behind the fcp strategy: packing units (one block, or a zigzag pair of blocks of
// one document) onto workers so that the larger of each worker's compute (relative to the mean)
// and tokens (relative to the memory cap) is as low as possible, preferring workers that already
// hold the document or sit on its node, then local search off the most loaded worker.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_FCP_PACKER_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_FCP_PACKER_H_

#include <cstdint>
#include <vector>

#include "service/planner/batch.h"
#include "service/planner/strategies/packing.h"

namespace fcp {

// A packing unit: one block, or two blocks of one document placed together (zigzag pair).
struct PackItem {
  int32_t document = 0;
  int64_t begin = 0, end = 0;
  double seconds = 0;              // forward + backward time of its queries (+ token time)
  int64_t begin2 = 0, end2 = 0;    // the paired block, if any (empty otherwise)
  int32_t block = 0, block2 = -1;  // positions of the blocks in the layout (ordered by position)
  int32_t owner = -1;              // >= 0 before packing: pinned there, never moved
  bool sole = false;               // its document's only unit (nothing of it to keep near)
  int64_t tokens() const { return (end - begin) + (end2 - begin2); }
};

class Packer {
 public:
  // Tokens count in the score only against the memory cap (topology.max_tokens_per_worker): they
  // cost memory, not attention time (their time, if the model has linear layers, is already in
  // the items' seconds). Without a cap only compute is balanced.
  Packer(const Topology& topology, std::vector<PackItem>* items);

  // Assigns every item that has no owner yet (pinned items are counted first), largest first.
  // `presorted`: unpinned items the caller believes to be in that order already (their order is
  // checked; the others are sorted and merged with them).
  void Pack(int32_t documents, const std::vector<int32_t>& presorted = {});
  // At most `iterations` moves or swaps of unpinned items off the most loaded worker.
  void Refine(int iterations);

 private:
  double Score(double seconds, int64_t tokens) const {
    return ScoreAt(seconds, tokens, inv_mean_seconds_, inv_token_budget_);
  }
  static double ScoreAt(double seconds, int64_t tokens, double inv_mean, double inv_budget) {
    return std::max(seconds * inv_mean, static_cast<double>(tokens) * inv_budget);
  }
  double ScoreOf(int32_t w) const { return Score(load_[w], tokens_[w]); }
  double ScoreWith(int32_t w, const PackItem& it) const {
    return Score(load_[w] + it.seconds, tokens_[w] + it.tokens());
  }
  bool Fits(int32_t w, const PackItem& it) const { return tokens_[w] + it.tokens() <= cap_; }
  // Inlined into Pack's loop (a call per unit cost ~1M instructions at W = 1024 under auto).
  [[gnu::always_inline]] inline void Assign(int32_t i, int32_t w);
  void Unassign(int32_t i);
  // One move or swap off `hot` to one of the coldest workers (`coldest`: their scores); the worker
  // it went to, -1 if none improves.
  int32_t TryImprove(int32_t hot, LeastScoreTree* coldest);
  // Indexes the units by owner for owned_ (Pack does not keep it up to date: only Refine reads
  // it), and keeps it up to date from then on.
  void TrackOwned();
  // owned_[w], copied from TrackOwned's index when first asked for (Refine touches few workers).
  std::vector<int32_t>& Owned(int32_t w);
  class RoomSearch;  // Pack's search once the least-loaded worker is full (fcp_packer.cc)

  const Topology& topology_;
  std::vector<PackItem>& items_;
  int32_t workers_;
  int64_t cap_;
  double mean_seconds_ = 0, inv_mean_seconds_ = 0, inv_token_budget_ = 0;
  bool tracking_owned_ = false;
  std::vector<double> load_;
  std::vector<int64_t> tokens_;
  std::vector<std::vector<int32_t>> owned_;         // unpinned items per worker (through Owned)
  std::vector<int32_t> unpinned_count_;             // per worker, the unpinned units Pack placed
  std::vector<int32_t> owned_start_, owned_index_;  // worker w's: [start[w], start[w + 1])
  std::vector<char> owned_ready_;                   // owned_[w] copied out of the index
  std::vector<char> pinned_;
  std::vector<double> cold_seconds_;  // TryImprove's: a cold worker's units' seconds, tokens
  std::vector<int64_t> cold_tokens_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_FCP_PACKER_H_
