// Distributed attention emulated on one GPU (issue: GPU path, "measuring on one GPU"): for each
// batch and strategy, every rank's slice of the plan runs on this GPU in turn, round by round,
// with the real kernels (one launch per round, as the executor runs it) and every KV block it
// receives already resident; the measured per-(rank, round) compute times then go through the
// planner's own timeline (service/planner/timeline.h) with the cost model's transfer times, which
// adds what transfers cannot hide. The step time is the slowest rank's forward + backward.
//
//   effective TFLOP/s per GPU = useful FLOPs (forward + 2.5 × forward) / (W × step time)
//
// The planning flags are `fcp plan`'s (--lengths, --workers, --tokens-per-worker, --heads, ...,
// --calibration; --strategy all = every strategy); the same seeds give the same batches.
// Predicted vs emulated per-rank time is reported too (the cost model's error). Built only with
// CUDA; bench/distributed_emulation.sh runs the grid of docs/benchmarks.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/stream_timer.h"
#include "common/status_macros.h"
#include "kernels/attention_cuda.h"
#include "kernels/cuda_status.h"
#include "service/planner/cost_model.h"
#include "service/planner/mask_math.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "service/planner/timeline.h"
#include "worker/executor/kernel_types.h"
#include "workload/flags.h"
#include "workload/plan_config.h"
#include "workload/workload.h"

ABSL_FLAG(int32_t, reps, 5, "timed repetitions of each rank's rounds (median per round)");
ABSL_FLAG(int32_t, warmup, 1, "untimed repetitions first");
ABSL_FLAG(std::string, results, "", "append one JSON line per (batch, strategy) to this file");
ABSL_FLAG(std::string, kernels, "v1",
          "attention kernels the ranks run: v1, v2 or v2-separate-dq (kernels/attention_cuda.h)");
ABSL_FLAG(std::string, strategies, "",
          "comma-separated strategies to emulate (overrides --strategy; e.g. "
          "ring,per_doc,flashcp,flexdeg,dcp,fcp)");

namespace fcp {
namespace {

using bench::Median;
using bench::StreamTimer;

using kernels::BackwardTile;
using kernels::DType;
using kernels::ForwardTile;

// Device memory of one rank's emulation, freed together.
class Arena {
 public:
  ~Arena() {
    for (void* p : blocks_) cudaFree(p);
  }
  absl::StatusOr<char*> Get(size_t bytes) {
    void* p = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
    blocks_.push_back(p);
    return static_cast<char*>(p);
  }

 private:
  std::vector<void*> blocks_;
};

class Emulator {
 public:
  static absl::StatusOr<std::unique_ptr<Emulator>> Make(
      const kernels::AttentionShape& shape, DType dtype,
      const kernels::CudaAttentionOptions& kernel_options) {
    auto e = std::unique_ptr<Emulator>(new Emulator(shape, dtype));
    cudaStream_t stream;
    CUDA_RETURN_IF_ERROR(cudaStreamCreate(&stream));
    e->stream_ = stream;
    ASSIGN_OR_RETURN(e->attention_, kernels::CudaAttention::Create(stream, kernel_options));
    ASSIGN_OR_RETURN(e->timer_, StreamTimer::Create(stream));
    return e;
  }

