#include "proto/plan_convert.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "service/planner/model.h"

namespace fcp {
namespace {

absl::Status UnknownEnum(absl::string_view field, int value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value ", value));
}

// ---- masks, model, topology ----

// `index`: the document's, for error messages ("documents[3].mask.kind: ...").
absl::StatusOr<Mask> MaskFromProto(const v1::Mask& proto, int index) {
  Mask mask;
  switch (proto.kind()) {
    case v1::Mask::CAUSAL:
      mask.kind = MaskKind::kCausal;
      break;
    case v1::Mask::FULL:
      mask.kind = MaskKind::kFull;
      break;
    case v1::Mask::SLIDING_WINDOW:
      mask.kind = MaskKind::kSlidingWindow;
      break;
    case v1::Mask::PREFIX_LM:
      mask.kind = MaskKind::kPrefixLm;
      break;
    default:
      return UnknownEnum(absl::StrCat("documents[", index, "].mask.kind"), proto.kind());
  }
  mask.window = proto.window();
  mask.prefix = proto.prefix();
  return mask;
}

void MaskToProto(const Mask& mask, v1::Mask* proto) {
  switch (mask.kind) {
    case MaskKind::kCausal:
      proto->set_kind(v1::Mask::CAUSAL);
      break;
    case MaskKind::kFull:
      proto->set_kind(v1::Mask::FULL);
      break;
    case MaskKind::kSlidingWindow:
      proto->set_kind(v1::Mask::SLIDING_WINDOW);
      break;
    case MaskKind::kPrefixLm:
      proto->set_kind(v1::Mask::PREFIX_LM);
      break;
  }
  proto->set_window(mask.window);
  proto->set_prefix(mask.prefix);
}

absl::StatusOr<std::vector<Document>> DocumentsFromProto(
    const google::protobuf::RepeatedPtrField<v1::Document>& protos) {
  std::vector<Document> documents;
  documents.reserve(protos.size());
  for (int i = 0; i < protos.size(); ++i) {
    Document d;
    d.length = protos[i].length();
    if (protos[i].has_mask()) {
      ASSIGN_OR_RETURN(d.mask, MaskFromProto(protos[i].mask(), i));
    }
    documents.push_back(d);
  }
  return documents;
}

// `every_mask`: write CAUSAL masks too (plans do, so their JSON shows every field); requests
// leave them unset (= CAUSAL): 30% of a typical request's bytes and half its parse time.
void DocumentsToProto(const std::vector<Document>& documents, bool every_mask,
                      google::protobuf::RepeatedPtrField<v1::Document>* protos) {
  protos->Reserve(static_cast<int>(documents.size()));
  for (const Document& d : documents) {
    v1::Document* p = protos->Add();
    p->set_length(d.length);
    if (every_mask || !(d.mask == Mask::Causal())) MaskToProto(d.mask, p->mutable_mask());
  }
}

absl::StatusOr<DType> DTypeFromProto(v1::ModelShape::DType dtype) {
  switch (dtype) {
    case v1::ModelShape::BF16:
      return DType::kBf16;
    case v1::ModelShape::FP16:
      return DType::kFp16;
    case v1::ModelShape::FP32:
      return DType::kFp32;
    default:
      return UnknownEnum("model.dtype", dtype);
  }
}

v1::ModelShape::DType DTypeToProto(DType dtype) {
  switch (dtype) {
    case DType::kFp16:
      return v1::ModelShape::FP16;
    case DType::kFp32:
      return v1::ModelShape::FP32;
    case DType::kBf16:
      break;
  }
  return v1::ModelShape::BF16;
}

// `value` unless it is the proto default 0, which means `fallback` (fields documented so).
template <typename T>
T OrDefault(T value, T fallback) {
  return value == 0 ? fallback : value;
}

bool SameShape(const ModelShape& a, const ModelShape& b) {
  return a.num_q_heads == b.num_q_heads && a.num_kv_heads == b.num_kv_heads &&
         a.head_dim == b.head_dim && a.dtype == b.dtype &&
         a.linear_flops_per_token == b.linear_flops_per_token && a.hidden_size == b.hidden_size &&
         a.ffn_hidden_size == b.ffn_hidden_size && a.mlp == b.mlp && a.num_layers == b.num_layers;
}

absl::StatusOr<MlpKind> MlpFromProto(v1::ModelShape::MlpKind mlp, MlpKind fallback) {
  switch (mlp) {
    case v1::ModelShape::MLP_UNSPECIFIED:
      return fallback;
    case v1::ModelShape::GATED:
      return MlpKind::kGated;
    case v1::ModelShape::PLAIN:
      return MlpKind::kPlain;
    default:
      return UnknownEnum("model.mlp", mlp);
  }
}

void ModelToProto(const ModelShape& m, v1::ModelShape* p) {
  const std::vector<std::string> presets = ModelPresetNames();
  const bool preset = std::find(presets.begin(), presets.end(), m.name) != presets.end();
  p->set_preset(preset ? m.name : "");
  p->set_num_q_heads(m.num_q_heads);
  p->set_num_kv_heads(m.num_kv_heads);
  p->set_head_dim(m.head_dim);
  p->set_dtype(DTypeToProto(m.dtype));
  p->set_linear_flops_per_token(m.linear_flops_per_token);
  p->set_hidden_size(m.hidden_size);
  p->set_ffn_hidden_size(m.ffn_hidden_size);
  p->set_mlp(m.mlp == MlpKind::kPlain ? v1::ModelShape::PLAIN : v1::ModelShape::GATED);
  p->set_num_layers(m.num_layers);
}

Topology TopologyFromProto(const v1::Topology& p) {
  const Topology defaults;
  Topology t;
  t.num_workers = p.num_workers();
  t.workers_per_node = OrDefault(p.workers_per_node(), defaults.workers_per_node);
  t.intra_node_gbps = OrDefault(p.intra_node_gbps(), defaults.intra_node_gbps);
  t.inter_node_gbps = OrDefault(p.inter_node_gbps(), defaults.inter_node_gbps);
  t.attention_tflops = OrDefault(p.attention_tflops(), defaults.attention_tflops);
  t.max_tokens_per_worker = p.max_tokens_per_worker();
  t.activation_memory_bytes = p.activation_memory_bytes();
  if (p.has_token_slack()) t.token_slack = p.token_slack();
  return t;
}

// ---- plan pieces ----

// TransferKind (plan.h) and v1::Transfer::Kind share their numbers, KV = 0 .. DQ = 5.
static_assert(static_cast<int>(TransferKind::kDq) == v1::Transfer::DQ &&
              kTransferKinds == v1::Transfer::Kind_ARRAYSIZE);

absl::StatusOr<TransferKind> TransferKindFromProto(v1::Transfer::Kind kind,
                                                   absl::string_view field) {
  if (kind < v1::Transfer::KV || kind > v1::Transfer::DQ) return UnknownEnum(field, kind);
  return static_cast<TransferKind>(kind);
}

void TransfersToProto(const std::vector<Transfer>& transfers,
                      google::protobuf::RepeatedPtrField<v1::Transfer>* protos) {
  protos->Reserve(static_cast<int>(transfers.size()));
  for (const Transfer& t : transfers) {
    v1::Transfer* p = protos->Add();
    p->set_round(t.round);
    p->set_peer(t.peer);
    p->mutable_blocks()->Add(t.blocks.begin(), t.blocks.end());
    // The enums share their numbers (plan.h, plan.proto).
    p->set_kind(static_cast<v1::Transfer::Kind>(static_cast<int>(t.kind)));
  }
}

absl::StatusOr<std::vector<Transfer>> TransfersFromProto(
    const google::protobuf::RepeatedPtrField<v1::Transfer>& protos, absl::string_view field) {
  std::vector<Transfer> transfers;
  transfers.reserve(protos.size());
  for (int i = 0; i < protos.size(); ++i) {
    const v1::Transfer& p = protos[i];
    Transfer t;
    t.round = p.round();
    t.peer = p.peer();
    t.blocks.assign(p.blocks().begin(), p.blocks().end());
    ASSIGN_OR_RETURN(t.kind,
                     TransferKindFromProto(p.kind(), absl::StrCat(field, "[", i, "].kind")));
    transfers.push_back(std::move(t));
  }
  return transfers;
}

void CostToProto(const WorkerCost& c, v1::WorkerCost* p) {
  p->set_fwd_flops(c.fwd_flops);
  p->set_bwd_flops(c.bwd_flops);
  p->set_tokens(c.tokens);
  p->set_send_bytes(c.send_bytes);
  p->set_recv_bytes(c.recv_bytes);
  p->set_compute_fwd_ms(c.compute_fwd_ms);
  p->set_fwd_ms(c.fwd_ms);
  p->set_bwd_ms(c.bwd_ms);
  p->set_attention_fwd_ms(c.attention_fwd_ms);
  p->set_attention_bwd_ms(c.attention_bwd_ms);
}

WorkerCost CostFromProto(const v1::WorkerCost& p) {
  WorkerCost c;
  c.fwd_flops = p.fwd_flops();
  c.bwd_flops = p.bwd_flops();
  c.tokens = p.tokens();
  c.send_bytes = p.send_bytes();
  c.recv_bytes = p.recv_bytes();
  c.compute_fwd_ms = p.compute_fwd_ms();
  c.fwd_ms = p.fwd_ms();
  c.bwd_ms = p.bwd_ms();
  c.attention_fwd_ms = p.attention_fwd_ms();
  c.attention_bwd_ms = p.attention_bwd_ms();
  return c;
}

void WorkerToProto(const WorkerPlan& w, v1::WorkerPlan* p) {
  p->set_rank(w.rank);
  p->mutable_blocks()->Add(w.blocks.begin(), w.blocks.end());
  p->mutable_tiles()->Reserve(static_cast<int>(w.tiles.size()));
  for (const Tile& t : w.tiles) {
    v1::Tile* tp = p->add_tiles();
    tp->set_q_block(t.q_block);
    tp->set_kv_block(t.kv_block);
    tp->set_round(t.round);
  }
  TransfersToProto(w.sends, p->mutable_sends());
  TransfersToProto(w.recvs, p->mutable_recvs());
  CostToProto(w.predicted, p->mutable_predicted());
}

absl::StatusOr<WorkerPlan> WorkerFromProto(const v1::WorkerPlan& p, int index) {
  const std::string field = absl::StrCat("workers[", index, "]");
  WorkerPlan w;
  w.rank = p.rank();
  w.blocks.assign(p.blocks().begin(), p.blocks().end());
  w.tiles.reserve(p.tiles_size());
  for (const v1::Tile& t : p.tiles()) w.tiles.push_back({t.q_block(), t.kv_block(), t.round()});
  ASSIGN_OR_RETURN(w.sends, TransfersFromProto(p.sends(), absl::StrCat(field, ".sends")));
  ASSIGN_OR_RETURN(w.recvs, TransfersFromProto(p.recvs(), absl::StrCat(field, ".recvs")));
  w.predicted = CostFromProto(p.predicted());
  return w;
}

void SummaryToProto(const PlanSummary& s, v1::PlanSummary* p) {
  p->set_compute_imbalance(s.compute_imbalance);
  p->set_token_imbalance(s.token_imbalance);
  p->set_comm_bytes(s.comm_bytes);
  p->set_max_worker_comm_bytes(s.max_worker_comm_bytes);
  p->set_inter_node_bytes(s.inter_node_bytes);
  p->set_rounds(s.rounds);
  p->set_predicted_fwd_ms(s.predicted_fwd_ms);
  p->set_predicted_bwd_ms(s.predicted_bwd_ms);
  p->set_planning_ms(s.planning_ms);
  p->set_tiles(s.tiles);
  p->set_total_fwd_flops(s.total_fwd_flops);
  p->set_attention_fwd_ms(s.attention_fwd_ms);
  p->set_attention_bwd_ms(s.attention_bwd_ms);
  p->set_balanced_fwd_ms(s.balanced_fwd_ms);
  p->set_balanced_bwd_ms(s.balanced_bwd_ms);
  p->set_max_tokens_per_worker(s.max_tokens_per_worker);
  p->set_token_budget(s.token_budget);
  p->set_model(s.model);
}

PlanSummary SummaryFromProto(const v1::PlanSummary& p) {
  PlanSummary s;
  s.compute_imbalance = p.compute_imbalance();
  s.token_imbalance = p.token_imbalance();
  s.comm_bytes = p.comm_bytes();
  s.max_worker_comm_bytes = p.max_worker_comm_bytes();
  s.inter_node_bytes = p.inter_node_bytes();
  s.rounds = p.rounds();
  s.predicted_fwd_ms = p.predicted_fwd_ms();
  s.predicted_bwd_ms = p.predicted_bwd_ms();
  s.planning_ms = p.planning_ms();
  s.tiles = p.tiles();
  s.total_fwd_flops = p.total_fwd_flops();
  s.attention_fwd_ms = p.attention_fwd_ms();
  s.attention_bwd_ms = p.attention_bwd_ms();
  s.balanced_fwd_ms = p.balanced_fwd_ms();
  s.balanced_bwd_ms = p.balanced_bwd_ms();
  s.max_tokens_per_worker = p.max_tokens_per_worker();
  s.token_budget = p.token_budget();
  s.model = p.model();
  return s;
}

}  // namespace

// Without a preset the attention fields are copied as is (required: ValidateBatch rejects 0).
absl::StatusOr<ModelShape> ModelFromProto(const v1::ModelShape& p) {
  ModelShape base;
  const bool preset = !p.preset().empty();
  if (preset) {
    absl::StatusOr<ModelShape> named = ModelPreset(p.preset());
    if (!named.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.preset: unknown model '", p.preset(),
                       "' (known: ", absl::StrJoin(ModelPresetNames(), ", "), ")"));
    }
    base = *named;
  }
  ModelShape m = base;
  m.num_q_heads = preset ? OrDefault(p.num_q_heads(), base.num_q_heads) : p.num_q_heads();
  m.num_kv_heads = preset ? OrDefault(p.num_kv_heads(), base.num_kv_heads) : p.num_kv_heads();
  m.head_dim = preset ? OrDefault(p.head_dim(), base.head_dim) : p.head_dim();
  ASSIGN_OR_RETURN(m.dtype, DTypeFromProto(p.dtype()));
  m.linear_flops_per_token = p.linear_flops_per_token();
  m.hidden_size = OrDefault(p.hidden_size(), base.hidden_size);
  m.ffn_hidden_size = OrDefault(p.ffn_hidden_size(), base.ffn_hidden_size);
  ASSIGN_OR_RETURN(m.mlp, MlpFromProto(p.mlp(), base.mlp));
  m.num_layers = OrDefault(p.num_layers(), base.num_layers);
  if (!SameShape(m, base)) m.name = "custom";
  return m;
}

