// The plan validator: checks the five invariants of DESIGN §3 on a fully materialised plan and
// returns the first violation, naming it, e.g.
//   "invariant 2 (tiles): tile (q_block 4, kv_block 1) computed by workers 0 and 3".
//
//  1. blocks: every token of every document in exactly one block; blocks do not cross documents.
//  2. tiles: every tile the masks require is computed exactly once, by one worker; no tile is
//     computed that the mask leaves empty; a worker computes only tiles of q-blocks it owns or
//     receives by kQ no later than the tile's round (placed computation, plan.h).
//  3. data: every KV block a tile needs is local or received in an earlier-or-same round; every
//     send holds data the sender has (owned, or received in an earlier round); every recv has a
//     matching send (same round, same kind, the same block ids in the same order: the receiver
//     lays out its buffer by that order) and vice versa; every remote KV block used
//     has its dK/dV partial sent back to its owner no later (in backward order) than its first use.
//     Placed computation: Q and dO leave only their owner; every q block a worker computes tiles
//     of without owning it has its partial output (kOut) and dQ (kDq) sent back to its owner and
//     its dO/LSE/delta (kDo) received from it, once each; no other block travels by those kinds.
//  4. rounds: in each round and direction a worker sends to <= 1 peer and receives from <= 1 peer,
//     per phase (plan.h: KV and Q share the forward rounds; Out, dO, dKV, dQ have their own);
//     every transfer's round is in 1..rounds.
//  5. limits: tokens per worker <= the token budget (TokenBudget under options.objective: the
//     memory cap); the plan id matches the inputs.
#ifndef FCP_SERVICE_PLANNER_VALIDATOR_H_
#define FCP_SERVICE_PLANNER_VALIDATOR_H_

#include "absl/status/status.h"
#include "service/planner/batch.h"
#include "service/planner/plan.h"
#include "service/planner/planner.h"

namespace fcp {

// `batch` must pass ValidateBatch (its error is returned otherwise). `plan` must hold every
// worker's slice (OutputSpec::AllRanks()); otherwise FailedPrecondition.
// Violations are FailedPrecondition("invariant N (...): ...").
absl::Status ValidatePlan(const Batch& batch, const PlanOptions& options, const Plan& plan);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_VALIDATOR_H_
