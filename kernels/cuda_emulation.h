// A CPU emulation of as much of CUDA as fcp's attention kernels use, for testing them without a
// GPU (tests only; include it before kernels/attention_cuda_kernels.cuh, in a file the host
// compiler builds).
//
// The threads of a block run as fibers (ucontext) on the calling thread, one warp at a time and
// each warp's lanes one after another, in random orders (seeded: runs repeat); a thread switches
// out at every synchronisation point: __syncthreads (resumes once every live
// thread of the block arrived), __syncwarp and warp shuffles (once every lane of the warp
// arrived), and the collective wmma stores. Blocks run one at a time, in grid order. What this
// checks that reading the code does not: every index and operand of the kernels (wmma pointers
// must be 32-byte aligned and leading dimensions multiples of 16 bytes, as on the GPU), barriers
// that some threads of a block or lanes of a warp never reach (reported and aborted), and reads
// of shared memory nothing wrote (it starts as NaN bytes in every block). What it cannot check:
// the hardware's own arithmetic order and the timing of real concurrent threads.
//
//   fcp::cuda_emulation::Launch(grid, kThreads, shared_bytes, Kernel<float, 64>, args...);
#ifndef FCP_KERNELS_CUDA_EMULATION_H_
#define FCP_KERNELS_CUDA_EMULATION_H_

#define FCP_CUDA_EMULATION 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <ucontext.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <type_traits>
#include <vector>

#undef __launch_bounds__
#define __launch_bounds__(...)

// Built-in variables: set by the emulator before it switches to a thread.
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace fcp {
namespace cuda_emulation {

enum class Wait : uint8_t { kRunning, kBlock, kWarp, kDone };

struct Fiber {
  ucontext_t context;
  Wait wait = Wait::kRunning;
  std::unique_ptr<char[]> stack;
};

constexpr size_t kStackBytes = 256 * 1024;

struct BlockState {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  int current = -1;
  std::function<void()> body;
  std::vector<unsigned char> shared;
  std::vector<float> shuffle;   // one slot per thread
  std::vector<unsigned> order;  // the order of the current sweep over threads
  std::mt19937 rng{1};
};

inline BlockState*& State() {
  static BlockState* state = nullptr;
  return state;
}

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "cuda emulation: block (%u, %u), thread %u: %s\n", blockIdx.x, blockIdx.y,
               threadIdx.x, what);
  std::abort();
}

// Switches from the current thread to the scheduler until `wait` is over.
inline void Yield(Wait wait) {
  BlockState* s = State();
  Fiber& f = s->fibers[s->current];
  f.wait = wait;
  swapcontext(&f.context, &s->scheduler);
}

inline void FiberMain() {
  BlockState* s = State();
  s->body();
  s->fibers[s->current].wait = Wait::kDone;  // returns to the scheduler through uc_link
}

// Runs one block of `threads` threads to completion.
inline void RunBlock(BlockState& s, unsigned threads) {
  State() = &s;
  for (unsigned t = 0; t < threads; ++t) {
    Fiber& f = s.fibers[t];
    f.wait = Wait::kRunning;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &s.scheduler;
    makecontext(&f.context, FiberMain, 0);
  }
  const unsigned warps = (threads + 31) / 32;
  std::vector<unsigned> warp_order(warps);
  for (;;) {
    // One warp at a time, in a random order, runs until all its lanes wait at __syncthreads:
    // warps drift as far apart as a barrier lets them, so a missing __syncthreads shows up as a
    // read of a value another warp has not written yet (or has already overwritten).
    std::iota(warp_order.begin(), warp_order.end(), 0u);
    std::shuffle(warp_order.begin(), warp_order.end(), s.rng);
    bool live = false;
    for (unsigned w : warp_order) {
      const unsigned first = w * 32, last = std::min(threads, first + 32);
      s.order.assign(last - first, 0);
      std::iota(s.order.begin(), s.order.end(), first);
      for (;;) {
        std::shuffle(s.order.begin(), s.order.end(), s.rng);  // lanes in a random order too
        for (unsigned t : s.order) {
          if (s.fibers[t].wait != Wait::kRunning) continue;
          s.current = static_cast<int>(t);
          threadIdx = make_uint3(t, 0, 0);
          swapcontext(&s.scheduler, &s.fibers[t].context);
        }
        unsigned at_warp = 0, at_block = 0, done = 0;
        for (unsigned t = first; t < last; ++t) {
          at_warp += s.fibers[t].wait == Wait::kWarp;
          at_block += s.fibers[t].wait == Wait::kBlock;
          done += s.fibers[t].wait == Wait::kDone;
        }
        if (at_warp == 0) {
          live = live || at_block > 0;
          break;
        }
        if (at_block > 0) Fail("deadlock: lanes of a warp wait at different barriers");
        if (done > 0) Fail("warp barrier or shuffle with lanes that have exited");
        for (unsigned t = first; t < last; ++t) s.fibers[t].wait = Wait::kRunning;
      }
    }
    if (!live) break;
    for (unsigned t = 0; t < threads; ++t) {
      if (s.fibers[t].wait == Wait::kBlock) s.fibers[t].wait = Wait::kRunning;
    }
  }
  State() = nullptr;
}

