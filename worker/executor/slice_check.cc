#include "worker/executor/slice_check.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "worker/executor/step_types.h"

namespace fcp {
namespace {

template <typename... Parts>
absl::Status Refuse(int32_t rank, const Parts&... parts) {
  return absl::FailedPreconditionError(absl::StrCat("worker ", rank, ": ", parts...));
}

std::string Describe(const Transfer& t, bool send) {
  return absl::StrCat(TransferKindName(t.kind), send ? " send to " : " recv from ", "worker ",
                      t.peer, " in round ", t.round);
}

}  // namespace

absl::Status CheckSlice(const Plan& plan, int32_t rank, int32_t world_size,
                        absl::string_view expected_plan_id, int64_t local_tokens) {
  if (!expected_plan_id.empty() && plan.plan_id != expected_plan_id) {
    return absl::FailedPreconditionError(absl::StrCat("plan id mismatch: the slice is of plan ",
                                                      plan.plan_id, ", this rank expects plan ",
                                                      expected_plan_id));
  }
  if (static_cast<int32_t>(plan.costs.size()) != world_size) {
    return Refuse(rank, "the plan is for ", plan.costs.size(), " workers, the job has ",
                  world_size);
  }
  const WorkerPlan* w = plan.FindWorker(rank);
  if (w == nullptr) return Refuse(rank, "the plan holds no slice for this rank");
  const int32_t num_blocks = static_cast<int32_t>(plan.blocks.size());
  auto block_ok = [&](int32_t b) { return b >= 0 && b < num_blocks; };

  absl::flat_hash_set<int32_t> local;
  int64_t tokens = 0;
  for (int32_t b : w->blocks) {
    if (!block_ok(b)) return Refuse(rank, "block id ", b, " out of range [0, ", num_blocks, ")");
    const Block& block = plan.blocks[b];
    if (block.owner != rank) return Refuse(rank, "holds block ", b, " owned by ", block.owner);
    if (block.document < 0 || block.document >= static_cast<int32_t>(plan.documents.size()) ||
        block.begin < 0 || block.end <= block.begin ||
        block.end > plan.documents[block.document].length) {
      return Refuse(rank, "block ", b, " is not a token range of a document of the plan");
    }
    if (!local.insert(b).second) return Refuse(rank, "lists block ", b, " twice");
    tokens += block.tokens();
  }
  if (tokens != local_tokens) {
    return Refuse(rank, "the slice holds ", tokens, " tokens, the input buffers ", local_tokens);
  }

  // Transfers: peers and ids in range; KV and Q arrivals by block.
  absl::flat_hash_map<int32_t, int32_t> arrival;    // block -> KV recv round
  absl::flat_hash_map<int32_t, int32_t> q_arrival;  // block -> Q recv round (placed computation)
  for (bool send : {false, true}) {
    for (const Transfer& t : send ? w->sends : w->recvs) {
      if (t.peer < 0 || t.peer >= world_size || t.peer == rank || t.round < 1 ||
          t.round >= kMaxRounds) {
        return Refuse(rank, Describe(t, send), ": bad peer or round");
      }
      for (int32_t b : t.blocks) {
        if (!block_ok(b)) return Refuse(rank, Describe(t, send), ": block id ", b, " out of range");
        const bool owned = plan.blocks[b].owner == rank;
        if ((t.kind == TransferKind::kKv || t.kind == TransferKind::kQ) && !send) {
          auto& into = t.kind == TransferKind::kKv ? arrival : q_arrival;
          if (owned || !into.try_emplace(b, t.round).second) {
            return Refuse(rank, Describe(t, send), ": block ", b, " is local or received twice");
          }
        } else if (!send && !owned && t.kind != TransferKind::kDo) {
          return Refuse(rank, Describe(t, send), ": partial of block ", b,
                        " which it does not own");
        }
      }
    }
  }
  auto resident_by = [&](int32_t b, int32_t round) {
    if (local.contains(b)) return true;
    auto it = arrival.find(b);
    return it != arrival.end() && it->second <= round;
  };
  // What this rank may send: KV it holds; Q and dO of blocks it owns; partials of blocks it
  // received (dKV of KV, Out and dQ of Q), to their owner.
  for (bool send : {true, false}) {
    for (const Transfer& t : send ? w->sends : w->recvs) {
      if (!send && t.kind != TransferKind::kDo) continue;
      for (int32_t b : t.blocks) {
        const bool to_owner = plan.blocks[b].owner == t.peer;
        bool ok;
        switch (t.kind) {
          case TransferKind::kKv:
            ok = resident_by(b, t.round - 1);
            break;
          case TransferKind::kDkv:
            ok = arrival.contains(b) && to_owner;
            break;
          case TransferKind::kQ:
            ok = local.contains(b);
            break;
          case TransferKind::kDo:
            ok = send ? local.contains(b) : q_arrival.contains(b) && to_owner;
            break;
          default:  // Out, dQ: of received q blocks, to their owner
            ok = q_arrival.contains(b) && to_owner;
        }
        if (!ok) {
          return Refuse(rank, Describe(t, send), ": block ", b, " is not this rank's to ",
                        send ? "send" : "receive");
        }
      }
    }
  }
  for (size_t i = 0; i < w->tiles.size(); ++i) {
    const Tile& t = w->tiles[i];
    const std::string name =
        absl::StrCat("tile ", i, " (q_block ", t.q_block, ", kv_block ", t.kv_block, ")");
    if (!block_ok(t.q_block)) return Refuse(rank, name, ": q_block out of range");
    if (!local.contains(t.q_block)) {
      auto it = q_arrival.find(t.q_block);
      if (it == q_arrival.end() || it->second > t.round) {
        return Refuse(rank, name, ": q_block is neither local nor received by round ", t.round);
      }
    }
    if (!block_ok(t.kv_block)) return Refuse(rank, name, ": kv_block out of range");
    if (t.round < 0 || t.round >= kMaxRounds) return Refuse(rank, name, ": round out of range");
    if (plan.blocks[t.kv_block].document != plan.blocks[t.q_block].document) {
      return Refuse(rank, name, ": blocks of different documents");
    }
    if (!resident_by(t.kv_block, t.round)) {
      return Refuse(rank, name, ": kv_block is neither local nor received by round ", t.round);
    }
    if (i > 0 && t.round < w->tiles[i - 1].round) return Refuse(rank, name, ": rounds decrease");
  }
  return absl::OkStatus();
}

}  // namespace fcp
