// The execution half of the C API (fcp/c_exec_api.h) over fcp::TrainerExecutor
// (worker/trainer_executor.h) and token dispatch (service/planner/token_dispatch.h).
#include "fcp/c_exec_api.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/c_api_internal.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/store.h"
#include "service/planner/token_dispatch.h"
#include "worker/trainer_executor.h"

struct fcp_executor {
  std::unique_ptr<fcp::TrainerExecutor> executor;
};

struct fcp_context {
  std::unique_ptr<fcp::ForwardContext> context;
};

namespace {

using fcp::c_api::CorePlan;
using fcp::c_api::Fail;
using fcp::c_api::Succeed;

absl::Status Invalid(absl::string_view what) { return absl::InvalidArgumentError(what); }

// A gloo store over the trainer's callbacks (fcp_store). Gloo's Store API reports errors by
// throwing gloo::IoException; the library catches them where it calls Gloo.
class CallbackStore final : public gloo::rendezvous::Store {
 public:
  CallbackStore(const fcp_store& store, double timeout_seconds)
      : store_(store), timeout_seconds_(timeout_seconds) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    if (store_.set(store_.context, key.c_str(), data.data(), data.size()) != 0) {
      throw gloo::IoException(absl::StrCat("fcp_store.set failed for key '", key, "'"));
    }
  }
  std::vector<char> get(const std::string& key) override { return Get(key, timeout_seconds_); }
  void wait(const std::vector<std::string>& keys) override {
    wait(keys, std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds_ * 1e3)));
  }
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    for (const std::string& key : keys) Get(key, timeout.count() / 1e3);
  }

 private:
  std::vector<char> Get(const std::string& key, double timeout_seconds) {
    std::vector<char> value(256);
    for (int attempt = 0; attempt < 2; ++attempt) {
      size_t size = 0;
      if (store_.get(store_.context, key.c_str(), value.data(), value.size(), &size,
                     timeout_seconds) != 0) {
        throw gloo::IoException(absl::StrCat("fcp_store.get: key '", key, "' not set within ",
                                             timeout_seconds, "s (or the store failed)"));
      }
      if (size <= value.size()) {
        value.resize(size);
        return value;
      }
      value.resize(size);  // retry with the full size
    }
    throw gloo::IoException(absl::StrCat("fcp_store.get: key '", key, "' keeps growing"));
  }

  const fcp_store store_;
  const double timeout_seconds_;
};

absl::StatusOr<fcp::kernels::DType> DTypeOf(int32_t dtype, absl::string_view field) {
  switch (dtype) {
    case FCP_DTYPE_BF16:
      return fcp::kernels::DType::kBf16;
    case FCP_DTYPE_FP16:
      return fcp::kernels::DType::kFp16;
    case FCP_DTYPE_FP32:
      return fcp::kernels::DType::kFp32;
  }
  return Invalid(absl::StrCat(field, ": expected 0 (bf16), 1 (fp16) or 2 (fp32), got ", dtype));
}

// The node label: torchrun's node rank when set, else 0.
int32_t NodeFromEnvironment() {
  int32_t node = 0;
  const char* group = std::getenv("GROUP_RANK");
  return group != nullptr && absl::SimpleAtoi(group, &node) && node >= 0 ? node : 0;
}

absl::StatusOr<fcp::TrainerExecutorOptions> OptionsFrom(const fcp_executor_options& o) {
  fcp::TrainerExecutorOptions out;
  out.rank = o.rank;
  out.world_size = o.world_size;
  if (o.transport != nullptr) out.transport = o.transport;
  if (o.rendezvous != nullptr) out.rendezvous = o.rendezvous;
  if (o.job_id != nullptr) out.job_id = o.job_id;
  if (o.device != nullptr) out.device = o.device;
  out.cuda_device = o.cuda_device;
  if (o.interface_address != nullptr) out.interface_address = o.interface_address;
  if (std::isnan(o.timeout_seconds) || o.timeout_seconds < 0 || std::isinf(o.timeout_seconds)) {
    return Invalid(absl::StrCat("options.timeout_seconds: must be finite and >= 0 (0: 300), got ",
                                o.timeout_seconds));
  }
  if (o.timeout_seconds > 0) out.timeout = absl::Seconds(o.timeout_seconds);
  out.threads = o.threads;
  out.metrics_port = o.metrics_port;
  if (o.job_token != nullptr) out.job_token = o.job_token;
  out.node = NodeFromEnvironment();
  if (o.store != nullptr) {
    if (o.store->set == nullptr || o.store->get == nullptr) {
      return Invalid("options.store: set and get must not be NULL");
    }
    out.store = std::make_shared<CallbackStore>(*o.store, absl::ToDoubleSeconds(out.timeout));
  }
  return out;
}

