#include "client/cli/report.h"

#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace fcp::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

google::protobuf::Struct Parse(const std::string& json) {
  google::protobuf::Struct object;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &object).ok()) << json;
  return object;
}

ResultRow OkRow() {
  ResultRow row;
  row.info = {2, 7, 4, 1024, 4096, 9, 700};
  row.strategy = "auto";
  row.chosen = "fcp";
  row.plan_id = "abc";
  row.block_size = 512;
  row.summary.compute_imbalance = 1.01;
  row.summary.comm_bytes = 123456789;
  row.summary.rounds = 3;
  row.summary.predicted_fwd_ms = 0.8;
  row.summary.predicted_bwd_ms = 1.6;
  row.summary.attention_fwd_ms = 0.3;
  row.summary.attention_bwd_ms = 0.7;
  row.summary.max_tokens_per_worker = 1070;
  row.summary.token_budget = 1076;
  row.summary.model = "llama3-70b";
  row.step_ms = 2;
  row.speedup_vs_ring = 1.5;
  row.valid = true;
  return row;
}

TEST(ReportTest, JsonLineHasKeysInOrderAndTypedValues) {
  const std::string json = JsonLine(OkRow());
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.rfind("{\"batch\":2,\"seed\":7,\"strategy\":\"auto\",\"chosen\":\"fcp\"", 0), 0u)
      << json;
  const auto fields = Parse(json).fields();
  EXPECT_EQ(fields.at("comm_bytes").number_value(), 123456789);
  EXPECT_TRUE(fields.at("valid").bool_value());
  EXPECT_EQ(fields.at("speedup_vs_ring").number_value(), 1.5);
  EXPECT_EQ(fields.count("error"), 0u);
  // The whole-layer step and the attention pipeline alone, side by side.
  EXPECT_EQ(fields.at("predicted_step_fwd_ms").number_value(), 0.8);
  EXPECT_EQ(fields.at("predicted_step_bwd_ms").number_value(), 1.6);
  EXPECT_EQ(fields.at("attention_fwd_ms").number_value(), 0.3);
  EXPECT_EQ(fields.at("attention_bwd_ms").number_value(), 0.7);
  EXPECT_EQ(fields.at("max_tokens_per_worker").number_value(), 1070);
  EXPECT_EQ(fields.at("token_budget").number_value(), 1076);
  EXPECT_EQ(fields.at("model").string_value(), "llama3-70b");
}

TEST(ReportTest, UnknownsAreNullAndErrorsAreEscaped) {
  ResultRow row = OkRow();
  row.valid.reset();
  row.speedup_vs_ring.reset();
  auto fields = Parse(JsonLine(row)).fields();
  EXPECT_EQ(fields.at("valid").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(fields.at("speedup_vs_ring").kind_case(), google::protobuf::Value::kNullValue);

  ResultRow failed;
  failed.strategy = "fcp";
  failed.error = "INTERNAL: \"quoted\"\nand a newline";
  const std::string json = JsonLine(failed);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  fields = Parse(json).fields();
  EXPECT_EQ(fields.at("error").string_value(), failed.error);
  EXPECT_FALSE(fields.at("valid").bool_value());
  EXPECT_EQ(fields.at("compute_imbalance").kind_case(), google::protobuf::Value::kNullValue);
}

TEST(ReportTest, HumanBytes) {
  EXPECT_EQ(HumanBytes(0), "0 B");
  EXPECT_EQ(HumanBytes(999), "999 B");
  EXPECT_EQ(HumanBytes(1500), "1.50 kB");
  EXPECT_EQ(HumanBytes(2.5e9), "2.50 GB");
}

TEST(ReportTest, TablesShowRowsAndMedians) {
  ResultRow second = OkRow();
  second.info.batch = 3;
  second.summary.compute_imbalance = 1.03;
  second.valid = false;
  std::ostringstream out;
  PrintBatchTable({OkRow()}, out);
  EXPECT_THAT(out.str(), HasSubstr("batch 2 (seed 7): 4 workers x 1024 tokens"));
  EXPECT_THAT(out.str(), HasSubstr("123.46 MB"));
  std::ostringstream medians;
  PrintMedians({"auto", "ring"}, {OkRow(), second}, medians);
  EXPECT_THAT(medians.str(), HasSubstr("median over 2 batches"));
  EXPECT_THAT(medians.str(), HasSubstr("1.020"));  // median of 1.01 and 1.03
  EXPECT_THAT(medians.str(), HasSubstr("1/2"));
  EXPECT_THAT(medians.str(), Not(HasSubstr("\nring ")));  // no rows: no line
}

}  // namespace
}  // namespace fcp::cli
