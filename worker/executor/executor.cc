#include "worker/executor/executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/planner/mask_math.h"
#include "worker/executor/executor_backend.h"
#include "worker/executor/kernel_types.h"
#include "worker/executor/slice_check.h"

namespace fcp {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Header {
  uint64_t plan = 0;
  uint64_t step = 0;
};

// A KV block resident on this rank, in backend memory: its K and V rows (local input or a
// received copy) and, for received blocks, the dK/dV partials to send back to the owner.
struct KvBlock {
  const void* k = nullptr;
  const void* v = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
};

// Moves host or backend memory through the transport, which moves host memory (loopback, gloo) or
// device memory (nccl): the pointer itself when the kinds agree, else a staging copy made by the
// backend (sends) or landed by it after the exchange (receives). Holds one exchange at a time.
class Bridge {
 public:
  Bridge(ExecutorBackend& backend, bool transport_device)
      : backend_(backend), transport_device_(transport_device) {}

  // What to hand the transport to send `bytes` at `p` (backend memory when `in_backend`).
  absl::StatusOr<TransportBuffer> Send(const void* p, size_t bytes, bool in_backend) {
    if (Direct(bytes, in_backend)) return TransportBuffer{const_cast<void*>(p), bytes};
    ASSIGN_OR_RETURN(void* staged, Stage(bytes));
    if (transport_device_) {
      RETURN_IF_ERROR(backend_.CopyFromHost(staged, p, bytes));
    } else {
      RETURN_IF_ERROR(backend_.CopyToHost(staged, p, bytes));
    }
    return TransportBuffer{staged, bytes};
  }

  // What to hand the transport to receive `bytes` that must end up at `p` (after Land()).
  absl::StatusOr<TransportBuffer> Recv(void* p, size_t bytes, bool in_backend) {
    if (Direct(bytes, in_backend)) return TransportBuffer{p, bytes};
    ASSIGN_OR_RETURN(void* staged, Stage(bytes));
    landings_.push_back({p, staged, bytes});
    return TransportBuffer{staged, bytes};
  }

  // After the exchange's Wait: copies staged receives to where they belong; forgets the exchange.
  absl::Status Land() {
    for (const Landing& l : landings_) {
      if (transport_device_) {
        RETURN_IF_ERROR(backend_.CopyToHost(l.dst, l.src, l.bytes));
      } else {
        RETURN_IF_ERROR(backend_.CopyFromHost(l.dst, l.src, l.bytes));
      }
    }
    Clear();
    return absl::OkStatus();
  }

  void Clear() {
    landings_.clear();
    host_.clear();
  }

 private:
  bool Direct(size_t bytes, bool in_backend) const {
    return bytes == 0 || (in_backend && backend_.device_memory()) == transport_device_;
  }
  // Memory of the transport's kind: backend (device) memory, or host memory owned here.
  absl::StatusOr<void*> Stage(size_t bytes) {
    if (transport_device_) return backend_.Allocate(bytes, false);
    host_.push_back(std::unique_ptr<char[]>(new char[bytes]));
    return host_.back().get();
  }

  struct Landing {
    void* dst;
    const void* src;
    size_t bytes;
  };
  ExecutorBackend& backend_;
  const bool transport_device_;
  std::vector<Landing> landings_;
  std::vector<std::unique_ptr<char[]>> host_;
};

// One step of one rank. Owns the received data; runs forward then backward.
class StepRun {
 public:
  StepRun(Transport* transport, const kernels::AttentionShape& shape, ExecutorBackend& backend,
          const Plan& plan, int64_t step, const LocalInputs& in, LocalOutputs* out)
      : transport_(transport),
        shape_(shape),
        backend_(backend),
        bridge_(backend, transport->device_buffers()),
        plan_(plan),
        worker_(*plan.FindWorker(transport->rank())),
        step_(step),
        in_(in),
        out_(out),
        q_row_(static_cast<int64_t>(shape.q_heads) * shape.head_dim),
        kv_row_(static_cast<int64_t>(shape.kv_heads) * shape.head_dim),
        input_bytes_(kernels::DTypeBytes(backend.dtype())) {
    header_.plan = Fingerprint(plan.plan_id);
    header_.step = static_cast<uint64_t>(step);
  }

  absl::StatusOr<StepStats> Run() {
    RETURN_IF_ERROR(Layout());
    const Clock::time_point start = Clock::now();
    RETURN_IF_ERROR(Forward());
    RETURN_IF_ERROR(backend_.Synchronize());
    stats_.forward_seconds = SecondsSince(start);
    const Clock::time_point backward = Clock::now();
    RETURN_IF_ERROR(Backward());
    RETURN_IF_ERROR(backend_.Synchronize());
    stats_.backward_seconds = SecondsSince(backward);
    ASSIGN_OR_RETURN(stats_.attention_seconds, backend_.AttentionSeconds());
    stats_.tiles = static_cast<int64_t>(worker_.tiles.size());
    RETURN_IF_ERROR(backend_.EndStep(out_));
    return stats_;
  }

