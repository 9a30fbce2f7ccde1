#include "worker/executor/executor.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/executor/executor_backend.h"
#include "worker/executor/executor_pass.h"
#include "worker/executor/slice_check.h"

namespace fcp {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A stable 64-bit fingerprint of the plan id (FNV-1a: the same on every build and rank).
uint64_t Fingerprint(const std::string& id) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return h;
}

absl::Status CheckShape(const kernels::AttentionShape& shape) {
  if (shape.q_heads < 1 || shape.kv_heads < 1 || shape.head_dim < 1 ||
      shape.q_heads % shape.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention shape: q_heads ", shape.q_heads,
                                                   ", kv_heads ", shape.kv_heads, ", head_dim ",
                                                   shape.head_dim));
  }
  return absl::OkStatus();
}

absl::Status CheckTensor(const void* p, absl::string_view name, int64_t tokens) {
  if (p == nullptr && tokens > 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": null with ", tokens, " tokens"));
  }
  return absl::OkStatus();
}

// The context of a forward of `plan`'s slice for `rank`: schedule copied, offsets laid out.
std::unique_ptr<ForwardContext::State> NewState(const Plan& plan, int32_t rank) {
  auto s = std::make_unique<ForwardContext::State>();
  s->plan_id = plan.plan_id;
  s->fingerprint = Fingerprint(plan.plan_id);
  s->blocks = plan.blocks;
  for (const Document& d : plan.documents) s->masks.push_back(d.mask);
  s->worker = *plan.FindWorker(rank);
  int64_t offset = 0;
  for (int32_t b : s->worker.blocks) {
    s->local_offset[b] = offset;
    offset += s->blocks[b].tokens();
  }
  const WorkerPlan& w = s->worker;
  for (const Tile& t : w.tiles) s->last_round = std::max(s->last_round, t.round);
  for (const Transfer& t : w.sends) s->last_round = std::max(s->last_round, t.round);
  for (const Transfer& t : w.recvs) s->last_round = std::max(s->last_round, t.round);
  s->tiles_by_round.assign(s->last_round + 1, {});
  for (const Tile& t : w.tiles) s->tiles_by_round[t.round].push_back(&t);
  return s;
}

// `n` elements of `dtype` at `src` as the kernels read them: in place when the backend computes
// in `dtype`, else widened to fp32 in `arena`.
absl::StatusOr<const void*> Readable(ExecutorBackend& backend, BackendArena& arena,
                                     kernels::DType dtype, const void* src, int64_t n) {
  if (backend.Computes(dtype) || n == 0) return src;
  ASSIGN_OR_RETURN(void* wide, arena.Allocate(n * sizeof(float), false));
  RETURN_IF_ERROR(backend.ConvertToFloat(src, dtype, static_cast<float*>(wide), n));
  return wide;
}

// An fp32 accumulator of `n` elements for the caller's `out` of `dtype`: `out` itself for fp32,
// else fresh memory of `arena`; set to `value`.
absl::StatusOr<float*> Accumulator(ExecutorBackend& backend, BackendArena& arena,
                                   kernels::DType dtype, void* out, int64_t n, float value) {
  float* acc = static_cast<float*>(out);
  if (dtype != kernels::DType::kFp32) {
    ASSIGN_OR_RETURN(void* p, arena.Allocate(std::max<int64_t>(n, 1) * sizeof(float), false));
    acc = static_cast<float*>(p);
  }
  if (n > 0) RETURN_IF_ERROR(backend.Fill(acc, n, value));
  return acc;
}

// Rounds an accumulator into the caller's `out` of `dtype` (nothing to do when it is `out`).
absl::Status Publish(ExecutorBackend& backend, kernels::DType dtype, const float* acc, void* out,
                     int64_t n) {
  if (dtype == kernels::DType::kFp32 || n == 0) return absl::OkStatus();
  return backend.ConvertFromFloat(acc, dtype, out, n);
}

}  // namespace

StepStats CombineStats(const StepStats& a, const StepStats& b) {
  StepStats c = a;
  c.forward_seconds += b.forward_seconds;
  c.backward_seconds += b.backward_seconds;
  c.attention_seconds += b.attention_seconds;
  c.attention_flops += b.attention_flops;
  c.comm_wait_seconds += b.comm_wait_seconds;
  c.bytes_sent += b.bytes_sent;
  c.bytes_received += b.bytes_received;
  return c;
}

