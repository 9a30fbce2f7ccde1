// Runs the built `fcp` binary and checks the contract other tools rely on: exit codes, one-line
// errors, JSON lines with every key, --strategy all, --dump-plan, determinism.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "service/planner/planner.h"
#include "service/planner/strategies/dcp.h"
#include "tests/cli_runner.h"

namespace fcp {
namespace {

CliResult RunFcp(const std::vector<std::string>& args) { return RunCli(FCP_BINARY, args); }

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kWikipedia = std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths";
const std::string kMagi = std::string(FCP_SHARED_DIR) + "/workloads/magi_histogram.csv";

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = TestTempPath(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

google::protobuf::Struct ParseJson(const std::string& line) {
  google::protobuf::Struct object;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &object).ok()) << line;
  return object;
}

// A small, fast plan on the real wikipedia lengths.
std::vector<std::string> SmallPlan(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"plan", "--lengths",           kWikipedia, "--workers",
                                   "4",    "--tokens-per-worker", "4096"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(kWikipedia).good()) GTEST_SKIP() << kWikipedia << " not present";
  }
};

TEST(CliHelpTest, HelpTeachesUsageWithAnExample) {
  for (const char* word : {"help", "--help"}) {
    const CliResult r = RunFcp({word});
    EXPECT_EQ(r.code, 0) << word;
    EXPECT_THAT(r.out, HasSubstr("example"));
    EXPECT_THAT(r.out, HasSubstr("--tokens-per-worker"));
    EXPECT_THAT(r.out, HasSubstr("--validate-max-tiles"));
    // The model flags, and every preset with its shape.
    EXPECT_THAT(r.out, HasSubstr("--objective"));
    EXPECT_THAT(r.out, HasSubstr("--hidden-size"));
    EXPECT_THAT(r.out, HasSubstr("llama3-70b    8192 / 28672 GATED  80 layers"));
  }
  EXPECT_EQ(RunFcp({"plan", "--help"}).code, 0);
  EXPECT_EQ(RunFcp({}).code, 2);
}