  // Measured seconds of each round of `rank`'s forward and backward (compute.fwd/bwd).
  absl::Status MeasureRank(const Plan& plan, int32_t rank, int32_t reps, int32_t warmup,
                           RoundCompute* compute) {
    const WorkerPlan& w = *plan.FindWorker(rank);
    const int64_t q_row = int64_t{shape_.q_heads} * shape_.head_dim;
    const int64_t kv_row = int64_t{shape_.kv_heads} * shape_.head_dim;
    const size_t in = kernels::DTypeBytes(dtype_);
    Arena arena;
    int64_t tokens = 0;
    absl::flat_hash_map<int32_t, int64_t> local;  // block -> first local row
    for (int32_t b : w.blocks) {
      local[b] = tokens;
      tokens += plan.blocks[b].tokens();
    }
    for (const Transfer& t : w.recvs) {  // q blocks computed here for their owner (plan.h)
      if (t.kind != TransferKind::kQ) continue;
      for (int32_t b : t.blocks) {
        local[b] = tokens;
        tokens += plan.blocks[b].tokens();
      }
    }
    ASSIGN_OR_RETURN(char* q, Random(arena, tokens * q_row));
    ASSIGN_OR_RETURN(char* d_o, Random(arena, tokens * q_row));
    ASSIGN_OR_RETURN(char* k, Random(arena, tokens * kv_row));
    ASSIGN_OR_RETURN(char* v, Random(arena, tokens * kv_row));
    ASSIGN_OR_RETURN(char* o, Zeros(arena, tokens * q_row * 4));
    ASSIGN_OR_RETURN(char* lse, arena.Get(tokens * shape_.q_heads * 4));
    ASSIGN_OR_RETURN(char* no_keys, arena.Get(tokens * shape_.q_heads * 4));
    ASSIGN_OR_RETURN(char* delta, arena.Get(tokens * shape_.q_heads * 4));
    ASSIGN_OR_RETURN(char* dq, Zeros(arena, tokens * q_row * 4));
    ASSIGN_OR_RETURN(char* dk, Zeros(arena, tokens * kv_row * 4));
    ASSIGN_OR_RETURN(char* dv, Zeros(arena, tokens * kv_row * 4));
    const std::vector<float> minus_inf(tokens * shape_.q_heads, -INFINITY);
    CUDA_RETURN_IF_ERROR(
        cudaMemcpy(no_keys, minus_inf.data(), minus_inf.size() * 4, cudaMemcpyHostToDevice));
    // KV blocks: local rows, or resident copies of received blocks (with their dK/dV partials).
    struct Kv {
      const char *k, *v;
      float *dk, *dv;
    };
    absl::flat_hash_map<int32_t, Kv> kv;
    for (int32_t b : w.blocks) {
      const int64_t r = local[b];
      kv[b] = {k + r * kv_row * in, v + r * kv_row * in, reinterpret_cast<float*>(dk) + r * kv_row,
               reinterpret_cast<float*>(dv) + r * kv_row};
    }
    // Received blocks live in one allocation each for K, V and their gradients (a ring rank at
    // W=64 receives thousands of blocks: one cudaMalloc each would dominate the run).
    int64_t received = 0;
    for (const Transfer& t : w.recvs) {
      if (t.kind != TransferKind::kKv) continue;
      for (int32_t b : t.blocks) received += plan.blocks[b].tokens();
    }
    ASSIGN_OR_RETURN(char* rk, Random(arena, received * kv_row));
    ASSIGN_OR_RETURN(char* rv, Random(arena, received * kv_row));
    ASSIGN_OR_RETURN(char* rdk, Zeros(arena, received * kv_row * 4));
    ASSIGN_OR_RETURN(char* rdv, Zeros(arena, received * kv_row * 4));
    int64_t next = 0;
    for (const Transfer& t : w.recvs) {
      if (t.kind != TransferKind::kKv) continue;
      for (int32_t b : t.blocks) {
        const int64_t r = next * kv_row;
        kv[b] = {rk + r * in, rv + r * in, reinterpret_cast<float*>(rdk) + r,
                 reinterpret_cast<float*>(rdv) + r};
        next += plan.blocks[b].tokens();
      }
    }
    // The rounds' tile lists, as the executor builds them.
    const int32_t rounds = compute->rounds();
    std::vector<std::vector<ForwardTile>> fwd(rounds + 1);
    std::vector<std::vector<BackwardTile>> bwd(rounds + 1);
    for (const Tile& t : w.tiles) {
      const Block& qb = plan.blocks[t.q_block];
      const Block& kb = plan.blocks[t.kv_block];
      const int64_t r = local[t.q_block];
      const Mask& m = plan.documents[qb.document].mask;
      ForwardTile f;
      f.q = q + r * q_row * in;
      f.k = kv[t.kv_block].k;
      f.v = kv[t.kv_block].v;
      f.q_rows = qb.tokens();
      f.kv_rows = kb.tokens();
      f.q_begin = qb.begin;
      f.kv_begin = kb.begin;
      f.mask = ToKernelMask(m);
      f.o = reinterpret_cast<float*>(o) + r * q_row;
      f.lse = reinterpret_cast<float*>(lse) + r * shape_.q_heads;
      fwd[t.round].push_back(f);
      BackwardTile g;
      g.q = f.q;
      g.k = f.k;
      g.v = f.v;
      g.d_o = d_o + r * q_row * in;
      g.lse = f.lse;
      g.delta = reinterpret_cast<float*>(delta) + r * shape_.q_heads;
      g.q_rows = f.q_rows;
      g.kv_rows = f.kv_rows;
      g.q_begin = f.q_begin;
      g.kv_begin = f.kv_begin;
      g.mask = f.mask;
      g.dq = reinterpret_cast<float*>(dq) + r * q_row;
      g.dk = kv[t.kv_block].dk;
      g.dv = kv[t.kv_block].dv;
      bwd[t.round].push_back(g);
    }
    std::vector<std::vector<double>> fwd_s(rounds + 1), bwd_s(rounds + 1);
    for (int32_t rep = 0; rep < warmup + reps; ++rep) {
      CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(lse, no_keys, minus_inf.size() * 4, cudaMemcpyDeviceToDevice, stream_));
      for (int32_t r = 0; r <= rounds; ++r) {
        if (fwd[r].empty()) continue;
        ASSIGN_OR_RETURN(double ms, timer_->Milliseconds([&] {
          return attention_->Forward(shape_, dtype_, fwd[r]);
        }));
        if (rep >= warmup) fwd_s[r].push_back(ms / 1e3);
      }
      // Backward: rounds in reverse; the delta goes with the first of them.
      bool first = true;
      for (int32_t r = rounds; r >= 0; --r) {
        if (bwd[r].empty()) continue;
        ASSIGN_OR_RETURN(double ms, timer_->Milliseconds([&]() -> absl::Status {
          if (first) {
            RETURN_IF_ERROR(attention_->ComputeDelta(shape_, dtype_, reinterpret_cast<float*>(o),
                                                     d_o, tokens, reinterpret_cast<float*>(delta)));
          }
          return attention_->Backward(shape_, dtype_, bwd[r]);
        }));
        first = false;
        if (rep >= warmup) bwd_s[r].push_back(ms / 1e3);
      }
    }
    for (int32_t r = 0; r <= rounds; ++r) {
      compute->fwd(rank, r) = Median(fwd_s[r]);
      compute->bwd(rank, r) = Median(bwd_s[r]);
    }
    return absl::OkStatus();
  }

