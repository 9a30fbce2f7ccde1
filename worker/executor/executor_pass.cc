#include "worker/executor/executor_pass.h"

#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/planner/mask_math.h"
#include "worker/executor/kernel_types.h"

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

// Moves host or backend memory through the transport, which moves host memory (loopback, gloo) or
// device memory (nccl): the pointer itself when the kinds agree, else a staging copy made by the
// backend (sends) or landed by it after the exchange (receives). Holds one exchange at a time.
class Bridge {
 public:
  Bridge(ExecutorBackend& backend, BackendArena& arena, bool transport_device)
      : backend_(backend), arena_(arena), transport_device_(transport_device) {}

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
    if (transport_device_) return arena_.Allocate(bytes, false);
    host_.push_back(std::unique_ptr<char[]>(new char[bytes]));
    return host_.back().get();
  }

  struct Landing {
    void* dst;
    const void* src;
    size_t bytes;
  };
  ExecutorBackend& backend_;
  BackendArena& arena_;
  const bool transport_device_;
  std::vector<Landing> landings_;
  std::vector<std::unique_ptr<char[]>> host_;
};

// One pass (forward or backward) of a forward's context over its rounds.
class Pass {
 public:
  Pass(ForwardContext::State& s, Transport& transport, ExecutorBackend& backend,
       BackendArena& scratch, StepStats* stats)
      : s_(s),
        transport_(transport),
        backend_(backend),
        scratch_(scratch),
        bridge_(backend, scratch, transport.device_buffers()),
        stats_(*stats),
        q_row_(static_cast<int64_t>(s.shape.q_heads) * s.shape.head_dim),
        kv_row_(static_cast<int64_t>(s.shape.kv_heads) * s.shape.head_dim),
        input_bytes_(kernels::DTypeBytes(s.compute)) {
    header_.plan = s.fingerprint;
    header_.step = static_cast<uint64_t>(s.step);
  }

  absl::Status Forward() {
    std::unique_ptr<PendingExchange> pending;
    if (s_.last_round >= 1) {
      ASSIGN_OR_RETURN(pending, Post(TransferKind::kKv, 1));
    }
    for (int32_t r = 0; r <= s_.last_round; ++r) {
      if (r >= 1) {
        RETURN_IF_ERROR(Await(std::move(pending), TransferKind::kKv, r));
        if (r + 1 <= s_.last_round) {
          ASSIGN_OR_RETURN(pending, Post(TransferKind::kKv, r + 1));
        }
      }
      RETURN_IF_ERROR(ComputeForward(r));
    }
    return absl::OkStatus();
  }

  absl::Status Backward(const void* d_o, const float* delta, float* dq) {
    std::unique_ptr<PendingExchange> pending;
    for (int32_t r = s_.last_round; r >= 0; --r) {
      RETURN_IF_ERROR(ComputeBackward(r, d_o, delta, dq));
      RETURN_IF_ERROR(Await(std::move(pending), TransferKind::kDkv, r + 1));
      if (r >= 1) {
        ASSIGN_OR_RETURN(pending, Post(TransferKind::kDkv, r));
      }
    }
    return absl::OkStatus();
  }

 private:
  int64_t Rows(int32_t block) const { return s_.blocks[block].tokens(); }
  // Bytes of a block's K (or V) rows in the compute dtype, and of its dK (or dV) rows (fp32).
  size_t KvBytes(int32_t block) const { return Rows(block) * kv_row_ * input_bytes_; }
  size_t GradBytes(int32_t block) const { return Rows(block) * kv_row_ * sizeof(float); }
  // Row `row` of an input tensor of `row_elems` elements per row, in the compute dtype.
  const void* InputRow(const void* base, int64_t row, int64_t row_elems) const {
    return static_cast<const char*>(base) + row * row_elems * input_bytes_;
  }

  double TileFlops(const Tile& t) const {
    const Block& q = s_.blocks[t.q_block];
    const Block& kv = s_.blocks[t.kv_block];
    const int64_t pairs = AllowedPairs(s_.masks[q.document], q.begin, q.end, kv.begin, kv.end);
    return 4.0 * s_.shape.head_dim * s_.shape.q_heads * static_cast<double>(pairs);
  }

