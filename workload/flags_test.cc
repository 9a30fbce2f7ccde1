#include "workload/flags.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int32_t, args_test_count, 0, "an int");
ABSL_FLAG(uint64_t, args_test_seed, 1, "an unsigned");
ABSL_FLAG(double, args_test_rate, 1.5, "a double");
ABSL_FLAG(bool, args_test_verbose, false, "a bool");
ABSL_FLAG(std::string, args_test_name, "", "a string");
ABSL_FLAG(int32_t, args_test_not_allowed, 0, "registered but not offered");

namespace fcp::cli {
namespace {

using ::testing::ElementsAre;

const std::vector<absl::string_view> kAllowed = {
    "args_test_count", "args_test_seed", "args_test_rate", "args_test_verbose", "args_test_name"};

class ParseArgsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::SetFlag(&FLAGS_args_test_count, 0);
    absl::SetFlag(&FLAGS_args_test_seed, 1);
    absl::SetFlag(&FLAGS_args_test_rate, 1.5);
    absl::SetFlag(&FLAGS_args_test_verbose, false);
    absl::SetFlag(&FLAGS_args_test_name, "");
  }
};

TEST_F(ParseArgsTest, AcceptsDashedAndUnderscoredSpellings) {
  absl::StatusOr<ParsedArgs> args = ParseArgs({"--args-test-count", "7", "--args_test_rate=2.25",
                                               "pos", "--args-test-verbose", "-args-test-name=x y"},
                                              kAllowed);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_args_test_count), 7);
  EXPECT_EQ(absl::GetFlag(FLAGS_args_test_rate), 2.25);
  EXPECT_TRUE(absl::GetFlag(FLAGS_args_test_verbose));
  EXPECT_EQ(absl::GetFlag(FLAGS_args_test_name), "x y");
  EXPECT_THAT(args->positional, ElementsAre("pos"));
  EXPECT_TRUE(args->Given("args_test_count"));
  EXPECT_FALSE(args->Given("args_test_seed"));
  EXPECT_FALSE(args->help);
}

TEST_F(ParseArgsTest, BooleansAndNegativeValues) {
  absl::StatusOr<ParsedArgs> args = ParseArgs(
      {"--args-test-verbose=true", "--noargs-test-verbose", "--args-test-count", "-3"}, kAllowed);
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_FALSE(absl::GetFlag(FLAGS_args_test_verbose));
  EXPECT_EQ(absl::GetFlag(FLAGS_args_test_count), -3);
}

TEST_F(ParseArgsTest, DoubleDashEndsFlagsAndHelpIsNoted) {
  absl::StatusOr<ParsedArgs> args = ParseArgs({"-h", "--", "--args-test-count"}, kAllowed);
  ASSERT_TRUE(args.ok());
  EXPECT_TRUE(args->help);
  EXPECT_THAT(args->positional, ElementsAre("--args-test-count"));
}

TEST_F(ParseArgsTest, ErrorsNameTheFlag) {
  EXPECT_EQ(ParseArgs({"--args-test-count", "abc"}, kAllowed).status().message(),
            "--args-test-count: expected an integer, got 'abc'");
  EXPECT_EQ(ParseArgs({"--args-test-seed=-1"}, kAllowed).status().message(),
            "--args-test-seed: expected a non-negative integer, got '-1'");
  EXPECT_EQ(ParseArgs({"--args-test-rate=fast"}, kAllowed).status().message(),
            "--args-test-rate: expected a number, got 'fast'");
  EXPECT_EQ(ParseArgs({"--args-test-count"}, kAllowed).status().message(),
            "--args-test-count: missing value");
  EXPECT_EQ(ParseArgs({"--bogus=1"}, kAllowed).status().message(),
            "unknown flag --bogus (see --help)");
  // Registered, but not one of this command's flags.
  EXPECT_EQ(ParseArgs({"--args-test-not-allowed=1"}, kAllowed).status().message(),
            "unknown flag --args-test-not-allowed (see --help)");
  EXPECT_EQ(ParseArgs({"--noargs-test-verbose=1"}, kAllowed).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DashedFlagTest, Spelling) {
  EXPECT_EQ(DashedFlag("tokens_per_worker"), "--tokens-per-worker");
}

}  // namespace
}  // namespace fcp::cli