TEST(CliStrategiesTest, ListsEveryRegisteredStrategy) {
  const CliResult r = RunFcp({"strategies"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  RegisterDcpPlanner();
  const std::vector<StrategyInfo> strategies = ListStrategies();
  ASSERT_EQ(lines.size(), strategies.size());
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_THAT(lines[i], StartsWith(strategies[i].name));
}

struct BadInput {
  std::string name;
  std::vector<std::string> args;  // after "plan" unless it starts with "!"
  std::string expected;           // substring of the one stderr line
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

class CliBadInputTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(CliBadInputTest, ExitsTwoWithOneClearLine) {
  const BadInput& c = GetParam();
  std::vector<std::string> args = c.args;
  if (!args.empty() && args[0] == "!") {
    args.erase(args.begin());
  } else {
    args.insert(args.begin(), "plan");
  }
  const CliResult r = RunFcp(args);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_THAT(r.err, StartsWith("fcp: "));
  EXPECT_THAT(r.err, HasSubstr(c.expected));
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_EQ(r.out, "");
}

std::vector<BadInput> BadInputs() {
  const std::string w = kWikipedia;
  const std::string bad_line = WriteTemp("bad_line.lengths", "12\n# ok\nabc\n");
  const std::string zero = WriteTemp("zero.lengths", "5\n0\n");
  const std::string empty = WriteTemp("empty.lengths", "");
  const std::string bad_csv = WriteTemp("bad.csv", "range,number\n[1, 2],3\n");
  const std::string bad_cal = WriteTemp("bad.calibration", "no_such_key = 1\n");
  const std::vector<std::string> ok = {"--workers", "2", "--tokens-per-worker", "1024"};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), ok.begin(), ok.end());
    return a;
  };
  return {
      {"UnknownCommand", {"!", "frobnicate"}, "unknown command 'frobnicate'"},
      {"StrategiesExtraArgument", {"!", "strategies", "x"}, "unexpected argument"},
      {"NoWorkload", with({}), "--lengths FILE or --histogram"},
      {"BothWorkloads", with({"--lengths", w, "--histogram", kMagi}), "mutually exclusive"},
      {"MissingFile", with({"--lengths", "/nonexistent/x.lengths"}), "/nonexistent/x.lengths"},
      {"NonNumericLine", with({"--lengths", bad_line}), "bad_line.lengths:3: not an integer"},
      {"ZeroLength", with({"--lengths", zero}), "zero.lengths:2: length must be >= 1"},
      {"EmptyFile", with({"--lengths", empty}), "no lengths"},
      {"BadHistogram", with({"--histogram", bad_csv}), "bad.csv:2"},
      {"ZeroWorkers",
       {"--lengths", w, "--workers", "0", "--tokens-per-worker", "8"},
       "--workers: must be >= 1, got 0"},
      {"MissingWorkers", {"--lengths", w, "--tokens-per-worker", "8"}, "--workers: required"},
      {"NonNumericWorkers",
       {"--lengths", w, "--workers", "two", "--tokens-per-worker", "8"},
       "--workers: expected an integer, got 'two'"},
      {"ZeroTokens",
       {"--lengths", w, "--workers", "2", "--tokens-per-worker", "0"},
       "--tokens-per-worker: must be >= 1, got 0"},
      {"UnknownStrategy", with({"--lengths", w, "--strategy", "nope"}), "unknown strategy 'nope'"},
      {"BlockSizeNotMultipleOf64", with({"--lengths", w, "--block-size", "100"}), "--block-size"},
      {"UnknownFlag", with({"--lengths", w, "--frobnicate"}), "unknown flag --frobnicate"},
      {"StrayArgument", with({"--lengths", w, "extra"}), "unexpected argument 'extra'"},
      {"MissingValue", {"--lengths"}, "--lengths: missing value"},
      {"HeadsNotMultipleOfKvHeads", with({"--lengths", w, "--heads", "30"}), "--heads"},
      {"BadDtype", with({"--lengths", w, "--dtype", "int8"}), "--dtype"},
      {"NegativeBandwidth", with({"--lengths", w, "--inter-node-gbps", "-1"}), "--inter-node-gbps"},
      {"MemoryCapTooSmall", with({"--lengths", w, "--max-tokens-per-worker", "100"}),
       "max_tokens_per_worker"},
      {"UnknownModel", with({"--lengths", w, "--model", "llama9"}), "--model: unknown model"},
      {"BadMlp", with({"--lengths", w, "--mlp", "moe"}), "--mlp"},
      {"ZeroHiddenSize", with({"--lengths", w, "--hidden-size", "0"}), "--hidden-size"},
      {"ZeroFfn", with({"--lengths", w, "--ffn-hidden-size", "0"}), "--ffn-hidden-size"},
      {"BadObjective", with({"--lengths", w, "--objective", "mfu"}), "--objective"},
      {"BadMaskMix", with({"--lengths", w, "--mask-mix", "causal,window"}),
       "--mask-mix: entry 2 ('window'): unknown mask"},
      {"NegativeSlack", with({"--lengths", w, "--token-slack", "-0.1"}), "--token-slack"},
      {"NegativeMemory", with({"--lengths", w, "--activation-memory-bytes", "-1"}),
       "--activation-memory-bytes"},
      {"ZeroGemmRate", with({"--lengths", w, "--gemm-tflops", "0"}), "--gemm-tflops"},
      {"BadCalibration", with({"--lengths", w, "--calibration", bad_cal}), "--calibration"},
      {"DumpWithAll", with({"--lengths", w, "--strategy", "all", "--dump-plan", "/tmp/x.json"}),
       "--dump-plan"},
      {"DumpWithBatches",
       with({"--lengths", w, "--strategy", "fcp", "--batches", "2", "--dump-plan", "/tmp/x"}),
       "--dump-plan"},
  };
}

INSTANTIATE_TEST_SUITE_P(Cases, CliBadInputTest, ::testing::ValuesIn(BadInputs()),
                         [](const auto& info) { return info.param.name; });

