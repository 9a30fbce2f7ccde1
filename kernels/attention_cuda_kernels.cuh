// Internal to fcp_kernels_cuda: the attention kernels as templates, included by attention_cuda.cu
// (compiled by nvcc for the GPU) and by attention_cuda_emulation_test.cc (compiled by the host
// compiler over kernels/cuda_emulation.h, which runs each block's threads as fibers on the CPU, so
// the kernels' indexing, masks, synchronisation and wmma operands are tested without a GPU).
//
// A block of 4 warps owns one work item (a chunk of output rows of one block, one head) and stages
// everything it multiplies in shared memory: matrix products read and write shared memory only
// (BlockGemm), the softmax and the masks are plain per-element code between them. This is the
// FlashAttention-1/2 dataflow with wmma tensor-core products; what it leaves on the table on Hopper
// is listed in docs/benchmarks.md ("GPU kernels: what is next"): register-resident accumulators
// (mma.sync fragments instead of the shared-memory round trips), cp.async/TMA double buffering of
// K and V, wgmma, and a persistent grid.
//
// Shared memory of one forward block (T = bf16, D = 128, 113 KB: two blocks per H100 SM):
//
//   qs [64][D+8] T    ks [64][D+8] T    vs [64][D+8] T      inputs, rows padded by 16 bytes
//   ss [64][64+4] f32                                      S = Q·Kᵀ
//   ps [64][64+8] T                                        P (rounded to T for P·V)
//   os [64][D+4] f32                                       O, rescaled row by row
#ifndef FCP_KERNELS_ATTENTION_CUDA_KERNELS_CUH_
#define FCP_KERNELS_ATTENTION_CUDA_KERNELS_CUH_

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "kernels/attention_cuda_launch.h"

