// TFLOP/s of fcp's CUDA attention kernels (kernels/attention_cuda.h), forward and backward, on one
// GPU. Built only with CUDA. FLOPs follow DESIGN §1: forward 4 · head_dim · q_heads · allowed
// pairs, backward 2.5 × forward; times are CUDA events around the launch (backward: delta +
// backward), the median of --reps after --warmup, on fresh random inputs.
//
//   varlen  documents drawn from --lengths (seeded, truncated to --max-doc-len) until --tokens,
//           causal, packed; one tile per document (--block-size 0, as a varlen kernel sees them)
//           or every tile of blocks of --block-size tokens (as fcp plans cut them)
//   square  --tokens / S documents of S tokens for each S in --square, full and causal masks
//
// --check first runs the FlashAttention-rule check (attention_cuda_testing.h) at the benchmark's
// shape; --calibrate times full tiles of every (q, kv) length on a grid and prints a cost-model
// calibration file (cost_model.h) fitted to them. bench/kernel_sdpa.py measures torch SDPA on the
// same shapes; --write-lengths saves the varlen batch for it. Results: docs/benchmarks.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/stream_timer.h"
#include "common/status_macros.h"
#include "kernels/attention_cuda.h"
#include "kernels/attention_cuda_testing.h"
#include "kernels/cuda_status.h"
#include "service/planner/mask_math.h"
#include "worker/executor/kernel_types.h"
#include "workload/workload.h"

ABSL_FLAG(std::string, lengths, std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths",
          "document lengths file for the varlen batch");
ABSL_FLAG(int64_t, tokens, 32768, "tokens per batch");
ABSL_FLAG(int64_t, max_doc_len, 32768, "varlen: documents truncated to this many tokens");
ABSL_FLAG(uint64_t, seed, 1, "varlen: batch seed");
ABSL_FLAG(int32_t, heads, 16, "query heads");
ABSL_FLAG(int32_t, kv_heads, 16, "key/value heads");
ABSL_FLAG(int32_t, head_dim, 128, "head dim (64 or 128)");
ABSL_FLAG(std::string, dtype, "bf16", "bf16, fp16 or fp32");
ABSL_FLAG(int64_t, block_size, 0, "varlen: 0 = one tile per document, else blocks of this size");
ABSL_FLAG(std::string, square, "512,1024,2048,4096,8192,16384", "square: document lengths");
ABSL_FLAG(int32_t, reps, 20, "timed repetitions (median reported)");
ABSL_FLAG(int32_t, warmup, 3, "untimed repetitions first");
ABSL_FLAG(bool, check, true, "check correctness (FlashAttention's rule) before timing");
ABSL_FLAG(bool, calibrate, false, "time a (q, kv) grid of full tiles and fit the cost model");
ABSL_FLAG(std::string, calibration_out, "", "--calibrate: write the calibration file here");
ABSL_FLAG(std::string, json, "", "append one JSON line per case to this file");
ABSL_FLAG(std::string, write_lengths, "", "write the varlen batch's document lengths here");
ABSL_FLAG(std::string, kernels, "v1",
          "kernels to time and check: v1, v2 or v2-separate-dq (attention_cuda.h)");
ABSL_FLAG(std::string, label, "",
          "the kernels' name in the JSON lines (\"kernel\"; default --kernels)");