const char* const kRequiredKeys[] = {"batch",
                                     "strategy",
                                     "workers",
                                     "tokens",
                                     "documents",
                                     "block_size",
                                     "compute_imbalance",
                                     "token_imbalance",
                                     "comm_bytes",
                                     "max_worker_comm_bytes",
                                     "rounds",
                                     "predicted_fwd_ms",
                                     "predicted_bwd_ms",
                                     "planning_ms",
                                     "valid",
                                     "plan_id",
                                     "speedup_vs_ring",
                                     "chosen",
                                     "tiles",
                                     "inter_node_bytes",
                                     "predicted_step_fwd_ms",
                                     "predicted_step_bwd_ms",
                                     "attention_fwd_ms",
                                     "attention_bwd_ms",
                                     "max_tokens_per_worker",
                                     "token_budget",
                                     "model"};

// --model and the shape flags reach the plan: the preset's name, "custom" once a field overrides
// it, the token budget under whole_step (none under attention), and a different plan id.
TEST_F(CliTest, ModelFlagsAndObjectiveReachThePlan) {
  auto line = [](std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--strategy", "fcp", "--json"});
    const CliResult r = RunFcp(SmallPlan(extra));
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseJson(Lines(r.out).at(0)).fields();
  };
  const auto eight = line({});
  EXPECT_EQ(eight.at("model").string_value(), "llama3-8b");
  EXPECT_GT(eight.at("token_budget").number_value(), 0);
  EXPECT_LE(eight.at("max_tokens_per_worker").number_value(),
            eight.at("token_budget").number_value());
  EXPECT_GT(eight.at("predicted_step_fwd_ms").number_value(),
            eight.at("attention_fwd_ms").number_value());
  const auto seventy = line({"--model", "llama3-70b"});
  EXPECT_EQ(seventy.at("model").string_value(), "llama3-70b");
  EXPECT_NE(seventy.at("plan_id").string_value(), eight.at("plan_id").string_value());
  EXPECT_EQ(line({"--model", "llama3-70b", "--mlp", "plain"}).at("model").string_value(), "custom");
  const auto attention = line({"--objective", "attention"});
  EXPECT_EQ(attention.at("token_budget").number_value(), 0);
  EXPECT_DOUBLE_EQ(attention.at("predicted_step_fwd_ms").number_value(),
                   attention.at("attention_fwd_ms").number_value());
  EXPECT_GT(line({"--token-slack", "0.5"}).at("token_budget").number_value(),
            eight.at("token_budget").number_value());
}

// --mask-mix reaches the plan: the same documents (lengths come from their own stream), less
// attention under a narrow sliding window, and "causal" is the default batch.
TEST_F(CliTest, MaskMixReachesThePlan) {
  auto line = [](std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--strategy", "per_doc", "--json", "--objective", "attention"});
    const CliResult r = RunFcp(SmallPlan(extra));
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseJson(Lines(r.out).at(0)).fields();
  };
  const auto causal = line({});
  const auto window = line({"--mask-mix", "sliding_window=64"});
  const auto mixed = line({"--mask-mix", "causal,prefix_lm"});
  EXPECT_EQ(window.at("documents").number_value(), causal.at("documents").number_value());
  EXPECT_LT(window.at("attention_fwd_ms").number_value(),
            causal.at("attention_fwd_ms").number_value());
  EXPECT_NE(mixed.at("plan_id").string_value(), causal.at("plan_id").string_value());
  EXPECT_EQ(line({"--mask-mix", "causal"}).at("plan_id").string_value(),
            causal.at("plan_id").string_value());
}

TEST_F(CliTest, StrategyAllGivesOneValidJsonLinePerStrategy) {
  const CliResult r = RunFcp(SmallPlan({"--strategy", "all", "--json"}));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  RegisterDcpPlanner();
  const std::vector<StrategyInfo> strategies = ListStrategies();
  ASSERT_EQ(lines.size(), strategies.size()) << r.out;
  std::set<std::string> seen;
  for (const std::string& line : lines) {
    const google::protobuf::Struct object = ParseJson(line);
    for (const char* key : kRequiredKeys) EXPECT_TRUE(object.fields().count(key)) << key;
    const auto& f = object.fields();
    seen.insert(f.at("strategy").string_value());
    EXPECT_EQ(f.at("batch").number_value(), 0);
    EXPECT_EQ(f.at("workers").number_value(), 4);
    EXPECT_EQ(f.at("tokens").number_value(), 4 * 4096);
    EXPECT_TRUE(f.at("valid").bool_value()) << line;
    EXPECT_GE(f.at("compute_imbalance").number_value(), 1.0);
    EXPECT_GT(f.at("predicted_fwd_ms").number_value(), 0);
  }
  for (const StrategyInfo& s : strategies) EXPECT_TRUE(seen.count(s.name)) << s.name;
}