namespace fcp {
namespace kernels {
namespace cuda_internal {
// Internal linkage: the nvcc build and the host-compiled emulation each get their own copy, and a
// binary may link both (the emulation test links the library too).
namespace {

#ifndef FCP_CUDA_EMULATION
// The block's dynamic shared memory (the emulation supplies its own).
__device__ __forceinline__ unsigned char* DynamicSharedMemory() {
  extern __shared__ __align__(128) unsigned char smem[];
  return smem;
}
#endif

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float WarpMax(float x) {
  for (int offset = 16; offset > 0; offset /= 2) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  }
  return x;
}

__device__ __forceinline__ float WarpSum(float x) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

constexpr size_t AlignUp(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Elements of T that pad a shared-memory row by 16 bytes (keeps 16-byte and wmma alignment, and
// moves consecutive rows to other banks).
template <typename T>
constexpr int kPadOf = 16 / static_cast<int>(sizeof(T));
constexpr int kFloatPad = 4;

// ---- block-wide matrix products on shared memory --------------------------------------------

struct RowMajor {};
struct ColMajor {};

// c[M×N] = (or +=) a[M×K] · b[K×N], fp32 c row-major with leading dimension ldc. Every thread of
// the block calls it. RowMajor a: a(r, k) = a[r·lda + k]; ColMajor a: a[r + k·lda] (the transpose
// of a row-major array); likewise b(k, n) = b[k·ldb + n] or b[k + n·ldb]. fp16/bf16: wmma, one
// 16×16 output tile per warp at a time (pointers 32-byte aligned, ld a multiple of 8); fp32: one
// output element per thread at a time.
template <int M, int N, int K, bool kAccumulate, typename LayoutA, typename LayoutB, typename T>
__device__ __forceinline__ void BlockGemm(const T* a, int lda, const T* b, int ldb, float* c,
                                          int ldc) {
  static_assert(M % 16 == 0 && N % 16 == 0 && K % 16 == 0, "16×16×16 tiles");
  constexpr bool kRowA = std::is_same<LayoutA, RowMajor>::value;
  constexpr bool kRowB = std::is_same<LayoutB, RowMajor>::value;
  if constexpr (sizeof(T) == 2) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    namespace wmma = nvcuda::wmma;
    using FragLayoutA = std::conditional_t<kRowA, wmma::row_major, wmma::col_major>;
    using FragLayoutB = std::conditional_t<kRowB, wmma::row_major, wmma::col_major>;
    constexpr int kTilesN = N / 16;
    const int warp = threadIdx.x / 32;
    for (int t = warp; t < (M / 16) * kTilesN; t += kWarps) {
      const int tm = t / kTilesN, tn = t % kTilesN;
      float* ct = c + tm * 16 * ldc + tn * 16;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      if (kAccumulate) {
        wmma::load_matrix_sync(acc, ct, ldc, wmma::mem_row_major);
      } else {
        wmma::fill_fragment(acc, 0.0f);
      }
#pragma unroll
      for (int k = 0; k < K; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, FragLayoutA> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, FragLayoutB> fb;
        wmma::load_matrix_sync(fa, kRowA ? a + tm * 16 * lda + k : a + tm * 16 + k * lda, lda);
        wmma::load_matrix_sync(fb, kRowB ? b + k * ldb + tn * 16 : b + k + tn * 16 * ldb, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(ct, acc, ldc, wmma::mem_row_major);
    }
#endif
  } else {
    for (int idx = threadIdx.x; idx < M * N; idx += kThreads) {
      const int r = idx / N, n = idx % N;
      float sum = kAccumulate ? c[r * ldc + n] : 0.0f;
#pragma unroll 8
      for (int k = 0; k < K; ++k) {
        const float x = kRowA ? a[r * lda + k] : a[r + k * lda];
        const float y = kRowB ? b[k * ldb + n] : b[k + n * ldb];
        sum = fmaf(x, y, sum);
      }
      c[r * ldc + n] = sum;
    }
  }
}

// Copies `rows` rows of D elements (source rows `stride` elements apart) into shared rows of
// leading dimension `ld`, and zeros rows [rows, total): 16-byte loads, consecutive threads on
// consecutive bytes of a row.
template <typename T, int D>
__device__ __forceinline__ void LoadRows(const T* src, int64_t stride, int rows, int total, T* dst,
                                         int ld) {
  constexpr int kVec = 16 / sizeof(T);
  constexpr int kPerRow = D / kVec;
  for (int idx = threadIdx.x; idx < total * kPerRow; idx += kThreads) {
    const int r = idx / kPerRow, c = (idx % kPerRow) * kVec;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (r < rows) value = *reinterpret_cast<const uint4*>(src + r * stride + c);
    *reinterpret_cast<uint4*>(dst + r * ld + c) = value;
  }
}

// ---- forward ---------------------------------------------------------------------------------

template <typename T, int D>
struct ForwardConfig {
  static constexpr int kBM = kForwardRows;              // query rows per block
  static constexpr int kBN = sizeof(T) == 2 ? 64 : 32;  // keys per step
  static constexpr int kRowsPerWarp = kBM / kWarps;     // softmax rows of each warp
  static constexpr int kColsPerLane = kBN / 32;         // softmax columns of each lane
  static constexpr int kLdT = D + kPadOf<T>;            // qs, ks, vs
  static constexpr int kLdS = kBN + kFloatPad;          // ss
  static constexpr int kLdP = kBN + kPadOf<T>;          // ps
  static constexpr int kLdO = D + kFloatPad;            // os
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + AlignUp(sizeof(T) * kBM * kLdT);
  static constexpr size_t kV = kK + AlignUp(sizeof(T) * kBN * kLdT);
  static constexpr size_t kS = kV + AlignUp(sizeof(T) * kBN * kLdT);
  static constexpr size_t kP = kS + AlignUp(sizeof(float) * kBM * kLdS);
  static constexpr size_t kO = kP + AlignUp(sizeof(T) * kBM * kLdP);
  static constexpr size_t kBytes = kO + AlignUp(sizeof(float) * kBM * kLdO);
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    ForwardKernel(LaunchTables<ForwardTile> tables, AttentionShape shape, float scale_log2) {
  using C = ForwardConfig<T, D>;
  unsigned char* smem = DynamicSharedMemory();
  T* qs = reinterpret_cast<T*>(smem + C::kQ);
  T* ks = reinterpret_cast<T*>(smem + C::kK);
  T* vs = reinterpret_cast<T*>(smem + C::kV);
  float* ss = reinterpret_cast<float*>(smem + C::kS);
  T* ps = reinterpret_cast<T*>(smem + C::kP);
  float* os = reinterpret_cast<float*>(smem + C::kO);

  const WorkItem item = tables.items[blockIdx.x];
  const int h = blockIdx.y;
  const int g = h / (shape.q_heads / shape.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int32_t first = tables.begin[item.group], last = tables.begin[item.group + 1];
  const ForwardTile lead = tables.tiles[tables.order[first]];
  const int rows = static_cast<int>(min(static_cast<int64_t>(C::kBM), lead.q_rows - item.row0));
  const int64_t i_lo = lead.q_begin + item.row0;
  const int64_t q_stride = static_cast<int64_t>(shape.q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(shape.kv_heads) * D;

  LoadRows<T, D>(static_cast<const T*>(lead.q) + item.row0 * q_stride + h * D, q_stride, rows,
                 C::kBM, qs, C::kLdT);
  for (int idx = threadIdx.x; idx < C::kBM * D; idx += kThreads) {
    os[(idx / D) * C::kLdO + idx % D] = 0.0f;
  }
  // Running max (log2 domain) and sum of the warp's rows; every lane holds the same values.
  float m[C::kRowsPerWarp], l[C::kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < C::kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
  }

  for (int32_t ti = first; ti < last; ++ti) {
    const ForwardTile tile = tables.tiles[tables.order[ti]];
    const PositionRange keys =
        Intersect(KeysOf(tile.mask, i_lo, i_lo + rows - 1), tile.kv_begin, tile.kv_rows);
    for (int64_t j0 = keys.lo; j0 < keys.hi; j0 += C::kBN) {
      const int cols = static_cast<int>(min(static_cast<int64_t>(C::kBN), keys.hi - j0));
      const int64_t local = j0 - tile.kv_begin;
      __syncthreads();  // the previous step's reads of ks, vs and ps are done
      LoadRows<T, D>(static_cast<const T*>(tile.k) + local * kv_stride + g * D, kv_stride, cols,
                     C::kBN, ks, C::kLdT);
      LoadRows<T, D>(static_cast<const T*>(tile.v) + local * kv_stride + g * D, kv_stride, cols,
                     C::kBN, vs, C::kLdT);
      __syncthreads();
      // S = Q·Kᵀ
      BlockGemm<C::kBM, C::kBN, D, false, RowMajor, ColMajor>(qs, C::kLdT, ks, C::kLdT, ss,
                                                              C::kLdS);
      __syncthreads();
      // Online softmax over this step's keys; rescale O by e^(m−m').
#pragma unroll
      for (int rr = 0; rr < C::kRowsPerWarp; ++rr) {
        const int r = warp * C::kRowsPerWarp + rr;
        float s[C::kColsPerLane];
        float step_max = -INFINITY;
#pragma unroll
        for (int cc = 0; cc < C::kColsPerLane; ++cc) {
          const int c = lane + 32 * cc;
          const bool allowed = r < rows && c < cols && MaskAllows(tile.mask, i_lo + r, j0 + c);
          s[cc] = allowed ? ss[r * C::kLdS + c] * scale_log2 : -INFINITY;
          step_max = fmaxf(step_max, s[cc]);
        }
        step_max = WarpMax(step_max);
        const float m_new = fmaxf(m[rr], step_max);
        const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m[rr] - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int cc = 0; cc < C::kColsPerLane; ++cc) {
          const float p = s[cc] == -INFINITY ? 0.0f : exp2f(s[cc] - m_new);
          sum += p;
          ps[r * C::kLdP + lane + 32 * cc] = FromFloat<T>(p);
        }
        sum = WarpSum(sum);
        l[rr] = alpha * l[rr] + sum;
        m[rr] = m_new;
        if (alpha != 1.0f) {
          for (int c = lane; c < D; c += 32) os[r * C::kLdO + c] *= alpha;
        }
      }
      __syncthreads();
      // O += P·V
      BlockGemm<C::kBM, D, C::kBN, true, RowMajor, RowMajor>(ps, C::kLdP, vs, C::kLdT, os, C::kLdO);
    }
  }
  __syncthreads();

  // (o, lse) ← merge((o, lse), (O/l, m·ln2 + ln l)); rows without an allowed key keep theirs.
#pragma unroll
  for (int rr = 0; rr < C::kRowsPerWarp; ++rr) {
    const int r = warp * C::kRowsPerWarp + rr;
    if (r >= rows || m[rr] == -INFINITY) continue;
    const int64_t row = item.row0 + r;
    float* lse = lead.lse + row * shape.q_heads + h;
    float* o = lead.o + row * q_stride + h * D;
    const float lse_tile = m[rr] * kLn2 + logf(l[rr]);
    const float lse_old = *lse;
    const float inv_l = 1.0f / l[rr];
    float merged = lse_tile;
    if (lse_old == -INFINITY) {
      for (int c = lane; c < D; c += 32) o[c] = os[r * C::kLdO + c] * inv_l;
    } else {
      merged = fmaxf(lse_old, lse_tile) + log1pf(expf(-fabsf(lse_old - lse_tile)));
      const float w_old = expf(lse_old - merged);
      const float w_tile = expf(lse_tile - merged) * inv_l;
      for (int c = lane; c < D; c += 32) o[c] = w_old * o[c] + w_tile * os[r * C::kLdO + c];
    }
    __syncwarp();
    if (lane == 0) *lse = merged;
  }
}

// ---- backward --------------------------------------------------------------------------------

template <typename T, int D>
struct BackwardConfig {
  static constexpr int kBN = sizeof(T) == 2 ? 64 : 32;  // key rows per block
  static constexpr int kBM = 32;                        // query rows per step
  static constexpr int kLdT = D + kPadOf<T>;            // ks, vs, qs, dos
  static constexpr int kLdS = kBN + kFloatPad;          // ss, dps
  static constexpr int kLdP = kBN + kPadOf<T>;          // ps, dss
  static constexpr int kLdAcc = D + kFloatPad;          // dks, dvs, dqs
  static constexpr size_t kSBytes = AlignUp(sizeof(float) * kBM * kLdS);
  static constexpr size_t kDqBytes = AlignUp(sizeof(float) * kBM * kLdAcc);
  // dQ = dS·K is written once S and dP are consumed: it reuses their memory when it fits.
  static constexpr bool kDqInS = kDqBytes <= 2 * kSBytes;
  static constexpr size_t kK = 0;
  static constexpr size_t kV = kK + AlignUp(sizeof(T) * kBN * kLdT);
  static constexpr size_t kQ = kV + AlignUp(sizeof(T) * kBN * kLdT);
  static constexpr size_t kDo = kQ + AlignUp(sizeof(T) * kBM * kLdT);
  static constexpr size_t kDk = kDo + AlignUp(sizeof(T) * kBM * kLdT);
  static constexpr size_t kDv = kDk + AlignUp(sizeof(float) * kBN * kLdAcc);
  static constexpr size_t kS = kDv + AlignUp(sizeof(float) * kBN * kLdAcc);
  static constexpr size_t kDp = kS + kSBytes;
  static constexpr size_t kP = kDp + kSBytes;
  static constexpr size_t kDs = kP + AlignUp(sizeof(T) * kBM * kLdP);
  static constexpr size_t kRowStats = kDs + AlignUp(sizeof(T) * kBM * kLdP);  // lse, delta
  static constexpr size_t kDq = kDqInS ? kS : kRowStats + AlignUp(sizeof(float) * 2 * kBM);
  static constexpr size_t kBytes =
      kDqInS ? kRowStats + AlignUp(sizeof(float) * 2 * kBM) : kDq + kDqBytes;
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    BackwardKernel(LaunchTables<BackwardTile> tables, AttentionShape shape, float scale,
                   float scale_log2) {
  using C = BackwardConfig<T, D>;
  unsigned char* smem = DynamicSharedMemory();
  T* ks = reinterpret_cast<T*>(smem + C::kK);
  T* vs = reinterpret_cast<T*>(smem + C::kV);
  T* qs = reinterpret_cast<T*>(smem + C::kQ);
  T* dos = reinterpret_cast<T*>(smem + C::kDo);
  float* dks = reinterpret_cast<float*>(smem + C::kDk);
  float* dvs = reinterpret_cast<float*>(smem + C::kDv);
  float* ss = reinterpret_cast<float*>(smem + C::kS);
  float* dps = reinterpret_cast<float*>(smem + C::kDp);
  T* ps = reinterpret_cast<T*>(smem + C::kP);
  T* dss = reinterpret_cast<T*>(smem + C::kDs);
  float* lse_s = reinterpret_cast<float*>(smem + C::kRowStats);
  float* delta_s = lse_s + C::kBM;
  float* dqs = reinterpret_cast<float*>(smem + C::kDq);

  const WorkItem item = tables.items[blockIdx.x];
  const int g = blockIdx.y;
  const int group = shape.q_heads / shape.kv_heads;
  const int32_t first = tables.begin[item.group], last = tables.begin[item.group + 1];
  const BackwardTile lead = tables.tiles[tables.order[first]];
  const int cols = static_cast<int>(min(static_cast<int64_t>(C::kBN), lead.kv_rows - item.row0));
  const int64_t j_lo = lead.kv_begin + item.row0;
  const int64_t q_stride = static_cast<int64_t>(shape.q_heads) * D;
  const int64_t kv_stride = static_cast<int64_t>(shape.kv_heads) * D;

  LoadRows<T, D>(static_cast<const T*>(lead.k) + item.row0 * kv_stride + g * D, kv_stride, cols,
                 C::kBN, ks, C::kLdT);
  LoadRows<T, D>(static_cast<const T*>(lead.v) + item.row0 * kv_stride + g * D, kv_stride, cols,
                 C::kBN, vs, C::kLdT);
  for (int idx = threadIdx.x; idx < C::kBN * D; idx += kThreads) {
    dks[(idx / D) * C::kLdAcc + idx % D] = 0.0f;
    dvs[(idx / D) * C::kLdAcc + idx % D] = 0.0f;
  }

  for (int32_t ti = first; ti < last; ++ti) {
    const BackwardTile tile = tables.tiles[tables.order[ti]];
    const PositionRange queries =
        Intersect(QueriesOf(tile.mask, j_lo, j_lo + cols - 1), tile.q_begin, tile.q_rows);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t i0 = queries.lo; i0 < queries.hi; i0 += C::kBM) {
        const int rows = static_cast<int>(min(static_cast<int64_t>(C::kBM), queries.hi - i0));
        const int64_t local = i0 - tile.q_begin;
        __syncthreads();  // the previous step's reads of qs, dos, dqs are done
        LoadRows<T, D>(static_cast<const T*>(tile.q) + local * q_stride + h * D, q_stride, rows,
                       C::kBM, qs, C::kLdT);
        LoadRows<T, D>(static_cast<const T*>(tile.d_o) + local * q_stride + h * D, q_stride, rows,
                       C::kBM, dos, C::kLdT);
        for (int r = threadIdx.x; r < C::kBM; r += kThreads) {
          const int64_t at = (local + r) * shape.q_heads + h;
          lse_s[r] = r < rows ? tile.lse[at] : -INFINITY;
          delta_s[r] = r < rows ? tile.delta[at] : 0.0f;
        }
        __syncthreads();
        // S = Q·Kᵀ, dP = dO·Vᵀ
        BlockGemm<C::kBM, C::kBN, D, false, RowMajor, ColMajor>(qs, C::kLdT, ks, C::kLdT, ss,
                                                                C::kLdS);
        BlockGemm<C::kBM, C::kBN, D, false, RowMajor, ColMajor>(dos, C::kLdT, vs, C::kLdT, dps,
                                                                C::kLdS);
        __syncthreads();
        // P = e^(S·scale − lse) where allowed (rows without keys have lse = -inf: P = 0);
        // dS = P∘(dP − delta).
        for (int idx = threadIdx.x; idx < C::kBM * C::kBN; idx += kThreads) {
          const int r = idx / C::kBN, c = idx % C::kBN;
          const bool allowed = r < rows && c < cols && lse_s[r] != -INFINITY &&
                               MaskAllows(tile.mask, i0 + r, j_lo + c);
          const float p =
              allowed ? exp2f(ss[r * C::kLdS + c] * scale_log2 - lse_s[r] * kLog2e) : 0.0f;
          const float ds = p * (dps[r * C::kLdS + c] - delta_s[r]);
          ps[r * C::kLdP + c] = FromFloat<T>(p);
          dss[r * C::kLdP + c] = FromFloat<T>(ds);
        }
        __syncthreads();
        // dV += Pᵀ·dO, dK += dSᵀ·Q (scaled once at the end), dQ = dS·K (into ss/dps when kDqInS:
        // nothing reads them any more).
        BlockGemm<C::kBN, D, C::kBM, true, ColMajor, RowMajor>(ps, C::kLdP, dos, C::kLdT, dvs,
                                                               C::kLdAcc);
        BlockGemm<C::kBN, D, C::kBM, true, ColMajor, RowMajor>(dss, C::kLdP, qs, C::kLdT, dks,
                                                               C::kLdAcc);
        BlockGemm<C::kBM, D, C::kBN, false, RowMajor, RowMajor>(dss, C::kLdP, ks, C::kLdT, dqs,
                                                                C::kLdAcc);
        __syncthreads();
        float* dq = tile.dq + local * q_stride + h * D;
        for (int idx = threadIdx.x; idx < rows * D; idx += kThreads) {
          const int r = idx / D, c = idx % D;
          atomicAdd(dq + r * q_stride + c, scale * dqs[r * C::kLdAcc + c]);
        }
      }
    }
  }
  // removed
  float* dk = lead.dk + item.row0 * kv_stride + g * D;
  float* dv = lead.dv + item.row0 * kv_stride + g * D;
  for (int idx = threadIdx.x; idx < cols * D; idx += kThreads) {
    const int r = idx / D, c = idx % D;
    dk[r * kv_stride + c] += scale * dks[r * C::kLdAcc + c];
    dv[r * kv_stride + c] += dvs[r * C::kLdAcc + c];
  }
}

// ---- row kernels: one warp per (row, head) ----------------------------------------------------

template <typename T>
__global__ void DeltaKernel(const float* o, const T* d_o, int64_t row_heads, int d, float* delta) {
  const int64_t rh = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (rh >= row_heads) return;
  float sum = 0.0f;
  for (int c = lane; c < d; c += 32) sum += o[rh * d + c] * ToFloat(d_o[rh * d + c]);
  sum = WarpSum(sum);
  if (lane == 0) delta[rh] = sum;
}

__global__ void MergeKernel(int64_t row_heads, int d, float* o_a, float* lse_a, const float* o_b,
                            const float* lse_b) {
  const int64_t rh = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (rh >= row_heads) return;
  const float b = lse_b[rh];
  if (b == -INFINITY) return;
  const float a = lse_a[rh];
  float* o = o_a + rh * d;
  const float* ob = o_b + rh * d;
  float merged = b;
  if (a == -INFINITY) {
    for (int c = lane; c < d; c += 32) o[c] = ob[c];
  } else {
    merged = fmaxf(a, b) + log1pf(expf(-fabsf(a - b)));
    const float wa = expf(a - merged), wb = expf(b - merged);
    for (int c = lane; c < d; c += 32) o[c] = wa * o[c] + wb * ob[c];
  }
  __syncwarp();
  if (lane == 0) lse_a[rh] = merged;
}

__global__ void AccumulateKernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] += src[i];
  }
}

template <typename T>
__global__ void ConvertKernel(const float* src, T* dst, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = FromFloat<T>(src[i]);
  }
}

// ---- dispatch ----------------------------------------------------------------------------------

// f(T{}, std::integral_constant<int, D>{}) for the run-time (dtype, head_dim): the kernels'
// instances are (fp32, fp16, bf16) × (64, 128). Other head dims return `unsupported`.
template <typename R, typename F>
R DispatchKernel(DType dtype, int head_dim, R unsupported, F f) {
  auto by_dim = [&](auto type) -> R {
    switch (head_dim) {
      case 64:
        return f(type, std::integral_constant<int, 64>{});
      case 128:
        return f(type, std::integral_constant<int, 128>{});
    }
    return unsupported;
  };
  switch (dtype) {
    case DType::kFp32:
      return by_dim(float{});
    case DType::kFp16:
      return by_dim(__half{});
    case DType::kBf16:
      return by_dim(__nv_bfloat16{});
  }
  return unsupported;
}

}  // namespace
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_KERNELS_CUH_