ForwardContext::ForwardContext(std::unique_ptr<State> state) : state_(std::move(state)) {}
ForwardContext::~ForwardContext() = default;
const StepStats& ForwardContext::stats() const { return state_->stats; }
const Executor* ForwardContext::executor() const { return state_->executor; }
int64_t ForwardContext::tokens() const { return state_->tokens; }
bool ForwardContext::backward_done() const { return state_->backward_done; }
double ForwardContext::predicted_seconds() const {
  return (state_->worker.predicted.fwd_ms + state_->worker.predicted.bwd_ms) / 1e3;
}

uint64_t ExchangeTag(int64_t step, TransferKind kind, int32_t round, uint32_t call) {
  const uint64_t s = static_cast<uint64_t>(step) & ((uint64_t{1} << 24) - 1);
  return uint64_t{call & 0xFFFFu} << 44 | s << 20 | uint64_t{static_cast<uint8_t>(kind)} << 17 |
         (static_cast<uint64_t>(round) & ((uint64_t{1} << 17) - 1));
}

uint64_t GatherTag(int64_t step) { return ExchangeTag(step, TransferKind::kDkv, kMaxRounds); }

uint64_t RowsTag(int64_t step, uint32_t call) {
  return ExchangeTag(step, TransferKind::kKv, kMaxRounds, call);
}

Executor::Executor(Transport* transport, const kernels::AttentionShape& shape, int threads)
    : Executor(transport, shape, NewCpuBackend(threads)) {}

Executor::Executor(Transport* transport, const kernels::AttentionShape& shape,
                   std::unique_ptr<ExecutorBackend> backend)
    : transport_(transport), shape_(shape), backend_(std::move(backend)) {}

Executor::~Executor() = default;

absl::StatusOr<std::unique_ptr<ForwardContext>> Executor::Forward(
    const Plan& plan, absl::string_view expected_plan_id, int64_t step,
    const ForwardTensors& tensors, void* stream) {
  RETURN_IF_ERROR(CheckSlice(plan, transport_->rank(), transport_->world_size(), expected_plan_id,
                             tensors.tokens));
  RETURN_IF_ERROR(CheckShape(shape_));
  for (const auto& [p, name] : {std::pair<const void*, const char*>{tensors.q, "q"},
                                {tensors.k, "k"},
                                {tensors.v, "v"},
                                {tensors.o, "o"},
                                {tensors.lse, "lse"}}) {
    RETURN_IF_ERROR(CheckTensor(p, name, tensors.tokens));
  }
  const Clock::time_point start = Clock::now();
  ExecutorBackend& backend = *backend_;
  RETURN_IF_ERROR(backend.OrderAfter(stream));
  std::unique_ptr<ForwardContext::State> s = NewState(plan, transport_->rank());
  s->executor = this;
  s->step = step;
  s->call = NextCall();
  s->shape = shape_;
  s->dtype = tensors.dtype;
  s->compute = backend.Computes(tensors.dtype) ? tensors.dtype : kernels::DType::kFp32;
  s->out_dtype = tensors.out_dtype;
  s->tokens = tensors.tokens;
  s->arena = backend.NewArena();
  const int64_t q_elems = tensors.tokens * shape_.q_heads * shape_.head_dim;
  const int64_t kv_elems = tensors.tokens * shape_.kv_heads * shape_.head_dim;
  ASSIGN_OR_RETURN(s->q, Readable(backend, *s->arena, s->dtype, tensors.q, q_elems));
  ASSIGN_OR_RETURN(s->k, Readable(backend, *s->arena, s->dtype, tensors.k, kv_elems));
  ASSIGN_OR_RETURN(s->v, Readable(backend, *s->arena, s->dtype, tensors.v, kv_elems));
  ASSIGN_OR_RETURN(s->o, Accumulator(backend, *s->arena, s->out_dtype, tensors.o, q_elems, 0.0f));
  s->lse = tensors.lse;
  const int64_t lse_elems = tensors.tokens * shape_.q_heads;
  if (lse_elems > 0) {
    RETURN_IF_ERROR(backend.Fill(s->lse, lse_elems, -std::numeric_limits<float>::infinity()));
  }
  const size_t kv_row_bytes =
      static_cast<size_t>(shape_.kv_heads) * shape_.head_dim * kernels::DTypeBytes(s->compute);
  for (const auto& [b, offset] : s->local_offset) {
    ResidentKv& kv = s->kv[b];
    kv.k = static_cast<const char*>(s->k) + offset * kv_row_bytes;
    kv.v = static_cast<const char*>(s->v) + offset * kv_row_bytes;
  }
  RETURN_IF_ERROR(ForwardRounds(*s, *transport_, backend));
  RETURN_IF_ERROR(Publish(backend, s->out_dtype, s->o, tensors.o, q_elems));
  RETURN_IF_ERROR(backend.Synchronize());
  s->stats.forward_seconds = SecondsSince(start);
  ASSIGN_OR_RETURN(s->stats.attention_seconds, backend.TakeAttentionSeconds());
  s->stats.tiles = static_cast<int64_t>(s->worker.tiles.size());
  return std::make_unique<ForwardContext>(std::move(s));
}

