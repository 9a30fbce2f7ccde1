#include "service/planner/validator.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "service/planner/mask_math.h"
#include "service/planner/validator_internal.h"

namespace fcp {
namespace validator_internal {
namespace {

absl::Status CheckSlices(Index& ix) {
  ix.num_workers = ix.batch.topology.num_workers;
  if (ix.num_workers < 1) {
    return absl::FailedPreconditionError("topology.num_workers must be >= 1 to validate a plan");
  }
  const std::vector<Document>& docs = ix.batch.documents;
  if (!std::equal(docs.begin(), docs.end(), ix.plan.documents.begin(), ix.plan.documents.end(),
                  [](const Document& a, const Document& b) {
                    return a.length == b.length && a.mask == b.mask;
                  })) {
    return absl::FailedPreconditionError("plan.documents differ from the batch's documents");
  }
  ix.workers.assign(ix.num_workers, nullptr);
  for (const WorkerPlan& w : ix.plan.workers) {
    if (w.rank < 0 || w.rank >= ix.num_workers || ix.workers[w.rank] != nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("plan has an out-of-range or second slice for rank ", w.rank));
    }
    ix.workers[w.rank] = &w;
  }
  for (int32_t r = 0; r < ix.num_workers; ++r) {
    if (ix.workers[r] == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat("plan lacks the slice of rank ", r,
                                                        "; validation needs every worker's slice"));
    }
  }
  return absl::OkStatus();
}

// Invariant 1: every block is a valid range of one document, and per document they tile it.
absl::Status CheckBlocks(Index& ix) {
  const int64_t num_docs = static_cast<int64_t>(ix.batch.documents.size());
  ix.doc_blocks.assign(num_docs, {});
  ix.position.assign(ix.num_blocks(), 0);
  for (int32_t id = 0; id < ix.num_blocks(); ++id) {
    const Block& b = ix.block(id);
    if (b.document < 0 || b.document >= num_docs) {
      return Violation(kBlocks, "block ", id, " refers to document ", b.document, " of ", num_docs);
    }
    const int64_t length = ix.batch.documents[b.document].length;
    if (b.begin < 0 || b.begin >= b.end) {
      return Violation(kBlocks, "block ", id, " of document ", b.document, " has empty range [",
                       b.begin, ", ", b.end, ")");
    }
    if (b.end > length) {
      return Violation(kBlocks, "block ", id, " [", b.begin, ", ", b.end,
                       ") crosses the end of document ", b.document, " (length ", length, ")");
    }
    if (b.owner < 0 || b.owner >= ix.num_workers) {
      return Violation(kBlocks, "block ", id, " has owner ", b.owner, ", outside [0, ",
                       ix.num_workers, ")");
    }
    ix.doc_blocks[b.document].push_back(id);
  }
  for (int32_t d = 0; d < num_docs; ++d) {
    std::vector<int32_t>& ids = ix.doc_blocks[d];
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return std::make_pair(ix.block(a).begin, a) < std::make_pair(ix.block(b).begin, b);
    });
    int64_t covered = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      const Block& b = ix.block(ids[i]);
      if (b.begin > covered) {
        return Violation(kBlocks, "document ", d, ": tokens [", covered, ", ", b.begin,
                         ") are in no block");
      }
      if (b.begin < covered) {
        return Violation(kBlocks, "document ", d, ": blocks ", ids[i - 1], " and ", ids[i],
                         " overlap at tokens [", b.begin, ", ", std::min(covered, b.end), ")");
      }
      covered = b.end;
      ix.position[ids[i]] = static_cast<int32_t>(i);
    }
    const int64_t length = ix.batch.documents[d].length;
    if (covered < length) {
      return Violation(kBlocks, "document ", d, ": tokens [", covered, ", ", length,
                       ") are in no block");
    }
  }
  return absl::OkStatus();
}

