#include "proto/plan_convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/planner/batch.h"

namespace fcp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Two documents, three blocks on two workers, one KV transfer forward and its dKV backward.
Plan HandMadePlan() {
  Plan plan;
  plan.plan_id = "00ff12ab";
  plan.strategy = "fcp";
  plan.requested_strategy = "auto";
  plan.block_size = 128;
  plan.documents = {{200, Mask::Causal()}, {64, Mask::SlidingWindow(16)}};
  plan.blocks = {{0, 0, 100, 0}, {0, 100, 200, 1}, {1, 0, 64, 0}};
  WorkerPlan w0;
  w0.rank = 0;
  w0.blocks = {0, 2};
  w0.tiles = {{0, 0, 0}, {2, 2, 0}};
  w0.sends = {{1, 1, {0}, TransferKind::kKv}};
  w0.recvs = {{1, 1, {0}, TransferKind::kDkv}};
  w0.predicted = {1e9, 2.5e9, 164, 51200, 51200, 0.5, 0.6, 1.5, 0.9, 2.1};
  WorkerPlan w1;
  w1.rank = 1;
  w1.blocks = {1};
  w1.tiles = {{1, 1, 0}, {1, 0, 1}};
  w1.sends = {{1, 0, {0}, TransferKind::kDkv}};
  w1.recvs = {{1, 0, {0}, TransferKind::kKv}};
  w1.predicted = {2e9, 5e9, 100, 51200, 51200, 0.7, 0.8, 2.0, 1.1, 2.6};
  plan.workers = {w0, w1};
  plan.costs = {w0.predicted, w1.predicted};
  plan.summary.compute_imbalance = 1.333;
  plan.summary.token_imbalance = 1.2424;
  plan.summary.comm_bytes = 102400;
  plan.summary.max_worker_comm_bytes = 102400;
  plan.summary.inter_node_bytes = 0;
  plan.summary.rounds = 1;
  plan.summary.predicted_fwd_ms = 0.8;
  plan.summary.predicted_bwd_ms = 2.0;
  plan.summary.planning_ms = 0.01;
  plan.summary.tiles = 4;
  plan.summary.total_fwd_flops = 3e9;
  plan.summary.attention_fwd_ms = 0.7;
  plan.summary.attention_bwd_ms = 1.9;
  plan.summary.balanced_fwd_ms = 0.6;
  plan.summary.balanced_bwd_ms = 1.4;
  plan.summary.max_tokens_per_worker = 164;
  plan.summary.token_budget = 170;
  plan.summary.model = "llama3-70b";
  return plan;
}

void ExpectCostEq(const WorkerCost& a, const WorkerCost& b) {
  EXPECT_EQ(a.fwd_flops, b.fwd_flops);
  EXPECT_EQ(a.bwd_flops, b.bwd_flops);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.send_bytes, b.send_bytes);
  EXPECT_EQ(a.recv_bytes, b.recv_bytes);
  EXPECT_EQ(a.compute_fwd_ms, b.compute_fwd_ms);
  EXPECT_EQ(a.attention_fwd_ms, b.attention_fwd_ms);
  EXPECT_EQ(a.attention_bwd_ms, b.attention_bwd_ms);
  EXPECT_EQ(a.fwd_ms, b.fwd_ms);
  EXPECT_EQ(a.bwd_ms, b.bwd_ms);
}