absl::StatusOr<Batch> BatchFromProto(const v1::PlanRequest& request) {
  Batch batch;
  ASSIGN_OR_RETURN(batch.documents, DocumentsFromProto(request.documents()));
  ASSIGN_OR_RETURN(batch.model, ModelFromProto(request.model()));
  batch.topology = TopologyFromProto(request.topology());
  return batch;
}

void BatchToProto(const Batch& batch, v1::PlanRequest* request) {
  request->clear_documents();
  DocumentsToProto(batch.documents, /*every_mask=*/false, request->mutable_documents());
  ModelToProto(batch.model, request->mutable_model());
  v1::Topology* t = request->mutable_topology();
  t->set_num_workers(batch.topology.num_workers);
  t->set_workers_per_node(batch.topology.workers_per_node);
  t->set_intra_node_gbps(batch.topology.intra_node_gbps);
  t->set_inter_node_gbps(batch.topology.inter_node_gbps);
  t->set_attention_tflops(batch.topology.attention_tflops);
  t->set_max_tokens_per_worker(batch.topology.max_tokens_per_worker);
  t->set_activation_memory_bytes(batch.topology.activation_memory_bytes);
  t->set_token_slack(batch.topology.token_slack);
}

absl::StatusOr<PlanOptions> OptionsFromProto(const v1::PlanOptions& proto, const CostParams& cost) {
  PlanOptions defaults;
  defaults.cost = cost;
  return OptionsFromProto(proto, defaults);
}

