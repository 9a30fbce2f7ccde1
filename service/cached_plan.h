// CachedPlan: one planned batch as the coordinator keeps it: the whole plan (every worker's slice)
// and its protobuf wire encoding, in pieces that any rank's PlanResponse is assembled from without
// re-encoding the plan:
//
//   PlanResponse = [plan: tag, length] [common part] [worker field of rank r1] [of r2]...
//   [cache_hit]
//                                       ^ encoded once     ^ encoded on first request for that rank
//
// The common part is the encoded v1::Plan without its workers (documents, blocks, costs,
// summary); each worker field is the encoding of one `Plan.workers` entry (tag + length +
// v1::WorkerPlan). Protobuf parsers accept fields in any order and concatenate repeated fields, so
// the pieces parse as exactly the v1::PlanResponse that PlanToProto would have built for those
// ranks.
//
//   auto cached = std::make_shared<const fcp::CachedPlan>(*fcp::PreparePlan(batch, options));
//   fcp::EncodedResponse response = cached->EncodeResponse({3}, /*cache_hit=*/true);
//   // response.pieces point into `cached`: keep it alive while they are used.
//
// Immutable after construction except for the lazily encoded worker fields, which are encoded
// once under absl::call_once: all methods are thread-safe.
#ifndef FCP_SERVICE_CACHED_PLAN_H_
#define FCP_SERVICE_CACHED_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "service/planner/plan.h"
#include "service/planner/planner.h"

namespace fcp {

// The wire encoding of one v1::PlanResponse as a list of byte ranges to send in order.
struct EncodedResponse {
  std::string head;                       // PlanResponse.plan's tag and length
  std::vector<absl::string_view> pieces;  // common part, then one worker field per rank
  std::string tail;  // PlanResponse.cache_hit, if true; the plan's calibration, if any

  size_t size() const;
  std::string Flatten() const;  // the contiguous encoding (tests, small messages)
};

class CachedPlan {
 public:
  // `plan` must hold every worker's slice, in rank order (MakePlan with OutputSpec::AllRanks()).
  explicit CachedPlan(Plan plan);
  // Slices are made on first request for a rank, from the prepared plan (the coordinator's path:
  // planning costs the summary only).
  // `response_fields`: encoded PlanResponse fields every reply carries after the plan (the
  // calibration it was planned with).
  explicit CachedPlan(std::shared_ptr<const PreparedPlan> prepared,
                      std::string response_fields = std::string());

  CachedPlan(const CachedPlan&) = delete;
  CachedPlan& operator=(const CachedPlan&) = delete;

  // The plan; its `workers` are empty when built from a PreparedPlan.
  const Plan& plan() const { return prepared_ ? prepared_->plan() : plan_; }
  const std::string& plan_id() const { return plan().plan_id; }
  int32_t num_workers() const { return num_workers_; }

  // The response for `ranks` (each in [0, num_workers()), ascending, no duplicates); empty means
  // every rank.
  EncodedResponse EncodeResponse(absl::Span<const int32_t> ranks, bool cache_hit) const;

  // What this entry costs a cache, in bytes: the plan in memory plus its encoding, including the
  // worker fields not encoded yet (estimated from their sizes in memory).
  size_t charge_bytes() const { return charge_bytes_; }

 private:
  absl::string_view WorkerField(int32_t rank) const;
  void EncodeCommon(const Plan& plan);

  std::shared_ptr<const PreparedPlan> prepared_;  // set: slices come from here
  Plan plan_;                                     // otherwise: the full plan
  std::string response_fields_;
  int32_t num_workers_ = 0;
  std::string common_;  // v1::Plan without workers
  // worker_fields_[r]: encoded on first use, guarded by worker_once_[r].
  mutable std::vector<std::string> worker_fields_;
  std::unique_ptr<absl::once_flag[]> worker_once_;
  size_t charge_bytes_ = 0;
};

}  // namespace fcp

#endif  // FCP_SERVICE_CACHED_PLAN_H_
