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

struct RoundCompute {
  // [worker][round], round 0 = local tiles; seconds.
  std::vector<std::vector<double>> fwd;
  std::vector<std::vector<double>> bwd;
};

struct Timeline {
  std::vector<double> fwd_seconds;  // per worker
  std::vector<double> bwd_seconds;
};

// `kv` are the forward transfers and `dkv` the backward ones (both with rounds in [1, rounds]).
// `extra_seconds[w]` (may be empty) is added to w's forward and, doubled, to its backward time
// (non-attention work proportional to its tokens).
Timeline SimulateTimeline(const CostModel& cost, int32_t rounds, const RoundCompute& compute,
                          std::vector<TimedTransfer> kv, std::vector<TimedTransfer> dkv,
                          const std::vector<double>& extra_seconds);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_TIMELINE_H_
