// Faults around real processes. The coordinator is SIGKILLed in the middle of a 4-rank fcp-worker
// run (Gloo, rendezvous through a directory, plans from the coordinator): every rank finishes every
// step on local fallback plans, and returns to the coordinator once it is restarted on the same
// port, without a worker restart. Plan ids do not depend on who planned: rank 0's per-step ids
// equal those `fcp plan` computes for the same batches, and every exchange carries the plan's
// fingerprint (a rank on another plan fails the step, see worker/executor/executor_test.cc), so all
// four ranks ran the same plans. Bytes that are no PlanRequest at all are refused, and the
// coordinator keeps serving.
//
// The other fault scenarios live beside the code they exercise (docs/reliability.md lists them):
// SIGTERM drain with RPCs in flight (tests/coordinator_process_test.cc), a Gloo peer killed or
// frozen mid-exchange (tests/worker_process_test.cc, tests/gloo_multiprocess_test.cc), corrupted
// or mismatched slices (worker/executor/executor_test.cc).
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "service/metrics_testing.h"
#include "service/test_requests.h"
#include "tests/cli_runner.h"
#include "tests/http_get.h"
#include "tests/subprocess.h"

namespace fcp {
namespace {

constexpr int kWorld = 4;
constexpr int kSteps = 150;

// A TCP port that was free a moment ago (the coordinator must come back on the same one).
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), size) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0;
  close(fd);
  return ok ? ntohs(address.sin_port) : 0;
}

// fcp-coordinator on 127.0.0.1:`port` (0: any); the ports it serves in *served (if not null) and
// *metrics_port. Retries for a while if the port is not free yet (a restart right after a kill).
std::unique_ptr<Subprocess> StartCoordinator(int port, int* metrics_port, int* served = nullptr) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto process = std::make_unique<Subprocess>(
        std::vector<std::string>{FCP_COORDINATOR, "--host", "127.0.0.1", "--port",
                                 std::to_string(port), "--metrics-port", "0"});
    if (!process->Start().ok()) return nullptr;
    absl::StatusOr<std::string> line = process->ReadLine(absl::Seconds(30));
    int grpc_port = 0;
    if (line.ok() && std::sscanf(line->c_str(),
                                 "fcp-coordinator: serving fcp.v1.Planner on port %d, metrics "
                                 "on port %d",
                                 &grpc_port, metrics_port) == 2) {
      if (served != nullptr) *served = grpc_port;
      return process;
    }
    process->Wait();
    absl::SleepFor(absl::Milliseconds(100));
  }
  return nullptr;
}

std::vector<std::string> PlanningFlags() {
  return {"--lengths",
          absl::StrCat(FCP_SHARED_DIR, "/workloads/wikipedia.lengths"),
          "--tokens-per-worker",
          "512",
          "--max-doc-len",
          "1024",
          "--heads",
          "2",
          "--kv-heads",
          "1",
          "--head-dim",
          "16"};
}

// A row of rank 0's step table: "  12 fcp  1.015 ..." (first word a step number).
bool IsStepRow(const std::string& line) {
  std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  return words.size() >= 10 && std::isdigit(static_cast<unsigned char>(words[0][0]));
}

std::vector<google::protobuf::Struct> JsonLines(const std::string& text) {
  std::vector<google::protobuf::Struct> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    google::protobuf::Struct s;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(line), &s).ok()) << line;
    out.push_back(s);
  }
  return out;
}