// `plan` for this executor: its world size, its rank's slice; `tokens` this rank's rows.
absl::StatusOr<const fcp::Plan*> PlanFor(const fcp_executor* executor, const fcp_plan* plan,
                                         const int64_t* tokens) {
  if (executor == nullptr) return Invalid("executor: must not be NULL");
  absl::StatusOr<const fcp::Plan*> core = CorePlan(plan);
  if (!core.ok()) return core.status();
  const fcp::TrainerExecutor& ex = *executor->executor;
  if (static_cast<int32_t>((*core)->costs.size()) != ex.world_size()) {
    return Invalid(absl::StrCat("plan: made for ", (*core)->costs.size(),
                                " workers, the executor's world_size is ", ex.world_size()));
  }
  absl::StatusOr<fcp::RankTokens> mine = fcp::RankTokensOf(**core, ex.rank());
  if (!mine.ok()) {
    return Invalid(absl::StrCat("plan: holds no slice for this executor's rank ", ex.rank(),
                                " (plan with ranks NULL)"));
  }
  const int64_t rows = static_cast<int64_t>(mine->global_index.size());
  if (tokens != nullptr && *tokens != rows) {
    return Invalid(absl::StrCat("tokens: rank ", ex.rank(), " holds ", rows,
                                " tokens of this plan (fcp_plan_rank_tokens), got ", *tokens));
  }
  return core;
}

absl::Status CheckPointers(std::initializer_list<std::pair<const void*, const char*>> pointers) {
  for (const auto& [p, name] : pointers) {
    if (p == nullptr) return Invalid(absl::StrCat(name, ": must not be NULL"));
  }
  return absl::OkStatus();
}

}  // namespace