 private:
  // A stable 64-bit fingerprint of the plan id (FNV-1a: the same on every build and rank).
  static uint64_t Fingerprint(const std::string& id) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
    return h;
  }

  int64_t Rows(int32_t block) const { return plan_.blocks[block].tokens(); }
  // Bytes of a block's K (or V) rows in the backend's dtype, and of its dK (or dV) rows (fp32).
  size_t KvBytes(int32_t block) const { return Rows(block) * kv_row_ * input_bytes_; }
  size_t GradBytes(int32_t block) const { return Rows(block) * kv_row_ * sizeof(float); }
  // Row `row` of an input tensor of `row_elems` elements per row, in the backend's dtype.
  const void* InputRow(const void* base, int64_t row, int64_t row_elems) const {
    return static_cast<const char*>(base) + row * row_elems * input_bytes_;
  }

  // Local offsets, outputs, the resident KV map and the rounds' tile lists.
  absl::Status Layout() {
    ASSIGN_OR_RETURN(t_, backend_.BeginStep(shape_, in_));
    int64_t offset = 0;
    for (int32_t b : worker_.blocks) {
      local_offset_[b] = offset;
      KvBlock& kv = kv_[b];
      kv.k = InputRow(t_.k, offset, kv_row_);
      kv.v = InputRow(t_.v, offset, kv_row_);
      kv.dk = t_.dk + offset * kv_row_;
      kv.dv = t_.dv + offset * kv_row_;
      offset += Rows(b);
    }
    for (const Tile& t : worker_.tiles) last_round_ = std::max(last_round_, t.round);
    for (const Transfer& t : worker_.sends) last_round_ = std::max(last_round_, t.round);
    for (const Transfer& t : worker_.recvs) last_round_ = std::max(last_round_, t.round);
    tiles_by_round_.assign(last_round_ + 1, {});
    for (const Tile& t : worker_.tiles) tiles_by_round_[t.round].push_back(&t);
    return absl::OkStatus();
  }

  double TileFlops(const Tile& t) const {
    const Block& q = plan_.blocks[t.q_block];
    const Block& kv = plan_.blocks[t.kv_block];
    const int64_t pairs =
        AllowedPairs(plan_.documents[q.document].mask, q.begin, q.end, kv.begin, kv.end);
    return 4.0 * shape_.head_dim * shape_.q_heads * static_cast<double>(pairs);
  }

  // Posts round r's transfers of `kind`. KV: sends K and V of each block, receives into fresh
  // storage. dKV: sends the partials, receives into `dkv_in_` (added to the owner's by Await).
  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(TransferKind kind, int32_t r) {
    std::vector<SendOp> sends;
    std::vector<RecvOp> recvs;
    const bool fwd = kind == TransferKind::kKv;
    bridge_.Clear();
    for (const Transfer& t : worker_.sends) {
      if (t.kind != kind || t.round != r) continue;
      SendOp op{t.peer, {}};
      ASSIGN_OR_RETURN(TransportBuffer header, bridge_.Send(&header_, sizeof header_, false));
      op.buffers.push_back(header);
      for (int32_t b : t.blocks) {
        const KvBlock& kv = kv_[b];
        const size_t bytes = fwd ? KvBytes(b) : GradBytes(b);
        ASSIGN_OR_RETURN(TransportBuffer k, bridge_.Send(fwd ? kv.k : kv.dk, bytes, true));
        ASSIGN_OR_RETURN(TransportBuffer v, bridge_.Send(fwd ? kv.v : kv.dv, bytes, true));
        op.buffers.push_back(k);
        op.buffers.push_back(v);
        stats_.bytes_sent += 2 * bytes;
      }
      sends.push_back(std::move(op));
    }
    peer_headers_.clear();
    dkv_in_.clear();
    for (const Transfer& t : worker_.recvs) {
      if (t.kind != kind || t.round != r) continue;
      peer_headers_.push_back({t.peer, Header{}});
    }
    size_t h = 0;
    for (const Transfer& t : worker_.recvs) {
      if (t.kind != kind || t.round != r) continue;
      RecvOp op{t.peer, {}};
      ASSIGN_OR_RETURN(TransportBuffer header,
                       bridge_.Recv(&peer_headers_[h++].second, sizeof(Header), false));
      op.buffers.push_back(header);
      for (int32_t b : t.blocks) {
        const int64_t n = Rows(b) * kv_row_;
        const size_t bytes = fwd ? KvBytes(b) : GradBytes(b);
        char* k;
        if (fwd) {
          // K and V in the dtype; dK and dV (fp32, zero) for the partials this rank sends back.
          ASSIGN_OR_RETURN(void* kv_rows, backend_.Allocate(2 * bytes, false));
          ASSIGN_OR_RETURN(void* grads, backend_.Allocate(2 * n * sizeof(float), true));
          KvBlock& kv = kv_[b];
          k = static_cast<char*>(kv_rows);
          kv.k = k;
          kv.v = k + bytes;
          kv.dk = static_cast<float*>(grads);
          kv.dv = kv.dk + n;
        } else {
          ASSIGN_OR_RETURN(void* partials, backend_.Allocate(2 * bytes, false));
          dkv_in_.push_back({b, static_cast<float*>(partials)});
          k = static_cast<char*>(partials);
        }
        ASSIGN_OR_RETURN(TransportBuffer k_in, bridge_.Recv(k, bytes, true));
        ASSIGN_OR_RETURN(TransportBuffer v_in, bridge_.Recv(k + bytes, bytes, true));
        op.buffers.push_back(k_in);
        op.buffers.push_back(v_in);
        stats_.bytes_received += 2 * bytes;
      }
      recvs.push_back(std::move(op));
    }
    if (sends.empty() && recvs.empty()) return std::unique_ptr<PendingExchange>();
    return transport_->Post(ExchangeTag(step_, kind, r), std::move(sends), std::move(recvs));
  }