absl::StatusOr<PlanOptions> OptionsFromProto(const v1::PlanOptions& proto,
                                             const PlanOptions& defaults) {
  PlanOptions options = defaults;
  if (!proto.strategy().empty()) options.strategy = proto.strategy();
  options.block_size = proto.block_size();
  if (proto.has_include_backward()) options.include_backward = proto.include_backward();
  options.time_budget_ms = OrDefault(proto.time_budget_ms(), defaults.time_budget_ms);
  if (proto.objective() == v1::PlanOptions::WHOLE_STEP) {
    options.objective = Objective::kWholeStep;
  } else if (proto.objective() == v1::PlanOptions::ATTENTION) {
    options.objective = Objective::kAttention;
  } else if (proto.objective() != v1::PlanOptions::OBJECTIVE_UNSPECIFIED) {
    return UnknownEnum("options.objective", proto.objective());
  }
  return options;
}

PlanOptions RequestedOptions(const PlanOptions& requested, const PlanOptions& defaults) {
  PlanOptions options = defaults;
  if (!requested.strategy.empty()) options.strategy = requested.strategy;
  options.block_size = requested.block_size;
  options.include_backward = requested.include_backward;
  options.time_budget_ms = OrDefault(requested.time_budget_ms, defaults.time_budget_ms);
  options.objective = requested.objective;
  return options;
}