  ~Emulator() {
    attention_.reset();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

 private:
  Emulator(const kernels::AttentionShape& shape, DType dtype) : shape_(shape), dtype_(dtype) {}

  // `n` uniform [-1, 1) elements in the dtype, from a random fp32 pool on the device.
  absl::StatusOr<char*> Random(Arena& arena, int64_t n) {
    if (pool_elems_ < n) {
      std::vector<float> host(std::max<int64_t>(n, int64_t{1} << 24));
      std::mt19937 rng(99);
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      for (float& x : host) x = uniform(rng);
      if (pool_ != nullptr) cudaFree(pool_);
      CUDA_RETURN_IF_ERROR(cudaMalloc(&pool_, host.size() * 4));
      CUDA_RETURN_IF_ERROR(cudaMemcpy(pool_, host.data(), host.size() * 4, cudaMemcpyHostToDevice));
      pool_elems_ = static_cast<int64_t>(host.size());
    }
    ASSIGN_OR_RETURN(char* out, arena.Get(n * kernels::DTypeBytes(dtype_)));
    RETURN_IF_ERROR(attention_->ConvertFromFloat(pool_, dtype_, out, n));
    return out;
  }

  absl::StatusOr<char*> Zeros(Arena& arena, size_t bytes) {
    ASSIGN_OR_RETURN(char* p, arena.Get(bytes));
    CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, bytes, stream_));
    return p;
  }

  const kernels::AttentionShape shape_;
  const DType dtype_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<bench::StreamTimer> timer_;
  std::unique_ptr<kernels::CudaAttention> attention_;
  float* pool_ = nullptr;
  int64_t pool_elems_ = 0;
};

struct Result {
  double step_ms = 0, fwd_ms = 0, bwd_ms = 0;  // emulated, slowest rank
  double predicted_ms = 0;                     // the plan's prediction, slowest rank
  double compute_ms = 0;                       // slowest rank's measured compute alone
  double compute_imbalance = 0;                // measured compute: slowest rank / mean
  double tflops_per_gpu = 0;                   // useful FLOPs / (W × step)
  double mean_abs_rank_error = 0;  // mean over ranks |predicted − emulated| / emulated
};

