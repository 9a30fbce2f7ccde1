#include "worker/executor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"
#include "service/planner/status_macros.h"
#include "worker/slice_check.h"

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

kernels::TileMask ToKernelMask(const Mask& mask) {
  return {static_cast<kernels::MaskKind>(mask.kind), mask.window, mask.prefix};
}

// A KV block resident on this rank: its K and V rows (local input or a received copy) and, for
// received blocks, the dK/dV partials to send back to the owner.
struct KvBlock {
  const float* k = nullptr;
  const float* v = nullptr;
  float* dk = nullptr;
  float* dv = nullptr;
  std::unique_ptr<float[]> storage;  // received blocks: k, v, dk, dv back to back
};

// One step of one rank. Owns the received data; runs forward then backward.
class StepRun {
 public:
  StepRun(Transport* transport, const kernels::AttentionShape& shape, int threads, const Plan& plan,
          int64_t step, const LocalInputs& in, LocalOutputs* out)
      : transport_(transport),
        shape_(shape),
        threads_(threads),
        plan_(plan),
        worker_(*plan.FindWorker(transport->rank())),
        step_(step),
        in_(in),
        out_(out),
        q_row_(static_cast<int64_t>(shape.q_heads) * shape.head_dim),
        kv_row_(static_cast<int64_t>(shape.kv_heads) * shape.head_dim) {
    header_.plan = Fingerprint(plan.plan_id);
    header_.step = static_cast<uint64_t>(step);
  }

