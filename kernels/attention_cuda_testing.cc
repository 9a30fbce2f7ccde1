#include "kernels/attention_cuda_testing.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kernels/cuda_status.h"
#include "kernels/reference.h"
#include "kernels/test_util.h"

namespace fcp {
namespace kernels {
namespace testing {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<float> Rounded(DType dtype, std::vector<float> x) {
  for (float& e : x) e = RoundTo(dtype, e);
  return x;
}

// The bytes of x in dtype.
std::vector<char> Encode(DType dtype, const std::vector<float>& x) {
  std::vector<char> bytes(x.size() * DTypeBytes(dtype));
  for (size_t i = 0; i < x.size(); ++i) {
    switch (dtype) {
      case DType::kFp32:
        std::memcpy(&bytes[4 * i], &x[i], 4);
        break;
      case DType::kFp16: {
        const __half h = __float2half_rn(x[i]);
        std::memcpy(&bytes[2 * i], &h, 2);
        break;
      }
      case DType::kBf16: {
        const __nv_bfloat16 b = __float2bfloat16_rn(x[i]);
        std::memcpy(&bytes[2 * i], &b, 2);
        break;
      }
    }
  }
  return bytes;
}

bool TileHasPair(const TileMask& mask, const Problem::BlockRef& q, const Problem::BlockRef& kv) {
  for (int64_t i = q.begin; i < q.begin + q.rows; ++i) {
    for (int64_t j = kv.begin; j < kv.begin + kv.rows; ++j) {
      if (mask.Allows(i, j)) return true;
    }
  }
  return false;
}

// Naive attention of one document in `dtype`: each product's result and the softmax rounded to
// dtype, accumulation inside a product in fp32 (what a GPU matmul in that dtype returns).
void NaiveDocument(const Problem& p, int64_t row0, int64_t n, Outputs* out) {
  const int64_t hq = p.shape.q_heads, hkv = p.shape.kv_heads, d = p.shape.head_dim;
  const float scale = p.shape.Scale();
  auto r = [&](float x) { return RoundTo(p.dtype, x); };
  auto q = [&](int64_t i, int64_t h) { return &p.q[((row0 + i) * hq + h) * d]; };
  auto d_o = [&](int64_t i, int64_t h) { return &p.d_o[((row0 + i) * hq + h) * d]; };
  auto k = [&](int64_t j, int64_t g) { return &p.k[((row0 + j) * hkv + g) * d]; };
  auto v = [&](int64_t j, int64_t g) { return &p.v[((row0 + j) * hkv + g) * d]; };
  auto dot = [&](const float* a, const float* b) {
    float s = 0;
    for (int64_t c = 0; c < d; ++c) s += a[c] * b[c];
    return s;
  };
  std::vector<float> s(n), prob(n), dprob(n), ds(n);
  for (int64_t h = 0; h < hq; ++h) {
    const int64_t g = h / (hq / hkv);
    for (int64_t i = 0; i < n; ++i) {
      float max = kNegInf;
      for (int64_t j = 0; j < n; ++j) {
        s[j] = p.mask.Allows(i, j) ? r(r(dot(q(i, h), k(j, g))) * scale) : kNegInf;
        max = std::max(max, s[j]);
      }
      if (max == kNegInf) continue;
      float sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += s[j] == kNegInf ? 0 : std::exp(s[j] - max);
      out->lse[(row0 + i) * hq + h] = max + std::log(sum);
      for (int64_t j = 0; j < n; ++j) prob[j] = s[j] == kNegInf ? 0 : r(std::exp(s[j] - max) / sum);
      float* o = &out->o[((row0 + i) * hq + h) * d];
      for (int64_t c = 0; c < d; ++c) {
        float acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += prob[j] * v(j, g)[c];
        o[c] = r(acc);
      }
      // dP = dO·Vᵀ, dS = P∘(dP − Σ P∘dP), as a low-precision softmax backward computes it.
      float row_dot = 0;
      for (int64_t j = 0; j < n; ++j) {
        dprob[j] = prob[j] == 0 ? 0 : r(dot(d_o(i, h), v(j, g)));
        row_dot += prob[j] * dprob[j];
      }
      for (int64_t j = 0; j < n; ++j) ds[j] = r(prob[j] * (dprob[j] - r(row_dot)));
      float* dq = &out->dq[((row0 + i) * hq + h) * d];
      for (int64_t c = 0; c < d; ++c) {
        float acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += ds[j] * k(j, g)[c];
        dq[c] = r(r(acc) * scale);
      }
      // dK = scale·dSᵀ·Q and dV = Pᵀ·dO: fp32 sums over queries and heads, rounded once below.
      for (int64_t j = 0; j < n; ++j) {
        if (prob[j] == 0 && ds[j] == 0) continue;
        float* dk = &out->dk[((row0 + j) * hkv + g) * d];
        float* dv = &out->dv[((row0 + j) * hkv + g) * d];
        for (int64_t c = 0; c < d; ++c) {
          dk[c] += ds[j] * q(i, h)[c] * scale;
          dv[c] += prob[j] * d_o(i, h)[c];
        }
      }
    }
  }
  for (int64_t e = row0 * hkv * d; e < (row0 + n) * hkv * d; ++e) {
    out->dk[e] = r(out->dk[e]);
    out->dv[e] = r(out->dv[e]);
  }
}

// max |a − b| over finite entries; +inf when an infinity differs or a NaN appears.
double MaxAbsError(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    const double e = std::abs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(e)) return INFINITY;
    worst = std::max(worst, e);
  }
  return worst;
}

double MaxAbs(const std::vector<float>& x) {
  double m = 0;
  for (float e : x) {
    if (std::isfinite(e)) m = std::max(m, static_cast<double>(std::abs(e)));
  }
  return m;
}

}  // namespace

