// The CLI against a running fcp-coordinator: `fcp plan --coordinator` reports the same plans as
// planning in-process, and reports a coordinator it cannot reach; `fcp calibration` prints and
// exports a job's fitted cost model.
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "fcp/client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/plan_convert.h"
#include "tests/cli_runner.h"
#include "tests/subprocess.h"

namespace fcp {
namespace {

CliResult RunFcp(const std::vector<std::string>& args) { return RunCli(FCP_BINARY, args); }

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kWikipedia = std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths";

// Drops "planning_ms": the one field that differs between two plannings of the same batch.
std::string WithoutPlanningTime(std::string json_lines) {
  std::string out;
  for (size_t at = 0; at < json_lines.size();) {
    const size_t key = json_lines.find("\"planning_ms\":", at);
    if (key == std::string::npos) {
      out += json_lines.substr(at);
      break;
    }
    out += json_lines.substr(at, key - at);
    at = json_lines.find_first_of(",}", key);
  }
  return out;
}

class CliCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(kWikipedia).good()) GTEST_SKIP() << kWikipedia << " not present";
    coordinator_ = std::make_unique<Subprocess>(std::vector<std::string>{
        FCP_COORDINATOR, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"});
    ASSERT_TRUE(coordinator_->Start().ok());
    absl::StatusOr<std::string> line = coordinator_->ReadLine(absl::Seconds(30));
    ASSERT_TRUE(line.ok()) << line.status();
    int port = 0;
    ASSERT_EQ(
        std::sscanf(line->c_str(), "fcp-coordinator: serving fcp.v1.Planner on port %d", &port), 1);
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override {
    if (coordinator_ == nullptr) return;
    coordinator_->Signal(SIGTERM);
    EXPECT_EQ(coordinator_->Wait(), 0);
  }

  std::vector<std::string> Plan(std::vector<std::string> extra) {
    std::vector<std::string> args = {"plan", "--lengths",           kWikipedia, "--workers",
                                     "8",    "--tokens-per-worker", "4096"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  std::unique_ptr<Subprocess> coordinator_;
  std::string address_;
};

TEST_F(CliCoordinatorTest, ReportsTheSamePlansAsPlanningInProcess) {
  const CliResult local = RunFcp(Plan({"--strategy", "all", "--batches", "2", "--json"}));
  const CliResult remote =
      RunFcp(Plan({"--strategy", "all", "--batches", "2", "--json", "--coordinator", address_}));
  ASSERT_EQ(local.code, 0) << local.err;
  ASSERT_EQ(remote.code, 0) << remote.err;
  EXPECT_EQ(WithoutPlanningTime(remote.out), WithoutPlanningTime(local.out));
}

TEST_F(CliCoordinatorTest, DumpsTheSamePlan) {
  const std::string local_path = TestTempPath("local.json");
  const std::string remote_path = TestTempPath("remote.json");
  ASSERT_EQ(RunFcp(Plan({"--strategy", "fcp", "--dump-plan", local_path})).code, 0);
  ASSERT_EQ(
      RunFcp(Plan({"--strategy", "fcp", "--dump-plan", remote_path, "--coordinator", address_}))
          .code,
      0);
  absl::StatusOr<v1::Plan> local = PlanFromJson(ReadFileOrEmpty(local_path));
  absl::StatusOr<v1::Plan> remote = PlanFromJson(ReadFileOrEmpty(remote_path));
  ASSERT_TRUE(local.ok() && remote.ok());
  local->mutable_summary()->set_planning_ms(0);
  remote->mutable_summary()->set_planning_ms(0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(*local, *remote));
}

TEST_F(CliCoordinatorTest, UnreachableCoordinatorAndBadCombinations) {
  const CliResult down = RunFcp(Plan({"--coordinator", "127.0.0.1:1"}));
  EXPECT_EQ(down.code, 1);
  EXPECT_THAT(down.err, HasSubstr("coordinator 127.0.0.1:1"));
  const CliResult combined =
      RunFcp(Plan({"--coordinator", address_, "--calibration", "/dev/null"}));
  EXPECT_EQ(combined.code, 2);
  EXPECT_THAT(combined.err, StartsWith("fcp: --calibration: cannot be combined"));
}

// `fcp calibration`: a job's fit, printed and exported as a --calibration file.
TEST_F(CliCoordinatorTest, CalibrationPrintsAndExportsAJobsFit) {
  CliResult none = RunFcp({"calibration", "--coordinator", address_, "--job", "quiet"});
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err, HasSubstr("job 'quiet': no step reports"));
  EXPECT_EQ(RunFcp({"calibration", "--job", "quiet"}).code, 2);

  PlannerClientOptions options;
  options.target = address_;
  std::unique_ptr<PlannerClient> client = *PlannerClient::Create(options);
  for (int64_t step = 1; step <= 2; ++step) {
    for (int32_t rank = 0; rank < 4; ++rank) {
      v1::StepReport report;
      report.set_job_id("busy");
      report.set_step(step);
      report.set_rank(rank);
      report.set_num_workers(4);
      v1::TileShape* shape = report.add_tile_shapes();
      shape->set_q_len(512);
      shape->set_kv_len(256 << rank);
      shape->set_tiles(rank + 1);
      shape->set_fwd_flops(1e9 * (rank + 1));
      report.set_forward_seconds(0.1 * (rank + 1));
      report.set_backward_seconds(0.25 * (rank + 1));
      ASSERT_TRUE(client->ReportStep(report).ok());
    }
  }
  const std::string path = ::testing::TempDir() + "/busy.calibration";
  CliResult fit =
      RunFcp({"calibration", "--coordinator", address_, "--job", "busy", "--out", path});
  ASSERT_EQ(fit.code, 0) << fit.err;
  EXPECT_THAT(fit.out, HasSubstr("# job busy, fitted parameters: attention_tflops"));
  EXPECT_THAT(fit.out, HasSubstr("fitted from steps 1..2 (8 rank reports"));
  std::stringstream file;
  file << std::ifstream(path).rdbuf();
  absl::StatusOr<CostParams> parsed = ParseCostParams(file.str());
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << file.str();
  EXPECT_GT(parsed->attention_tflops, 0);
}

}  // namespace
}  // namespace fcp
