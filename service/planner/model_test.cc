#include "service/planner/model.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

TEST(ModelTest, DefaultIsLlama3_8B) {
  const ModelShape m;
  EXPECT_EQ(m.name, "llama3-8b");
  EXPECT_EQ(m.hidden_size, 4096);
  EXPECT_EQ(m.ffn_hidden_size, 14336);
  EXPECT_EQ(m.mlp, MlpKind::kGated);
  EXPECT_EQ(m.num_q_heads, 32);
  EXPECT_EQ(m.num_kv_heads, 8);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.dtype, DType::kBf16);
  absl::StatusOr<ModelShape> preset = ModelPreset("llama3-8b");
  ASSERT_TRUE(preset.ok()) << preset.status();
  EXPECT_EQ(LinearFlopsPerToken(*preset), LinearFlopsPerToken(m));
  EXPECT_EQ(ActivationBytesPerToken(*preset), ActivationBytesPerToken(m));
}

TEST(ModelTest, LinearFlopsCountTheProjectionsWithGqaAndTheMlp) {
  ModelShape m;  // Llama-3-8B
  // q 2·4096·4096 + k,v 2·2·4096·1024 + o 2·4096·4096 + gated MLP 2·3·4096·14336.
  EXPECT_EQ(LinearFlopsPerToken(m), 33554432.0 + 16777216.0 + 33554432.0 + 352321536.0);
  EXPECT_NEAR(LinearFlopsPerToken(m), 436.2e6, 0.1e6);  // the figure DESIGN §1 quotes
  // Plain: two MLP matrices instead of three.
  m.mlp = MlpKind::kPlain;
  EXPECT_EQ(LinearFlopsPerToken(m), 33554432.0 + 16777216.0 + 33554432.0 + 234881024.0);
  m.num_kv_heads = 32;  // multi-head: k and v as large as q
  EXPECT_EQ(LinearFlopsPerToken(m), 4 * 33554432.0 + 234881024.0);
}

TEST(ModelTest, AnExplicitLinearFlopsPerTokenOverridesTheShape) {
  ModelShape m;
  m.linear_flops_per_token = 1e9;
  EXPECT_EQ(LinearFlopsPerToken(m), 1e9);
}

TEST(ModelTest, ActivationBytesFollowTheDocumentedFormula) {
  ModelShape m;  // per layer: (4·4096 + 2·4096 + 2·1024 + 3·14336)·2 + 4·32 = 139,392 B
  EXPECT_EQ(ActivationBytesPerToken(m), 139392 * 32);
  m.num_layers = 1;
  m.dtype = DType::kFp32;
  EXPECT_EQ(ActivationBytesPerToken(m), 69632 * 4 + 128);
  m.mlp = MlpKind::kPlain;
  EXPECT_EQ(ActivationBytesPerToken(m), (69632 - 14336) * 4 + 128);
}

TEST(ModelTest, PresetsHaveThePublishedShapes) {
  struct Expected {
    const char* name;
    int32_t hidden, ffn, layers, q, kv;
  };
  for (const Expected& e : {Expected{"llama3-70b", 8192, 28672, 80, 64, 8},
                            Expected{"qwen2.5-7b", 3584, 18944, 28, 28, 4},
                            Expected{"qwen2.5-72b", 8192, 29568, 80, 64, 8}}) {
    absl::StatusOr<ModelShape> m = ModelPreset(e.name);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->name, e.name);
    EXPECT_EQ(m->hidden_size, e.hidden) << e.name;
    EXPECT_EQ(m->ffn_hidden_size, e.ffn) << e.name;
    EXPECT_EQ(m->num_layers, e.layers) << e.name;
    EXPECT_EQ(m->num_q_heads, e.q) << e.name;
    EXPECT_EQ(m->num_kv_heads, e.kv) << e.name;
    EXPECT_EQ(m->head_dim, 128) << e.name;
    EXPECT_EQ(m->mlp, MlpKind::kGated) << e.name;
  }
  absl::StatusOr<ModelShape> gpt3 = ModelPreset("gpt3-175b");
  ASSERT_TRUE(gpt3.ok());
  EXPECT_EQ(gpt3->mlp, MlpKind::kPlain);
}

TEST(ModelTest, EveryListedPresetResolvesAndIsConsistent) {
  const std::vector<std::string> names = ModelPresetNames();
  EXPECT_GE(names.size(), 5u);
  for (const std::string& name : names) {
    absl::StatusOr<ModelShape> m = ModelPreset(name);
    ASSERT_TRUE(m.ok()) << name;
    EXPECT_EQ(m->name, name);
    EXPECT_EQ(m->num_q_heads % m->num_kv_heads, 0) << name;
    EXPECT_EQ(m->num_q_heads * m->head_dim, m->hidden_size) << name;
  }
}

TEST(ModelTest, UnknownPresetListsTheKnownOnes) {
  absl::StatusOr<ModelShape> m = ModelPreset("llama3-9b");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr("llama3-9b"));
  EXPECT_THAT(m.status().message(), HasSubstr("qwen2.5-7b"));
}

TEST(ModelTest, ObjectiveNamesRoundTrip) {
  for (Objective o : {Objective::kWholeStep, Objective::kAttention}) {
    absl::StatusOr<Objective> parsed = ParseObjective(ObjectiveName(o), "objective");
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, o);
  }
  EXPECT_EQ(ObjectiveName(Objective::kWholeStep), "whole_step");
  EXPECT_EQ(ObjectiveName(Objective::kAttention), "attention");
  EXPECT_THAT(ParseObjective("mfu", "options.objective").status().message(),
              HasSubstr("options.objective"));
}

TEST(DTypeTest, BytesAndNames) {
  EXPECT_EQ(DTypeBytes(DType::kBf16), 2);
  EXPECT_EQ(DTypeBytes(DType::kFp16), 2);
  EXPECT_EQ(DTypeBytes(DType::kFp32), 4);
  EXPECT_EQ(DTypeName(DType::kBf16), "BF16");
  EXPECT_EQ(DTypeName(DType::kFp16), "FP16");
  EXPECT_EQ(DTypeName(DType::kFp32), "FP32");
  EXPECT_EQ(MlpKindName(MlpKind::kGated), "GATED");
  EXPECT_EQ(MlpKindName(MlpKind::kPlain), "PLAIN");
}

}  // namespace
}  // namespace fcp
