// Synthetic step reports from a known cost model, for the calibration tests: the "ground truth"
// the fit must recover.
#ifndef FCP_SERVICE_CALIBRATION_CALIBRATION_TESTING_H_
#define FCP_SERVICE_CALIBRATION_CALIBRATION_TESTING_H_

#include <cstdint>
#include <vector>

#include "service/calibration/cost_fit.h"
#include "service/planner/cost_model.h"

namespace fcp::calibration::testing {

struct GroundTruth {
  double attention_tflops = 0.02;
  double backward_efficiency = 0.6;
  double q_half = 64, kv_half = 32;
  double tile_overhead_us = 40;
  double transfer_latency_us = 150;
  double intra_node_gbps = 3;
  double linear_tflops = 0.05;
};

// `ranks` reports of `step` drawn with a seeded generator (varied tile shapes, transfers, bytes),
// their times from `truth`, each multiplied by (1 + noise · u), u uniform in [-1, 1].
std::vector<RankStepMeasurement> SyntheticReports(const GroundTruth& truth, int64_t step,
                                                  int32_t ranks, double noise, uint64_t seed);

}  // namespace fcp::calibration::testing

#endif  // FCP_SERVICE_CALIBRATION_CALIBRATION_TESTING_H_