  absl::StatusOr<StepStats> Run() {
    Layout();
    const Clock::time_point start = Clock::now();
    RETURN_IF_ERROR(Forward());
    stats_.forward_seconds = SecondsSince(start);
    const Clock::time_point backward = Clock::now();
    RETURN_IF_ERROR(Backward());
    stats_.backward_seconds = SecondsSince(backward);
    stats_.tiles = static_cast<int64_t>(worker_.tiles.size());
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
  size_t KvBytes(int32_t block) const { return Rows(block) * kv_row_ * sizeof(float); }

  // Local offsets, outputs, the resident KV map and the rounds' tile lists.
  void Layout() {
    int64_t offset = 0;
    for (int32_t b : worker_.blocks) {
      local_offset_[b] = offset;
      KvBlock& kv = kv_[b];
      kv.k = in_.k + offset * kv_row_;
      kv.v = in_.v + offset * kv_row_;
      offset += Rows(b);
    }
    out_->o.assign(in_.tokens * q_row_, 0.0f);
    out_->lse.assign(in_.tokens * shape_.q_heads, -std::numeric_limits<float>::infinity());
    out_->dq.assign(in_.tokens * q_row_, 0.0f);
    out_->dk.assign(in_.tokens * kv_row_, 0.0f);
    out_->dv.assign(in_.tokens * kv_row_, 0.0f);
    for (int32_t b : worker_.blocks) {
      KvBlock& kv = kv_[b];
      kv.dk = out_->dk.data() + local_offset_[b] * kv_row_;
      kv.dv = out_->dv.data() + local_offset_[b] * kv_row_;
    }
    for (const Tile& t : worker_.tiles) last_round_ = std::max(last_round_, t.round);
    for (const Transfer& t : worker_.sends) last_round_ = std::max(last_round_, t.round);
    for (const Transfer& t : worker_.recvs) last_round_ = std::max(last_round_, t.round);
    tiles_by_round_.assign(last_round_ + 1, {});
    for (const Tile& t : worker_.tiles) tiles_by_round_[t.round].push_back(&t);
  }

  double TileFlops(const Tile& t) const {
    const Block& q = plan_.blocks[t.q_block];
    const Block& kv = plan_.blocks[t.kv_block];
    const int64_t pairs =
        AllowedPairs(plan_.documents[q.document].mask, q.begin, q.end, kv.begin, kv.end);
    return 4.0 * shape_.head_dim * shape_.q_heads * static_cast<double>(pairs);
  }

  // Posts round r's transfers of `kind`. KV: sends K and V of each block, receives into fresh
  // storage. dKV: sends the partials, receives into `dkv_in_` (added to the owner's by Accept).
  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(TransferKind kind, int32_t r) {
    std::vector<SendOp> sends;
    std::vector<RecvOp> recvs;
    const TransportBuffer header{&header_, sizeof header_};
    for (const Transfer& t : worker_.sends) {
      if (t.kind != kind || t.round != r) continue;
      SendOp op{t.peer, {header}};
      for (int32_t b : t.blocks) {
        const KvBlock& kv = kv_[b];
        const bool fwd = kind == TransferKind::kKv;
        op.buffers.push_back({const_cast<float*>(fwd ? kv.k : kv.dk), KvBytes(b)});
        op.buffers.push_back({const_cast<float*>(fwd ? kv.v : kv.dv), KvBytes(b)});
        stats_.bytes_sent += 2 * KvBytes(b);
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
      RecvOp op{t.peer, {{&peer_headers_[h++].second, sizeof(Header)}}};
      for (int32_t b : t.blocks) {
        const int64_t n = Rows(b) * kv_row_;
        float* k;
        float* v;
        if (kind == TransferKind::kKv) {
          KvBlock& kv = kv_[b];
          kv.storage = std::make_unique<float[]>(4 * n);
          std::fill_n(kv.storage.get() + 2 * n, 2 * n, 0.0f);
          k = kv.storage.get();
          v = k + n;
          kv.k = k;
          kv.v = v;
          kv.dk = k + 2 * n;
          kv.dv = k + 3 * n;
        } else {
          dkv_in_.push_back({b, std::make_unique<float[]>(2 * n)});
          k = dkv_in_.back().second.get();
          v = k + n;
        }
        op.buffers.push_back({k, KvBytes(b)});
        op.buffers.push_back({v, KvBytes(b)});
        stats_.bytes_received += 2 * KvBytes(b);
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
    for (auto& [b, data] : dkv_in_) {
      const int64_t n = Rows(b) * kv_row_;
      KvBlock& kv = kv_[b];
      for (int64_t i = 0; i < n; ++i) kv.dk[i] += data[i];
      for (int64_t i = 0; i < n; ++i) kv.dv[i] += data[n + i];
    }
    dkv_in_.clear();
    return absl::OkStatus();
  }

  void ComputeForward(int32_t r) {
    std::vector<kernels::ForwardTile> tiles;
    for (const Tile* t : tiles_by_round_[r]) {
      const Block& q = plan_.blocks[t->q_block];
      const Block& kvb = plan_.blocks[t->kv_block];
      const KvBlock& kv = kv_[t->kv_block];
      const int64_t off = local_offset_[t->q_block];
      kernels::ForwardTile f;
      f.q = in_.q + off * q_row_;
      f.k = kv.k;
      f.v = kv.v;
      f.q_rows = q.tokens();
      f.kv_rows = kvb.tokens();
      f.q_begin = q.begin;
      f.kv_begin = kvb.begin;
      f.mask = ToKernelMask(plan_.documents[q.document].mask);
      f.o = out_->o.data() + off * q_row_;
      f.lse = out_->lse.data() + off * shape_.q_heads;
      tiles.push_back(f);
      stats_.attention_flops += TileFlops(*t);
    }
    const Clock::time_point start = Clock::now();
    kernels::AttentionForward(shape_, tiles, threads_);
    stats_.attention_seconds += SecondsSince(start);
  }

  void ComputeBackward(int32_t r) {
    std::vector<kernels::BackwardTile> tiles;
    for (const Tile* t : tiles_by_round_[r]) {
      const Block& q = plan_.blocks[t->q_block];
      const Block& kvb = plan_.blocks[t->kv_block];
      const KvBlock& kv = kv_[t->kv_block];
      const int64_t off = local_offset_[t->q_block];
      kernels::BackwardTile g;
      g.q = in_.q + off * q_row_;
      g.k = kv.k;
      g.v = kv.v;
      g.d_o = in_.d_o + off * q_row_;
      g.lse = out_->lse.data() + off * shape_.q_heads;
      g.delta = delta_.data() + off * shape_.q_heads;
      g.q_rows = q.tokens();
      g.kv_rows = kvb.tokens();
      g.q_begin = q.begin;
      g.kv_begin = kvb.begin;
      g.mask = ToKernelMask(plan_.documents[q.document].mask);
      g.dq = out_->dq.data() + off * q_row_;
      g.dk = kv.dk;
      g.dv = kv.dv;
      tiles.push_back(g);
      stats_.attention_flops += kBackwardFlopsRatio * TileFlops(*t);
    }
    const Clock::time_point start = Clock::now();
    kernels::AttentionBackward(shape_, tiles, threads_);
    stats_.attention_seconds += SecondsSince(start);
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
      ComputeForward(r);
    }
    return absl::OkStatus();
  }

  absl::Status Backward() {
    delta_.assign(in_.tokens * shape_.q_heads, 0.0f);
    kernels::ComputeDelta(shape_, out_->o.data(), in_.d_o, in_.tokens, delta_.data());
    std::unique_ptr<PendingExchange> pending;
    for (int32_t r = last_round_; r >= 0; --r) {
      ComputeBackward(r);
      RETURN_IF_ERROR(Await(std::move(pending), TransferKind::kDkv, r + 1));
      if (r >= 1) {
        ASSIGN_OR_RETURN(pending, Post(TransferKind::kDkv, r));
      }
    }
    return absl::OkStatus();
  }

  Transport* transport_;
  const kernels::AttentionShape shape_;
  const int threads_;
  const Plan& plan_;
  const WorkerPlan& worker_;
  const int64_t step_;
  const LocalInputs& in_;
  LocalOutputs* out_;
  const int64_t q_row_, kv_row_;  // floats per token row

  Header header_;
  absl::flat_hash_map<int32_t, int64_t> local_offset_;  // local block -> first row
  absl::flat_hash_map<int32_t, KvBlock> kv_;            // resident blocks
  std::vector<std::vector<const Tile*>> tiles_by_round_;
  int32_t last_round_ = 0;
  std::vector<float> delta_;
  std::vector<std::pair<int32_t, Header>> peer_headers_;  // headers of the round in flight
  std::vector<std::pair<int32_t, std::unique_ptr<float[]>>> dkv_in_;
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
    : transport_(transport), shape_(shape), threads_(threads) {}

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
  StepRun run(transport_, shape_, threads_, plan, step, inputs, outputs);
  return run.Run();
}

}  // namespace fcp
