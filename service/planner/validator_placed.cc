// The validator's checks of computation placed away from its q block's owner (plan.h: kQ, kOut,
// kDo, kDq; validator.h: invariants 2 and 3).
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/status_macros.h"
#include "service/planner/validator_internal.h"

namespace fcp {
namespace validator_internal {
namespace {

// The q blocks worker r computes tiles of but does not own.
absl::flat_hash_set<int32_t> RemoteQBlocks(const Index& ix, int32_t r) {
  absl::flat_hash_set<int32_t> remote;
  for (const Tile& t : ix.workers[r]->tiles) {
    if (ix.block(t.q_block).owner != r) remote.insert(t.q_block);
  }
  return remote;
}

// The transfers of `kind` in `transfers` (r's sends or recvs) carry only q blocks r computes
// remotely, each once, with their owner as the peer. Returns the blocks they carry.
absl::StatusOr<absl::flat_hash_set<int32_t>> ReturnedOnce(
    const Index& ix, int32_t r, const std::vector<Transfer>& transfers, TransferKind kind,
    const absl::flat_hash_set<int32_t>& remote, bool is_send) {
  absl::flat_hash_set<int32_t> seen;
  const char* verb = is_send ? "sends" : "receives";
  for (const Transfer& t : transfers) {
    if (t.kind != kind) continue;
    const std::string name = is_send ? TransferName(r, t.peer, t) : TransferName(t.peer, r, t);
    for (int32_t b : t.blocks) {
      if (!remote.contains(b)) {
        return Violation(kData, name, ": worker ", r, " computes no tile of q_block ", b,
                         " that it does not own");
      }
      if (ix.block(b).owner != t.peer) {
        return Violation(kData, name, ": block ", b, " is owned by worker ", ix.block(b).owner);
      }
      if (!seen.insert(b).second) {
        return Violation(kData, "worker ", r, " ", verb, " the ", TransferKindName(kind),
                         " of block ", b, " twice");
      }
    }
  }
  return seen;
}

// The transfers of `kind` in `transfers` (r's) hold only blocks r owns.
absl::Status OwnedOnly(const Index& ix, int32_t r, const std::vector<Transfer>& transfers,
                       TransferKind kind, bool is_send) {
  for (const Transfer& t : transfers) {
    if (t.kind != kind) continue;
    for (int32_t b : t.blocks) {
      if (ix.block(b).owner != r) {
        return Violation(kData, is_send ? TransferName(r, t.peer, t) : TransferName(t.peer, r, t),
                         ": block ", b, " is owned by worker ", ix.block(b).owner, ", not ", r);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckQResidency(const Index& ix, int32_t r, const Arrivals& q_arrivals) {
  for (const Tile& t : ix.workers[r]->tiles) {
    const int32_t owner = ix.block(t.q_block).owner;
    if (owner == r) continue;
    auto it = q_arrivals.find(t.q_block);
    if (it == q_arrivals.end()) {
      return Violation(kTiles, "worker ", r, " computes ", TileName(t), " but q_block ", t.q_block,
                       " is owned by worker ", owner, " and never received by kQ");
    }
    if (it->second > t.round) {
      return Violation(kTiles, "worker ", r, " ", TileName(t), " in round ", t.round,
                       " uses q_block ", t.q_block, ", which arrives by kQ in round ", it->second);
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPlacedReturns(const Index& ix, int32_t r, const Arrivals& q_arrivals) {
  const WorkerPlan& w = *ix.workers[r];
  for (const auto& [b, round] : q_arrivals) {
    if (ix.block(b).owner == r) {
      return Violation(kData, "worker ", r, " receives the Q of block ", b, ", which it owns");
    }
  }
  RETURN_IF_ERROR(OwnedOnly(ix, r, w.sends, TransferKind::kQ, /*is_send=*/true));
  RETURN_IF_ERROR(OwnedOnly(ix, r, w.sends, TransferKind::kDo, /*is_send=*/true));
  RETURN_IF_ERROR(OwnedOnly(ix, r, w.recvs, TransferKind::kOut, /*is_send=*/false));
  RETURN_IF_ERROR(OwnedOnly(ix, r, w.recvs, TransferKind::kDq, /*is_send=*/false));
  const absl::flat_hash_set<int32_t> remote = RemoteQBlocks(ix, r);
  struct Need {
    TransferKind kind;
    bool is_send;
    const char* what;
  };
  for (const Need& need : {Need{TransferKind::kOut, true, "sends no Out of it to"},
                           Need{TransferKind::kDo, false, "receives no dO of it from"},
                           Need{TransferKind::kDq, true, "sends no dQ of it to"}}) {
    absl::StatusOr<absl::flat_hash_set<int32_t>> carried =
        ReturnedOnce(ix, r, need.is_send ? w.sends : w.recvs, need.kind, remote, need.is_send);
    if (!carried.ok()) return carried.status();
    for (const Tile& t : w.tiles) {  // in plan order, so the first omission is named
      if (remote.contains(t.q_block) && !carried->contains(t.q_block)) {
        return Violation(kData, "worker ", r, " computes tiles of q_block ", t.q_block, " but ",
                         need.what, " its owner, worker ", ix.block(t.q_block).owner);
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace validator_internal
}  // namespace fcp