float RoundTo(DType dtype, float x) {
  switch (dtype) {
    case DType::kFp32:
      return x;
    case DType::kFp16:
      return __half2float(__float2half_rn(x));
    case DType::kBf16:
      return __bfloat162float(__float2bfloat16_rn(x));
  }
  return x;
}

int64_t Problem::Rows() const {
  int64_t rows = 0;
  for (int64_t n : lengths) rows += n;
  return rows;
}

Problem MakeProblem(const AttentionShape& shape, DType dtype, const TileMask& mask,
                    std::vector<int64_t> lengths, int64_t max_block, int32_t rounds,
                    uint32_t seed) {
  Problem p;
  p.shape = shape;
  p.dtype = dtype;
  p.mask = mask;
  p.lengths = std::move(lengths);
  p.rounds = rounds;
  std::mt19937 rng(seed);
  const int64_t rows = p.Rows();
  p.q = Rounded(dtype, test_util::RandomTensor(rows * shape.q_heads * shape.head_dim, rng));
  p.k = Rounded(dtype, test_util::RandomTensor(rows * shape.kv_heads * shape.head_dim, rng));
  p.v = Rounded(dtype, test_util::RandomTensor(rows * shape.kv_heads * shape.head_dim, rng));
  p.d_o = Rounded(dtype, test_util::RandomTensor(rows * shape.q_heads * shape.head_dim, rng));
  std::uniform_int_distribution<int64_t> block_size(1, max_block);
  std::uniform_int_distribution<int32_t> round(0, rounds - 1);
  int64_t row = 0;
  for (int64_t length : p.lengths) {
    std::vector<Problem::BlockRef> blocks;
    for (int64_t begin = 0; begin < length;) {
      const int64_t n = std::min(block_size(rng), length - begin);
      blocks.push_back({row + begin, begin, n});
      begin += n;
    }
    for (const auto& qb : blocks) {
      for (const auto& kb : blocks) {
        if (TileHasPair(mask, qb, kb)) p.tiles.push_back({qb, kb, round(rng)});
      }
    }
    row += length;
  }
  std::shuffle(p.tiles.begin(), p.tiles.end(), rng);
  return p;
}