void OptionsToProto(const PlanOptions& options, v1::PlanOptions* proto) {
  proto->set_strategy(options.strategy);
  proto->set_block_size(options.block_size);
  proto->set_include_backward(options.include_backward);
  proto->set_time_budget_ms(options.time_budget_ms);
  proto->set_objective(options.objective == Objective::kAttention ? v1::PlanOptions::ATTENTION
                                                                  : v1::PlanOptions::WHOLE_STEP);
}

absl::StatusOr<OutputSpec> OutputSpecFromProto(const v1::PlanRequest& request,
                                               int32_t num_workers) {
  if (request.ranks().empty()) return OutputSpec::AllRanks();
  std::vector<int32_t> ranks;
  ranks.reserve(request.ranks_size());
  for (int i = 0; i < request.ranks_size(); ++i) {
    const int32_t r = request.ranks(i);
    if (r < 0 || r >= num_workers) {
      return absl::InvalidArgumentError(
          absl::StrCat("ranks[", i, "]: ", r, " is not in [0, ", num_workers, ")"));
    }
    ranks.push_back(r);
  }
  std::sort(ranks.begin(), ranks.end());
  ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
  return OutputSpec::Ranks(std::move(ranks));
}

void PlanToProto(const Plan& plan, v1::Plan* proto) {
  proto->Clear();
  proto->set_plan_id(plan.plan_id);
  proto->set_strategy(plan.strategy);
  proto->set_requested_strategy(plan.requested_strategy);
  proto->set_block_size(plan.block_size);
  DocumentsToProto(plan.documents, /*every_mask=*/true, proto->mutable_documents());
  proto->mutable_blocks()->Reserve(static_cast<int>(plan.blocks.size()));
  for (const Block& b : plan.blocks) {
    v1::Block* p = proto->add_blocks();
    p->set_document(b.document);
    p->set_begin(b.begin);
    p->set_end(b.end);
    p->set_owner(b.owner);
  }
  proto->mutable_workers()->Reserve(static_cast<int>(plan.workers.size()));
  for (const WorkerPlan& w : plan.workers) WorkerPlanToProto(w, proto->add_workers());
  proto->mutable_costs()->Reserve(static_cast<int>(plan.costs.size()));
  for (const WorkerCost& c : plan.costs) CostToProto(c, proto->add_costs());
  SummaryToProto(plan.summary, proto->mutable_summary());
}