  // Waits for a posted round and checks that every peer runs this plan and step.
  absl::Status Await(std::unique_ptr<PendingExchange> pending, TransferKind kind, int32_t r) {
    if (pending == nullptr) return absl::OkStatus();
    const Clock::time_point start = Clock::now();
    absl::Status status = pending->Wait();
    if (status.ok()) status = bridge_.Land();
    stats_.comm_wait_seconds += SecondsSince(start);
    if (!status.ok()) {
      return absl::Status(
          status.code(), absl::StrCat("worker ", transport_->rank(), ", step ", step_, ", ",
                                      kind == TransferKind::kKv ? "forward" : "backward", " round ",
                                      r, ": ", status.message()));
    }
    for (const auto& [peer, header] : peer_headers_) {
      if (header.plan != header_.plan || header.step != header_.step) {
        return absl::FailedPreconditionError(absl::StrCat(
            "worker ", transport_->rank(), ": peer ", peer, " runs another plan or step (step ",
            header.step, ", plan fingerprint ", header.plan, "; this rank: step ", header_.step,
            ", plan ", plan_.plan_id, ")"));
      }
    }
    // Received dK/dV partials are the owner's to add (after the wait: the kernels of the round
    // in flight may be accumulating into the same rows).
    for (const auto& [b, data] : dkv_in_) {
      const int64_t n = Rows(b) * kv_row_;
      const KvBlock& kv = kv_[b];
      RETURN_IF_ERROR(backend_.Accumulate(kv.dk, data, n));
      RETURN_IF_ERROR(backend_.Accumulate(kv.dv, data + n, n));
    }
    dkv_in_.clear();
    return absl::OkStatus();
  }

  absl::Status ComputeForward(int32_t r) {
    std::vector<kernels::ForwardTile> tiles;
    for (const Tile* t : tiles_by_round_[r]) {
      const Block& q = plan_.blocks[t->q_block];
      const Block& kvb = plan_.blocks[t->kv_block];
      const KvBlock& kv = kv_[t->kv_block];
      const int64_t off = local_offset_[t->q_block];
      kernels::ForwardTile f;
      f.q = InputRow(t_.q, off, q_row_);
      f.k = kv.k;
      f.v = kv.v;
      f.q_rows = q.tokens();
      f.kv_rows = kvb.tokens();
      f.q_begin = q.begin;
      f.kv_begin = kvb.begin;
      f.mask = ToKernelMask(plan_.documents[q.document].mask);
      f.o = t_.o + off * q_row_;
      f.lse = t_.lse + off * shape_.q_heads;
      tiles.push_back(f);
      stats_.attention_flops += TileFlops(*t);
    }
    return backend_.Forward(shape_, tiles);
  }

  absl::Status ComputeBackward(int32_t r) {
    std::vector<kernels::BackwardTile> tiles;
    for (const Tile* t : tiles_by_round_[r]) {
      const Block& q = plan_.blocks[t->q_block];
      const Block& kvb = plan_.blocks[t->kv_block];
      const KvBlock& kv = kv_[t->kv_block];
      const int64_t off = local_offset_[t->q_block];
      kernels::BackwardTile g;
      g.q = InputRow(t_.q, off, q_row_);
      g.k = kv.k;
      g.v = kv.v;
      g.d_o = InputRow(t_.d_o, off, q_row_);
      g.lse = t_.lse + off * shape_.q_heads;
      g.delta = delta_ + off * shape_.q_heads;
      g.q_rows = q.tokens();
      g.kv_rows = kvb.tokens();
      g.q_begin = q.begin;
      g.kv_begin = kvb.begin;
      g.mask = ToKernelMask(plan_.documents[q.document].mask);
      g.dq = t_.dq + off * q_row_;
      g.dk = kv.dk;
      g.dv = kv.dv;
      tiles.push_back(g);
      stats_.attention_flops += kBackwardFlopsRatio * TileFlops(*t);
    }
    return backend_.Backward(shape_, tiles);
  }