void ExpectPlanEq(const Plan& a, const Plan& b) {
  EXPECT_EQ(a.plan_id, b.plan_id);
  EXPECT_EQ(a.strategy, b.strategy);
  EXPECT_EQ(a.requested_strategy, b.requested_strategy);
  EXPECT_EQ(a.block_size, b.block_size);
  ASSERT_EQ(a.documents.size(), b.documents.size());
  for (size_t i = 0; i < a.documents.size(); ++i) {
    EXPECT_EQ(a.documents[i].length, b.documents[i].length);
    EXPECT_EQ(a.documents[i].mask, b.documents[i].mask);
  }
  EXPECT_EQ(a.blocks, b.blocks);
  ASSERT_EQ(a.workers.size(), b.workers.size());
  for (size_t i = 0; i < a.workers.size(); ++i) {
    EXPECT_EQ(a.workers[i].rank, b.workers[i].rank);
    EXPECT_EQ(a.workers[i].blocks, b.workers[i].blocks);
    EXPECT_EQ(a.workers[i].tiles, b.workers[i].tiles);
    EXPECT_EQ(a.workers[i].sends, b.workers[i].sends);
    EXPECT_EQ(a.workers[i].recvs, b.workers[i].recvs);
    ExpectCostEq(a.workers[i].predicted, b.workers[i].predicted);
  }
  ASSERT_EQ(a.costs.size(), b.costs.size());
  for (size_t i = 0; i < a.costs.size(); ++i) ExpectCostEq(a.costs[i], b.costs[i]);
  EXPECT_EQ(a.summary.compute_imbalance, b.summary.compute_imbalance);
  EXPECT_EQ(a.summary.token_imbalance, b.summary.token_imbalance);
  EXPECT_EQ(a.summary.comm_bytes, b.summary.comm_bytes);
  EXPECT_EQ(a.summary.max_worker_comm_bytes, b.summary.max_worker_comm_bytes);
  EXPECT_EQ(a.summary.inter_node_bytes, b.summary.inter_node_bytes);
  EXPECT_EQ(a.summary.rounds, b.summary.rounds);
  EXPECT_EQ(a.summary.predicted_fwd_ms, b.summary.predicted_fwd_ms);
  EXPECT_EQ(a.summary.predicted_bwd_ms, b.summary.predicted_bwd_ms);
  EXPECT_EQ(a.summary.planning_ms, b.summary.planning_ms);
  EXPECT_EQ(a.summary.tiles, b.summary.tiles);
  EXPECT_EQ(a.summary.total_fwd_flops, b.summary.total_fwd_flops);
  EXPECT_EQ(a.summary.attention_fwd_ms, b.summary.attention_fwd_ms);
  EXPECT_EQ(a.summary.attention_bwd_ms, b.summary.attention_bwd_ms);
  EXPECT_EQ(a.summary.balanced_fwd_ms, b.summary.balanced_fwd_ms);
  EXPECT_EQ(a.summary.balanced_bwd_ms, b.summary.balanced_bwd_ms);
  EXPECT_EQ(a.summary.max_tokens_per_worker, b.summary.max_tokens_per_worker);
  EXPECT_EQ(a.summary.token_budget, b.summary.token_budget);
  EXPECT_EQ(a.summary.model, b.summary.model);
}

TEST(PlanConvertTest, PlanRoundTripsThroughProto) {
  const Plan plan = HandMadePlan();
  v1::Plan proto;
  PlanToProto(plan, &proto);
  EXPECT_EQ(proto.workers(1).recvs(0).kind(), v1::Transfer::KV);
  EXPECT_EQ(proto.documents(1).mask().kind(), v1::Mask::SLIDING_WINDOW);
  absl::StatusOr<Plan> back = PlanFromProto(proto);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectPlanEq(plan, *back);
}

TEST(PlanConvertTest, PlanRoundTripsThroughJson) {
  v1::Plan proto;
  PlanToProto(HandMadePlan(), &proto);
  for (bool pretty : {false, true}) {
    absl::StatusOr<v1::Plan> parsed = PlanFromJson(PlanToJson(proto, pretty));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<Plan> back = PlanFromProto(*parsed);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectPlanEq(HandMadePlan(), *back);
  }
}

TEST(PlanConvertTest, JsonUsesProtoFieldNamesAndPrintsZeros) {
  v1::Plan proto;
  PlanToProto(HandMadePlan(), &proto);
  const std::string json = PlanToJson(proto);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  for (const char* key :
       {"\"plan_id\"", "\"requested_strategy\"", "\"block_size\"", "\"documents\"", "\"blocks\"",
        "\"workers\"", "\"tiles\"", "\"q_block\"", "\"kv_block\"", "\"sends\"", "\"recvs\"",
        "\"predicted\"", "\"compute_fwd_ms\"", "\"costs\"", "\"summary\"", "\"compute_imbalance\"",
        "\"max_worker_comm_bytes\"", "\"inter_node_bytes\"", "\"total_fwd_flops\""}) {
    EXPECT_THAT(json, HasSubstr(key));
  }
  EXPECT_THAT(json, HasSubstr("\"kind\":\"DKV\""));
  EXPECT_THAT(json, HasSubstr("\"kind\":\"SLIDING_WINDOW\""));
  EXPECT_THAT(json, HasSubstr("\"inter_node_bytes\":\"0\""));  // zero printed; int64 as string
  EXPECT_THAT(json, HasSubstr("\"round\":0"));
}