// Invariant 1: each worker lists exactly the blocks it owns, once each.
absl::Status CheckBlockLists(const Index& ix) {
  std::vector<bool> listed(ix.num_blocks(), false);
  for (int32_t r = 0; r < ix.num_workers; ++r) {
    for (int32_t id : ix.workers[r]->blocks) {
      if (!ix.ValidBlock(id)) {
        return Violation(kBlocks, "worker ", r, " lists block ", id, " of ", ix.num_blocks());
      }
      if (ix.block(id).owner != r) {
        return Violation(kBlocks, "worker ", r, " lists block ", id, ", owned by worker ",
                         ix.block(id).owner);
      }
      if (listed[id]) return Violation(kBlocks, "worker ", r, " lists block ", id, " twice");
      listed[id] = true;
    }
  }
  for (int32_t id = 0; id < ix.num_blocks(); ++id) {
    if (!listed[id]) {
      return Violation(kBlocks, "block ", id, " is missing from the blocks of its owner, worker ",
                       ix.block(id).owner);
    }
  }
  return absl::OkStatus();
}

// Invariant 2, per worker: valid same-document tiles, in round order (whose q blocks it holds:
// CheckQResidency).
absl::Status CheckTileLists(const Index& ix) {
  for (int32_t r = 0; r < ix.num_workers; ++r) {
    const std::vector<Tile>& tiles = ix.workers[r]->tiles;
    for (size_t i = 0; i < tiles.size(); ++i) {
      const Tile& t = tiles[i];
      if (!ix.ValidBlock(t.q_block) || !ix.ValidBlock(t.kv_block)) {
        return Violation(kTiles, "worker ", r, " ", TileName(t), " refers to a block outside [0, ",
                         ix.num_blocks(), ")");
      }
      if (ix.block(t.q_block).document != ix.block(t.kv_block).document) {
        return Violation(kTiles, "worker ", r, " ", TileName(t), " pairs documents ",
                         ix.block(t.q_block).document, " and ", ix.block(t.kv_block).document);
      }
      if (i > 0 && t.round < tiles[i - 1].round) {
        return Violation(kTiles, "worker ", r, " ", TileName(t), " in round ", t.round,
                         " follows a tile of round ", tiles[i - 1].round,
                         "; tiles must be in non-decreasing round order");
      }
    }
  }
  return absl::OkStatus();
}

// Invariant 2, per q-block: its computed kv-blocks are exactly the required ones, once each.
// For every mask the keys a range of queries may see form one interval containing the queries
// themselves, so the required kv-blocks are a run of consecutive blocks around the diagonal.
absl::Status CheckTileCoverage(const Index& ix) {
  // Each q-block's kv-blocks as (position in its document, computing worker), the owner's first.
  std::vector<std::vector<std::pair<int32_t, int32_t>>> computed(ix.num_blocks());
  for (const WorkerPlan* w : ix.workers) {
    for (const Tile& t : w->tiles) {
      const int32_t order = ix.block(t.q_block).owner == w->rank ? -1 : w->rank;
      computed[t.q_block].emplace_back(ix.position[t.kv_block], order);
    }
  }
  std::vector<int32_t> listed;
  for (int32_t q = 0; q < ix.num_blocks(); ++q) {
    const Block& qb = ix.block(q);
    const std::vector<int32_t>& ids = ix.doc_blocks[qb.document];
    std::vector<std::pair<int32_t, int32_t>>& tiles = computed[q];
    std::sort(tiles.begin(), tiles.end());
    listed.clear();
    for (size_t i = 0; i < tiles.size(); ++i) {
      const Tile t{q, ids[tiles[i].first], 0};
      const int32_t worker = tiles[i].second < 0 ? qb.owner : tiles[i].second;
      if (i > 0 && tiles[i].first == tiles[i - 1].first) {
        const int32_t first = tiles[i - 1].second < 0 ? qb.owner : tiles[i - 1].second;
        if (first == worker) {
          return Violation(kTiles, TileName(t), " computed twice by worker ", worker);
        }
        return Violation(kTiles, TileName(t), " computed by workers ", first, " and ", worker);
      }
      if (!ix.Required(q, t.kv_block)) {
        return Violation(
            kTiles, TileName(t), " on worker ", worker, " has no allowed pairs under the mask ",
            MaskToString(ix.batch.documents[qb.document].mask), " of document ", qb.document);
      }
      listed.push_back(tiles[i].first);
    }
    // Listed positions are now distinct and inside the required run [lo, hi): compare them.
    int32_t lo = ix.position[q];
    int32_t hi = lo;
    if (ix.Required(q, q)) {
      while (lo > 0 && ix.Required(q, ids[lo - 1])) --lo;
      while (hi < static_cast<int32_t>(ids.size()) && ix.Required(q, ids[hi])) ++hi;
    }
    for (int32_t p = lo; p < hi; ++p) {
      const size_t i = p - lo;
      if (i >= listed.size() || listed[i] != p) {
        return Violation(kTiles, TileName(Tile{q, ids[p], 0}), " of document ", qb.document,
                         " is required by its mask but computed by no worker");
      }
    }
  }
  return absl::OkStatus();
}

