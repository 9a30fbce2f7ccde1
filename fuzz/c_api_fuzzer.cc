// Fuzzes the C API (fcp/c_api.h) with a local-only client (no coordinator), as an FFI caller drives
// it: the first byte picks the entry point, the rest is its input.
//   0: fcp_client_plan_request with the bytes as a serialized fcp.v1.PlanRequest;
//   1: fcp_client_plan with an fcp_batch decoded from the bytes (lengths, workers, ranks,
//      strategy, heads);
// then every accessor of the plan returned, including indices past the end. What is under test is
// the C boundary (conversion, status codes, the accessors' contracts), not the planner at scale
// (plan_request_fuzzer covers it up to 16 ranks and 65,536 tokens): requests that would plan more
// than kMaxWorkers ranks or kMaxTokens tokens are skipped (the client plans locally, with no
// coordinator limits in front), and in mode 0 `auto`'s time budget is 1 ms. Mode 1 cannot set a
// budget (fcp_batch has none), so its `auto` plans with the default one and tries every strategy
// that can still win; naming each strategy directly keeps most executions to one strategy.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "client/include/fcp/c_api.h"
#include "fcp/v1/plan.pb.h"

namespace {

constexpr int32_t kMaxWorkers = 8;
constexpr int64_t kMaxTokens = 1 << 14;
constexpr size_t kMaxDocuments = 64;

fcp_client* LocalClient() {
  static fcp_client* client = [] {
    fcp_client_options options;
    fcp_client_options_init(&options);  // target NULL: plan locally only
    fcp_client* c = nullptr;
    if (fcp_client_new(&options, &c, nullptr) != FCP_OK) std::abort();
    return c;
  }();
  return client;
}

// Reads the bytes in order; zeros once they run out.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T Take() {
    T value{};
    const size_t n = std::min(sizeof(T), size_ - pos_);
    std::memcpy(&value, data_ + pos_, n);
    pos_ += n;
    return value;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void Inspect(const fcp_plan* plan) {
  if (fcp_plan_id(plan) == nullptr || fcp_plan_strategy(plan) == nullptr) std::abort();
  (void)fcp_plan_cache_hit(plan);
  (void)fcp_plan_source_of(plan);
  (void)fcp_plan_predicted_step_ms(plan);
  const size_t blocks = fcp_plan_num_blocks(plan);
  fcp_block block;
  for (size_t i = 0; i <= blocks; ++i) {
    const int status = fcp_plan_block(plan, i, &block);
    if ((status == FCP_OK) != (i < blocks)) std::abort();
  }
  const size_t workers = fcp_plan_num_workers(plan);
  for (size_t w = 0; w <= workers; ++w) {
    (void)fcp_plan_worker_rank(plan, w);
    size_t count = 0;
    const int32_t* ids = fcp_plan_worker_blocks(plan, w, &count);
    if (w >= workers && ids != nullptr) std::abort();  // past the end: NULL
    for (size_t i = 0; ids != nullptr && i < count; ++i) {
      if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= blocks) std::abort();
    }
  }
  size_t bytes = 0;
  (void)fcp_plan_serialized(plan, &bytes);
  if (fcp_plan_json(plan) == nullptr) std::abort();
}

int PlanRequestBytes(const uint8_t* data, size_t size, fcp_plan** plan, fcp_error* error) {
  fcp::v1::PlanRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) {
    // Unparseable bytes go in as they are: the C API must refuse them cleanly.
    return fcp_client_plan_request(LocalClient(), data, size, plan, error);
  }
  if (request.topology().num_workers() > kMaxWorkers ||
      static_cast<size_t>(request.documents_size()) > kMaxDocuments) {
    return FCP_INVALID_ARGUMENT;
  }
  int64_t tokens = 0;
  for (const fcp::v1::Document& document : request.documents()) {
    if (document.length() > kMaxTokens) return FCP_INVALID_ARGUMENT;
    tokens += document.length() > 0 ? document.length() : 0;
  }
  if (tokens > kMaxTokens) return FCP_INVALID_ARGUMENT;
  request.mutable_options()->set_time_budget_ms(1);
  const std::string bytes = request.SerializeAsString();
  return fcp_client_plan_request(LocalClient(), bytes.data(), bytes.size(), plan, error);
}

int PlanBatch(const uint8_t* data, size_t size, fcp_plan** plan, fcp_error* error) {
  static const char* const kStrategies[] = {nullptr,     "auto",    "fcp",     "ring",
                                            "dcp",       "flashcp", "flexdeg", "per_doc",
                                            "whole_doc", "",        "no-such"};
  Reader in(data, size);
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.job_id = (in.Take<uint8_t>() & 1) ? "fuzz" : nullptr;
  batch.step = in.Take<int64_t>();
  batch.num_workers = in.Take<int8_t>();
  batch.workers_per_node = in.Take<int8_t>();
  batch.num_q_heads = in.Take<int8_t>();
  batch.num_kv_heads = in.Take<int8_t>();
  batch.head_dim = in.Take<int16_t>();
  batch.strategy = kStrategies[in.Take<uint8_t>() % (sizeof(kStrategies) / sizeof(*kStrategies))];
  std::vector<int64_t> lengths(in.Take<uint8_t>() % (kMaxDocuments + 1));
  int64_t tokens = 0;
  for (int64_t& length : lengths) {
    length = in.Take<int16_t>();  // negatives and 0 included
    tokens += length > 0 ? length : 0;
  }
  std::vector<int32_t> ranks(in.Take<uint8_t>() % 8);
  for (int32_t& rank : ranks) rank = in.Take<int8_t>();
  batch.document_lengths = lengths.empty() ? nullptr : lengths.data();
  batch.num_documents = lengths.size();
  batch.ranks = ranks.empty() ? nullptr : ranks.data();
  batch.num_ranks = ranks.size();
  if (batch.num_workers > kMaxWorkers || tokens > kMaxTokens) return FCP_INVALID_ARGUMENT;
  return fcp_client_plan(LocalClient(), &batch, plan, error);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  fcp_plan* plan = nullptr;
  fcp_error error;
  const int status = data[0] % 2 == 0 ? PlanRequestBytes(data + 1, size - 1, &plan, &error)
                                      : PlanBatch(data + 1, size - 1, &plan, &error);
  if ((status == FCP_OK) != (plan != nullptr)) std::abort();
  if (plan != nullptr) Inspect(plan);
  fcp_plan_free(plan);
  return 0;
}