absl::StatusOr<StepStats> Executor::Backward(ForwardContext& context,
                                             const BackwardTensors& tensors, void* stream) {
  ForwardContext::State& s = context.state();
  if (s.executor != this) {
    return absl::InvalidArgumentError("context: made by another executor");
  }
  if (s.backward_done) return absl::InvalidArgumentError("context: its backward already ran");
  for (const auto& [p, name] : {std::pair<const void*, const char*>{tensors.d_o, "d_o"},
                                {tensors.dq, "dq"},
                                {tensors.dk, "dk"},
                                {tensors.dv, "dv"}}) {
    RETURN_IF_ERROR(CheckTensor(p, name, s.tokens));
  }
  s.backward_done = true;
  const Clock::time_point start = Clock::now();
  ExecutorBackend& backend = *backend_;
  RETURN_IF_ERROR(backend.OrderAfter(stream));
  std::unique_ptr<BackendArena> scratch = backend.NewArena();
  const int64_t q_elems = s.tokens * s.shape.q_heads * s.shape.head_dim;
  const int64_t kv_elems = s.tokens * s.shape.kv_heads * s.shape.head_dim;
  const int64_t kv_row = static_cast<int64_t>(s.shape.kv_heads) * s.shape.head_dim;
  ASSIGN_OR_RETURN(const void* d_o, Readable(backend, *scratch, s.dtype, tensors.d_o, q_elems));
  ASSIGN_OR_RETURN(float* dq, Accumulator(backend, *scratch, s.out_dtype, tensors.dq, q_elems, 0));
  ASSIGN_OR_RETURN(float* dk, Accumulator(backend, *scratch, s.out_dtype, tensors.dk, kv_elems, 0));
  ASSIGN_OR_RETURN(float* dv, Accumulator(backend, *scratch, s.out_dtype, tensors.dv, kv_elems, 0));
  for (auto& [b, kv] : s.kv) {
    const int64_t n = s.blocks[b].tokens() * kv_row;
    auto local = s.local_offset.find(b);
    if (local != s.local_offset.end()) {
      kv.dk = dk + local->second * kv_row;
      kv.dv = dv + local->second * kv_row;
      continue;
    }
    ASSIGN_OR_RETURN(void* grads, scratch->Allocate(2 * n * sizeof(float), true));
    kv.dk = static_cast<float*>(grads);
    kv.dv = kv.dk + n;
  }
  ASSIGN_OR_RETURN(void* delta,
                   scratch->Allocate(std::max<int64_t>(s.tokens * s.shape.q_heads, 1) * 4, false));
  if (s.tokens > 0) {
    RETURN_IF_ERROR(
        backend.ComputeDelta(s.shape, s.compute, s.o, d_o, s.tokens, static_cast<float*>(delta)));
  }
  StepStats stats;
  RETURN_IF_ERROR(BackwardRounds(s, *transport_, backend, *scratch, d_o,
                                 static_cast<const float*>(delta), dq, &stats));
  RETURN_IF_ERROR(Publish(backend, s.out_dtype, dq, tensors.dq, q_elems));
  RETURN_IF_ERROR(Publish(backend, s.out_dtype, dk, tensors.dk, kv_elems));
  RETURN_IF_ERROR(Publish(backend, s.out_dtype, dv, tensors.dv, kv_elems));
  RETURN_IF_ERROR(backend.Synchronize());
  stats.backward_seconds = SecondsSince(start);
  ASSIGN_OR_RETURN(stats.attention_seconds, backend.TakeAttentionSeconds());
  stats.tiles = static_cast<int64_t>(s.worker.tiles.size());
  return stats;
}