// Invariant 3 preliminaries: a transfer names another worker and distinct valid blocks.
absl::Status CheckTransferShape(const Index& ix, int32_t r, const Transfer& t, bool is_send) {
  if (t.peer < 0 || t.peer >= ix.num_workers || t.peer == r) {
    return Violation(kData, "worker ", r, " has a ", is_send ? "send" : "recv", " in round ",
                     t.round, " with peer ", t.peer);
  }
  const int32_t src = is_send ? r : t.peer;
  const int32_t dst = is_send ? t.peer : r;
  if (t.blocks.empty()) return Violation(kData, TransferName(src, dst, t), " carries no blocks");
  std::vector<int32_t> sorted = t.blocks;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (!ix.ValidBlock(sorted[i])) {
      return Violation(kData, TransferName(src, dst, t), " names block ", sorted[i], " of ",
                       ix.num_blocks());
    }
    if (i > 0 && sorted[i] == sorted[i - 1]) {
      return Violation(kData, TransferName(src, dst, t), " names block ", sorted[i], " twice");
    }
  }
  return absl::OkStatus();
}

// The round from which worker r holds block b: 0 if it owns it, else its first KV recv, or kNever.
int32_t HeldFrom(const Index& ix, int32_t r, const Arrivals& arrivals, int32_t b) {
  if (ix.block(b).owner == r) return 0;
  auto it = arrivals.find(b);
  return it == arrivals.end() ? kNever : it->second;
}

// Invariant 3, per worker: KV is resident before a tile uses it or a KV send forwards it (and,
// invariant 2, a tile's q block: CheckQResidency).
absl::Status CheckResidency(const Index& ix, int32_t r, Arrivals* arrivals, Arrivals* q_arrivals) {
  const WorkerPlan& w = *ix.workers[r];
  for (const Transfer& t : w.recvs) {
    RETURN_IF_ERROR(CheckTransferShape(ix, r, t, /*is_send=*/false));
    if (t.kind != TransferKind::kKv && t.kind != TransferKind::kQ) continue;
    for (int32_t b : t.blocks) {
      Arrivals& into = t.kind == TransferKind::kKv ? *arrivals : *q_arrivals;
      auto [it, inserted] = into.try_emplace(b, t.round);
      if (!inserted) it->second = std::min(it->second, t.round);
    }
  }
  RETURN_IF_ERROR(CheckQResidency(ix, r, *q_arrivals));
  for (const Tile& t : w.tiles) {
    if (t.round < 0 || t.round > ix.plan.summary.rounds) {
      return Violation(kData, "worker ", r, " ", TileName(t), " has round ", t.round,
                       ", outside rounds 0..", ix.plan.summary.rounds);
    }
    const int32_t held = HeldFrom(ix, r, *arrivals, t.kv_block);
    if (held == kNever) {
      return Violation(kData, "worker ", r, " ", TileName(t), " in round ", t.round,
                       " needs kv_block ", t.kv_block, ", which it never receives");
    }
    if (held > t.round) {
      return Violation(kData, "worker ", r, " ", TileName(t), " in round ", t.round,
                       " uses kv_block ", t.kv_block, ", which arrives in round ", held);
    }
  }
  for (const Transfer& t : w.sends) {
    RETURN_IF_ERROR(CheckTransferShape(ix, r, t, /*is_send=*/true));
    if (t.kind != TransferKind::kKv) continue;
    for (int32_t b : t.blocks) {
      const int32_t held = HeldFrom(ix, r, *arrivals, b);
      if (held == kNever || (held >= t.round && ix.block(b).owner != r)) {
        return Violation(
            kData, TransferName(r, t.peer, t), ": worker ", r, " does not hold block ", b, " yet (",
            held == kNever ? "never received" : absl::StrCat("received in round ", held), ")");
      }
    }
  }
  return absl::OkStatus();
}