namespace fcp {
namespace {

using bench::Median;
using bench::StreamTimer;

using kernels::AttentionShape;
using kernels::BackwardTile;
using kernels::DType;
using kernels::ForwardTile;

struct Options {
  AttentionShape shape;
  DType dtype = DType::kBf16;
  kernels::CudaAttentionOptions kernels;
  int32_t reps = 20, warmup = 3;
};

// A set of tiles over packed documents: (q row, q positions) × (kv row, kv positions).
struct TileSpec {
  int64_t q_row, q_begin, q_rows, kv_row, kv_begin, kv_rows;
  Mask mask;
};

struct Workload {
  std::string name;
  int64_t q_rows_total = 0, kv_rows_total = 0;  // rows of the q and kv tensors
  std::vector<TileSpec> tiles;
  double pairs = 0;
};

// Documents packed back to back; blocks of `block` tokens (0: whole documents); every tile with an
// allowed pair.
Workload Packed(std::string name, const std::vector<int64_t>& lengths, const Mask& mask,
                int64_t block) {
  Workload w;
  w.name = std::move(name);
  int64_t row = 0;
  for (int64_t n : lengths) {
    const int64_t b = block > 0 ? block : n;
    for (int64_t q = 0; q < n; q += b) {
      for (int64_t k = 0; k < n; k += b) {
        const int64_t qn = std::min(b, n - q), kn = std::min(b, n - k);
        const int64_t pairs = AllowedPairs(mask, q, q + qn, k, k + kn);
        if (pairs == 0) continue;
        w.tiles.push_back({row + q, q, qn, row + k, k, kn, mask});
        w.pairs += static_cast<double>(pairs);
      }
    }
    row += n;
  }
  w.q_rows_total = w.kv_rows_total = row;
  return w;
}

// `count` independent full tiles of q × kv rows (calibration).
Workload FullTiles(int64_t q, int64_t kv, int64_t count) {
  Workload w;
  w.name = absl::StrCat("full_tiles_", q, "x", kv);
  for (int64_t i = 0; i < count; ++i) {
    w.tiles.push_back({i * q, 0, q, i * kv, 0, kv, Mask::Full()});
    w.pairs += static_cast<double>(q * kv);
  }
  w.q_rows_total = count * q;
  w.kv_rows_total = count * kv;
  return w;
}

// Device buffer, freed on destruction.
class DeviceBuffer {
 public:
  static absl::StatusOr<DeviceBuffer> Make(size_t bytes) {
    DeviceBuffer b;
    CUDA_RETURN_IF_ERROR(cudaMalloc(&b.p_, std::max<size_t>(bytes, 16)));
    b.bytes_ = bytes;
    return b;
  }
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~DeviceBuffer() {
    if (p_ != nullptr) cudaFree(p_);
  }
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

struct Timing {
  double fwd_ms = 0, bwd_ms = 0, fwd_tflops = 0, bwd_tflops = 0;
};

class Bench {
 public:
  static absl::StatusOr<std::unique_ptr<Bench>> Make(const Options& options) {
    auto bench = std::unique_ptr<Bench>(new Bench(options));
    cudaStream_t stream;
    CUDA_RETURN_IF_ERROR(cudaStreamCreate(&stream));
    bench->stream_ = stream;
    ASSIGN_OR_RETURN(bench->attention_, kernels::CudaAttention::Create(stream, options.kernels));
    ASSIGN_OR_RETURN(bench->timer_, StreamTimer::Create(stream));
    return bench;
  }