extern "C" {

int fcp_plan_rank_tokens(const fcp_plan* plan, int32_t rank, int64_t* global_index,
                         int64_t* position, int64_t capacity, int64_t* count, fcp_error* error) {
  if (count == nullptr) return Fail(Invalid("count: must not be NULL"), error);
  *count = 0;
  absl::StatusOr<const fcp::Plan*> core = CorePlan(plan);
  if (!core.ok()) return Fail(core.status(), error);
  if (capacity < 0) return Fail(Invalid("capacity: must be >= 0"), error);
  absl::StatusOr<fcp::RankTokens> mine = fcp::RankTokensOf(**core, rank);
  if (!mine.ok()) return Fail(mine.status(), error);
  const int64_t n = static_cast<int64_t>(mine->global_index.size());
  *count = n;
  if (global_index == nullptr && position == nullptr) return Succeed(error);
  if (capacity < n) {
    return Fail(Invalid(absl::StrCat("capacity: ", capacity, " rows, rank ", rank, " has ", n)),
                error);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (global_index != nullptr) global_index[i] = mine->global_index[i];
    if (position != nullptr) position[i] = mine->position[i];
  }
  return Succeed(error);
}

void fcp_executor_options_init(fcp_executor_options* options) {
  *options = fcp_executor_options{};
  options->world_size = 1;
  options->timeout_seconds = 300;
}

int fcp_executor_new(const fcp_executor_options* options, fcp_executor** executor,
                     fcp_error* error) {
  if (options == nullptr) return Fail(Invalid("options: must not be NULL"), error);
  if (executor == nullptr) return Fail(Invalid("executor: must not be NULL"), error);
  *executor = nullptr;
  absl::StatusOr<fcp::TrainerExecutorOptions> o = OptionsFrom(*options);
  if (!o.ok()) return Fail(o.status(), error);
  absl::StatusOr<std::unique_ptr<fcp::TrainerExecutor>> made = fcp::TrainerExecutor::Create(*o);
  if (!made.ok()) return Fail(made.status(), error);
  *executor = new fcp_executor{*std::move(made)};
  return Succeed(error);
}

void fcp_executor_free(fcp_executor* executor) { delete executor; }

int fcp_forward(fcp_executor* executor, const fcp_plan* plan, int64_t step,
                const fcp_attention_shape* shape, int64_t tokens, const void* q, const void* k,
                const void* v, void* o, float* lse, void* stream, fcp_context** context,
                fcp_error* error) {
  if (context != nullptr) *context = nullptr;
  absl::StatusOr<const fcp::Plan*> core = PlanFor(executor, plan, &tokens);
  if (!core.ok()) return Fail(core.status(), error);
  if (shape == nullptr) return Fail(Invalid("shape: must not be NULL"), error);
  absl::StatusOr<fcp::kernels::DType> dtype = DTypeOf(shape->dtype, "shape.dtype");
  if (!dtype.ok()) return Fail(dtype.status(), error);
  if (tokens > 0) {
    const absl::Status s = CheckPointers({{q, "q"}, {k, "k"}, {v, "v"}, {o, "o"}, {lse, "lse"}});
    if (!s.ok()) return Fail(s, error);
  }
  const fcp::ForwardTensors tensors{*dtype, *dtype, q, k, v, o, lse, tokens};
  absl::StatusOr<std::unique_ptr<fcp::ForwardContext>> made = executor->executor->Forward(
      **core, step, {shape->num_q_heads, shape->num_kv_heads, shape->head_dim}, tensors, stream);
  if (!made.ok()) return Fail(made.status(), error);
  if (context != nullptr) *context = new fcp_context{*std::move(made)};
  return Succeed(error);
}

int fcp_backward(fcp_executor* executor, fcp_context* context, const void* d_o, void* dq, void* dk,
                 void* dv, void* stream, fcp_error* error) {
  if (executor == nullptr) return Fail(Invalid("executor: must not be NULL"), error);
  if (context == nullptr) return Fail(Invalid("context: must not be NULL"), error);
  if (context->context->tokens() > 0) {
    const absl::Status s = CheckPointers({{d_o, "d_o"}, {dq, "dq"}, {dk, "dk"}, {dv, "dv"}});
    if (!s.ok()) return Fail(s, error);
  }
  const absl::Status s = executor->executor->Backward(*context->context, {d_o, dq, dk, dv}, stream);
  return s.ok() ? Succeed(error) : Fail(s, error);
}

void fcp_context_free(fcp_context* context) { delete context; }

void fcp_executor_last_stats(const fcp_executor* executor, fcp_exec_stats* stats) {
  if (stats == nullptr) return;
  *stats = fcp_exec_stats{};
  if (executor == nullptr) return;
  const fcp::StepStats s = executor->executor->last_stats();
  *stats = {s.forward_seconds,
            s.backward_seconds,
            s.attention_seconds,
            s.comm_wait_seconds,
            s.bytes_sent,
            s.bytes_received,
            s.tiles};
}

int fcp_gather_rows(fcp_executor* executor, const fcp_plan* plan, int64_t step, int64_t row_bytes,
                    const void* local, void* global, fcp_error* error) {
  absl::StatusOr<const fcp::Plan*> core = PlanFor(executor, plan, nullptr);
  if (!core.ok()) return Fail(core.status(), error);
  const absl::Status s = executor->executor->GatherRows(**core, step, row_bytes, local, global);
  return s.ok() ? Succeed(error) : Fail(s, error);
}

int fcp_scatter_add_rows(fcp_executor* executor, const fcp_plan* plan, int64_t step, int32_t dtype,
                         int64_t row_elements, const void* global, void* local, fcp_error* error) {
  absl::StatusOr<const fcp::Plan*> core = PlanFor(executor, plan, nullptr);
  if (!core.ok()) return Fail(core.status(), error);
  absl::StatusOr<fcp::kernels::DType> type = DTypeOf(dtype, "dtype");
  if (!type.ok()) return Fail(type.status(), error);
  const absl::Status s =
      executor->executor->ScatterAddRows(**core, step, *type, row_elements, global, local);
  return s.ok() ? Succeed(error) : Fail(s, error);
}

}  // extern "C"