TEST(PlanConvertTest, PlanFromJsonRejectsGarbageAndUnknownFields) {
  EXPECT_EQ(PlanFromJson("{").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanFromJson("{\"no_such_field\": 1}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Placed computation's kinds (service/planner/plan.h): each one survives proto and JSON, by name.
TEST(PlanConvertTest, EveryTransferKindRoundTripsByName) {
  const std::pair<TransferKind, const char*> kinds[] = {
      {TransferKind::kKv, "KV"},   {TransferKind::kDkv, "DKV"}, {TransferKind::kQ, "Q"},
      {TransferKind::kOut, "OUT"}, {TransferKind::kDo, "DO"},   {TransferKind::kDq, "DQ"}};
  for (const auto& [kind, name] : kinds) {
    Plan plan = HandMadePlan();
    plan.workers[1].sends[0].kind = kind;
    v1::Plan proto;
    PlanToProto(plan, &proto);
    EXPECT_THAT(PlanToJson(proto), HasSubstr(absl::StrCat("\"kind\":\"", name, "\"")));
    absl::StatusOr<v1::Plan> parsed = PlanFromJson(PlanToJson(proto));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<Plan> back = PlanFromProto(*parsed);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->workers[1].sends[0].kind, kind) << name;
    ExpectPlanEq(plan, *back);
  }
}

TEST(PlanConvertTest, PlanFromProtoRejectsUnknownTransferKind) {
  v1::Plan proto;
  PlanToProto(HandMadePlan(), &proto);
  proto.mutable_workers(1)->mutable_sends(0)->set_kind(static_cast<v1::Transfer::Kind>(9));
  absl::StatusOr<Plan> back = PlanFromProto(proto);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(back.status().message(), HasSubstr("workers[1].sends[0].kind"));
}

Batch SmallBatch() {
  Batch batch;
  batch.documents = {{1000, Mask::Causal()}, {300, Mask::Full()}, {500, Mask::PrefixLm(100)}};
  batch.model = {16, 4, 64, DType::kFp32, 1e6};
  batch.topology.num_workers = 4;
  batch.topology.workers_per_node = 2;
  batch.topology.intra_node_gbps = 100;
  batch.topology.inter_node_gbps = 25;
  batch.topology.attention_tflops = 300;
  batch.topology.max_tokens_per_worker = 1000;
  batch.topology.activation_memory_bytes = 1 << 30;
  batch.topology.token_slack = 0;  // explicitly none: not the default's 0.05
  batch.model.hidden_size = 2048;
  batch.model.ffn_hidden_size = 5000;
  batch.model.mlp = MlpKind::kPlain;
  batch.model.num_layers = 12;
  return batch;
}

TEST(PlanConvertTest, BatchRoundTrips) {
  const Batch batch = SmallBatch();
  v1::PlanRequest request;
  BatchToProto(batch, &request);
  absl::StatusOr<Batch> back = BatchFromProto(request);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->documents.size(), 3u);
  EXPECT_EQ(back->documents[2].length, 500);
  EXPECT_EQ(back->documents[2].mask, Mask::PrefixLm(100));
  EXPECT_EQ(back->documents[1].mask, Mask::Full());
  EXPECT_EQ(back->model.num_q_heads, 16);
  EXPECT_EQ(back->model.num_kv_heads, 4);
  EXPECT_EQ(back->model.head_dim, 64);
  EXPECT_EQ(back->model.dtype, DType::kFp32);
  EXPECT_EQ(back->model.linear_flops_per_token, 1e6);
  EXPECT_EQ(back->topology.num_workers, 4);
  EXPECT_EQ(back->topology.workers_per_node, 2);
  EXPECT_EQ(back->topology.intra_node_gbps, 100);
  EXPECT_EQ(back->topology.inter_node_gbps, 25);
  EXPECT_EQ(back->topology.attention_tflops, 300);
  EXPECT_EQ(back->topology.max_tokens_per_worker, 1000);
  EXPECT_EQ(back->topology.activation_memory_bytes, 1 << 30);
  EXPECT_EQ(back->topology.token_slack, 0);
  EXPECT_EQ(back->model.hidden_size, 2048);
  EXPECT_EQ(back->model.ffn_hidden_size, 5000);
  EXPECT_EQ(back->model.mlp, MlpKind::kPlain);
  EXPECT_EQ(back->model.num_layers, 12);
  EXPECT_EQ(back->model.name, "custom");
  EXPECT_TRUE(ValidateBatch(*back).ok());
}

TEST(PlanConvertTest, ZeroTopologyFieldsDocumentedAsDefaultTakeCoreDefaults) {
  v1::PlanRequest request;
  request.add_documents()->set_length(10);  // mask unset = CAUSAL
  request.mutable_topology()->set_num_workers(2);
  absl::StatusOr<Batch> batch = BatchFromProto(request);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const Topology defaults;
  EXPECT_EQ(batch->documents[0].mask, Mask::Causal());
  EXPECT_EQ(batch->topology.workers_per_node, defaults.workers_per_node);
  EXPECT_EQ(batch->topology.intra_node_gbps, defaults.intra_node_gbps);
  EXPECT_EQ(batch->topology.inter_node_gbps, defaults.inter_node_gbps);
  EXPECT_EQ(batch->topology.attention_tflops, defaults.attention_tflops);
  EXPECT_EQ(batch->topology.max_tokens_per_worker, 0);
  EXPECT_EQ(batch->topology.activation_memory_bytes, 0);
  EXPECT_EQ(batch->topology.token_slack, defaults.token_slack);
  EXPECT_EQ(batch->model.dtype, DType::kBf16);
}

// An old client sets the attention fields only: the layers around attention are the default
// model's (hidden 4096, FFN 14336 gated, 32 layers), never 0 (which ValidateBatch rejects).
TEST(PlanConvertTest, ModelFieldsLeftZeroTakeTheDefaultModel) {
  v1::PlanRequest request;
  request.add_documents()->set_length(10);
  request.mutable_topology()->set_num_workers(2);
  request.mutable_model()->set_num_q_heads(32);
  request.mutable_model()->set_num_kv_heads(8);
  request.mutable_model()->set_head_dim(128);
  absl::StatusOr<Batch> batch = BatchFromProto(request);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const ModelShape defaults;
  EXPECT_EQ(batch->model.hidden_size, defaults.hidden_size);
  EXPECT_EQ(batch->model.ffn_hidden_size, defaults.ffn_hidden_size);
  EXPECT_EQ(batch->model.mlp, MlpKind::kGated);
  EXPECT_EQ(batch->model.num_layers, defaults.num_layers);
  EXPECT_EQ(batch->model.linear_flops_per_token, 0);
  EXPECT_EQ(batch->model.name, "llama3-8b");
  EXPECT_TRUE(ValidateBatch(*batch).ok());

  request.mutable_model()->set_num_q_heads(16);  // not llama3-8b any more
  EXPECT_EQ(BatchFromProto(request)->model.name, "custom");
}

// A preset fills every field left 0; explicitly set fields override it (and make it "custom").
TEST(PlanConvertTest, PresetFillsTheShapeAndExplicitFieldsOverrideIt) {
  v1::PlanRequest request;
  request.add_documents()->set_length(10);
  request.mutable_topology()->set_num_workers(2);
  request.mutable_model()->set_preset("llama3-70b");
  absl::StatusOr<Batch> batch = BatchFromProto(request);
  ASSERT_TRUE(batch.ok()) << batch.status();
  absl::StatusOr<ModelShape> preset = ModelPreset("llama3-70b");
  ASSERT_TRUE(preset.ok());
  EXPECT_EQ(batch->model.num_q_heads, preset->num_q_heads);
  EXPECT_EQ(batch->model.num_kv_heads, preset->num_kv_heads);
  EXPECT_EQ(batch->model.head_dim, preset->head_dim);
  EXPECT_EQ(batch->model.hidden_size, 8192);
  EXPECT_EQ(batch->model.ffn_hidden_size, 28672);
  EXPECT_EQ(batch->model.num_layers, 80);
  EXPECT_EQ(batch->model.name, "llama3-70b");
  EXPECT_TRUE(ValidateBatch(*batch).ok());

  request.mutable_model()->set_ffn_hidden_size(20000);
  request.mutable_model()->set_mlp(v1::ModelShape::PLAIN);
  batch = BatchFromProto(request);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->model.hidden_size, 8192);
  EXPECT_EQ(batch->model.ffn_hidden_size, 20000);
  EXPECT_EQ(batch->model.mlp, MlpKind::kPlain);
  EXPECT_EQ(batch->model.name, "custom");

  // A preset model round-trips under its name.
  v1::PlanRequest again;
  BatchToProto(Batch{{{10, Mask::Causal()}}, *preset, {}}, &again);
  EXPECT_EQ(again.model().preset(), "llama3-70b");
  EXPECT_EQ(BatchFromProto(again)->model.name, "llama3-70b");

  request.mutable_model()->set_preset("llama9-1t");
  EXPECT_THAT(BatchFromProto(request).status().message(), HasSubstr("model.preset"));
}