absl::StatusOr<std::unique_ptr<CudaKernelRunner>> CudaKernelRunner::Create(
    const CudaAttentionOptions& options) {
  auto runner = std::unique_ptr<CudaKernelRunner>(new CudaKernelRunner);
  cudaStream_t stream = nullptr;
  CUDA_RETURN_IF_ERROR(cudaStreamCreate(&stream));
  runner->stream_ = stream;
  ASSIGN_OR_RETURN(runner->attention_, CudaAttention::Create(stream, options));
  return runner;
}

CudaKernelRunner::~CudaKernelRunner() {
  attention_.reset();
  if (stream_ == nullptr) return;
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));
  for (void* p : memory_) cudaFree(p);
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

absl::StatusOr<void*> CudaKernelRunner::Allocate(size_t bytes) {
  void* p = nullptr;
  CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
  memory_.push_back(p);
  return p;
}

absl::Status CudaKernelRunner::Upload(void* dst, const void* src, size_t bytes) {
  // From pageable memory: copied out before the call returns.
  CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream_)));
  return absl::OkStatus();
}

absl::Status CudaKernelRunner::Download(void* dst, const void* src, size_t bytes) {
  CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream_)));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(static_cast<cudaStream_t>(stream_)));
  return absl::OkStatus();
}

absl::Status CudaKernelRunner::Forward(const AttentionShape& shape, DType dtype,
                                       const std::vector<ForwardTile>& tiles) {
  return attention_->Forward(shape, dtype, tiles);
}

absl::Status CudaKernelRunner::Backward(const AttentionShape& shape, DType dtype,
                                        const std::vector<BackwardTile>& tiles) {
  return attention_->Backward(shape, dtype, tiles);
}

absl::Status CudaKernelRunner::ComputeDelta(const AttentionShape& shape, DType dtype,
                                            const float* o, const void* d_o, int64_t rows,
                                            float* delta) {
  return attention_->ComputeDelta(shape, dtype, o, d_o, rows, delta);
}

