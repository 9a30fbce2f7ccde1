#include "fcp/c_api.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/c_api_internal.h"
#include "common/status_macros.h"
#include "fcp/client.h"
#include "proto/plan_convert.h"
#include "proto/report_convert.h"
#include "service/calibration/plan_measurement.h"
#include "service/planner/strategies/dcp.h"

struct fcp_client {
  std::unique_ptr<fcp::PlannerClient> client;
};

namespace fcp {
namespace c_api {

int Fail(const absl::Status& status, fcp_error* error) {
  if (error != nullptr) {
    error->code = static_cast<int>(status.code());
    const size_t n = std::min(status.message().size(), sizeof(error->message) - 1);
    // An OK status's message is empty with a null data(): memcpy(dst, nullptr, 0) is undefined.
    if (n > 0) std::memcpy(error->message, status.message().data(), n);
    error->message[n] = '\0';
  }
  return static_cast<int>(status.code());
}

absl::StatusOr<const Plan*> CorePlan(const fcp_plan* plan) {
  if (plan == nullptr) return absl::InvalidArgumentError("plan: must not be NULL");
  absl::call_once(plan->core_once, [plan] { plan->core = PlanFromProto(plan->result.plan); });
  if (!plan->core.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("plan: ", plan->core.status().message()));
  }
  return &*plan->core;
}

}  // namespace c_api
}  // namespace fcp

namespace {

using fcp::c_api::Fail;
using fcp::c_api::Succeed;

// `model` NULL = the defaults (defined below).
absl::StatusOr<fcp::v1::PlanRequest> RequestFromBatch(const fcp_batch* b,
                                                      const fcp_model* model = nullptr);

// The report of `times` for the step of `b` run with `plan` (fcp_client_report_step).
absl::StatusOr<fcp::v1::StepReport> StepReportOf(const fcp_batch* b, const fcp_plan* plan,
                                                 const fcp_step_times& times) {
  ASSIGN_OR_RETURN(const fcp::v1::PlanRequest request, RequestFromBatch(b));
  ASSIGN_OR_RETURN(const fcp::Batch batch, fcp::BatchFromProto(request));
  ASSIGN_OR_RETURN(const fcp::Plan* core, fcp::c_api::CorePlan(plan));
  ASSIGN_OR_RETURN(fcp::calibration::RankStepMeasurement m,
                   fcp::calibration::MeasurementOfPlan(
                       *core, fcp::CostModel(batch.model, batch.topology, fcp::CostParams()),
                       times.rank, request.step()));
  m.forward_seconds = times.forward_seconds;
  m.backward_seconds = times.backward_seconds;
  m.comm_wait_seconds = times.comm_wait_seconds;
  m.linear_seconds = times.linear_seconds;
  m.linear_flops = times.linear_flops;
  fcp::v1::StepReport report;
  fcp::MeasurementToProto(m, &report);
  report.set_job_id(request.job_id());
  report.set_plan_id(core->plan_id);
  return report;
}

// `model` NULL = the defaults. Without a preset the batch's zero heads take the default model's
// (the request then names them); with one, the preset fills them (BatchFromProto).
absl::StatusOr<fcp::v1::PlanRequest> RequestFromBatch(const fcp_batch* b, const fcp_model* model) {
  if (b == nullptr) return absl::InvalidArgumentError("batch: must not be NULL");
  if (b->num_documents > 0 && b->document_lengths == nullptr) {
    return absl::InvalidArgumentError("batch.document_lengths: NULL with num_documents > 0");
  }
  if (b->num_ranks > 0 && b->ranks == nullptr) {
    return absl::InvalidArgumentError("batch.ranks: NULL with num_ranks > 0");
  }
  const fcp::ModelShape defaults;
  fcp::v1::PlanRequest r;
  if (b->job_id != nullptr) r.set_job_id(b->job_id);
  r.set_step(b->step);
  for (size_t i = 0; i < b->num_documents; ++i)
    r.add_documents()->set_length(b->document_lengths[i]);
  fcp::v1::ModelShape* m = r.mutable_model();
  const bool preset = model != nullptr && model->preset != nullptr && model->preset[0] != '\0';
  if (preset) {
    m->set_preset(model->preset);
    m->set_num_q_heads(b->num_q_heads);
    m->set_num_kv_heads(b->num_kv_heads);
    m->set_head_dim(b->head_dim);
  } else {
    m->set_num_q_heads(b->num_q_heads != 0 ? b->num_q_heads : defaults.num_q_heads);
    m->set_num_kv_heads(b->num_kv_heads != 0 ? b->num_kv_heads : defaults.num_kv_heads);
    m->set_head_dim(b->head_dim != 0 ? b->head_dim : defaults.head_dim);
  }
  if (model != nullptr) {
    m->set_hidden_size(model->hidden_size);
    m->set_ffn_hidden_size(model->ffn_hidden_size);
    m->set_mlp(static_cast<fcp::v1::ModelShape::MlpKind>(model->mlp));
    m->set_num_layers(model->num_layers);
    m->set_linear_flops_per_token(model->linear_flops_per_token);
    r.mutable_options()->set_objective(
        static_cast<fcp::v1::PlanOptions::Objective>(model->objective));
    if (model->token_slack >= 0) r.mutable_topology()->set_token_slack(model->token_slack);
    r.mutable_topology()->set_activation_memory_bytes(model->activation_memory_bytes);
  }
  r.mutable_topology()->set_num_workers(b->num_workers);
  r.mutable_topology()->set_workers_per_node(b->workers_per_node);
  if (b->strategy != nullptr) r.mutable_options()->set_strategy(b->strategy);
  for (size_t i = 0; i < b->num_ranks; ++i) r.add_ranks(b->ranks[i]);
  return r;
}

int Deliver(absl::StatusOr<fcp::PlanResult> result, fcp_plan** plan, fcp_error* error) {
  if (!result.ok()) return Fail(result.status(), error);
  auto* out = new fcp_plan;
  out->result = *std::move(result);
  *plan = out;
  return Succeed(error);
}

// The request of `batch` for `model`, each document's mask from `masks` (NULL: all causal).
absl::StatusOr<fcp::v1::PlanRequest> MaskedRequest(const fcp_batch* batch, const fcp_mask* masks,
                                                   const fcp_model* model) {
  absl::StatusOr<fcp::v1::PlanRequest> request = RequestFromBatch(batch, model);
  if (!request.ok()) return request.status();
  for (size_t i = 0; masks != nullptr && i < batch->num_documents; ++i) {
    const fcp_mask& m = masks[i];
    if (m.kind < FCP_MASK_CAUSAL || m.kind > FCP_MASK_PREFIX_LM) {
      return absl::InvalidArgumentError(
          absl::StrCat("masks[", i, "].kind: expected 0..3 (fcp_mask_kind), got ", m.kind));
    }
    fcp::v1::Mask* mask = request->mutable_documents(static_cast<int>(i))->mutable_mask();
    mask->set_kind(static_cast<fcp::v1::Mask::Kind>(m.kind));
    mask->set_window(m.window);
    mask->set_prefix(m.prefix);
  }
  return request;
}

}  // namespace