  // Posts round r's transfers of `kind`. KV: sends K and V of each block, receives into the
  // context's arena. dKV: sends the partials, receives into `dkv_in_` (added to the owner's by
  // Await).
  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(TransferKind kind, int32_t r) {
    std::vector<SendOp> sends;
    std::vector<RecvOp> recvs;
    const bool fwd = kind == TransferKind::kKv;
    bridge_.Clear();
    for (const Transfer& t : s_.worker.sends) {
      if (t.kind != kind || t.round != r) continue;
      SendOp op{t.peer, {}};
      ASSIGN_OR_RETURN(TransportBuffer header, bridge_.Send(&header_, sizeof header_, false));
      op.buffers.push_back(header);
      for (int32_t b : t.blocks) {
        const ResidentKv& kv = s_.kv[b];
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
    for (const Transfer& t : s_.worker.recvs) {
      if (t.kind != kind || t.round != r) continue;
      peer_headers_.push_back({t.peer, Header{}});
    }
    size_t h = 0;
    for (const Transfer& t : s_.worker.recvs) {
      if (t.kind != kind || t.round != r) continue;
      RecvOp op{t.peer, {}};
      ASSIGN_OR_RETURN(TransportBuffer header,
                       bridge_.Recv(&peer_headers_[h++].second, sizeof(Header), false));
      op.buffers.push_back(header);
      for (int32_t b : t.blocks) {
        const size_t bytes = fwd ? KvBytes(b) : GradBytes(b);
        char* k;
        if (fwd) {  // K and V in the compute dtype, kept for the backward
          ASSIGN_OR_RETURN(void* kv_rows, s_.arena->Allocate(2 * bytes, false));
          k = static_cast<char*>(kv_rows);
          ResidentKv& kv = s_.kv[b];
          kv.k = k;
          kv.v = k + bytes;
        } else {
          ASSIGN_OR_RETURN(void* partials, scratch_.Allocate(2 * bytes, false));
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
    return transport_.Post(ExchangeTag(s_.step, kind, r, s_.call), std::move(sends),
                           std::move(recvs));
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
          status.code(), absl::StrCat("worker ", transport_.rank(), ", step ", s_.step, ", ",
                                      kind == TransferKind::kKv ? "forward" : "backward", " round ",
                                      r, ": ", status.message()));
    }
    for (const auto& [peer, header] : peer_headers_) {
      if (header.plan != header_.plan || header.step != header_.step) {
        return absl::FailedPreconditionError(absl::StrCat(
            "worker ", transport_.rank(), ": peer ", peer, " runs another plan or step (step ",
            header.step, ", plan fingerprint ", header.plan, "; this rank: step ", header_.step,
            ", plan ", s_.plan_id, ")"));
      }
    }
    // Received dK/dV partials are the owner's to add (after the wait: the kernels of the round
    // in flight may be accumulating into the same rows).
    for (const auto& [b, data] : dkv_in_) {
      const int64_t n = Rows(b) * kv_row_;
      const ResidentKv& kv = s_.kv[b];
      RETURN_IF_ERROR(backend_.Accumulate(kv.dk, data, n));
      RETURN_IF_ERROR(backend_.Accumulate(kv.dv, data + n, n));
    }
    dkv_in_.clear();
    return absl::OkStatus();
  }

  // A forward or backward kernel tile of plan tile `t` with the fields both share set (q, k, v,
  // rows, positions, mask); `*offset` receives the q block's first local row.
  template <typename KernelTile>
  KernelTile TileOf(const Tile& t, int64_t* offset) {
    const Block& q = s_.blocks[t.q_block];
    const Block& kvb = s_.blocks[t.kv_block];
    const ResidentKv& kv = s_.kv[t.kv_block];
    *offset = s_.local_offset[t.q_block];
    KernelTile k;
    k.q = InputRow(s_.q, *offset, q_row_);
    k.k = kv.k;
    k.v = kv.v;
    k.q_rows = q.tokens();
    k.kv_rows = kvb.tokens();
    k.q_begin = q.begin;
    k.kv_begin = kvb.begin;
    k.mask = ToKernelMask(s_.masks[q.document]);
    return k;
  }

  absl::Status ComputeForward(int32_t r) {
    std::vector<kernels::ForwardTile> tiles;
    for (const Tile* t : s_.tiles_by_round[r]) {
      int64_t off = 0;
      kernels::ForwardTile f = TileOf<kernels::ForwardTile>(*t, &off);
      f.o = s_.o + off * q_row_;
      f.lse = s_.lse + off * s_.shape.q_heads;
      tiles.push_back(f);
      stats_.attention_flops += TileFlops(*t);
    }
    return backend_.Forward(s_.shape, s_.compute, tiles);
  }

  absl::Status ComputeBackward(int32_t r, const void* d_o, const float* delta, float* dq) {
    std::vector<kernels::BackwardTile> tiles;
    for (const Tile* t : s_.tiles_by_round[r]) {
      int64_t off = 0;
      kernels::BackwardTile g = TileOf<kernels::BackwardTile>(*t, &off);
      const ResidentKv& kv = s_.kv[t->kv_block];
      g.d_o = InputRow(d_o, off, q_row_);
      g.lse = s_.lse + off * s_.shape.q_heads;
      g.delta = delta + off * s_.shape.q_heads;
      g.dq = dq + off * q_row_;
      g.dk = kv.dk;
      g.dv = kv.dv;
      tiles.push_back(g);
      stats_.attention_flops += kBackwardFlopsRatio * TileFlops(*t);
    }
    return backend_.Backward(s_.shape, s_.compute, tiles);
  }

  ForwardContext::State& s_;
  Transport& transport_;
  ExecutorBackend& backend_;
  BackendArena& scratch_;
  Bridge bridge_;
  StepStats& stats_;
  const int64_t q_row_, kv_row_;  // elements per token row
  const size_t input_bytes_;      // bytes per element of q, k, v, d_o
  Header header_;
  std::vector<std::pair<int32_t, Header>> peer_headers_;  // headers of the round in flight
  std::vector<std::pair<int32_t, float*>> dkv_in_;        // received partials, backend memory
};

}  // namespace

absl::Status ForwardRounds(ForwardContext::State& s, Transport& transport,
                           ExecutorBackend& backend) {
  std::unique_ptr<BackendArena> staging = backend.NewArena();
  return Pass(s, transport, backend, *staging, &s.stats).Forward();
}

absl::Status BackwardRounds(ForwardContext::State& s, Transport& transport,
                            ExecutorBackend& backend, BackendArena& scratch, const void* d_o,
                            const float* delta, float* dq, StepStats* stats) {
  return Pass(s, transport, backend, scratch, stats).Backward(d_o, delta, dq);
}

}  // namespace fcp
