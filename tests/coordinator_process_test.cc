// The fcp-coordinator binary as deployed: started as a process on ports it picks, scraped by
// promtool, stopped by SIGTERM with RPCs in flight.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "service/metrics_testing.h"
#include "service/test_requests.h"
#include "tests/cli_runner.h"
#include "tests/grpc_probes.h"
#include "tests/http_get.h"
#include "tests/subprocess.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A running fcp-coordinator and the ports it printed.
struct Running {
  std::unique_ptr<Subprocess> process;
  int port = 0;
  int metrics_port = 0;
};

Running StartCoordinator(std::vector<std::string> flags) {
  std::vector<std::string> argv = {FCP_COORDINATOR,  "--host", "127.0.0.1", "--port", "0",
                                   "--metrics-port", "0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  Running r;
  r.process = std::make_unique<Subprocess>(argv);
  EXPECT_TRUE(r.process->Start().ok());
  absl::StatusOr<std::string> line = r.process->ReadLine(absl::Seconds(30));
  EXPECT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(std::sscanf(line.value_or("").c_str(),
                        "fcp-coordinator: serving fcp.v1.Planner on port %d, metrics on port %d",
                        &r.port, &r.metrics_port),
            2)
      << line.value_or("");
  return r;
}

std::unique_ptr<v1::Planner::Stub> Stub(int port) {
  return v1::Planner::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

TEST(CoordinatorProcessTest, LiveScrapePassesPromtool) {
  Running c = StartCoordinator({});
  {
    // An idle connection would hold up shutdown until the client polls it (gRPC's backup poller,
    // every 5 s): close it before SIGTERM.
    auto stub = Stub(c.port);
    // Samples in every family: plans, a cache hit, an error.
    for (int i = 0; i < 3; ++i) {
      grpc::ClientContext context;
      v1::PlanResponse response;
      v1::PlanRequest request = TestRequest(4, i % 2);
      if (i == 2) request.mutable_documents(0)->set_length(-1);
      stub->PlanBatch(&context, request, &response);
    }
  }
  absl::StatusOr<std::string> scrape = HttpGet(c.metrics_port, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_THAT(*scrape, HasSubstr("fcp_build_info{"));
  EXPECT_THAT(*scrape, HasSubstr("training_job=\"test-job\""));
  EXPECT_THAT(*scrape, ::testing::Not(HasSubstr("{job=")));
  const std::string path = absl::StrCat(testing::TempDir(), "/fcp_scrape_", getpid(), ".txt");
  std::ofstream(path) << *scrape;

  ASSERT_FALSE(std::string(FCP_PROMTOOL).empty())
      << "promtool is not installed: run scripts/setup.sh (Debian package 'prometheus')";
  const std::string command =
      absl::StrCat(FCP_PROMTOOL, " check metrics < ", path, " 2>&1; echo \"exit=$?\"");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  pclose(pipe);
  EXPECT_THAT(output, HasSubstr("exit=0")) << output;
  EXPECT_EQ(output, "exit=0\n") << "promtool lint findings:\n" << output;

  c.process->Signal(SIGTERM);
  EXPECT_EQ(c.process->Wait(), 0);
}

TEST(CoordinatorProcessTest, SigtermLetsInFlightRpcsFinishThenExitsZero) {
  // One planning thread and a few distinct large batches: RPCs are in flight when SIGTERM lands.
  Running c = StartCoordinator({"--planning-threads", "1", "--shutdown-grace-seconds", "60"});
  constexpr int kInFlight = 3;
  std::vector<grpc::Status> statuses(kInFlight);
  std::vector<absl::Time> finished(kInFlight);
  std::vector<std::thread> clients;
  for (int i = 0; i < kInFlight; ++i) {
    clients.emplace_back([&, i] {
      v1::PlanRequest request = TestRequest(256, 100 + i, 8192);
      request.add_ranks(0);
      grpc::ClientContext context;
      v1::PlanResponse response;
      statuses[i] = Stub(c.port)->PlanBatch(&context, request, &response);
      finished[i] = absl::Now();
    });
  }
  // Wait until the coordinator has received every RPC and is still planning, then stop it. (An
  // RPC arriving after SIGTERM is rightly refused.)
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  double started = 0, in_progress = 0;
  while ((started < kInFlight || in_progress < 1) && absl::Now() < give_up) {
    absl::StatusOr<std::string> scrape = HttpGet(c.metrics_port, "/metrics");
    if (scrape.ok()) {
      started = MetricValue(*scrape, R"(grpc_server_started_total{grpc_method="PlanBatch",)"
                                     R"(grpc_service="fcp.v1.Planner",grpc_type="unary"})")
                    .value_or(0);
      in_progress = MetricValue(*scrape, "fcp_plannings_in_progress").value_or(0);
    }
    if (started < kInFlight || in_progress < 1) absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_EQ(started, kInFlight) << "the RPCs never all arrived";
  ASSERT_GE(in_progress, 1) << "the plannings ended before SIGTERM could be sent";
  const absl::Time sigterm = absl::Now();
  c.process->Signal(SIGTERM);
  EXPECT_THAT(*c.process->ReadLine(absl::Seconds(30)), HasSubstr("SIGTERM: draining"));
  for (std::thread& t : clients) t.join();
  for (const grpc::Status& s : statuses) EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_GT(*std::max_element(finished.begin(), finished.end()), sigterm)
      << "no RPC was still in flight at SIGTERM";
  EXPECT_THAT(*c.process->ReadLine(absl::Seconds(30)), HasSubstr("stopped"));
  EXPECT_EQ(c.process->Wait(), 0);
}

TEST(CoordinatorProcessTest, BadFlagsExitTwoWithOneLine) {
  Subprocess bad({FCP_COORDINATOR, "--port", "70000", "--metrics-port", "-1"});
  ASSERT_TRUE(bad.Start().ok());
  EXPECT_EQ(bad.Wait(), 2);
  Subprocess strategy({FCP_COORDINATOR, "--port", "0", "--default-strategy", "nope"});
  ASSERT_TRUE(strategy.Start().ok());
  EXPECT_EQ(strategy.Wait(), 2);
}

TEST(CoordinatorProcessTest, StepReportsHaveOneRateFlag) {
  const CliResult help = RunCli(FCP_COORDINATOR, {"--help"});
  EXPECT_THAT(help.out + help.err,
              HasSubstr("--job_reports_per_second (per-job quota: ReportStep"));
  // The calibration store's own limit is gone; deploy/ never used its flag.
  EXPECT_THAT(help.out + help.err, Not(HasSubstr("max_reports_per_second")));
  const CliResult old = RunCli(FCP_COORDINATOR, {"--max-reports-per-second", "5"});
  EXPECT_NE(old.code, 0);
  EXPECT_THAT(old.err, HasSubstr("max_reports_per_second"));
}

}  // namespace
}  // namespace fcp
