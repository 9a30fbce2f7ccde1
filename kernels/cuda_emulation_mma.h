// The CPU emulation (kernels/cuda_emulation.h) of the warp-level primitives the v2 kernels use
// (kernels/attention_cuda_mma.cuh has their GPU versions and the layouts): mma.sync m16n8k16,
// ldmatrix x4 (.trans) and cp.async. Tests only; included by attention_cuda_mma.cuh when
// FCP_CUDA_EMULATION is defined.
//
// mma and ldmatrix are collective: every lane puts its operands (registers, row addresses) in its
// slot, meets the others at one __syncwarp, and computes its own result from all 32 slots with
// PTX's fragment layouts; each lane alternates between two slots, so a lane that runs ahead to the
// next collective cannot overwrite what a slower lane still reads. ldmatrix checks that every row
// address is 16-byte aligned and inside the block's shared memory.
//
// cp.async: the destination turns to NaN bytes at issue and receives the data at CpAsyncWait, the
// two ends of what the hardware may do. A read of the destination before the wait (and, for other
// threads, before the __syncthreads after it) sees NaN, and so does a warp still reading a buffer
// that another warp has already started to refill (a missing barrier before the issue): both are
// bugs the hardware would show only sometimes. Copies still pending when the next block issues or
// waits are reported (a kernel must wait for all its copies).
#ifndef FCP_KERNELS_CUDA_EMULATION_MMA_H_
#define FCP_KERNELS_CUDA_EMULATION_MMA_H_

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cuda_emulation.h"

namespace fcp {
namespace cuda_emulation {

struct LaneSlots {
  uint64_t words[2][8] = {};  // two alternating slots of up to 8 words
  unsigned next = 0;          // the slot this lane's next collective uses
};

inline std::vector<LaneSlots>& Slots() {
  static std::vector<LaneSlots> slots;
  if (slots.size() < blockDim.x) slots.resize(blockDim.x);
  return slots;
}

// Puts `n` words in this lane's slot, waits for the whole warp, and returns the warp's 32 slots
// of this collective (lane l's words at [l][0..n)).
template <size_t n>
std::array<const uint64_t*, 32> Exchange(const uint64_t (&words)[n]) {
  static_assert(n <= 8, "8 words per lane");
  std::vector<LaneSlots>& slots = Slots();
  LaneSlots& mine = slots[threadIdx.x];
  const unsigned slot = mine.next;
  mine.next ^= 1;
  std::memcpy(mine.words[slot], words, sizeof words);
  __syncwarp();
  std::array<const uint64_t*, 32> warp;
  const unsigned first = threadIdx.x / 32 * 32;
  for (unsigned l = 0; l < 32; ++l) warp[l] = slots[first + l].words[slot];
  return warp;
}

inline float HalfToFloat(uint16_t bits, bool bf16) {
  if (bf16) {
    uint32_t f = static_cast<uint32_t>(bits) << 16;
    float x;
    std::memcpy(&x, &f, sizeof x);
    return x;
  }
  __half h;
  std::memcpy(static_cast<void*>(&h), &bits, sizeof h);
  return __half2float(h);
}

// Element `half` (0: low 16 bits) of register `reg` of lane `lane` in a warp exchange.
inline uint16_t Half(const std::array<const uint64_t*, 32>& warp, unsigned lane, unsigned reg,
                     unsigned half) {
  return static_cast<uint16_t>(warp[lane][reg] >> (16 * half));
}

// c += a·b, mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16} (layouts in attention_cuda_mma.cuh).
template <typename T>
void Mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  static_assert(std::is_same<T, __half>::value || std::is_same<T, __nv_bfloat16>::value);
  constexpr bool kBf16 = std::is_same<T, __nv_bfloat16>::value;
  const uint64_t words[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  const std::array<const uint64_t*, 32> warp = Exchange(words);
  // A(r, k): lane 4(r%8) + (k%8)/2, register (r ≥ 8) + 2(k ≥ 8), half k%2.
  auto a_at = [&](int r, int k) {
    return HalfToFloat(Half(warp, 4 * (r % 8) + (k % 8) / 2, (r >= 8) + 2 * (k >= 8), k % 2),
                       kBf16);
  };
  // B(k, n): lane 4n + (k%8)/2, register 4 + (k ≥ 8), half k%2.
  auto b_at = [&](int k, int n) {
    return HalfToFloat(Half(warp, 4 * n + (k % 8) / 2, 4 + (k >= 8), k % 2), kBf16);
  };
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i / 2), n = 2 * t + i % 2;
    float sum = c[i];
    for (int k = 0; k < 16; ++k) sum += a_at(r, k) * b_at(k, n);
    c[i] = sum;
  }
}