TEST(PlanConvertTest, RequiredFieldsLeftZeroAreRejectedByValidation) {
  v1::PlanRequest request;
  request.add_documents()->set_length(10);
  absl::StatusOr<Batch> batch = BatchFromProto(request);
  ASSERT_TRUE(batch.ok());
  // The model is required: its zero heads are not replaced by defaults.
  EXPECT_THAT(ValidateBatch(*batch).message(), HasSubstr("model.num_q_heads"));
  request.mutable_model()->set_num_q_heads(8);
  request.mutable_model()->set_num_kv_heads(8);
  request.mutable_model()->set_head_dim(64);
  batch = BatchFromProto(request);
  EXPECT_THAT(ValidateBatch(*batch).message(), HasSubstr("topology.num_workers"));
  request.mutable_topology()->set_num_workers(1);
  request.mutable_topology()->set_inter_node_gbps(-5);
  batch = BatchFromProto(request);
  EXPECT_THAT(ValidateBatch(*batch).message(), HasSubstr("topology.inter_node_gbps"));
}

TEST(PlanConvertTest, UnknownEnumsAreRejectedNamingTheField) {
  v1::PlanRequest request;
  request.add_documents()->set_length(10);
  request.add_documents()->mutable_mask()->set_kind(static_cast<v1::Mask::Kind>(42));
  absl::StatusOr<Batch> batch = BatchFromProto(request);
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(batch.status().message(), HasSubstr("documents[1].mask.kind"));

  request.mutable_documents(1)->clear_mask();
  request.mutable_model()->set_dtype(static_cast<v1::ModelShape::DType>(7));
  EXPECT_THAT(BatchFromProto(request).status().message(), HasSubstr("model.dtype"));
  request.mutable_model()->clear_dtype();
  request.mutable_model()->set_mlp(static_cast<v1::ModelShape::MlpKind>(5));
  EXPECT_THAT(BatchFromProto(request).status().message(), HasSubstr("model.mlp"));

  v1::PlanOptions options;
  options.set_objective(static_cast<v1::PlanOptions::Objective>(9));
  EXPECT_THAT(OptionsFromProto(options).status().message(), HasSubstr("options.objective"));
}

