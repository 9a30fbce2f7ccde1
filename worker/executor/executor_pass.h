// Internals of worker/executor/executor.h: a forward's context state and the two passes over a
// slice's rounds (posting transfers, awaiting them, running each round's tiles). Only executor.cc
// uses it.
#ifndef FCP_WORKER_EXECUTOR_EXECUTOR_PASS_H_
#define FCP_WORKER_EXECUTOR_EXECUTOR_PASS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "kernels/attention.h"
#include "service/planner/plan.h"
#include "worker/executor/executor.h"
#include "worker/executor/executor_backend.h"
#include "worker/transport/transport.h"

namespace fcp {

// A KV block resident on this rank, in backend memory: its K and V rows (local input or a
// received copy) and, during backward, where its dK/dV accumulate (received blocks: the partials
// to send back to the owner).
struct ResidentKv {
  const void* k = nullptr;
  const void* v = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
};

// A q block this rank computes tiles of without owning it (placed computation, plan.h): its Q
// rows (received by kQ, compute dtype) and partial (o, lse), fp32, in the context's arena; at
// backward its dO rows and delta (lse then holds the owner's final LSE, all received by kDo) and
// its partial dQ, in the backward's scratch.
struct RemoteQ {
  const void* q = nullptr;
  float* o = nullptr;
  float* lse = nullptr;
  const void* d_o = nullptr;
  float* delta = nullptr;
  float* dq = nullptr;
};

struct ForwardContext::State {
  const Executor* executor = nullptr;
  // The slice, copied from the plan.
  std::string plan_id;
  uint64_t fingerprint = 0;  // of plan_id, in every message header
  std::vector<Block> blocks;
  std::vector<Mask> masks;  // by document
  WorkerPlan worker;
  int32_t last_round = 0;
  std::vector<std::vector<const Tile*>> tiles_by_round;  // into worker.tiles
  absl::flat_hash_map<int32_t, int64_t> local_offset;    // local block -> first row

  int64_t step = 0;
  uint32_t call = 0;  // collective call number (tags)
  kernels::AttentionShape shape;
  kernels::DType dtype = kernels::DType::kFp32;    // the caller's input dtype
  kernels::DType compute = kernels::DType::kFp32;  // what the kernels read (dtype or fp32)
  kernels::DType out_dtype = kernels::DType::kFp32;
  int64_t tokens = 0;

  std::unique_ptr<BackendArena> arena;  // received K/V, widened inputs, fp32 output
  const void* q = nullptr;              // compute dtype
  const void* k = nullptr;
  const void* v = nullptr;
  float* o = nullptr;  // fp32 output (the caller's when out_dtype is fp32)
  float* lse = nullptr;
  absl::flat_hash_map<int32_t, ResidentKv> kv;     // local and received blocks
  absl::flat_hash_map<int32_t, RemoteQ> remote_q;  // received q blocks (placed computation)
  bool backward_done = false;
  StepStats stats;  // the forward's
};

// Runs the forward rounds of `s` (inputs resident, o = 0, lse = -inf) and its return phase:
// received K/V and Q land in s.arena; merges into s.o, s.lse; adds to s.stats.
absl::Status ForwardRounds(ForwardContext::State& s, Transport& transport,
                           ExecutorBackend& backend);

// Runs the backward's dO phase, rounds and dQ return phase of `s`: kv[b].dk/dv set for every
// resident block (zero), delta = rowsum(dO·O) computed; `scratch` holds transient buffers. Adds
// to `stats`.
absl::Status BackwardRounds(ForwardContext::State& s, Transport& transport,
                            ExecutorBackend& backend, BackendArena& scratch, const void* d_o,
                            const float* delta, float* dq, StepStats* stats);

}  // namespace fcp

#endif  // FCP_WORKER_EXECUTOR_EXECUTOR_PASS_H_
