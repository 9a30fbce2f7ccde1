#include "service/calibration/calibration_testing.h"

#include <random>

#include "service/planner/mask_math.h"

namespace fcp::calibration::testing {

std::vector<RankStepMeasurement> SyntheticReports(const GroundTruth& truth, int64_t step,
                                                  int32_t ranks, double noise, uint64_t seed) {
  std::mt19937_64 rng(seed * 7919 + static_cast<uint64_t>(step));
  std::uniform_real_distribution<double> unit(-1, 1);
  const int64_t lengths[] = {64, 128, 256, 512, 1024, 2048};
  std::vector<RankStepMeasurement> out;
  for (int32_t r = 0; r < ranks; ++r) {
    RankStepMeasurement m;
    m.step = step;
    m.rank = r;
    m.num_workers = ranks;
    double work = 0, tiles = 0;
    const int shapes = 1 + static_cast<int>(rng() % 4);
    for (int s = 0; s < shapes; ++s) {
      TileShape t;
      t.q_len = lengths[rng() % 6];
      t.kv_len = lengths[rng() % 6];
      t.tiles = 1 + static_cast<int64_t>(rng() % 40);
      t.fwd_flops = 4.0 * 32 * 4 * static_cast<double>(t.q_len * t.kv_len * t.tiles) / 2;
      const double eff = t.q_len / (t.q_len + truth.q_half) * t.kv_len / (t.kv_len + truth.kv_half);
      work += t.fwd_flops / eff;
      tiles += static_cast<double>(t.tiles);
      m.tile_shapes.push_back(t);
    }
    m.transfers = static_cast<int64_t>(rng() % 64);
    m.intra_node_bytes = m.transfers * static_cast<int64_t>(1000 + rng() % 2000000);
    const double compute = work / (truth.attention_tflops * 1e12);
    const double pass = tiles * truth.tile_overhead_us * 1e-6 +
                        m.transfers / 2.0 * truth.transfer_latency_us * 1e-6 +
                        m.intra_node_bytes / 2.0 / (truth.intra_node_gbps * 1e9);
    m.forward_seconds = (compute + pass) * (1 + noise * unit(rng));
    m.backward_seconds = (compute * kBackwardFlopsRatio / truth.backward_efficiency + pass) *
                         (1 + noise * unit(rng));
    m.linear_flops = 1e9 * static_cast<double>(1 + rng() % 100);
    m.linear_seconds = m.linear_flops / (truth.linear_tflops * 1e12) * (1 + noise * unit(rng));
    m.predicted_seconds = m.forward_seconds + m.backward_seconds;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace fcp::calibration::testing