TEST(PlanConvertTest, OptionsDefaults) {
  absl::StatusOr<PlanOptions> options = OptionsFromProto(v1::PlanOptions());
  ASSERT_TRUE(options.ok());
  const PlanOptions defaults;
  EXPECT_EQ(options->strategy, "auto");
  EXPECT_EQ(options->block_size, 0);
  EXPECT_TRUE(options->include_backward);
  EXPECT_EQ(options->time_budget_ms, defaults.time_budget_ms);
  EXPECT_EQ(options->objective, Objective::kWholeStep);

  v1::PlanOptions proto;
  proto.set_objective(v1::PlanOptions::ATTENTION);
  proto.set_strategy("ring");
  proto.set_block_size(4096);
  proto.set_include_backward(false);
  proto.set_time_budget_ms(5);
  CostParams cost;
  cost.transfer_latency_us = 7;
  options = OptionsFromProto(proto, cost);
  ASSERT_TRUE(options.ok());
  EXPECT_EQ(options->strategy, "ring");
  EXPECT_EQ(options->block_size, 4096);
  EXPECT_FALSE(options->include_backward);
  EXPECT_EQ(options->time_budget_ms, 5);
  EXPECT_EQ(options->cost.transfer_latency_us, 7);
  EXPECT_EQ(options->objective, Objective::kAttention);

  v1::PlanOptions again;
  OptionsToProto(*options, &again);
  EXPECT_EQ(again.strategy(), "ring");
  EXPECT_TRUE(again.has_include_backward());
  EXPECT_FALSE(again.include_backward());
  EXPECT_EQ(again.objective(), v1::PlanOptions::ATTENTION);
}