extern "C" {

void fcp_client_options_init(fcp_client_options* options) {
  const fcp::PlannerClientOptions defaults;
  options->target = nullptr;
  options->deadline_seconds = absl::ToDoubleSeconds(defaults.deadline);
  options->max_attempts = defaults.max_attempts;
  options->local_fallback = defaults.local_fallback ? 1 : 0;
  options->default_strategy = nullptr;
}

void fcp_batch_init(fcp_batch* batch) { *batch = fcp_batch{}; }

void fcp_model_init(fcp_model* model) {
  *model = fcp_model{};
  model->token_slack = -1;
}

int fcp_client_new(const fcp_client_options* options, fcp_client** client, fcp_error* error) {
  return fcp_client_new_tls(options, nullptr, client, error);
}

int fcp_client_new_tls(const fcp_client_options* options, const fcp_tls_options* tls,
                       fcp_client** client, fcp_error* error) {
  return fcp_client_new_auth(options, tls, nullptr, client, error);
}

int fcp_client_new_auth(const fcp_client_options* options, const fcp_tls_options* tls,
                        const char* job_token, fcp_client** client, fcp_error* error) {
  if (options == nullptr || client == nullptr) {
    return Fail(absl::InvalidArgumentError("options and client: must not be NULL"), error);
  }
  fcp::RegisterDcpPlanner();  // the local fallback offers dcp too
  fcp::PlannerClientOptions o;
  if (options->target != nullptr) o.target = options->target;
  o.deadline = absl::Seconds(options->deadline_seconds);
  o.max_attempts = options->max_attempts;
  o.local_fallback = options->local_fallback != 0;
  if (options->default_strategy != nullptr)
    o.fallback_defaults.strategy = options->default_strategy;
  if (tls != nullptr) {
    o.tls.enabled = true;
    if (tls->ca_file != nullptr) o.tls.ca_file = tls->ca_file;
    if (tls->cert_file != nullptr) o.tls.cert_file = tls->cert_file;
    if (tls->key_file != nullptr) o.tls.key_file = tls->key_file;
  }
  if (job_token != nullptr) o.job_token = job_token;
  absl::StatusOr<std::unique_ptr<fcp::PlannerClient>> created = fcp::PlannerClient::Create(o);
  if (!created.ok()) return Fail(created.status(), error);
  *client = new fcp_client{*std::move(created)};
  return Succeed(error);
}

void fcp_client_free(fcp_client* client) { delete client; }

int fcp_client_plan(fcp_client* client, const fcp_batch* batch, fcp_plan** plan, fcp_error* error) {
  return fcp_client_plan_model(client, batch, nullptr, plan, error);
}

int fcp_client_plan_model(fcp_client* client, const fcp_batch* batch, const fcp_model* model,
                          fcp_plan** plan, fcp_error* error) {
  if (client == nullptr || plan == nullptr) {
    return Fail(absl::InvalidArgumentError("client and plan: must not be NULL"), error);
  }
  absl::StatusOr<fcp::v1::PlanRequest> request = RequestFromBatch(batch, model);
  if (!request.ok()) return Fail(request.status(), error);
  return Deliver(client->client->PlanBatch(*request), plan, error);
}

int fcp_client_plan_masked(fcp_client* client, const fcp_batch* batch, const fcp_mask* masks,
                           fcp_plan** plan, fcp_error* error) {
  return fcp_client_plan_masked_model(client, batch, masks, nullptr, plan, error);
}

int fcp_client_plan_masked_model(fcp_client* client, const fcp_batch* batch, const fcp_mask* masks,
                                 const fcp_model* model, fcp_plan** plan, fcp_error* error) {
  if (client == nullptr || plan == nullptr) {
    return Fail(absl::InvalidArgumentError("client and plan: must not be NULL"), error);
  }
  absl::StatusOr<fcp::v1::PlanRequest> request = MaskedRequest(batch, masks, model);
  if (!request.ok()) return Fail(request.status(), error);
  return Deliver(client->client->PlanBatch(*request), plan, error);
}

int fcp_client_plan_request(fcp_client* client, const void* request, size_t request_size,
                            fcp_plan** plan, fcp_error* error) {
  if (client == nullptr || plan == nullptr || (request == nullptr && request_size > 0)) {
    return Fail(absl::InvalidArgumentError("client, request and plan: must not be NULL"), error);
  }
  fcp::v1::PlanRequest parsed;
  if (!parsed.ParseFromArray(request, static_cast<int>(request_size))) {
    return Fail(absl::InvalidArgumentError("request: not a serialized fcp.v1.PlanRequest"), error);
  }
  return Deliver(client->client->PlanBatch(parsed), plan, error);
}

int fcp_client_prefetch(fcp_client* client, const fcp_batch* batch, fcp_error* error) {
  return fcp_client_prefetch_model(client, batch, nullptr, error);
}

int fcp_client_prefetch_model(fcp_client* client, const fcp_batch* batch, const fcp_model* model,
                              fcp_error* error) {
  return fcp_client_prefetch_masked_model(client, batch, nullptr, model, error);
}

int fcp_client_prefetch_masked_model(fcp_client* client, const fcp_batch* batch,
                                     const fcp_mask* masks, const fcp_model* model,
                                     fcp_error* error) {
  if (client == nullptr) return Fail(absl::InvalidArgumentError("client: must not be NULL"), error);
  absl::StatusOr<fcp::v1::PlanRequest> request = MaskedRequest(batch, masks, model);
  if (!request.ok()) return Fail(request.status(), error);
  const absl::Status status = client->client->Prefetch(*std::move(request));
  return status.ok() ? Succeed(error) : Fail(status, error);
}

int fcp_client_get(fcp_client* client, int64_t step, fcp_plan** plan, fcp_error* error) {
  if (client == nullptr || plan == nullptr) {
    return Fail(absl::InvalidArgumentError("client and plan: must not be NULL"), error);
  }
  return Deliver(client->client->Get(step), plan, error);
}

void fcp_client_get_stats(const fcp_client* client, fcp_client_stats* stats) {
  const fcp::PlannerClientStats s = client->client->stats();
  *stats = {s.requests, s.rpcs, s.retries, s.fallbacks, s.errors, s.prefetches, s.prefetch_hits};
}

void fcp_plan_free(fcp_plan* plan) { delete plan; }

const char* fcp_plan_id(const fcp_plan* plan) { return plan->result.plan.plan_id().c_str(); }

const char* fcp_plan_strategy(const fcp_plan* plan) { return plan->result.plan.strategy().c_str(); }

int fcp_plan_cache_hit(const fcp_plan* plan) { return plan->result.cache_hit ? 1 : 0; }

int fcp_plan_source_of(const fcp_plan* plan) {
  switch (plan->result.source) {
    case fcp::PlanSource::kCoordinator:
      return FCP_SOURCE_COORDINATOR;
    case fcp::PlanSource::kLocalFallback:
      return FCP_SOURCE_LOCAL_FALLBACK;
    case fcp::PlanSource::kLocal:
      break;
  }
  return FCP_SOURCE_LOCAL;
}

double fcp_plan_predicted_step_ms(const fcp_plan* plan) {
  const fcp::v1::PlanSummary& s = plan->result.plan.summary();
  return s.predicted_fwd_ms() + s.predicted_bwd_ms();
}

size_t fcp_plan_num_blocks(const fcp_plan* plan) {
  return static_cast<size_t>(plan->result.plan.blocks_size());
}

int fcp_plan_block(const fcp_plan* plan, size_t index, fcp_block* block) {
  if (index >= fcp_plan_num_blocks(plan)) return FCP_NOT_FOUND;
  const fcp::v1::Block& b = plan->result.plan.blocks(static_cast<int>(index));
  *block = {b.document(), b.begin(), b.end(), b.owner()};
  return FCP_OK;
}

size_t fcp_plan_num_workers(const fcp_plan* plan) {
  return static_cast<size_t>(plan->result.plan.workers_size());
}

int32_t fcp_plan_worker_rank(const fcp_plan* plan, size_t worker) {
  if (worker >= fcp_plan_num_workers(plan)) return -1;
  return plan->result.plan.workers(static_cast<int>(worker)).rank();
}

const int32_t* fcp_plan_worker_blocks(const fcp_plan* plan, size_t worker, size_t* count) {
  if (worker >= fcp_plan_num_workers(plan)) {
    if (count != nullptr) *count = 0;
    return nullptr;
  }
  const auto& blocks = plan->result.plan.workers(static_cast<int>(worker)).blocks();
  if (count != nullptr) *count = static_cast<size_t>(blocks.size());
  return blocks.data();
}

const void* fcp_plan_serialized(const fcp_plan* plan, size_t* size) {
  absl::call_once(plan->serialized_once, [plan] {
    fcp::v1::PlanResponse response;
    *response.mutable_plan() = plan->result.plan;
    response.set_cache_hit(plan->result.cache_hit);
    response.SerializeToString(&plan->serialized);
  });
  if (size != nullptr) *size = plan->serialized.size();
  return plan->serialized.data();
}

const char* fcp_plan_json(const fcp_plan* plan) {
  absl::call_once(plan->json_once, [plan] { plan->json = fcp::PlanToJson(plan->result.plan); });
  return plan->json.c_str();
}

}  // extern "C"

void fcp_step_times_init(fcp_step_times* times) {
  if (times != nullptr) *times = fcp_step_times{};
}

int fcp_client_report_step(fcp_client* client, const fcp_batch* batch, const fcp_plan* plan,
                           const fcp_step_times* times, fcp_error* error) {
  if (client == nullptr || plan == nullptr || times == nullptr) {
    return Fail(absl::InvalidArgumentError("client, plan and times: must not be NULL"), error);
  }
  absl::StatusOr<fcp::v1::StepReport> report = StepReportOf(batch, plan, *times);
  if (!report.ok()) return Fail(report.status(), error);
  const absl::Status status = client->client->ReportStep(*report);
  return status.ok() ? Succeed(error) : Fail(status, error);
}
