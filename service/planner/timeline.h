// Predicts each worker's forward and backward time from its per-round compute and the transfers,
// the way the executor runs a plan (DESIGN §5):
//
//   forward, worker w:   compute(round 0) | compute(round 1) | compute(round 2) ...
//                        xfer(round 1) | xfer(round 2) | ...   (round r+1's transfer overlaps
//                                                              round r's compute)
//   A round's transfer between src and dst starts once both have finished their previous round's
//   transfers (grouped send/recv per round); its tiles start once it has arrived.
//   backward: rounds in reverse; round r's dK/dV partials leave once round r's tiles are
//   recomputed; the owner is done when its last partial has arrived.
//   placed computation (plan.h's phases): Q travels in the forward rounds with KV (in `kv`); a
//   worker enters the forward's return phase (kOut, rounds in increasing order, each transfer
//   once both ranks are in it and done with its previous round) when its forward is done; the
//   backward starts with the kDo phase (from time 0; a worker's backward tiles start once its
//   kDo transfers have arrived) and ends with the kDq return phase, entered like kOut's.
//   CostParams::transfer_overlap < 1 (compute and transfers share cores): a transfer occupies its
//   link for transfer_overlap of its time, and the rest is added to both ranks' pass time.
#ifndef FCP_SERVICE_PLANNER_TIMELINE_H_
#define FCP_SERVICE_PLANNER_TIMELINE_H_

#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "service/planner/cost_model.h"

namespace fcp {

struct TimedTransfer {
  int32_t round = 0;  // >= 1
  int32_t src = 0;
  int32_t dst = 0;
  int64_t bytes = 0;
};

// A std::allocator that leaves elements uninitialised when a vector is sized without a value
// (UninitialisedVector<T>(n)): for buffers whose every element is written before it is read.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}  // NOLINT: rebinding
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
template <typename T>
using UninitialisedVector = std::vector<T, DefaultInitAllocator<T>>;

// Attention compute seconds per (worker, round); round 0 = tiles on local data only. Dense (every
// round of every worker, written through fwd(w, r) and bwd(w, r)) or sparse (per worker only the
// rounds it computes in: a direct schedule's receiver computes in one round per transfer, a third
// of the rounds at W = 1024). Readers walk worker w's entries [Begin(w), End(w)), rounds
// ascending; a round a worker has no entry for has no compute (dense zeros are entries too).
class RoundCompute {
 public:
  using Rounds = UninitialisedVector<int32_t>;
  using Seconds = UninitialisedVector<double>;

  RoundCompute() = default;
  // Dense, all zero.
  RoundCompute(int32_t workers, int32_t rounds);
  // Sparse: worker w's entries are [row_first[w], row_first[w + 1]) (row_first has workers + 1
  // elements), with rounds round[i] in [0, rounds], strictly ascending within a worker.
  RoundCompute(int32_t rounds, std::vector<int32_t> row_first, Rounds round, Seconds fwd,
               Seconds bwd)
      : workers_(static_cast<int32_t>(row_first.size()) - 1),
        rounds_(rounds),
        row_first_(std::move(row_first)),
        round_(std::move(round)),
        fwd_(std::move(fwd)),
        bwd_(std::move(bwd)) {}

  int32_t workers() const { return workers_; }
  int32_t rounds() const { return rounds_; }
  // Dense form only.
  double& fwd(int32_t w, int32_t r) { return fwd_[DenseIndex(w, r)]; }
  double& bwd(int32_t w, int32_t r) { return bwd_[DenseIndex(w, r)]; }
  double fwd(int32_t w, int32_t r) const { return fwd_[DenseIndex(w, r)]; }
  double bwd(int32_t w, int32_t r) const { return bwd_[DenseIndex(w, r)]; }

  // Entries (both forms).
  size_t entries() const { return fwd_.size(); }
  size_t Begin(int32_t w) const { return row_first_[w]; }
  size_t End(int32_t w) const { return row_first_[w + 1]; }
  int32_t RoundAt(size_t i) const { return round_[i]; }
  double FwdAt(size_t i) const { return fwd_[i]; }
  double BwdAt(size_t i) const { return bwd_[i]; }
  // Sums over w's rounds in round order (a sparse form's missing rounds add nothing).
  double FwdTotal(int32_t w) const { return Total(fwd_, w); }
  double BwdTotal(int32_t w) const { return Total(bwd_, w); }

 private:
  size_t DenseIndex(int32_t w, int32_t r) const {
    return static_cast<size_t>(w) * (rounds_ + 1) + r;
  }
  double Total(const Seconds& seconds, int32_t w) const {
    double total = 0;
    for (size_t i = Begin(w); i < End(w); ++i) total += seconds[i];
    return total;
  }
  int32_t workers_ = 0;
  int32_t rounds_ = 0;
  std::vector<int32_t> row_first_ = {0};
  Rounds round_;
  Seconds fwd_, bwd_;
};

struct Timeline {
  std::vector<double> fwd_seconds;  // per worker
  std::vector<double> bwd_seconds;
};

// The phases of placed computation (all rounds in [1, rounds]; empty when none).
struct PhaseTransfers {
  std::vector<TimedTransfer> out;  // forward return phase: partial O + LSE to the owner
  std::vector<TimedTransfer> d_o;  // backward first phase: dO + LSE + delta to the computing worker
  std::vector<TimedTransfer> dq;   // backward return phase: partial dQ to the owner
};

// `kv` are the forward transfers (KV and Q) and `dkv` the backward ones (both with rounds in
// [1, rounds]). `extra_seconds[w]` (may be empty) is added to w's forward and, doubled, to its
// backward time (non-attention work proportional to its tokens).
Timeline SimulateTimeline(const CostModel& cost, const RoundCompute& compute,
                          std::vector<TimedTransfer> kv, std::vector<TimedTransfer> dkv,
                          const std::vector<double>& extra_seconds, PhaseTransfers phases = {});
// The same when the backward's transfers are the forward's reversed (same rounds and bytes, from
// dst to src: a direct schedule's dK/dV partials), without a list of them.
Timeline SimulateMirroredTimeline(const CostModel& cost, const RoundCompute& compute,
                                  std::vector<TimedTransfer> kv,
                                  const std::vector<double>& extra_seconds,
                                  PhaseTransfers phases = {});

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_TIMELINE_H_