absl::StatusOr<Outputs> RunProblem(const Problem& p, KernelRunner& runner) {
  const int64_t rows = p.Rows();
  const int64_t hq = p.shape.q_heads, hkv = p.shape.kv_heads, d = p.shape.head_dim;
  const size_t in_bytes = DTypeBytes(p.dtype);
  auto upload = [&](const std::vector<char>& bytes) -> absl::StatusOr<char*> {
    ASSIGN_OR_RETURN(void* dst, runner.Allocate(std::max<size_t>(bytes.size(), 16)));
    RETURN_IF_ERROR(runner.Upload(dst, bytes.data(), bytes.size()));
    return static_cast<char*>(dst);
  };
  auto upload_floats = [&](const std::vector<float>& x) { return upload(Encode(DType::kFp32, x)); };
  ASSIGN_OR_RETURN(char* q, upload(Encode(p.dtype, p.q)));
  ASSIGN_OR_RETURN(char* k, upload(Encode(p.dtype, p.k)));
  ASSIGN_OR_RETURN(char* v, upload(Encode(p.dtype, p.v)));
  ASSIGN_OR_RETURN(char* d_o, upload(Encode(p.dtype, p.d_o)));
  std::mt19937 rng(rows);
  const std::vector<float> dq0 = test_util::RandomTensor(rows * hq * d, rng);
  const std::vector<float> dk0 = test_util::RandomTensor(rows * hkv * d, rng),
                           dv0 = test_util::RandomTensor(rows * hkv * d, rng);
  ASSIGN_OR_RETURN(char* o_bytes, upload_floats(std::vector<float>(rows * hq * d, NAN)));
  ASSIGN_OR_RETURN(char* lse_bytes, upload_floats(std::vector<float>(rows * hq, kNegInf)));
  ASSIGN_OR_RETURN(char* delta_bytes, upload_floats(std::vector<float>(rows * hq, NAN)));
  ASSIGN_OR_RETURN(char* dq_bytes, upload_floats(dq0));
  ASSIGN_OR_RETURN(char* dk_bytes, upload_floats(dk0));
  ASSIGN_OR_RETURN(char* dv_bytes, upload_floats(dv0));
  float* o = reinterpret_cast<float*>(o_bytes);
  float* lse = reinterpret_cast<float*>(lse_bytes);
  float* delta = reinterpret_cast<float*>(delta_bytes);
  float* dq = reinterpret_cast<float*>(dq_bytes);
  float* dk = reinterpret_cast<float*>(dk_bytes);
  float* dv = reinterpret_cast<float*>(dv_bytes);

  for (int32_t r = 0; r < p.rounds; ++r) {
    std::vector<ForwardTile> tiles;
    for (const Problem::TileRef& t : p.tiles) {
      if (t.round != r) continue;
      ForwardTile f;
      f.q = q + t.q.row * hq * d * in_bytes;
      f.k = k + t.kv.row * hkv * d * in_bytes;
      f.v = v + t.kv.row * hkv * d * in_bytes;
      f.q_rows = t.q.rows;
      f.kv_rows = t.kv.rows;
      f.q_begin = t.q.begin;
      f.kv_begin = t.kv.begin;
      f.mask = p.mask;
      f.o = o + t.q.row * hq * d;
      f.lse = lse + t.q.row * hq;
      tiles.push_back(f);
    }
    RETURN_IF_ERROR(runner.Forward(p.shape, p.dtype, tiles));
  }
  RETURN_IF_ERROR(runner.ComputeDelta(p.shape, p.dtype, o, d_o, rows, delta));
  for (int32_t r = p.rounds - 1; r >= 0; --r) {
    std::vector<BackwardTile> tiles;
    for (const Problem::TileRef& t : p.tiles) {
      if (t.round != r) continue;
      BackwardTile b;
      b.q = q + t.q.row * hq * d * in_bytes;
      b.k = k + t.kv.row * hkv * d * in_bytes;
      b.v = v + t.kv.row * hkv * d * in_bytes;
      b.d_o = d_o + t.q.row * hq * d * in_bytes;
      b.lse = lse + t.q.row * hq;
      b.delta = delta + t.q.row * hq;
      b.q_rows = t.q.rows;
      b.kv_rows = t.kv.rows;
      b.q_begin = t.q.begin;
      b.kv_begin = t.kv.begin;
      b.mask = p.mask;
      b.dq = dq + t.q.row * hq * d;
      b.dk = dk + t.kv.row * hkv * d;
      b.dv = dv + t.kv.row * hkv * d;
      tiles.push_back(b);
    }
    RETURN_IF_ERROR(runner.Backward(p.shape, p.dtype, tiles));
  }
  Outputs out{std::vector<float>(rows * hq * d), std::vector<float>(rows * hq),
              std::vector<float>(rows * hq * d), std::vector<float>(rows * hkv * d),
              std::vector<float>(rows * hkv * d)};
  RETURN_IF_ERROR(runner.Download(out.o.data(), o, out.o.size() * 4));
  RETURN_IF_ERROR(runner.Download(out.lse.data(), lse, out.lse.size() * 4));
  RETURN_IF_ERROR(runner.Download(out.dq.data(), dq, out.dq.size() * 4));
  RETURN_IF_ERROR(runner.Download(out.dk.data(), dk, out.dk.size() * 4));
  RETURN_IF_ERROR(runner.Download(out.dv.data(), dv, out.dv.size() * 4));
  for (size_t i = 0; i < out.dq.size(); ++i) out.dq[i] -= dq0[i];
  for (size_t i = 0; i < out.dk.size(); ++i) out.dk[i] -= dk0[i];
  for (size_t i = 0; i < out.dv.size(); ++i) out.dv[i] -= dv0[i];
  return out;
}

