// The one place where the API messages (fcp.v1, proto/fcp/v1/plan.proto) and the planning core's
// structs (service/planner/) are converted into each other. The planner never sees protobuf; the
// coordinator, the CLI and the client library convert here, at the edge, exactly once.
//
//   fcp::v1::PlanRequest request = ...;                  // from the wire
//   ASSIGN_OR_RETURN(fcp::Batch batch, fcp::BatchFromProto(request));
//   ASSIGN_OR_RETURN(fcp::PlanOptions options, fcp::OptionsFromProto(request.options()));
//   ASSIGN_OR_RETURN(fcp::OutputSpec output,
//                    fcp::OutputSpecFromProto(request, batch.topology.num_workers));
//   ASSIGN_OR_RETURN(fcp::Plan plan, fcp::MakePlan(batch, options, output));
//   fcp::v1::Plan reply;
//   fcp::PlanToProto(plan, &reply);
//
// Defaults. A proto field left 0 takes the core default only where plan.proto documents
// "0 = default" (topology.workers_per_node, the bandwidths, attention_tflops, options.strategy,
// options.time_budget_ms; unset options.include_backward = true, topology.token_slack = 0.05,
// options.objective = WHOLE_STEP). The model's fields left 0 / unspecified take model.preset's
// (ModelPreset) or, without a preset, the default model's (Llama-3-8B), except the attention
// fields (heads, head_dim), required without a preset; the core model is named after the preset
// when no field overrides it, else "custom". Every other value is copied
// as is, so a missing or bad value (num_workers 0, a negative bandwidth, a document of length 0)
// is rejected by fcp::ValidateBatch / fcp::ValidateOptions (inside MakePlan) with the field's
// name, never silently replaced. Conversion itself fails only for what the core types cannot
// represent: unknown enum values, an unknown model.preset and out-of-range ranks.
//
// All functions are thread-safe (no shared state).
#ifndef FCP_PROTO_PLAN_CONVERT_H_
#define FCP_PROTO_PLAN_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fcp/v1/plan.pb.h"
#include "service/planner/batch.h"
#include "service/planner/cost_model.h"
#include "service/planner/plan.h"
#include "service/planner/planner.h"

namespace fcp {

// Documents, model and topology of `request`; not yet validated (MakePlan does that).
// InvalidArgument for unknown enum values, naming the field ("documents[3].mask.kind: ...").
absl::StatusOr<Batch> BatchFromProto(const v1::PlanRequest& request);

// The model of `model`: model.preset's shape (or the default model's) under the fields set
// explicitly (see Defaults above), named after the preset or "custom". InvalidArgument naming
// "model.preset" / "model.mlp" / "model.dtype". The CLI resolves --model and the shape flags
// through it too.
absl::StatusOr<ModelShape> ModelFromProto(const v1::ModelShape& model);

// Fills request->documents, model and topology from `batch` (job, step, options and ranks are
// left alone); CAUSAL documents get no mask (unset = CAUSAL). BatchFromProto(BatchToProto(b)) == b.
void BatchToProto(const Batch& batch, v1::PlanRequest* request);

// Planning options; `cost` is the coordinator's calibration (not part of the request).
absl::StatusOr<PlanOptions> OptionsFromProto(const v1::PlanOptions& options,
                                             const CostParams& cost = CostParams());
// Planning options where the fields plan.proto documents "0 = default" (strategy, time_budget_ms)
// and an unset include_backward take `defaults`' values instead of the core's, and `cost` is
// `defaults.cost`: the coordinator's --default-strategy, --time-budget-ms and calibration. A
// client's local fallback passes the same defaults to get the same plan id.
absl::StatusOr<PlanOptions> OptionsFromProto(const v1::PlanOptions& options,
                                             const PlanOptions& defaults);
void OptionsToProto(const PlanOptions& options, v1::PlanOptions* proto);
// The options a request built from `requested` (OptionsToProto) plans with under `defaults`,
// without building the message: == OptionsFromProto(OptionsToProto(requested), defaults). The
// request carries strategy, block_size, include_backward, time_budget_ms and objective (an empty
// strategy and a 0 budget take `defaults`'); everything else (cost, balance_tolerance) is
// `defaults`'.
PlanOptions RequestedOptions(const PlanOptions& requested, const PlanOptions& defaults);

// Which slices to materialise: every rank when request.ranks is empty, else those ranks
// (sorted, duplicates dropped). InvalidArgument naming "ranks[i]" for a rank outside
// [0, num_workers).
absl::StatusOr<OutputSpec> OutputSpecFromProto(const v1::PlanRequest& request, int32_t num_workers);

// Copies every field of `plan` into `*proto` (cleared first).
void PlanToProto(const Plan& plan, v1::Plan* proto);
// One worker's slice, as PlanToProto writes each of Plan.workers (appends to a fresh `*proto`).
void WorkerPlanToProto(const WorkerPlan& worker, v1::WorkerPlan* proto);
// The inverse of PlanToProto; InvalidArgument for unknown enum values.
absl::StatusOr<Plan> PlanFromProto(const v1::Plan& proto);

// Protobuf JSON of a plan, as other tools read it: proto field names (snake_case), every field
// printed even when 0 / empty (so readers need no proto defaults), enums by name ("KV", "CAUSAL").
// As the proto3 JSON mapping says, int64 fields are JSON strings ("block_size": "4096").
// One line unless `pretty`. No trailing newline.
std::string PlanToJson(const v1::Plan& plan, bool pretty = false);
// Parses PlanToJson's output (unknown fields are an error).
absl::StatusOr<v1::Plan> PlanFromJson(absl::string_view json);

}  // namespace fcp

#endif  // FCP_PROTO_PLAN_CONVERT_H_