// Invariant 3, per worker: every remote block its tiles use has its dK/dV partial sent back to its
// owner exactly once, in a round no later than its first use (backward runs rounds in reverse).
absl::Status CheckReturns(const Index& ix, int32_t r, const Arrivals& arrivals) {
  const WorkerPlan& w = *ix.workers[r];
  absl::flat_hash_map<int32_t, int32_t> returned;  // remote block -> dKV send round
  for (const Transfer& t : w.sends) {
    if (t.kind != TransferKind::kDkv) continue;
    const std::string name = TransferName(r, t.peer, t);
    if (t.round < 1) return Violation(kData, name, ": dKV rounds start at 1");
    for (int32_t b : t.blocks) {
      if (ix.block(b).owner == r || !arrivals.contains(b)) {
        return Violation(kData, name, ": worker ", r, " never received block ", b, " as KV");
      }
      if (ix.block(b).owner != t.peer) {
        return Violation(kData, name, ": block ", b, " is owned by worker ", ix.block(b).owner);
      }
      if (!returned.try_emplace(b, t.round).second) {
        return Violation(kData, "worker ", r, " sends the dKV of block ", b, " twice");
      }
    }
  }
  // Tiles are in round order, so the first tile failing a check below is a first use.
  for (const Tile& t : w.tiles) {
    if (ix.block(t.kv_block).owner == r) continue;
    auto it = returned.find(t.kv_block);
    if (it == returned.end()) {
      return Violation(kData, "worker ", r, " uses kv_block ", t.kv_block,
                       " but sends no dKV of it to its owner, worker ", ix.block(t.kv_block).owner);
    }
    if (it->second > t.round) {
      return Violation(kData, "worker ", r, " sends the dKV of kv_block ", t.kv_block, " in round ",
                       it->second, ", after its first use in round ", t.round);
    }
  }
  return absl::OkStatus();
}

// Invariant 3: every send has an identical recv at its peer and vice versa.
struct Edge {
  int32_t src;
  int32_t dst;
  const Transfer* transfer;
  auto Key() const { return std::tie(src, dst, transfer->round, transfer->kind, transfer->blocks); }
  bool operator<(const Edge& o) const { return Key() < o.Key(); }
  bool operator==(const Edge& o) const { return Key() == o.Key(); }
};

absl::Status CheckMatching(const Index& ix) {
  std::vector<Edge> sends;
  std::vector<Edge> recvs;
  for (int32_t r = 0; r < ix.num_workers; ++r) {
    for (const Transfer& t : ix.workers[r]->sends) sends.push_back({r, t.peer, &t});
    for (const Transfer& t : ix.workers[r]->recvs) recvs.push_back({t.peer, r, &t});
  }
  std::sort(sends.begin(), sends.end());
  std::sort(recvs.begin(), recvs.end());
  const auto [send, recv] = std::mismatch(sends.begin(), sends.end(), recvs.begin(), recvs.end());
  if (send != sends.end() && (recv == recvs.end() || *send < *recv)) {
    return Violation(kData, TransferName(send->src, send->dst, *send->transfer),
                     " is sent but has no matching recv at worker ", send->dst);
  }
  if (recv != recvs.end()) {
    return Violation(kData, TransferName(recv->src, recv->dst, *recv->transfer),
                     " is received but has no matching send at worker ", recv->src);
  }
  return absl::OkStatus();
}

// The phase a transfer kind runs in (plan.h): KV and Q share the forward rounds.
int Phase(TransferKind kind) { return kind == TransferKind::kQ ? 0 : static_cast<int>(kind); }