Outputs ReferenceOutputs(const Problem& p) {
  const int64_t hq = p.shape.q_heads, hkv = p.shape.kv_heads, d = p.shape.head_dim;
  Outputs out;
  int64_t row = 0;
  for (int64_t n : p.lengths) {
    const ReferenceResult ref =
        ReferenceAttention(p.shape, p.mask, n, &p.q[row * hq * d], &p.k[row * hkv * d],
                           &p.v[row * hkv * d], &p.d_o[row * hq * d]);
    out.o.insert(out.o.end(), ref.o.begin(), ref.o.end());
    out.lse.insert(out.lse.end(), ref.lse.begin(), ref.lse.end());
    out.dq.insert(out.dq.end(), ref.dq.begin(), ref.dq.end());
    out.dk.insert(out.dk.end(), ref.dk.begin(), ref.dk.end());
    out.dv.insert(out.dv.end(), ref.dv.begin(), ref.dv.end());
    row += n;
  }
  // Rows without any key keep the executor's initial output: o = 0.
  return out;
}

Outputs NaiveOutputs(const Problem& p) {
  const int64_t rows = p.Rows();
  const int64_t hq = p.shape.q_heads, hkv = p.shape.kv_heads, d = p.shape.head_dim;
  Outputs out{std::vector<float>(rows * hq * d, 0.0f), std::vector<float>(rows * hq, kNegInf),
              std::vector<float>(rows * hq * d, 0.0f), std::vector<float>(rows * hkv * d, 0.0f),
              std::vector<float>(rows * hkv * d, 0.0f)};
  int64_t row = 0;
  for (int64_t n : p.lengths) {
    NaiveDocument(p, row, n, &out);
    row += n;
  }
  return out;
}

std::string CheckOutputs(const Problem& p, const Outputs& got, const Outputs& reference,
                         const Outputs& naive) {
  struct Tensor {
    const char* name;
    const std::vector<float>& got;
    const std::vector<float>& ref;
    const std::vector<float>& naive;
  };
  const Tensor tensors[] = {{"o", got.o, reference.o, naive.o},
                            {"lse", got.lse, reference.lse, naive.lse},
                            {"dq", got.dq, reference.dq, naive.dq},
                            {"dk", got.dk, reference.dk, naive.dk},
                            {"dv", got.dv, reference.dv, naive.dv}};
  std::string failures;
  for (const Tensor& t : tensors) {
    const double error = MaxAbsError(t.got, t.ref);
    // Rows without keys: the kernels leave o as it was (NaN poison here), the reference has 0.
    if (p.dtype == DType::kFp32) {
      const double bound = 1e-5 * std::max(MaxAbs(t.ref), 1.0);
      if (!(error <= bound)) {
        absl::StrAppendFormat(&failures, "%s: max error %.3g > %.3g (1e-5 of max |ref|)\n", t.name,
                              error, bound);
      }
      continue;
    }
    const double naive_error = MaxAbsError(t.naive, t.ref);
    // The floor covers tensors the naive version gets exactly right by luck (tiny problems).
    const double bound = 2 * naive_error + 1e-5 * std::max(MaxAbs(t.ref), 1.0);
    if (!(error <= bound)) {
      absl::StrAppendFormat(&failures, "%s: max error %.3g > 2 × naive %s error %.3g + floor\n",
                            t.name, error, DTypeName(p.dtype), naive_error);
    }
  }
  return failures;
}

std::string KernelCaseName(const KernelCase& p) {
  std::string mask;
  switch (p.mask.kind) {
    case MaskKind::kCausal:
      mask = "Causal";
      break;
    case MaskKind::kFull:
      mask = "Full";
      break;
    case MaskKind::kSlidingWindow:
      mask = absl::StrCat("SlidingWindow", p.mask.window);
      break;
    case MaskKind::kPrefixLm:
      mask = absl::StrCat("PrefixLm", p.mask.prefix);
      break;
  }
  return absl::StrCat(DTypeName(p.dtype), "_", mask, "_Q", p.shape.q_heads, "Kv", p.shape.kv_heads,
                      "D", p.shape.head_dim);
}

}  // namespace testing
}  // namespace kernels
}  // namespace fcp