TEST_F(CliTest, TableShowsEveryStrategyAndMediansForSeveralBatches) {
  const CliResult r = RunFcp(SmallPlan({"--strategy", "all", "--batches", "2"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("batch 0 (seed 1)"));
  EXPECT_THAT(r.out, HasSubstr("batch 1 (seed 2)"));
  EXPECT_THAT(r.out, HasSubstr("median over 2 batches"));
  EXPECT_THAT(r.out, HasSubstr("comp_imb"));
  RegisterDcpPlanner();
  for (const StrategyInfo& s : ListStrategies()) EXPECT_THAT(r.out, HasSubstr(s.name));
}

TEST_F(CliTest, SkipsValidationAboveTheTileBudgetAndSaysWhy) {
  const CliResult r =
      RunFcp(SmallPlan({"--strategy", "fcp", "--json", "--validate-max-tiles", "0"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("validation skipped"));
  EXPECT_THAT(r.err, HasSubstr("--validate-max-tiles"));
  const google::protobuf::Struct object = ParseJson(Lines(r.out).at(0));
  EXPECT_EQ(object.fields().at("valid").kind_case(), google::protobuf::Value::kNullValue);
}

TEST_F(CliTest, DumpPlanWritesTheFullPlanAsProtobufJson) {
  const std::string path = TestTempPath("plan.json");
  std::remove(path.c_str());
  const CliResult r = RunFcp(SmallPlan({"--strategy", "fcp", "--json", "--dump-plan", path}));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string json = ReadFileOrEmpty(path);
  EXPECT_THAT(json, HasSubstr("\"workers\""));
  EXPECT_THAT(json, HasSubstr("\"blocks\""));
  absl::StatusOr<v1::Plan> plan = PlanFromJson(json);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->workers_size(), 4);
  EXPECT_GT(plan->blocks_size(), 0);
  const google::protobuf::Struct line = ParseJson(Lines(r.out).at(0));
  EXPECT_EQ(plan->plan_id(), line.fields().at("plan_id").string_value());
}

TEST_F(CliTest, SameInputsSamePlanId) {
  auto plan_id = [](const std::vector<std::string>& extra) {
    const CliResult r = RunFcp(SmallPlan(extra));
    EXPECT_EQ(r.code, 0) << r.err;
    return ParseJson(Lines(r.out).at(0)).fields().at("plan_id").string_value();
  };
  const std::string a = plan_id({"--json", "--seed", "3"});
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, plan_id({"--json", "--seed", "3"}));
  EXPECT_NE(a, plan_id({"--json", "--seed", "4"}));
  // Batch b uses seed + b: batch 1 of seed 3 is batch 0 of seed 4.
  const CliResult two = RunFcp(SmallPlan({"--json", "--seed", "3", "--batches", "2"}));
  ASSERT_EQ(two.code, 0);
  EXPECT_EQ(ParseJson(Lines(two.out).at(1)).fields().at("plan_id").string_value(),
            plan_id({"--json", "--seed", "4"}));
}

TEST_F(CliTest, HistogramWorkload) {
  if (!std::ifstream(kMagi).good()) GTEST_SKIP() << kMagi << " not present";
  const CliResult r = RunFcp({"plan", "--histogram", kMagi, "--workers", "4", "--tokens-per-worker",
                              "4096", "--json", "--strategy", "ring"});
  ASSERT_EQ(r.code, 0) << r.err;
  const google::protobuf::Struct object = ParseJson(Lines(r.out).at(0));
  EXPECT_EQ(object.fields().at("speedup_vs_ring").number_value(), 1.0);
}

}  // namespace
}  // namespace fcp