absl::StatusOr<StepStats> Executor::Run(const Plan& plan, absl::string_view expected_plan_id,
                                        int64_t step, const LocalInputs& inputs,
                                        LocalOutputs* outputs) {
  RETURN_IF_ERROR(CheckSlice(plan, transport_->rank(), transport_->world_size(), expected_plan_id,
                             inputs.tokens));
  RETURN_IF_ERROR(CheckShape(shape_));
  const int64_t q_elems = inputs.tokens * shape_.q_heads * shape_.head_dim;
  const int64_t kv_elems = inputs.tokens * shape_.kv_heads * shape_.head_dim;
  const int64_t lse_elems = inputs.tokens * shape_.q_heads;
  outputs->o.assign(q_elems, 0.0f);
  outputs->lse.assign(lse_elems, 0.0f);
  outputs->dq.assign(q_elems, 0.0f);
  outputs->dk.assign(kv_elems, 0.0f);
  outputs->dv.assign(kv_elems, 0.0f);
  ForwardTensors f{kernels::DType::kFp32, kernels::DType::kFp32, inputs.q,     inputs.k, inputs.v,
                   outputs->o.data(),     outputs->lse.data(),   inputs.tokens};
  BackwardTensors b{inputs.d_o, outputs->dq.data(), outputs->dk.data(), outputs->dv.data()};
  std::unique_ptr<BackendArena> device = backend_->NewArena();
  ExecutorBackend& backend = *backend_;
  if (backend.device_memory()) {  // inputs uploaded in the backend's dtype, outputs fp32
    f.dtype = backend.dtype();
    auto upload = [&](const float* src, int64_t n) -> absl::StatusOr<const void*> {
      ASSIGN_OR_RETURN(void* wide, device->Allocate(std::max<int64_t>(n, 1) * 4, false));
      RETURN_IF_ERROR(backend.CopyFromHost(wide, src, n * sizeof(float)));
      if (f.dtype == kernels::DType::kFp32) return wide;
      ASSIGN_OR_RETURN(
          void* narrow,
          device->Allocate(std::max<int64_t>(n, 1) * kernels::DTypeBytes(f.dtype), false));
      RETURN_IF_ERROR(
          backend.ConvertFromFloat(static_cast<const float*>(wide), f.dtype, narrow, n));
      return narrow;
    };
    auto output = [&](int64_t n) -> absl::StatusOr<void*> {
      return device->Allocate(std::max<int64_t>(n, 1) * sizeof(float), false);
    };
    ASSIGN_OR_RETURN(f.q, upload(inputs.q, q_elems));
    ASSIGN_OR_RETURN(f.k, upload(inputs.k, kv_elems));
    ASSIGN_OR_RETURN(f.v, upload(inputs.v, kv_elems));
    ASSIGN_OR_RETURN(b.d_o, upload(inputs.d_o, q_elems));
    ASSIGN_OR_RETURN(f.o, output(q_elems));
    ASSIGN_OR_RETURN(void* lse, output(lse_elems));
    f.lse = static_cast<float*>(lse);
    ASSIGN_OR_RETURN(b.dq, output(q_elems));
    ASSIGN_OR_RETURN(b.dk, output(kv_elems));
    ASSIGN_OR_RETURN(b.dv, output(kv_elems));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ForwardContext> context,
                   Forward(plan, expected_plan_id, step, f));
  ASSIGN_OR_RETURN(StepStats backward, Backward(*context, b));
  if (backend.device_memory()) {
    for (const auto& [host, src] : {std::pair<std::vector<float>*, const void*>{&outputs->o, f.o},
                                    {&outputs->lse, f.lse},
                                    {&outputs->dq, b.dq},
                                    {&outputs->dk, b.dk},
                                    {&outputs->dv, b.dv}}) {
      RETURN_IF_ERROR(backend.CopyToHost(host->data(), src, host->size() * sizeof(float)));
    }
  }
  return CombineStats(context->stats(), backward);
}

}  // namespace fcp
