#include "worker/verify/reference_check.h"

#include <algorithm>
#include <cmath>

#include "absl/container/btree_map.h"
#include "absl/strings/str_format.h"
#include "kernels/reference.h"
#include "worker/executor/kernel_types.h"
#include "worker/verify/step_data.h"

namespace fcp {
namespace {

// Running max |a - b| and max |b| of one tensor of one document.
struct Diff {
  double err = 0, scale = 0;
  void Add(const float* a, const float* b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      if (std::isinf(b[i]) && a[i] == b[i]) continue;  // -inf LSE of a row with no keys
      err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
    }
  }
  // Relative to the tensor's largest magnitude, floored at 1e-2: entries that are zero by the math
  // (the gradients of a one-token document) hold float rounding noise, not error.
  double Relative() const { return err / std::max(scale, 1e-2); }
};

}  // namespace

double ReferenceError::Max() const { return std::max({o, lse, dq, dk, dv}); }

std::string ReferenceError::ToString() const {
  return absl::StrFormat("o %.1e lse %.1e dq %.1e dk %.1e dv %.1e (%d documents)", o, lse, dq, dk,
                         dv, documents);
}

absl::StatusOr<ReferenceError> CompareWithReference(const Plan& plan, int32_t rank,
                                                    const kernels::AttentionShape& shape,
                                                    uint64_t seed, int64_t step,
                                                    const LocalOutputs& outputs) {
  const WorkerPlan* worker = plan.FindWorker(rank);
  if (worker == nullptr) return absl::NotFoundError("no slice for this rank");
  const int64_t q_row = static_cast<int64_t>(shape.q_heads) * shape.head_dim;
  const int64_t kv_row = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  // The rank's blocks by document, with their first local row.
  absl::btree_map<int32_t, std::vector<std::pair<int32_t, int64_t>>> by_document;
  int64_t row = 0;
  for (int32_t b : worker->blocks) {
    by_document[plan.blocks[b].document].push_back({b, row});
    row += plan.blocks[b].tokens();
  }
  if (outputs.o.size() != static_cast<size_t>(row * q_row)) {
    return absl::InvalidArgumentError("outputs do not match the slice's tokens");
  }
  ReferenceError result;
  for (const auto& [d, blocks] : by_document) {
    const Document& doc = plan.documents[d];
    const int64_t n = doc.length;
    std::vector<float> q(n * q_row), d_o(n * q_row), k(n * kv_row), v(n * kv_row);
    FillRows(seed, step, d, 0, n, StepTensor::kQ, q_row, q.data());
    FillRows(seed, step, d, 0, n, StepTensor::kDo, q_row, d_o.data());
    FillRows(seed, step, d, 0, n, StepTensor::kK, kv_row, k.data());
    FillRows(seed, step, d, 0, n, StepTensor::kV, kv_row, v.data());
    const kernels::TileMask mask = ToKernelMask(doc.mask);
    const kernels::ReferenceResult ref =
        kernels::ReferenceAttention(shape, mask, n, q.data(), k.data(), v.data(), d_o.data());
    Diff o, lse, dq, dk, dv;
    for (const auto& [b, first] : blocks) {
      const Block& block = plan.blocks[b];
      const int64_t rows = block.tokens();
      o.Add(&outputs.o[first * q_row], &ref.o[block.begin * q_row], rows * q_row);
      dq.Add(&outputs.dq[first * q_row], &ref.dq[block.begin * q_row], rows * q_row);
      lse.Add(&outputs.lse[first * shape.q_heads], &ref.lse[block.begin * shape.q_heads],
              rows * shape.q_heads);
      dk.Add(&outputs.dk[first * kv_row], &ref.dk[block.begin * kv_row], rows * kv_row);
      dv.Add(&outputs.dv[first * kv_row], &ref.dv[block.begin * kv_row], rows * kv_row);
    }
    result.o = std::max(result.o, o.Relative());
    result.lse = std::max(result.lse, lse.Relative());
    result.dq = std::max(result.dq, dq.Relative());
    result.dk = std::max(result.dk, dk.Relative());
    result.dv = std::max(result.dv, dv.Relative());
    ++result.documents;
  }
  return result;
}

}  // namespace fcp