// kernel(args...) over `grid` blocks of `block` threads (1-D blocks) with `shared_bytes` of
// dynamic shared memory each.
template <typename Kernel, typename... Args>
void Launch(dim3 grid, dim3 block, size_t shared_bytes, Kernel kernel, Args... args) {
  if (block.y != 1 || block.z != 1 || block.x % 32 != 0) {
    std::fprintf(stderr, "cuda emulation: 1-D blocks of whole warps only\n");
    std::abort();
  }
  BlockState s;
  s.fibers.resize(block.x);
  for (Fiber& f : s.fibers) f.stack = std::make_unique<char[]>(kStackBytes);
  s.shuffle.assign(block.x, 0.0f);
  s.body = [&] { kernel(args...); };
  gridDim = grid;
  blockDim = block;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = make_uint3(x, y, z);
        s.shared.assign(shared_bytes + 128, 0xFF);  // NaN in every float, half and bf16
        RunBlock(s, block.x);
      }
    }
  }
}

inline unsigned char* SharedMemory() {
  BlockState* s = State();
  auto p = reinterpret_cast<uintptr_t>(s->shared.data());
  return reinterpret_cast<unsigned char*>((p + 127) / 128 * 128);
}

}  // namespace cuda_emulation

namespace kernels {
namespace cuda_internal {
inline unsigned char* DynamicSharedMemory() { return cuda_emulation::SharedMemory(); }
}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

// ---- device functions ---------------------------------------------------------------------------

inline void __syncthreads() { fcp::cuda_emulation::Yield(fcp::cuda_emulation::Wait::kBlock); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) fcp::cuda_emulation::Fail("__syncwarp: partial masks not emulated");
  fcp::cuda_emulation::Yield(fcp::cuda_emulation::Wait::kWarp);
}

inline float __shfl_xor_sync(unsigned mask, float value, int lane_mask) {
  if (mask != 0xffffffffu) fcp::cuda_emulation::Fail("__shfl_xor_sync: partial masks");
  std::vector<float>& slots = fcp::cuda_emulation::State()->shuffle;
  const unsigned me = threadIdx.x, warp = me / 32 * 32;
  slots[me] = value;
  __syncwarp();
  const float other = slots[warp + ((me % 32) ^ static_cast<unsigned>(lane_mask))];
  __syncwarp();
  return other;
}

inline float atomicAdd(float* address, float value) {
  const float old = *address;  // threads never run at the same time
  *address = old + value;
  return old;
}

inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }

// ---- nvcuda::wmma, 16×16×16 tiles ---------------------------------------------------------------

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// Every lane holds the whole 16×16 tile, element (i, j) at x[16·i + j].
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "16×16×16 only");
  float x[256];
};

inline float ElementToFloat(__half v) { return __half2float(v); }
inline float ElementToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float ElementToFloat(float v) { return v; }

inline void CheckOperand(const void* p, unsigned ldm, size_t element_bytes) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) {
    fcp::cuda_emulation::Fail("wmma: matrix pointer not 256-bit aligned");
  }
  if ((ldm * element_bytes) % 16 != 0) {
    fcp::cuda_emulation::Fail("wmma: ldm not a multiple of 16 bytes");
  }
}

template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  CheckOperand(p, ldm, sizeof(T));
  constexpr bool kRow = std::is_same<Layout, row_major>::value;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      f.x[16 * i + j] = ElementToFloat(kRow ? p[i * ldm + j] : p[i + j * ldm]);
    }
  }
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p,
                             unsigned ldm, layout_t layout) {
  CheckOperand(p, ldm, sizeof(float));
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      f.x[16 * i + j] = layout == mem_row_major ? p[i * ldm + j] : p[i + j * ldm];
    }
  }
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f,
                              unsigned ldm, layout_t layout) {
  CheckOperand(p, ldm, sizeof(float));
  __syncwarp();  // a collective store: every lane has loaded what it needs first
  if (threadIdx.x % 32 == 0) {
    for (int i = 0; i < 16; ++i) {
      for (int j = 0; j < 16; ++j) {
        (layout == mem_row_major ? p[i * ldm + j] : p[i + j * ldm]) = f.x[16 * i + j];
      }
    }
  }
  __syncwarp();
}

inline void fill_fragment(fragment<accumulator, 16, 16, 16, float>& f, float value) {
  for (float& e : f.x) e = value;
}

template <typename T, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
              const fragment<matrix_a, 16, 16, 16, T, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LayoutB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[256];
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      float sum = c.x[16 * i + j];
      for (int k = 0; k < 16; ++k) sum += a.x[16 * i + k] * b.x[16 * k + j];
      out[16 * i + j] = sum;
    }
  }
  std::memcpy(d.x, out, sizeof out);
}

}  // namespace wmma
}  // namespace nvcuda

#endif  // FCP_KERNELS_CUDA_EMULATION_H_