absl::StatusOr<Result> Emulate(Emulator& emulator, const Plan& plan, const Batch& batch,
                               const CostParams& params, int32_t reps, int32_t warmup) {
  const int32_t workers = batch.topology.num_workers;
  RoundCompute compute(workers, plan.summary.rounds);
  for (int32_t r = 0; r < workers; ++r) {
    RETURN_IF_ERROR(emulator.MeasureRank(plan, r, reps, warmup, &compute));
  }
  const CostModel cost(batch.model, batch.topology, params);
  std::vector<TimedTransfer> kv, dkv;
  PhaseTransfers phases;
  absl::flat_hash_map<std::tuple<int32_t, int32_t, int32_t>, size_t> forward;  // one per pair
  for (const WorkerPlan& w : plan.workers) {
    for (const Transfer& t : w.sends) {
      int64_t tokens = 0;
      for (int32_t b : t.blocks) tokens += plan.blocks[b].tokens();
      const TimedTransfer timed{t.round, w.rank, t.peer, cost.TransferBytes(t.kind, tokens)};
      if (t.kind == TransferKind::kKv || t.kind == TransferKind::kQ) {  // one message a round
        auto [it, added] = forward.try_emplace(std::make_tuple(t.round, w.rank, t.peer), kv.size());
        if (added)
          kv.push_back(timed);
        else
          kv[it->second].bytes += timed.bytes;
        continue;
      }
      (t.kind == TransferKind::kDkv   ? dkv
       : t.kind == TransferKind::kOut ? phases.out
       : t.kind == TransferKind::kDo  ? phases.d_o
                                      : phases.dq)
          .push_back(timed);
    }
  }
  const Timeline timeline =
      SimulateTimeline(cost, compute, std::move(kv), std::move(dkv), {}, std::move(phases));
  Result result;
  double error = 0;
  for (int32_t w = 0; w < workers; ++w) {
    const double emulated = timeline.fwd_seconds[w] + timeline.bwd_seconds[w];
    double measured = 0;
    for (int32_t r = 0; r <= compute.rounds(); ++r)
      measured += compute.fwd(w, r) + compute.bwd(w, r);
    const WorkerCost& predicted = plan.costs[w];
    if (emulated > result.step_ms / 1e3) {
      result.step_ms = emulated * 1e3;
      result.fwd_ms = timeline.fwd_seconds[w] * 1e3;
      result.bwd_ms = timeline.bwd_seconds[w] * 1e3;
    }
    result.compute_ms = std::max(result.compute_ms, measured * 1e3);
    result.compute_imbalance += measured * 1e3 / workers;  // the mean, for now
    result.predicted_ms = std::max(result.predicted_ms, predicted.fwd_ms + predicted.bwd_ms);
    if (emulated > 0) {
      error += std::abs((predicted.fwd_ms + predicted.bwd_ms) / 1e3 - emulated) / emulated;
    }
  }
  result.mean_abs_rank_error = error / workers;
  result.compute_imbalance =
      result.compute_imbalance > 0 ? result.compute_ms / result.compute_imbalance : 0;
  const double useful = plan.summary.total_fwd_flops * (1 + kBackwardFlopsRatio);
  result.tflops_per_gpu = useful / (workers * result.step_ms * 1e-3) / 1e12;
  return result;
}