  absl::StatusOr<Timing> Run(const Workload& w) {
    const AttentionShape& s = o_.shape;
    const int64_t q_elems = w.q_rows_total * s.q_heads * s.head_dim;
    const int64_t kv_elems = w.kv_rows_total * s.kv_heads * s.head_dim;
    const size_t in = kernels::DTypeBytes(o_.dtype);
    ASSIGN_OR_RETURN(DeviceBuffer q, Random(q_elems));
    ASSIGN_OR_RETURN(DeviceBuffer k, Random(kv_elems));
    ASSIGN_OR_RETURN(DeviceBuffer v, Random(kv_elems));
    ASSIGN_OR_RETURN(DeviceBuffer d_o, Random(q_elems));
    ASSIGN_OR_RETURN(DeviceBuffer o, DeviceBuffer::Make(q_elems * 4));
    ASSIGN_OR_RETURN(DeviceBuffer lse, DeviceBuffer::Make(w.q_rows_total * s.q_heads * 4));
    ASSIGN_OR_RETURN(DeviceBuffer no_keys, DeviceBuffer::Make(lse.bytes()));
    ASSIGN_OR_RETURN(DeviceBuffer delta, DeviceBuffer::Make(lse.bytes()));
    ASSIGN_OR_RETURN(DeviceBuffer dq, DeviceBuffer::Make(q_elems * 4));
    ASSIGN_OR_RETURN(DeviceBuffer dk, DeviceBuffer::Make(kv_elems * 4));
    ASSIGN_OR_RETURN(DeviceBuffer dv, DeviceBuffer::Make(kv_elems * 4));
    const std::vector<float> minus_inf(w.q_rows_total * s.q_heads, -INFINITY);
    CUDA_RETURN_IF_ERROR(
        cudaMemcpy(no_keys.get(), minus_inf.data(), no_keys.bytes(), cudaMemcpyHostToDevice));
    for (const DeviceBuffer* b : {&dq, &dk, &dv}) {
      CUDA_RETURN_IF_ERROR(cudaMemset(b->get(), 0, b->bytes()));
    }
    std::vector<ForwardTile> fwd;
    std::vector<BackwardTile> bwd;
    const int64_t q_row = s.q_heads * s.head_dim, kv_row = s.kv_heads * s.head_dim;
    for (const TileSpec& t : w.tiles) {
      ForwardTile f;
      f.q = q.get<char>() + t.q_row * q_row * in;
      f.k = k.get<char>() + t.kv_row * kv_row * in;
      f.v = v.get<char>() + t.kv_row * kv_row * in;
      f.q_rows = t.q_rows;
      f.kv_rows = t.kv_rows;
      f.q_begin = t.q_begin;
      f.kv_begin = t.kv_begin;
      f.mask = ToKernelMask(t.mask);
      f.o = o.get<float>() + t.q_row * q_row;
      f.lse = lse.get<float>() + t.q_row * s.q_heads;
      fwd.push_back(f);
      BackwardTile b;
      b.q = f.q;
      b.k = f.k;
      b.v = f.v;
      b.d_o = d_o.get<char>() + t.q_row * q_row * in;
      b.lse = f.lse;
      b.delta = delta.get<float>() + t.q_row * s.q_heads;
      b.q_rows = t.q_rows;
      b.kv_rows = t.kv_rows;
      b.q_begin = t.q_begin;
      b.kv_begin = t.kv_begin;
      b.mask = f.mask;
      b.dq = dq.get<float>() + t.q_row * q_row;
      b.dk = dk.get<float>() + t.kv_row * kv_row;
      b.dv = dv.get<float>() + t.kv_row * kv_row;
      bwd.push_back(b);
    }
    std::vector<double> fwd_ms, bwd_ms;
    for (int32_t rep = 0; rep < o_.warmup + o_.reps; ++rep) {
      // The forward merges into (o, lse): start every repetition from "no keys yet".
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(lse.get(), no_keys.get(), lse.bytes(),
                                           cudaMemcpyDeviceToDevice, stream_));
      ASSIGN_OR_RETURN(double f,
                       timer_->Milliseconds([&] { return attention_->Forward(s, o_.dtype, fwd); }));
      ASSIGN_OR_RETURN(double b, timer_->Milliseconds([&]() -> absl::Status {
        RETURN_IF_ERROR(attention_->ComputeDelta(s, o_.dtype, o.get<float>(), d_o.get(),
                                                 w.q_rows_total, delta.get<float>()));
        return attention_->Backward(s, o_.dtype, bwd);
      }));
      if (rep < o_.warmup) continue;
      fwd_ms.push_back(f);
      bwd_ms.push_back(b);
    }
    Timing t;
    t.fwd_ms = Median(fwd_ms);
    t.bwd_ms = Median(bwd_ms);
    const double flops = 4.0 * s.head_dim * s.q_heads * w.pairs;
    t.fwd_tflops = flops / (t.fwd_ms * 1e-3) / 1e12;
    t.bwd_tflops = 2.5 * flops / (t.bwd_ms * 1e-3) / 1e12;
    return t;
  }