inline void CheckSharedRow(const void* row) {
  const auto p = reinterpret_cast<uintptr_t>(row);
  const BlockState* s = State();
  const auto lo = reinterpret_cast<uintptr_t>(s->shared.data());
  if (p % 16 != 0) Fail("ldmatrix: row address not 16-byte aligned");
  if (p < lo || p + 16 > lo + s->shared.size()) Fail("ldmatrix: row outside shared memory");
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16.
template <bool kTrans>
void LdMatrix(uint32_t (&r)[4], const void* row) {
  CheckSharedRow(row);
  const uint64_t words[1] = {reinterpret_cast<uintptr_t>(row)};
  const std::array<const uint64_t*, 32> warp = Exchange(words);
  auto element = [&](int matrix, int row_index, int col) {
    uint16_t v;
    std::memcpy(&v, reinterpret_cast<const uint16_t*>(warp[8 * matrix + row_index][0]) + col,
                sizeof v);
    return static_cast<uint32_t>(v);
  };
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, t = lane % 4;
  for (int j = 0; j < 4; ++j) {
    r[j] = kTrans ? element(j, 2 * t, g) | element(j, 2 * t + 1, g) << 16
                  : element(j, g, 2 * t) | element(j, g, 2 * t + 1) << 16;
  }
  __syncwarp();  // the next collective's writes come after every lane's reads of shared memory
}

inline void LdMatrixX4(uint32_t (&r)[4], const void* row) { LdMatrix<false>(r, row); }
inline void LdMatrixX4Trans(uint32_t (&r)[4], const void* row) { LdMatrix<true>(r, row); }

// ---- cp.async --------------------------------------------------------------------------------

struct PendingCopy {
  void* dst;
  const void* src;
  int src_bytes;
};

struct CopyQueue {
  uint3 block = {~0u, ~0u, ~0u};                 // the block that issued the pending copies
  std::vector<std::vector<PendingCopy>> groups;  // committed, oldest first
  std::vector<PendingCopy> open;                 // issued since the last commit
};

inline CopyQueue& Queue() {
  static std::vector<CopyQueue> queues;
  if (queues.size() < blockDim.x) queues.resize(blockDim.x);
  CopyQueue& q = queues[threadIdx.x];
  const bool same_block =
      q.block.x == blockIdx.x && q.block.y == blockIdx.y && q.block.z == blockIdx.z;
  if (!same_block) {
    if (!q.groups.empty() || !q.open.empty()) Fail("cp.async: copies of a finished block pending");
    q.block = blockIdx;
  }
  return q;
}

inline void CpAsync16(void* dst, const void* src, int src_bytes) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0) {
    Fail("cp.async: address not 16-byte aligned");
  }
  if (src_bytes != 0 && src_bytes != 16) Fail("cp.async: src-size other than 0 or 16");
  std::memset(dst, 0xFF, 16);  // undefined until the wait: NaN to whoever reads it meanwhile
  Queue().open.push_back({dst, src, src_bytes});
}

inline void CpAsyncCommit() {
  CopyQueue& q = Queue();
  q.groups.push_back(std::move(q.open));
  q.open.clear();
}

template <int N>
void CpAsyncWait() {
  CopyQueue& q = Queue();
  while (q.groups.size() > static_cast<size_t>(N)) {
    for (const PendingCopy& c : q.groups.front()) {
      std::memset(c.dst, 0, 16);
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_bytes));
    }
    q.groups.erase(q.groups.begin());
  }
}

}  // namespace cuda_emulation
}  // namespace fcp

#endif  // FCP_KERNELS_CUDA_EMULATION_MMA_H_