int Main(int argc, char** argv) {
  std::optional<cli::PlanProgram> program = cli::ParsePlanProgram(
      argc, argv, "distributed_emulation",
      "distributed_emulation --lengths F --workers W --tokens-per-worker T [--strategy all|NAME] "
      "[fcp plan flags] [--strategies LIST] [--reps N] [--warmup N] [--results FILE] "
      "[--kernels v1|v2|v2-separate-dq]",
      {"reps", "warmup", "results", "strategies", "kernels"});
  if (!program.has_value()) return 2;
  absl::StatusOr<kernels::CudaAttentionOptions> kernel_options =
      kernels::ParseCudaKernels(absl::GetFlag(FLAGS_kernels), "--kernels");
  if (!kernel_options.ok()) {
    std::fprintf(stderr, "distributed_emulation: %s\n",
                 std::string(kernel_options.status().message()).c_str());
    return 2;
  }
  const std::string kernel_name = kernels::CudaKernelsName(*kernel_options);
  if (absl::Status s = kernels::CudaDeviceStatus(); !s.ok()) {
    std::fprintf(stderr, "distributed_emulation: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  const cli::PlanConfig& c = program->config;
  const kernels::AttentionShape shape{c.model.num_q_heads, c.model.num_kv_heads, c.model.head_dim};
  absl::StatusOr<std::unique_ptr<Emulator>> emulator =
      Emulator::Make(shape, ToKernelDType(c.model.dtype), *kernel_options);
  if (!emulator.ok()) {
    std::fprintf(stderr, "distributed_emulation: %s\n",
                 std::string(emulator.status().message()).c_str());
    return 1;
  }
  cudaDeviceProp props;
  int device = 0;
  cudaGetDevice(&device);
  cudaGetDeviceProperties(&props, device);
  std::ofstream json;
  if (const std::string path = absl::GetFlag(FLAGS_results); !path.empty()) {
    json.open(path, std::ios::app);
  }
  std::printf("distributed_emulation: %s, kernels %s, W=%d, %lld tokens/worker, %d batches\n",
              props.name, kernel_name.c_str(), c.topology.num_workers,
              static_cast<long long>(c.tokens_per_worker), c.batches);
  std::printf("%5s %-9s %10s %10s %10s %10s %12s %10s %10s\n", "batch", "strategy", "step_ms",
              "compute_ms", "pred_ms", "rank_err", "TFLOPs/GPU", "bytes_GB", "imbalance");
  std::vector<std::string> strategies = c.Strategies();
  if (const std::string list = absl::GetFlag(FLAGS_strategies); !list.empty()) {
    strategies = absl::StrSplit(list, ',', absl::SkipEmpty());
  }
  for (int32_t b = 0; b < c.batches; ++b) {
    Batch batch;
    absl::StatusOr<std::vector<Document>> docs =
        cli::SampleBatchDocuments(c, program->sampler, c.seed + b);
    if (!docs.ok()) {
      std::fprintf(stderr, "distributed_emulation: %s\n",
                   std::string(docs.status().message()).c_str());
      return 2;
    }
    batch.documents = *std::move(docs);
    batch.model = c.model;
    batch.topology = c.topology;
    for (const std::string& strategy : strategies) {
      PlanOptions options = c.options;
      options.strategy = strategy;
      absl::StatusOr<Plan> plan = MakePlan(batch, options, OutputSpec::AllRanks());
      if (!plan.ok()) {
        std::printf("%5d %-9s   (not planned: %s)\n", b, strategy.c_str(),
                    std::string(plan.status().message()).c_str());
        continue;
      }
      absl::StatusOr<Result> r = Emulate(**emulator, *plan, batch, options.cost,
                                         absl::GetFlag(FLAGS_reps), absl::GetFlag(FLAGS_warmup));
      if (!r.ok()) {
        std::fprintf(stderr, "distributed_emulation: %s: %s\n", strategy.c_str(),
                     std::string(r.status().message()).c_str());
        return 1;
      }
      std::printf("%5d %-9s %10.3f %10.3f %10.3f %9.1f%% %12.1f %10.3f %10.3f\n", b,
                  strategy.c_str(), r->step_ms, r->compute_ms, r->predicted_ms,
                  100 * r->mean_abs_rank_error, r->tflops_per_gpu, plan->summary.comm_bytes / 1e9,
                  r->compute_imbalance);
      std::fflush(stdout);
      if (json.is_open()) {
        json << absl::StrFormat(
            "{\"bench\": \"distributed_emulation\", \"kernels\": \"%s\", \"device\": \"%s\", "
            "\"workers\": %d, "
            "\"tokens_per_worker\": %d, \"batch\": %d, \"strategy\": \"%s\", \"step_ms\": %.4f, "
            "\"fwd_ms\": %.4f, \"bwd_ms\": %.4f, \"compute_ms\": %.4f, \"predicted_ms\": %.4f, "
            "\"mean_abs_rank_error\": %.4f, \"compute_imbalance\": %.4f, "
            "\"flop_imbalance\": %.4f, \"tflops_per_gpu\": %.3f, \"comm_bytes\": %d, "
            "\"rounds\": %d}\n",
            kernel_name, props.name, c.topology.num_workers, c.tokens_per_worker, b, strategy,
            r->step_ms, r->fwd_ms, r->bwd_ms, r->compute_ms, r->predicted_ms,
            r->mean_abs_rank_error, r->compute_imbalance, plan->summary.compute_imbalance,
            r->tflops_per_gpu, plan->summary.comm_bytes, plan->summary.rounds);
        json.flush();  // a run cut by a time limit keeps every finished line
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  fcp::RegisterDcpPlanner();
  return fcp::Main(argc, argv);
}