  ~Bench() {
    attention_.reset();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

 private:
  explicit Bench(const Options& options) : o_(options) {}

  // Uniform [-1, 1) values in the dtype (fresh for every workload).
  absl::StatusOr<DeviceBuffer> Random(int64_t n) {
    std::vector<float> host(n);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (float& x : host) x = uniform(rng_);
    ASSIGN_OR_RETURN(DeviceBuffer f, DeviceBuffer::Make(n * 4));
    CUDA_RETURN_IF_ERROR(cudaMemcpy(f.get(), host.data(), n * 4, cudaMemcpyHostToDevice));
    ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::Make(n * kernels::DTypeBytes(o_.dtype)));
    RETURN_IF_ERROR(attention_->ConvertFromFloat(f.get<float>(), o_.dtype, out.get(), n));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return out;
  }

  const Options o_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<bench::StreamTimer> timer_;
  std::unique_ptr<kernels::CudaAttention> attention_;
  std::mt19937 rng_{12345};
};

std::string DeviceName() {
  cudaDeviceProp p;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return "?";
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) return "?";
  return p.name;
}

// The FlashAttention-rule check at the benchmark's shape, fresh inputs.
absl::Status Check(const Options& o) {
  for (kernels::MaskKind kind : {kernels::MaskKind::kCausal, kernels::MaskKind::kFull}) {
    const kernels::TileMask mask{kind, 0, 0};
    const kernels::testing::Problem problem = kernels::testing::MakeProblem(
        o.shape, o.dtype, mask, {700, 300, 45, 1}, 256, 2, static_cast<uint32_t>(time(nullptr)));
    ASSIGN_OR_RETURN(auto runner, kernels::testing::CudaKernelRunner::Create(o.kernels));
    ASSIGN_OR_RETURN(kernels::testing::Outputs got, kernels::testing::RunProblem(problem, *runner));
    const std::string failures =
        kernels::testing::CheckOutputs(problem, got, kernels::testing::ReferenceOutputs(problem),
                                       kernels::testing::NaiveOutputs(problem));
    if (!failures.empty()) {
      return absl::InternalError(
          absl::StrCat("check failed (", kind == kernels::MaskKind::kCausal ? "causal" : "full",
                       "):\n", failures));
    }
  }
  return absl::OkStatus();
}

// Fits efficiency(q, kv) = q/(q+qh) · kv/(kv+kh) · peak to measured TFLOP/s (least squares on
// logs, grid search over qh, kh).
struct Fit {
  double q_half = 0, kv_half = 0, peak = 0, rms_log_error = 0;
};

Fit FitEfficiency(const std::vector<std::pair<std::pair<int64_t, int64_t>, double>>& points) {
  Fit best{0, 0, 0, INFINITY};
  for (double qh = 1; qh <= 4096; qh *= 1.1) {
    for (double kh = 1; kh <= 4096; kh *= 1.1) {
      double sum = 0, sum2 = 0;
      for (const auto& [shape, tflops] : points) {
        const double q = static_cast<double>(shape.first), k = static_cast<double>(shape.second);
        const double r = std::log(tflops) - std::log(q / (q + qh) * k / (k + kh));
        sum += r;
        sum2 += r * r;
      }
      const double n = static_cast<double>(points.size());
      const double mean = sum / n, var = std::max(0.0, sum2 / n - mean * mean);
      if (std::sqrt(var) < best.rms_log_error) best = {qh, kh, std::exp(mean), std::sqrt(var)};
    }
  }
  return best;
}

int Main() {
  Options o;
  o.shape = {absl::GetFlag(FLAGS_heads), absl::GetFlag(FLAGS_kv_heads),
             absl::GetFlag(FLAGS_head_dim)};
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  o.dtype = dtype == "fp32" ? DType::kFp32 : dtype == "fp16" ? DType::kFp16 : DType::kBf16;
  o.reps = absl::GetFlag(FLAGS_reps);
  absl::StatusOr<kernels::CudaAttentionOptions> kernel_options =
      kernels::ParseCudaKernels(absl::GetFlag(FLAGS_kernels), "--kernels");
  if (!kernel_options.ok()) {
    std::fprintf(stderr, "kernel_bench: %s\n",
                 std::string(kernel_options.status().message()).c_str());
    return 2;
  }
  o.kernels = *kernel_options;
  std::string label = absl::GetFlag(FLAGS_label);
  if (label.empty()) label = kernels::CudaKernelsName(o.kernels);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  if (absl::Status s = kernels::CudaDeviceStatus(); !s.ok()) {
    std::fprintf(stderr, "kernel_bench: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const std::string device = DeviceName();
  std::printf("kernel_bench: %s, kernels %s, %s, q_heads %d, kv_heads %d, head_dim %d\n",
              device.c_str(), kernels::CudaKernelsName(o.kernels).c_str(),
              kernels::DTypeName(o.dtype), o.shape.q_heads, o.shape.kv_heads, o.shape.head_dim);
  if (absl::GetFlag(FLAGS_check)) {
    if (absl::Status s = Check(o); !s.ok()) {
      std::fprintf(stderr, "kernel_bench: %s\n", std::string(s.message()).c_str());
      return 1;
    }
    std::printf("check: ok (FlashAttention rule vs fp64 reference, causal and full)\n");
  }
  absl::StatusOr<std::unique_ptr<Bench>> bench = Bench::Make(o);
  if (!bench.ok()) {
    std::fprintf(stderr, "kernel_bench: %s\n", std::string(bench.status().message()).c_str());
    return 1;
  }
  std::vector<Workload> workloads;
  const int64_t tokens = absl::GetFlag(FLAGS_tokens);
  if (absl::GetFlag(FLAGS_calibrate)) {
    for (int64_t q : {16, 32, 64, 128, 256, 512, 1024, 2048}) {
      for (int64_t k : {16, 32, 64, 128, 256, 512, 1024, 2048}) {
        const int64_t count = std::clamp<int64_t>(
            std::min<int64_t>((int64_t{1} << 26) / (q * k), 262144 / std::max(q, k)), 1, 4096);
        workloads.push_back(FullTiles(q, k, count));
      }
    }
  } else {
    absl::StatusOr<std::vector<int64_t>> all = ReadLengthsFile(absl::GetFlag(FLAGS_lengths));
    absl::StatusOr<LengthSampler> sampler =
        all.ok() ? LengthSampler::FromLengths(*all) : absl::StatusOr<LengthSampler>(all.status());
    absl::StatusOr<std::vector<Document>> docs =
        sampler.ok() ? SampleDocuments(*sampler, tokens, absl::GetFlag(FLAGS_max_doc_len),
                                       absl::GetFlag(FLAGS_seed))
                     : absl::StatusOr<std::vector<Document>>(sampler.status());
    if (!docs.ok()) {
      std::fprintf(stderr, "kernel_bench: %s\n", std::string(docs.status().message()).c_str());
      return 2;
    }
    std::vector<int64_t> lengths;
    for (const Document& d : *docs) lengths.push_back(d.length);
    if (const std::string path = absl::GetFlag(FLAGS_write_lengths); !path.empty()) {
      std::ofstream out(path);
      for (int64_t n : lengths) out << n << "\n";
    }
    const int64_t block = absl::GetFlag(FLAGS_block_size);
    workloads.push_back(Packed(
        block > 0 ? absl::StrCat("varlen_causal_block", block) : std::string("varlen_causal"),
        lengths, Mask::Causal(), block));
    for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_square), ',')) {
      int64_t n = 0;
      if (!absl::SimpleAtoi(s, &n) || n <= 0 || n > tokens) continue;
      const std::vector<int64_t> equal(tokens / n, n);
      workloads.push_back(Packed(absl::StrCat("square_full_", n), equal, Mask::Full(), 0));
      workloads.push_back(Packed(absl::StrCat("square_causal_", n), equal, Mask::Causal(), 0));
    }
  }
  std::ofstream json;
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    json.open(path, std::ios::app);
  }
  std::printf("%-24s %8s %10s %10s %11s %11s\n", "case", "tiles", "fwd_ms", "bwd_ms", "fwd_TFLOPs",
              "bwd_TFLOPs");
  std::vector<std::pair<std::pair<int64_t, int64_t>, double>> fwd_points;
  std::vector<double> bwd_ratio;
  for (const Workload& w : workloads) {
    absl::StatusOr<Timing> t = (*bench)->Run(w);
    if (!t.ok()) {
      std::fprintf(stderr, "kernel_bench: %s: %s\n", w.name.c_str(),
                   std::string(t.status().message()).c_str());
      return 1;
    }
    std::printf("%-24s %8zu %10.3f %10.3f %11.1f %11.1f\n", w.name.c_str(), w.tiles.size(),
                t->fwd_ms, t->bwd_ms, t->fwd_tflops, t->bwd_tflops);
    std::fflush(stdout);
    if (json.is_open()) {
      json << absl::StrFormat(
          "{\"bench\": \"fcp_kernels\", \"kernel\": \"%s\", \"device\": \"%s\", \"case\": \"%s\", "
          "\"dtype\": \"%s\", "
          "\"q_heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, \"tiles\": %d, \"pairs\": %.0f, "
          "\"fwd_ms\": %.5f, \"bwd_ms\": %.5f, \"fwd_tflops\": %.3f, \"bwd_tflops\": %.3f}\n",
          label, device, w.name, kernels::DTypeName(o.dtype), o.shape.q_heads, o.shape.kv_heads,
          o.shape.head_dim, w.tiles.size(), w.pairs, t->fwd_ms, t->bwd_ms, t->fwd_tflops,
          t->bwd_tflops);
      json.flush();  // a run cut by a time limit keeps every finished line
    }
    if (!w.tiles.empty()) {
      const int64_t q = w.tiles[0].q_rows, kv = w.tiles[0].kv_rows;
      fwd_points.push_back({{q, kv}, t->fwd_tflops});
      // The backward's rate relative to the forward's, where plans spend their FLOPs: tiles of
      // 512 tokens and more (small tiles' backward runs relatively faster, and a median over the
      // whole grid overstated the backward rate by ~20% on an H100).
      if (q >= 512 && kv >= 512) bwd_ratio.push_back(t->bwd_tflops / t->fwd_tflops);
    }
  }
  if (absl::GetFlag(FLAGS_calibrate)) {
    const Fit fit = FitEfficiency(fwd_points);
    const std::string file = absl::StrFormat(
        "# fcp cost-model calibration: fcp CUDA kernels on %s, %s, q_heads %d, head_dim %d\n"
        "# measured by bench/kernel_bench --calibrate; rms log error of the fit %.3f\n"
        "# plan with --attention-tflops %.0f (the fitted large-tile forward rate)\n"
        "tile_q_half_tokens = %.1f\n"
        "tile_kv_half_tokens = %.1f\n"
        "backward_efficiency = %.3f\n"
        "tile_overhead_us = 0\n",
        device, kernels::DTypeName(o.dtype), o.shape.q_heads, o.shape.head_dim, fit.rms_log_error,
        fit.peak, fit.q_half, fit.kv_half, Median(bwd_ratio));
    std::printf("\n%s", file.c_str());
    if (const std::string path = absl::GetFlag(FLAGS_calibration_out); !path.empty()) {
      std::ofstream(path) << file;
    }
  }
  return 0;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return fcp::Main();
}
