#include "worker/executor/executor_pass.h"

#include <algorithm>
#include <chrono>
#include <limits>
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
    return RunPhase(TransferKind::kOut);
  }

  absl::Status Backward(const void* d_o, const float* delta, float* dq) {
    d_o_ = d_o;
    delta_ = delta;
    dq_ = dq;
    RETURN_IF_ERROR(RunPhase(TransferKind::kDo));
    std::unique_ptr<PendingExchange> pending;
    for (int32_t r = s_.last_round; r >= 0; --r) {
      RETURN_IF_ERROR(ComputeBackward(r));
      RETURN_IF_ERROR(Await(std::move(pending), TransferKind::kDkv, r + 1));
      if (r >= 1) {
        ASSIGN_OR_RETURN(pending, Post(TransferKind::kDkv, r));
      }
    }
    return RunPhase(TransferKind::kDq);
  }

 private:
  // A piece of a message: `bytes` at `p` (backend memory).
  struct Part {
    void* p;
    size_t bytes;
  };
  // Received data the owner still has to fold in after the exchange's wait.
  struct Landing {
    TransferKind kind;  // kDkv, kOut or kDq
    int32_t block;
    float* data;
  };

  int64_t Rows(int32_t block) const { return s_.blocks[block].tokens(); }
  // Bytes of a block's K (or V) rows in the compute dtype, and of its dK (or dV) rows (fp32).
  size_t KvBytes(int32_t block) const { return Rows(block) * kv_row_ * input_bytes_; }
  size_t GradBytes(int32_t block) const { return Rows(block) * kv_row_ * sizeof(float); }
  // Bytes of a q block's Q (or dO) rows in the compute dtype, of its fp32 O (or dQ) rows, of its
  // LSE (or delta) rows.
  size_t QBytes(int32_t block) const { return Rows(block) * q_row_ * input_bytes_; }
  size_t OutBytes(int32_t block) const { return Rows(block) * q_row_ * sizeof(float); }
  size_t LseBytes(int32_t block) const { return Rows(block) * s_.shape.q_heads * sizeof(float); }
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

  // The rows of a q block's tensors a tile reads and writes: the rank's own at the block's offset,
  // or a received block's (RemoteQ). Backward fields are null in the forward.
  struct QRows {
    const void* q;
    float* o;
    float* lse;
    const void* d_o;
    const float* delta;
    float* dq;
  };
  QRows RowsOf(int32_t q_block) {
    auto local = s_.local_offset.find(q_block);
    if (local == s_.local_offset.end()) {
      const RemoteQ& rq = s_.remote_q[q_block];
      return {rq.q, rq.o, rq.lse, rq.d_o, rq.delta, rq.dq};
    }
    const int64_t off = local->second, heads = s_.shape.q_heads;
    return {InputRow(s_.q, off, q_row_),
            s_.o + off * q_row_,
            s_.lse + off * heads,
            d_o_ == nullptr ? nullptr : InputRow(d_o_, off, q_row_),
            delta_ == nullptr ? nullptr : delta_ + off * heads,
            dq_ == nullptr ? nullptr : dq_ + off * q_row_};
  }

  // What a transfer of `kind` sends of block b.
  std::vector<Part> SendParts(TransferKind kind, int32_t b) {
    const ResidentKv& kv = s_.kv[b];
    switch (kind) {
      case TransferKind::kKv:
        return {{const_cast<void*>(kv.k), KvBytes(b)}, {const_cast<void*>(kv.v), KvBytes(b)}};
      case TransferKind::kDkv:
        return {{kv.dk, GradBytes(b)}, {kv.dv, GradBytes(b)}};
      default:
        break;
    }
    const QRows rows = RowsOf(b);
    switch (kind) {
      case TransferKind::kQ:
        return {{const_cast<void*>(rows.q), QBytes(b)}};
      case TransferKind::kOut:
        return {{rows.o, OutBytes(b)}, {rows.lse, LseBytes(b)}};
      case TransferKind::kDo:
        return {{const_cast<void*>(rows.d_o), QBytes(b)},
                {rows.lse, LseBytes(b)},
                {const_cast<float*>(rows.delta), LseBytes(b)}};
      default:  // kDq
        return {{rows.dq, OutBytes(b)}};
    }
  }

  // Where a transfer of `kind` receives block b: allocates what the data needs (K/V and Q for the
  // rest of the step in the context's arena, the rest in scratch) and notes what Await folds in.
  absl::StatusOr<std::vector<Part>> RecvParts(TransferKind kind, int32_t b) {
    switch (kind) {
      case TransferKind::kKv: {  // K and V in the compute dtype, kept for the backward
        ASSIGN_OR_RETURN(void* kv_rows, s_.arena->Allocate(2 * KvBytes(b), false));
        char* k = static_cast<char*>(kv_rows);
        ResidentKv& kv = s_.kv[b];
        kv.k = k;
        kv.v = k + KvBytes(b);
        return std::vector<Part>{{k, KvBytes(b)}, {k + KvBytes(b), KvBytes(b)}};
      }
      case TransferKind::kQ: {  // Q kept for the backward, a partial (o, lse) for the tiles
        RemoteQ& rq = s_.remote_q[b];
        ASSIGN_OR_RETURN(void* q, s_.arena->Allocate(QBytes(b), false));
        ASSIGN_OR_RETURN(void* o, s_.arena->Allocate(OutBytes(b), true));
        ASSIGN_OR_RETURN(void* lse, s_.arena->Allocate(LseBytes(b), false));
        rq.q = q;
        rq.o = static_cast<float*>(o);
        rq.lse = static_cast<float*>(lse);
        RETURN_IF_ERROR(backend_.Fill(rq.lse, Rows(b) * s_.shape.q_heads,
                                      -std::numeric_limits<float>::infinity()));
        return std::vector<Part>{{q, QBytes(b)}};
      }
      case TransferKind::kDo: {  // the owner's final LSE replaces the partial one
        RemoteQ& rq = s_.remote_q[b];
        ASSIGN_OR_RETURN(void* d_o, scratch_.Allocate(QBytes(b), false));
        ASSIGN_OR_RETURN(void* delta, scratch_.Allocate(LseBytes(b), false));
        ASSIGN_OR_RETURN(void* dq, scratch_.Allocate(OutBytes(b), true));
        rq.d_o = d_o;
        rq.delta = static_cast<float*>(delta);
        rq.dq = static_cast<float*>(dq);
        return std::vector<Part>{{d_o, QBytes(b)}, {rq.lse, LseBytes(b)}, {delta, LseBytes(b)}};
      }
      default:
        break;
    }
    // Partials for the owner to fold in: dK + dV, O + LSE, or dQ.
    const size_t first = kind == TransferKind::kDkv ? GradBytes(b) : OutBytes(b);
    const size_t second = kind == TransferKind::kDkv   ? GradBytes(b)
                          : kind == TransferKind::kOut ? LseBytes(b)
                                                       : 0;
    ASSIGN_OR_RETURN(void* data, scratch_.Allocate(first + second, false));
    char* p = static_cast<char*>(data);
    landings_.push_back({kind, b, static_cast<float*>(data)});
    std::vector<Part> parts{{p, first}};
    if (second > 0) parts.push_back({p + first, second});
    return parts;
  }

  // Whether a transfer of `kind` travels in the exchange of `exchange` (a forward round carries
  // KV and Q).
  static bool InExchange(TransferKind exchange, TransferKind kind) {
    return kind == exchange || (exchange == TransferKind::kKv && kind == TransferKind::kQ);
  }

  template <typename Op>
  static Op* FindOp(std::vector<Op>& ops, int32_t peer) {
    for (Op& op : ops) {
      if (op.peer == peer) return &op;
    }
    return nullptr;
  }

  // Posts round r of `exchange`'s transfers: one message per peer (header, then each transfer's
  // blocks in the slice's (kind, round) order, which sender and receiver share).
  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(TransferKind exchange, int32_t r) {
    std::vector<SendOp> sends;
    std::vector<RecvOp> recvs;
    bridge_.Clear();
    landings_.clear();
    for (const Transfer& t : s_.worker.sends) {
      if (!InExchange(exchange, t.kind) || t.round != r) continue;
      SendOp* op = FindOp(sends, t.peer);
      if (op == nullptr) {
        ASSIGN_OR_RETURN(TransportBuffer header, bridge_.Send(&header_, sizeof header_, false));
        sends.push_back({t.peer, {header}});
        op = &sends.back();
      }
      for (int32_t b : t.blocks) {
        for (const Part& part : SendParts(t.kind, b)) {
          ASSIGN_OR_RETURN(TransportBuffer buffer, bridge_.Send(part.p, part.bytes, true));
          op->buffers.push_back(buffer);
          stats_.bytes_sent += part.bytes;
        }
      }
    }
    peer_headers_.clear();
    for (const Transfer& t : s_.worker.recvs) {
      if (!InExchange(exchange, t.kind) || t.round != r) continue;
      const bool seen = std::any_of(peer_headers_.begin(), peer_headers_.end(),
                                    [&](const auto& h) { return h.first == t.peer; });
      if (!seen) peer_headers_.push_back({t.peer, Header{}});
    }
    for (const Transfer& t : s_.worker.recvs) {
      if (!InExchange(exchange, t.kind) || t.round != r) continue;
      RecvOp* op = FindOp(recvs, t.peer);
      if (op == nullptr) {
        auto h = std::find_if(peer_headers_.begin(), peer_headers_.end(),
                              [&](const auto& p) { return p.first == t.peer; });
        ASSIGN_OR_RETURN(TransportBuffer header, bridge_.Recv(&h->second, sizeof(Header), false));
        recvs.push_back({t.peer, {header}});
        op = &recvs.back();
      }
      for (int32_t b : t.blocks) {
        ASSIGN_OR_RETURN(std::vector<Part> parts, RecvParts(t.kind, b));
        for (const Part& part : parts) {
          ASSIGN_OR_RETURN(TransportBuffer buffer, bridge_.Recv(part.p, part.bytes, true));
          op->buffers.push_back(buffer);
          stats_.bytes_received += part.bytes;
        }
      }
    }
    if (sends.empty() && recvs.empty()) return std::unique_ptr<PendingExchange>();
    return transport_.Post(ExchangeTag(s_.step, exchange, r, s_.call), std::move(sends),
                           std::move(recvs));
  }

  static const char* PhaseName(TransferKind kind) {
    switch (kind) {
      case TransferKind::kKv:
        return "forward";
      case TransferKind::kDkv:
        return "backward";
      case TransferKind::kOut:
        return "forward return (Out)";
      case TransferKind::kDo:
        return "backward dO";
      default:
        return "backward return (dQ)";
    }
  }

  // A phase of its own rounds (plan.h): each round posted and awaited in increasing order.
  absl::Status RunPhase(TransferKind kind) {
    for (int32_t r = 1; r <= s_.last_round; ++r) {
      ASSIGN_OR_RETURN(std::unique_ptr<PendingExchange> pending, Post(kind, r));
      RETURN_IF_ERROR(Await(std::move(pending), kind, r));
    }
    return absl::OkStatus();
  }

  // Waits for a posted round and checks that every peer runs this plan and step.
  absl::Status Await(std::unique_ptr<PendingExchange> pending, TransferKind kind, int32_t r) {
    if (pending == nullptr) return absl::OkStatus();
    const Clock::time_point start = Clock::now();
    absl::Status status = pending->Wait();
    if (status.ok()) status = bridge_.Land();
    stats_.comm_wait_seconds += SecondsSince(start);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("worker ", transport_.rank(), ", step ", s_.step, ", ",
                                       PhaseName(kind), " round ", r, ": ", status.message()));
    }
    for (const auto& [peer, header] : peer_headers_) {
      if (header.plan != header_.plan || header.step != header_.step) {
        return absl::FailedPreconditionError(absl::StrCat(
            "worker ", transport_.rank(), ": peer ", peer, " runs another plan or step (step ",
            header.step, ", plan fingerprint ", header.plan, "; this rank: step ", header_.step,
            ", plan ", s_.plan_id, ")"));
      }
    }
    // Received partials are the owner's to fold in (after the wait: the kernels of the round in
    // flight may be accumulating into the same rows).
    for (const Landing& l : landings_) RETURN_IF_ERROR(FoldIn(l));
    landings_.clear();
    return absl::OkStatus();
  }

  absl::Status FoldIn(const Landing& l) {
    if (l.kind == TransferKind::kDkv) {
      const int64_t n = Rows(l.block) * kv_row_;
      const ResidentKv& kv = s_.kv[l.block];
      RETURN_IF_ERROR(backend_.Accumulate(kv.dk, l.data, n));
      return backend_.Accumulate(kv.dv, l.data + n, n);
    }
    const QRows rows = RowsOf(l.block);
    const int64_t n = Rows(l.block) * q_row_;
    if (l.kind == TransferKind::kOut) {
      return backend_.MergeLse(s_.shape, Rows(l.block), rows.o, rows.lse, l.data, l.data + n);
    }
    return backend_.Accumulate(rows.dq, l.data, n);
  }

  // A forward or backward kernel tile of plan tile `t` with the fields both share set (q, k, v,
  // rows, positions, mask); `*rows` receives the q block's rows.
  template <typename KernelTile>
  KernelTile TileOf(const Tile& t, QRows* rows) {
    const Block& q = s_.blocks[t.q_block];
    const Block& kvb = s_.blocks[t.kv_block];
    const ResidentKv& kv = s_.kv[t.kv_block];
    *rows = RowsOf(t.q_block);
    KernelTile k;
    k.q = rows->q;
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
      QRows rows;
      kernels::ForwardTile f = TileOf<kernels::ForwardTile>(*t, &rows);
      f.o = rows.o;
      f.lse = rows.lse;
      tiles.push_back(f);
      stats_.attention_flops += TileFlops(*t);
    }
    return backend_.Forward(s_.shape, s_.compute, tiles);
  }

  absl::Status ComputeBackward(int32_t r) {
    std::vector<kernels::BackwardTile> tiles;
    for (const Tile* t : s_.tiles_by_round[r]) {
      QRows rows;
      kernels::BackwardTile g = TileOf<kernels::BackwardTile>(*t, &rows);
      const ResidentKv& kv = s_.kv[t->kv_block];
      g.d_o = rows.d_o;
      g.lse = rows.lse;
      g.delta = rows.delta;
      g.dq = rows.dq;
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
  std::vector<Landing> landings_;                         // received partials, backend memory
  const void* d_o_ = nullptr;  // the backward's inputs (null in the forward)
  const float* delta_ = nullptr;
  float* dq_ = nullptr;
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
