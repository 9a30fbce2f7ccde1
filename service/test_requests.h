// Deterministic planning requests for tests: a batch of `workers` × `tokens_per_worker` tokens
// cut into documents of seeded random lengths (a few long ones, many short ones, like real data).
//
//   fcp::v1::PlanRequest request = fcp::TestRequest(/*workers=*/8, /*seed=*/1);
//   request.add_ranks(3);
#ifndef FCP_SERVICE_TEST_REQUESTS_H_
#define FCP_SERVICE_TEST_REQUESTS_H_

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>

#include "fcp/v1/plan.pb.h"
#include "proto/plan_convert.h"
#include "service/planner/batch.h"

namespace fcp {

inline Batch TestBatch(int32_t workers, uint64_t seed, int64_t tokens_per_worker = 4096) {
  Batch batch;
  batch.topology.num_workers = workers;
  batch.topology.workers_per_node = 4;
  std::mt19937_64 rng(seed);
  int64_t left = workers * tokens_per_worker;
  while (left > 0) {
    // One document in eight is long (up to 4 workers' worth), the rest short.
    const int64_t max = rng() % 8 == 0 ? 4 * tokens_per_worker : 1024;
    const int64_t length = std::min<int64_t>(left, 16 + static_cast<int64_t>(rng() % max));
    batch.documents.push_back({length, Mask::Causal()});
    left -= length;
  }
  return batch;
}

inline v1::PlanRequest TestRequest(int32_t workers, uint64_t seed, int64_t tokens_per_worker = 4096,
                                   const std::string& job_id = "test-job", int64_t step = 0) {
  v1::PlanRequest request;
  request.set_job_id(job_id);
  request.set_step(step);
  BatchToProto(TestBatch(workers, seed, tokens_per_worker), &request);
  return request;
}

}  // namespace fcp

#endif  // FCP_SERVICE_TEST_REQUESTS_H_