// Invariant 4: transfers lie in rounds 1..R, at most one peer per (worker, direction, phase,
// round) and one transfer per (worker, direction, kind, round).
absl::Status CheckDirection(const Index& ix, int32_t r, const std::vector<Transfer>& transfers,
                            const char* verb) {
  const int32_t rounds = ix.plan.summary.rounds;
  std::vector<std::tuple<int, int32_t, int32_t, TransferKind>> slots;  // (phase, round, peer, kind)
  for (const Transfer& t : transfers) {
    if (t.round < 1 || t.round > rounds) {
      return Violation(kRounds, "worker ", r, " ", verb, " ", TransferKindName(t.kind),
                       " in round ", t.round, ", outside rounds 1..", rounds);
    }
    slots.emplace_back(Phase(t.kind), t.round, t.peer, t.kind);
  }
  std::sort(slots.begin(), slots.end());
  for (size_t i = 1; i < slots.size(); ++i) {
    const auto& [phase, round, peer, kind] = slots[i];
    const auto& [prev_phase, prev_round, prev_peer, prev_kind] = slots[i - 1];
    if (phase != prev_phase || round != prev_round || (peer == prev_peer && kind != prev_kind)) {
      continue;
    }
    if (kind == prev_kind) {
      return Violation(kRounds, "worker ", r, " ", verb, " ", TransferKindName(kind), " in round ",
                       round, " twice (workers ", prev_peer, " and ", peer,
                       "); at most one peer a round");
    }
    return Violation(kRounds, "worker ", r, " ", verb, " ", TransferKindName(prev_kind), " and ",
                     TransferKindName(kind), " in round ", round, " to workers ", prev_peer,
                     " and ", peer, "; at most one peer a round");
  }
  return absl::OkStatus();
}

absl::Status CheckRounds(const Index& ix) {
  for (int32_t r = 0; r < ix.num_workers; ++r) {
    const WorkerPlan& w = *ix.workers[r];
    RETURN_IF_ERROR(CheckDirection(ix, r, w.sends, "sends"));
    RETURN_IF_ERROR(CheckDirection(ix, r, w.recvs, "receives"));
  }
  return absl::OkStatus();
}

// Invariant 5: the token budget (the memory cap) and plan id.
absl::Status CheckLimits(const Index& ix, const PlanOptions& options) {
  const int64_t cap = TokenBudget(ix.batch, options.objective);
  if (cap > 0) {
    std::vector<int64_t> tokens(ix.num_workers, 0);
    for (const Block& b : ix.plan.blocks) tokens[b.owner] += b.tokens();
    for (int32_t r = 0; r < ix.num_workers; ++r) {
      if (tokens[r] > cap) {
        return Violation(kLimits, "worker ", r, " holds ", tokens[r],
                         " tokens, over the token budget of ", cap);
      }
    }
  }
  const std::string expected = ComputePlanId(ix.batch, options);
  if (ix.plan.plan_id != expected) {
    return Violation(kLimits, "plan id '", ix.plan.plan_id, "' does not match the inputs' id '",
                     expected, "'");
  }
  return absl::OkStatus();
}

absl::Status ValidateAll(const Batch& batch, const PlanOptions& options, const Plan& plan) {
  RETURN_IF_ERROR(ValidateBatch(batch));
  Index ix(batch, plan);
  RETURN_IF_ERROR(CheckSlices(ix));
  RETURN_IF_ERROR(CheckBlocks(ix));
  RETURN_IF_ERROR(CheckBlockLists(ix));
  RETURN_IF_ERROR(CheckTileLists(ix));
  RETURN_IF_ERROR(CheckTileCoverage(ix));
  for (int32_t r = 0; r < ix.num_workers; ++r) {
    Arrivals arrivals, q_arrivals;
    RETURN_IF_ERROR(CheckResidency(ix, r, &arrivals, &q_arrivals));
    RETURN_IF_ERROR(CheckReturns(ix, r, arrivals));
    RETURN_IF_ERROR(CheckPlacedReturns(ix, r, q_arrivals));
  }
  RETURN_IF_ERROR(CheckMatching(ix));
  RETURN_IF_ERROR(CheckRounds(ix));
  return CheckLimits(ix, options);
}

}  // namespace
}  // namespace validator_internal

absl::Status ValidatePlan(const Batch& batch, const PlanOptions& options, const Plan& plan) {
  return validator_internal::ValidateAll(batch, options, plan);
}

}  // namespace fcp
