#include "worker/verify/step_data.h"

namespace fcp {
namespace {

// SplitMix64's finaliser: a well-mixed 64-bit value from any counter.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

void FillRows(uint64_t seed, int64_t step, int32_t document, int64_t begin, int64_t end,
              StepTensor tensor, int64_t row_elems, float* out) {
  const uint64_t stream =
      Mix(Mix(Mix(seed) ^ static_cast<uint64_t>(step)) ^
          (static_cast<uint64_t>(document) << 2 | static_cast<uint64_t>(tensor)));
  for (int64_t pos = begin; pos < end; ++pos) {
    const uint64_t row = Mix(stream ^ static_cast<uint64_t>(pos));
    for (int64_t e = 0; e < row_elems; ++e) {
      // 24 random bits -> [-1, 1), exactly representable in float.
      const uint64_t bits = Mix(row + static_cast<uint64_t>(e)) >> 40;
      *out++ = static_cast<float>(bits) * (2.0f / 16777216.0f) - 1.0f;
    }
  }
}

StepInputs MakeStepInputs(const Plan& plan, const WorkerPlan& worker,
                          const kernels::AttentionShape& shape, uint64_t seed, int64_t step) {
  const int64_t q_row = static_cast<int64_t>(shape.q_heads) * shape.head_dim;
  const int64_t kv_row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  StepInputs in;
  for (int32_t b : worker.blocks) in.tokens += plan.blocks[b].tokens();
  in.q.resize(in.tokens * q_row);
  in.d_o.resize(in.tokens * q_row);
  in.k.resize(in.tokens * kv_row);
  in.v.resize(in.tokens * kv_row);
  int64_t row = 0;
  for (int32_t id : worker.blocks) {
    const Block& b = plan.blocks[id];
    FillRows(seed, step, b.document, b.begin, b.end, StepTensor::kQ, q_row, &in.q[row * q_row]);
    FillRows(seed, step, b.document, b.begin, b.end, StepTensor::kDo, q_row, &in.d_o[row * q_row]);
    FillRows(seed, step, b.document, b.begin, b.end, StepTensor::kK, kv_row, &in.k[row * kv_row]);
    FillRows(seed, step, b.document, b.begin, b.end, StepTensor::kV, kv_row, &in.v[row * kv_row]);
    row += b.tokens();
  }
  return in;
}

}  // namespace fcp