TEST(FaultTest, CoordinatorKilledMidRunRanksFallBackThenReturnWithoutRestart) {
  const int port = UnusedPort();
  ASSERT_GT(port, 0);
  int metrics_port = 0;
  std::unique_ptr<Subprocess> coordinator = StartCoordinator(port, &metrics_port);
  ASSERT_NE(coordinator, nullptr);

  const std::string rendezvous = TestTempPath("fault-rendezvous");
  const std::string summary = TestTempPath("fault-summary.jsonl");
  std::filesystem::remove_all(rendezvous);
  std::filesystem::remove(summary);
  std::vector<std::string> flags = PlanningFlags();
  for (const std::string& f : {std::string("--world"),           std::to_string(kWorld),
                               std::string("--transport"),       std::string("gloo"),
                               std::string("--rendezvous"),      rendezvous,
                               std::string("--coordinator"),     absl::StrCat("127.0.0.1:", port),
                               std::string("--plan-deadline-s"), std::string("2"),
                               std::string("--steps"),           std::to_string(kSteps),
                               std::string("--check-steps"),     std::string("0"),
                               std::string("--threads"),         std::string("1"),
                               std::string("--timeout-s"),       std::string("30"),
                               std::string("--training-job"),    std::string("fault-test")}) {
    flags.push_back(f);
  }
  // Uncalibrated plans throughout, so that every step's id, coordinator or fallback, is the one
  // `fcp plan` computes (the closed loop would recalibrate the coordinator's later steps).
  flags.push_back("--report-steps=false");
  std::vector<std::unique_ptr<Subprocess>> ranks;
  for (int r = 0; r < kWorld; ++r) {
    std::vector<std::string> argv = {FCP_WORKER, "--rank", std::to_string(r)};
    argv.insert(argv.end(), flags.begin(), flags.end());
    if (r == 0) {
      argv.push_back("--summary-json");
      argv.push_back(summary);
    } else {  // the other ranks' tables are rank 0's; only their exit codes matter
      std::string command = "exec";
      for (const std::string& a : argv) absl::StrAppend(&command, " '", a, "'");
      argv = {"/bin/sh", "-c", absl::StrCat(command, " >/dev/null")};
    }
    ranks.push_back(std::make_unique<Subprocess>(argv));
    ASSERT_TRUE(ranks.back()->Start().ok());
  }

  // Rank 0's table drives the scenario: 3 steps from the coordinator, SIGKILL, 3 steps on
  // fallback plans, restart on the same port, then the rest of the run.
  int rows = 0, fallbacks = 0, rows_after_restart = 0, served_after_restart = 0;
  int restarted_metrics_port = 0;
  std::unique_ptr<Subprocess> restarted;
  std::string table;
  while (true) {
    absl::StatusOr<std::string> line = ranks[0]->ReadLine(absl::Seconds(120));
    if (!line.ok()) break;  // end of output (or stuck: the exit code below tells)
    absl::StrAppend(&table, *line, "\n");
    if (!IsStepRow(*line)) continue;
    ++rows;
    const bool fallback = absl::StrContains(*line, "(fallback)");
    fallbacks += fallback ? 1 : 0;
    if (restarted != nullptr) {
      ++rows_after_restart;
      served_after_restart += fallback ? 0 : 1;
    }
    if (rows == 3 && coordinator != nullptr) {
      EXPECT_EQ(fallbacks, 0) << table;
      coordinator->Signal(SIGKILL);
      EXPECT_EQ(coordinator->Wait(), 128 + SIGKILL);
      coordinator.reset();
    }
    if (coordinator == nullptr && restarted == nullptr && fallbacks >= 3) {
      restarted = StartCoordinator(port, &restarted_metrics_port);
      ASSERT_NE(restarted, nullptr) << "the coordinator could not come back on port " << port;
    }
  }
  for (int r = 0; r < kWorld; ++r) EXPECT_EQ(ranks[r]->Wait(), 0) << "rank " << r;
  EXPECT_EQ(rows, kSteps) << table;
  EXPECT_GE(fallbacks, 3) << table;
  EXPECT_GT(served_after_restart, 0) << "never returned to the coordinator:\n" << table;
  EXPECT_THAT(table, ::testing::HasSubstr("every rank ok"));
  ASSERT_NE(restarted, nullptr);
  // The restarted coordinator planned the steps after its return (single-flight: once per step).
  absl::StatusOr<std::string> scrape = HttpGet(restarted_metrics_port, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_GT(
      MetricValue(*scrape, R"(fcp_plan_cache_misses_total{training_job="fault-test"})").value_or(0),
      0);
  restarted->Signal(SIGTERM);
  EXPECT_EQ(restarted->Wait(), 0);

  // Every step's plan id, whoever planned it, is the one `fcp plan` computes for that batch (the
  // worker's step s is the CLI's batch s - 1).
  const std::vector<google::protobuf::Struct> steps = JsonLines(ReadFileOrEmpty(summary));
  ASSERT_EQ(steps.size(), static_cast<size_t>(kSteps));
  std::vector<std::string> plan = {"plan",
                                   "--workers",
                                   std::to_string(kWorld),
                                   "--batches",
                                   std::to_string(kSteps),
                                   "--json",
                                   "--strategy",
                                   "auto",
                                   "--validate-max-tiles",
                                   "0"};
  for (const std::string& f : PlanningFlags()) plan.push_back(f);
  const CliResult cli = RunCli(FCP_BINARY, plan);
  ASSERT_EQ(cli.code, 0) << cli.err;
  const std::vector<google::protobuf::Struct> expected = JsonLines(cli.out);
  ASSERT_EQ(expected.size(), static_cast<size_t>(kSteps));
  int fallback_steps = 0;
  for (int s = 0; s < kSteps; ++s) {
    const auto& got = steps[s].fields();
    EXPECT_EQ(got.at("plan_id").string_value(), expected[s].fields().at("plan_id").string_value())
        << "step " << s + 1 << (got.at("fallback").bool_value() ? " (fallback)" : "");
    fallback_steps += got.at("fallback").bool_value() ? 1 : 0;
  }
  EXPECT_EQ(fallback_steps, fallbacks);
  std::filesystem::remove_all(rendezvous);
  std::filesystem::remove(summary);
  std::printf("fault: %d steps, %d on fallback plans, %d after the restart (%d from it)\n", rows,
              fallbacks, rows_after_restart, served_after_restart);
}

// PlanBatch with `bytes` as the request message, through a generic stub.
grpc::Status CallWithBytes(const std::string& target, const std::string& bytes) {
  grpc::GenericStub stub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/fcp.v1.Planner/PlanBatch", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

TEST(FaultTest, BytesThatAreNoPlanRequestAreInvalidArgumentAndTheServiceGoesOn) {
  int port = 0, metrics_port = 0;
  std::unique_ptr<Subprocess> coordinator = StartCoordinator(0, &metrics_port, &port);
  ASSERT_NE(coordinator, nullptr);
  const std::string target = absl::StrCat("127.0.0.1:", port);
  const std::string valid = TestRequest(4, /*seed=*/9).SerializeAsString();
  const std::vector<std::pair<std::string, std::string>> garbage = {
      {"random bytes", std::string("\xff\xfe\x01garbage\x00\x13", 13)},
      {"a truncated request", valid.substr(0, valid.size() / 2)},
      {"a field longer than the message", std::string("\x12\xff\xff\xff\xff\x0f", 6)},
      {"a group end tag without its start", std::string("\x0c", 1)},
  };
  for (const auto& [name, bytes] : garbage) {
    const grpc::Status status = CallWithBytes(target, bytes);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_EQ(status.error_message(), "request: not a valid fcp.v1.PlanRequest") << name;
  }
  const grpc::Status empty = CallWithBytes(target, "");  // a valid, empty PlanRequest
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.error_message(), ::testing::HasSubstr("documents: must not be empty"));
  const grpc::Status ok = CallWithBytes(target, valid);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  coordinator->Signal(SIGTERM);
  EXPECT_EQ(coordinator->Wait(), 0);
}

}  // namespace
}  // namespace fcp
