// flashcp's candidate placement (flashcp.cc searches the thresholds): the first `num_long`
// documents in cost order sharded per document over ceil(cost / (fill · mean)) ranks, the rest
// whole onto the least-loaded worker with room, and the candidate's estimate (the slowest
// worker's compute or receives). One Placer's buffers serve every candidate of a batch.
//
//   Placer placer(ctx, sorted, suffix_seconds, mean);
//   placer.Place(num_long, fill, bound, tie_bound, &placement);  // estimate HUGE_VAL: lost
//
// A candidate stops, its estimate infinite, once it cannot beat `bound` (nor `tie_bound` tied):
// when a load or its traffic reaches it (both only grow), or, checked every W documents of the
// whole ones, when the rest must take a load to it: once every document left is sure to be
// placed whole (each fits the cap, and the room left when it comes exceeds W · (length - 1)),
// worker w can take at most its room's worth of the densest one's seconds per token, and none
// if the shortest does not fit; if these, each also capped at the bound less the worker's load,
// sum to less than the seconds left, some load must reach the bound. Under a cap this stops the
// losing candidates long before their loads get there (at W = 1024 on wikipedia: after 750
// documents instead of 15,000, and 10,500 instead of 32,600).
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_FLASHCP_PLACER_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_FLASHCP_PLACER_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "service/planner/planner.h"
#include "service/planner/strategies/packing.h"
#include "service/planner/strategies/room_queue.h"

namespace fcp {
namespace flashcp {

// Where each document goes: document d on ranks members[at[d]], ..., members[at[d] + degree[d] - 1]
// (degree 1: whole).
struct Placement {
  std::vector<int32_t> degree, at, members;
  double estimate = 0;  // the slowest worker's forward + backward seconds, compute or traffic
  double traffic = 0;   // the largest traffic term alone
};

// A document in placement order (costliest first).
struct Sorted {
  int32_t document;
  int64_t length;
  double seconds;
};

// Places candidates: the first `num_long` documents of `sorted` sharded (over
// ceil(cost / (fill · mean)) ranks), the others whole. Its buffers serve every candidate.
class Placer {
 public:
  // suffix_seconds[i]: the seconds of sorted[i..], summed from the end.
  Placer(const PlanContext& ctx, const std::vector<Sorted>& sorted,
         const std::vector<double>& suffix_seconds, double mean);

  // Into *p, its estimate infinite (the candidate loses) once a load or traffic reaches `bound`
  // or exceeds `tie_bound` (loads and traffic only grow, so the estimate would too), or once the
  // documents left must take a load there (MustReach).
  void Place(int32_t num_long, double fill, double bound, double tie_bound, Placement* p);

 private:
  // The least-loaded worker (MinTree's order), its key refreshed only when it reaches the front
  // (loads only grow).
  int32_t LeastLoaded() {
    return least_loaded_->ArgMinDeferred([this](int32_t w) { return load_[w]; });
  }
  void Put(int32_t w, int64_t length, double seconds) {
    load_[w] += seconds;
    highest_ = std::max(highest_, load_[w]);
    tokens_[w] += length;
    room_->Set(w, load_[w], tokens_[w]);
  }
  void Shard(const Sorted& doc_info);
  // The k least-loaded workers with room for a piece (else, the least loaded), ascending.
  void LeastLoadedK(int64_t k, int64_t piece, std::vector<int32_t>* out);
  // Within one node: the node whose k least-loaded workers with room are least loaded (false if
  // no node has k with room). `hint` (a worker, or -1): its node is likely among the best.
  bool WithinANode(int64_t k, int64_t piece, int32_t hint, std::vector<int32_t>* out);
  // The slowest member of `group` once it holds the document: its compute, or its receives
  // (from each other member the chunks before its last one, KV forward and dK/dV backward, at
  // the link between their nodes), whichever is longer.
  double SlowestAfter(const std::vector<int32_t>& group);
  // Whether sorted_[i..] (i >= whole_from_), all placed whole from here, must take a load to
  // `cut` (above every load now): worker w can take at most cut - load_[w] seconds below it, and
  // at most its room's worth of the densest document's seconds per token (none if the shortest
  // does not fit). Below their seconds, with a margin for rounding (it errs toward false).
  bool MustReach(int32_t i, double cut) const;
  // The opening: the state after sharding sorted_[..num_long) at fill 1 (and p's members and
  // degrees then), kept for a plain candidate with more long documents; restored into p.
  void SaveOpening(int32_t num_long, const Placement& p);
  int32_t RestoreOpening(Placement* p);  // opening_.num_long

  const PlanContext& ctx_;
  const std::vector<Sorted>& sorted_;
  const std::vector<double>& suffix_seconds_;
  const double mean_;
  const int32_t workers_, per_node_;
  const int64_t cap_;
  // From sorted_[whole_from_] on, every document is placed whole onto a worker with room for it:
  // it fits the cap, and the room left when it comes (at least W · cap less the tokens before
  // it) exceeds W · (length - 1), so some worker has room for it. Per i >= whole_from_: the most
  // seconds per token and the shortest length among sorted_[i..].
  int32_t whole_from_;
  std::vector<double> densest_;
  std::vector<int64_t> shortest_;
  struct Opening {
    int32_t num_long = -1;  // none kept
    double highest = 0;
    std::vector<double> load, node_floor, traffic_seconds;
    std::vector<int64_t> tokens;
    std::optional<MinTree> least_loaded;
    std::optional<RoomQueue> room;
    std::vector<int32_t> members, degree;  // degree[i]: sorted_[i]'s
  } opening_;
  // The candidate being placed.
  Placement* p_ = nullptr;
  double fill_ = 1;
  double highest_ = 0;  // the estimate so far: the largest load or traffic
  std::vector<double> load_, traffic_seconds_;
  std::vector<double> node_floor_;  // per node, a load at or below each of its workers' loads
  std::vector<int64_t> tokens_;
  std::optional<MinTree> least_loaded_;
  std::optional<RoomQueue> room_;  // the fallback once the least-loaded worker is full
  // Scratch.
  std::vector<int32_t> popped_, full_, local_, chosen_;
  std::vector<int64_t> bounds_, chunk_tokens_;
  std::vector<double> share_seconds_, after_load_, after_traffic_, kth_, sends_;
};

}  // namespace flashcp
}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_FLASHCP_PLACER_H_
