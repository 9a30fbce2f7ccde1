// The one adapter from planner types (service/planner/batch.h) to kernel types
// (kernels/attention.h). The kernels know nothing of the planner, so the two enums of each pair are
// kept value for value equal here, at compile time, and every conversion goes through these
// functions:
//
//   tile.mask = ToKernelMask(document.mask);
//   options.dtype = ToKernelDType(model.dtype);
#ifndef FCP_WORKER_EXECUTOR_KERNEL_TYPES_H_
#define FCP_WORKER_EXECUTOR_KERNEL_TYPES_H_

#include <cstdint>
#include <type_traits>

#include "kernels/attention.h"
#include "service/planner/batch.h"

namespace fcp {
namespace kernel_types_internal {

template <typename A, typename B>
constexpr bool SameValue(A a, B b) {
  return static_cast<std::underlying_type_t<A>>(a) == static_cast<std::underlying_type_t<B>>(b);
}

static_assert(
    std::is_same_v<std::underlying_type_t<MaskKind>, std::underlying_type_t<kernels::MaskKind>>);
static_assert(SameValue(MaskKind::kCausal, kernels::MaskKind::kCausal));
static_assert(SameValue(MaskKind::kFull, kernels::MaskKind::kFull));
static_assert(SameValue(MaskKind::kSlidingWindow, kernels::MaskKind::kSlidingWindow));
static_assert(SameValue(MaskKind::kPrefixLm, kernels::MaskKind::kPrefixLm));

static_assert(
    std::is_same_v<std::underlying_type_t<DType>, std::underlying_type_t<kernels::DType>>);
static_assert(SameValue(DType::kBf16, kernels::DType::kBf16));
static_assert(SameValue(DType::kFp16, kernels::DType::kFp16));
static_assert(SameValue(DType::kFp32, kernels::DType::kFp32));

}  // namespace kernel_types_internal

// The kernels' mask of a document's planner mask (same kind, window and prefix).
inline kernels::TileMask ToKernelMask(const Mask& mask) {
  return {static_cast<kernels::MaskKind>(mask.kind), mask.window, mask.prefix};
}

// The kernels' element type of the model's dtype.
inline kernels::DType ToKernelDType(DType dtype) { return static_cast<kernels::DType>(dtype); }

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_KERNEL_TYPES_H_