  absl::Status Forward() {
    std::unique_ptr<PendingExchange> pending;
    if (last_round_ >= 1) {
      ASSIGN_OR_RETURN(pending, Post(TransferKind::kKv, 1));
    }
    for (int32_t r = 0; r <= last_round_; ++r) {
      if (r >= 1) {
        RETURN_IF_ERROR(Await(std::move(pending), TransferKind::kKv, r));
        if (r + 1 <= last_round_) {
          ASSIGN_OR_RETURN(pending, Post(TransferKind::kKv, r + 1));
        }
      }
      RETURN_IF_ERROR(ComputeForward(r));
    }
    return absl::OkStatus();
  }

  absl::Status Backward() {
    ASSIGN_OR_RETURN(void* delta,
                     backend_.Allocate(in_.tokens * shape_.q_heads * sizeof(float), false));
    delta_ = static_cast<float*>(delta);
    RETURN_IF_ERROR(backend_.ComputeDelta(shape_, t_.o, t_.d_o, in_.tokens, delta_));
    std::unique_ptr<PendingExchange> pending;
    for (int32_t r = last_round_; r >= 0; --r) {
      RETURN_IF_ERROR(ComputeBackward(r));
      RETURN_IF_ERROR(Await(std::move(pending), TransferKind::kDkv, r + 1));
      if (r >= 1) {
        ASSIGN_OR_RETURN(pending, Post(TransferKind::kDkv, r));
      }
    }
    return absl::OkStatus();
  }

  Transport* transport_;
  const kernels::AttentionShape shape_;
  ExecutorBackend& backend_;
  Bridge bridge_;
  const Plan& plan_;
  const WorkerPlan& worker_;
  const int64_t step_;
  const LocalInputs& in_;
  LocalOutputs* out_;
  const int64_t q_row_, kv_row_;  // elements per token row
  const size_t input_bytes_;      // bytes per element of q, k, v, d_o

  StepTensors t_;  // this step's tensors in backend memory
  Header header_;
  absl::flat_hash_map<int32_t, int64_t> local_offset_;  // local block -> first row
  absl::flat_hash_map<int32_t, KvBlock> kv_;            // resident blocks
  std::vector<std::vector<const Tile*>> tiles_by_round_;
  int32_t last_round_ = 0;
  float* delta_ = nullptr;                                // backend memory
  std::vector<std::pair<int32_t, Header>> peer_headers_;  // headers of the round in flight
  std::vector<std::pair<int32_t, float*>> dkv_in_;        // received partials, backend memory
  StepStats stats_;
};

}  // namespace

uint64_t ExchangeTag(int64_t step, TransferKind kind, int32_t round) {
  const uint64_t s = static_cast<uint64_t>(step) & ((uint64_t{1} << 24) - 1);
  return s << 20 | uint64_t{kind == TransferKind::kDkv} << 19 |
         (static_cast<uint64_t>(round) & ((uint64_t{1} << 19) - 1));
}

uint64_t GatherTag(int64_t step) { return ExchangeTag(step, TransferKind::kDkv, kMaxRounds); }

Executor::Executor(Transport* transport, const kernels::AttentionShape& shape, int threads)
    : Executor(transport, shape, NewCpuBackend(threads)) {}

Executor::Executor(Transport* transport, const kernels::AttentionShape& shape,
                   std::unique_ptr<ExecutorBackend> backend)
    : transport_(transport), shape_(shape), backend_(std::move(backend)) {}

Executor::~Executor() = default;

absl::StatusOr<StepStats> Executor::Run(const Plan& plan, absl::string_view expected_plan_id,
                                        int64_t step, const LocalInputs& inputs,
                                        LocalOutputs* outputs) {
  RETURN_IF_ERROR(CheckSlice(plan, transport_->rank(), transport_->world_size(), expected_plan_id,
                             inputs.tokens));
  if (shape_.q_heads < 1 || shape_.kv_heads < 1 || shape_.head_dim < 1 ||
      shape_.q_heads % shape_.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention shape: q_heads ", shape_.q_heads,
                                                   ", kv_heads ", shape_.kv_heads, ", head_dim ",
                                                   shape_.head_dim));
  }
  StepRun run(transport_, shape_, *backend_, plan, step, inputs, outputs);
  return run.Run();
}

}  // namespace fcp