void WorkerPlanToProto(const WorkerPlan& worker, v1::WorkerPlan* proto) {
  WorkerToProto(worker, proto);
}

absl::StatusOr<Plan> PlanFromProto(const v1::Plan& proto) {
  Plan plan;
  plan.plan_id = proto.plan_id();
  plan.strategy = proto.strategy();
  plan.requested_strategy = proto.requested_strategy();
  plan.block_size = proto.block_size();
  ASSIGN_OR_RETURN(plan.documents, DocumentsFromProto(proto.documents()));
  plan.blocks.reserve(proto.blocks_size());
  for (const v1::Block& b : proto.blocks()) {
    plan.blocks.push_back({b.document(), b.begin(), b.end(), b.owner()});
  }
  plan.workers.reserve(proto.workers_size());
  for (int i = 0; i < proto.workers_size(); ++i) {
    ASSIGN_OR_RETURN(WorkerPlan w, WorkerFromProto(proto.workers(i), i));
    plan.workers.push_back(std::move(w));
  }
  plan.costs.reserve(proto.costs_size());
  for (const v1::WorkerCost& c : proto.costs()) plan.costs.push_back(CostFromProto(c));
  plan.summary = SummaryFromProto(proto.summary());
  return plan;
}

std::string PlanToJson(const v1::Plan& plan, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Cannot fail: v1::Plan has no Any fields to resolve.
  (void)google::protobuf::util::MessageToJsonString(plan, &json, options);
  return json;
}

absl::StatusOr<v1::Plan> PlanFromJson(absl::string_view json) {
  v1::Plan plan;
  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &plan, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("plan JSON: ", status.message().ToString()));
  }
  return plan;
}

}  // namespace fcp
