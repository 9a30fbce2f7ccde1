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
#include <vector>

#include "service/planner/cost_model.h"

namespace fcp {

struct TimedTransfer {
  int32_t round = 0;  // >= 1
  int32_t src = 0;
  int32_t dst = 0;
  int64_t bytes = 0;
};

// Attention compute seconds per (worker, round); round 0 = tiles on local data only.
class RoundCompute {
 public:
  RoundCompute() = default;
  RoundCompute(int32_t workers, int32_t rounds)
      : workers_(workers),
        stride_(rounds + 1),
        fwd_(static_cast<size_t>(workers) * stride_, 0),
        bwd_(static_cast<size_t>(workers) * stride_, 0) {}

  int32_t workers() const { return workers_; }
  int32_t rounds() const { return stride_ - 1; }
  double& fwd(int32_t w, int32_t r) { return fwd_[Index(w, r)]; }
  double& bwd(int32_t w, int32_t r) { return bwd_[Index(w, r)]; }
  double fwd(int32_t w, int32_t r) const { return fwd_[Index(w, r)]; }
  double bwd(int32_t w, int32_t r) const { return bwd_[Index(w, r)]; }
  double FwdTotal(int32_t w) const { return Total(fwd_, w); }
  double BwdTotal(int32_t w) const { return Total(bwd_, w); }

 private:
  size_t Index(int32_t w, int32_t r) const { return static_cast<size_t>(w) * stride_ + r; }
  double Total(const std::vector<double>& seconds, int32_t w) const {
    double total = 0;
    for (int32_t r = 0; r < stride_; ++r) total += seconds[Index(w, r)];
    return total;
  }
  int32_t workers_ = 0;
  int32_t stride_ = 1;
  std::vector<double> fwd_, bwd_;
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

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_TIMELINE_H_