// RequestedOptions is the round trip through the message, field for field and by plan id, for
// requests that set every field, leave the "0 = default" ones 0, or set what the message lacks.
TEST(PlanConvertTest, RequestedOptionsAreTheProtoRoundTrip) {
  PlanOptions defaults;
  defaults.strategy = "ring";
  defaults.time_budget_ms = 17;
  defaults.balance_tolerance = 0.2;
  defaults.cost.transfer_latency_us = 9;
  PlanOptions full;
  full.strategy = "fcp";
  full.block_size = 256;
  full.include_backward = false;
  full.time_budget_ms = 3;
  full.objective = Objective::kAttention;
  PlanOptions zeros;
  zeros.strategy = "";
  zeros.time_budget_ms = 0;
  PlanOptions unsent;  // the message carries neither field: the defaults' win
  unsent.balance_tolerance = 0.5;
  unsent.cost.transfer_latency_us = 1;
  const Batch batch = SmallBatch();
  for (const PlanOptions& requested : {full, zeros, unsent}) {
    v1::PlanOptions proto;
    OptionsToProto(requested, &proto);
    absl::StatusOr<PlanOptions> expected = OptionsFromProto(proto, defaults);
    ASSERT_TRUE(expected.ok()) << expected.status();
    const PlanOptions got = RequestedOptions(requested, defaults);
    EXPECT_EQ(got.strategy, expected->strategy);
    EXPECT_EQ(got.block_size, expected->block_size);
    EXPECT_EQ(got.include_backward, expected->include_backward);
    EXPECT_EQ(got.time_budget_ms, expected->time_budget_ms);
    EXPECT_EQ(got.balance_tolerance, expected->balance_tolerance);
    EXPECT_EQ(got.objective, expected->objective);
    EXPECT_EQ(got.cost.transfer_latency_us, expected->cost.transfer_latency_us);
    EXPECT_EQ(ComputePlanId(batch, got), ComputePlanId(batch, *expected));
  }
  EXPECT_EQ(RequestedOptions(zeros, defaults).strategy, "ring");
  EXPECT_EQ(RequestedOptions(zeros, defaults).time_budget_ms, 17);
  EXPECT_EQ(RequestedOptions(unsent, defaults).balance_tolerance, 0.2);
}

TEST(PlanConvertTest, OutputSpecFromRanks) {
  v1::PlanRequest request;
  absl::StatusOr<OutputSpec> spec = OutputSpecFromProto(request, 4);
  ASSERT_TRUE(spec.ok());
  EXPECT_TRUE(spec->all_ranks);

  request.add_ranks(3);
  request.add_ranks(1);
  request.add_ranks(3);
  spec = OutputSpecFromProto(request, 4);
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(spec->all_ranks);
  EXPECT_THAT(spec->ranks, ElementsAre(1, 3));

  request.add_ranks(4);
  spec = OutputSpecFromProto(request, 4);
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(spec.status().message(), HasSubstr("ranks[3]"));
}

}  // namespace
}  // namespace fcp
