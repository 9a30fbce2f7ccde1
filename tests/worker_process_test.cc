// The fcp-worker binary as users run it: every rank in one process (loopback) and one process
// per rank over Gloo (4 processes), each checking its outputs against single-process reference
// attention; bad flags; the --dump contract; a killed peer; a live metrics scrape through promtool.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/cli_runner.h"
#include "tests/http_get.h"
#include "tests/subprocess.h"
#include "tests/worker_job_flags.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A small CPU job: 4 q heads over 2 kv heads of 16, 512 tokens per rank, documents <= 1024.
std::vector<std::string> JobFlags(std::vector<std::string> extra) {
  return SmallWorkerJobFlags(extra);
}

int StepRows(const std::string& out) {
  int rows = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() >= 10 && words[0] != "step" && std::isdigit(words[0][0])) ++rows;
  }
  return rows;
}

TEST(WorkerProcessTest, LoopbackRanksMatchReferenceAttentionEveryStep) {
  for (const std::string strategy : {"auto", "ring", "fcp"}) {
    const CliResult r = RunCli(
        FCP_WORKER,
        JobFlags({"--world", "3", "--steps", "2", "--check-steps", "2", "--strategy", strategy}));
    EXPECT_EQ(r.code, 0) << strategy << ": " << r.err;
    EXPECT_EQ(StepRows(r.out), 2) << r.out;
    EXPECT_THAT(r.out, HasSubstr("2 steps done, every rank ok"));
  }
}

TEST(WorkerProcessTest, BadFlagsExitTwoWithOneLineNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--world", "0"}, "--world: must be >= 1"},
      {{"--transport", "udp"}, "--transport: expected loopback, gloo or nccl"},
      {{"--transport", "gloo", "--world", "2"}, "--rank: must be in [0, 2)"},
      {{"--transport", "nccl", "--world", "2", "--rank", "0"},
       "--transport: nccl moves GPU memory: it needs --device cuda"},
      {{"--rank", "1"}, "--rank: loopback runs every rank"},
      {{"--strategy", "all"}, "--strategy: a worker runs one strategy"},
      {{"--strategy", "nope"}, "--strategy: unknown strategy 'nope'"},
      {{"--steps", "0"}, "--steps: must be >= 1"},
      {{"--heads", "5", "--kv-heads", "2"}, "--heads: 5 is not a multiple of --kv-heads 2"},
      {{"--rendezvous", "coordinator", "--transport", "gloo", "--rank", "0"},
       "--rendezvous: 'coordinator' needs --coordinator"},
      {{"--no-such-flag"}, "no-such-flag"},
  };
  for (const auto& [flags, message] : cases) {
    const CliResult r = RunCli(FCP_WORKER, JobFlags(flags));
    EXPECT_EQ(r.code, 2) << message << "\n" << r.err;
    EXPECT_THAT(r.err, HasSubstr(message));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  const CliResult help = RunCli(FCP_WORKER, {"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("--tokens-per-worker"));
  EXPECT_THAT(help.out, HasSubstr("--transport"));
}

TEST(WorkerProcessTest, DeviceCudaWithoutAGpuSaysSoOnceBeforeAnyRankStarts) {
  const CliResult r =
      RunCli(FCP_WORKER, JobFlags({"--device", "cuda", "--head-dim", "64", "--steps", "1"}));
  if (r.code == 0) {
    GTEST_SKIP() << "skipped: this machine has a CUDA device, so --device cuda ran the step";
  }
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(r.err, "fcp-worker: --device cuda: no CUDA device visible\n");
  EXPECT_THAT(r.out, Not(HasSubstr("step strategy")));  // no rank started, no table
}

TEST(WorkerProcessTest, DumpWritesEveryTensorWithTheManifestsSizes) {
  const std::string dir = TestTempPath("dump");
  std::filesystem::remove_all(dir);
  const CliResult r =
      RunCli(FCP_WORKER,
             JobFlags({"--world", "2", "--steps", "1", "--dump", dir, "--strategy", "per_doc"}));
  ASSERT_EQ(r.code, 0) << r.err;
  int64_t total_tokens = 0, batch_tokens = 0;
  for (int rank = 0; rank < 2; ++rank) {
    const std::string path = absl::StrCat(dir, "/step1/rank", rank);
    google::protobuf::Struct manifest;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                    ReadFileOrEmpty(path + "/manifest.json"), &manifest)
                    .ok());
    const auto& f = manifest.fields();
    EXPECT_EQ(f.at("rank").number_value(), rank);
    EXPECT_FALSE(f.at("plan_id").string_value().empty());
    const int64_t q_heads = f.at("q_heads").number_value(),
                  kv_heads = f.at("kv_heads").number_value(),
                  head_dim = f.at("head_dim").number_value();
    EXPECT_EQ(q_heads, 4);
    int64_t tokens = 0;
    for (const auto& block : f.at("blocks").list_value().values()) {
      const auto& b = block.struct_value().fields();
      tokens += b.at("end").number_value() - b.at("begin").number_value();
    }
    if (rank == 0) {
      for (const auto& doc : f.at("documents").list_value().values()) {
        batch_tokens += doc.struct_value().fields().at("length").number_value();
        EXPECT_EQ(doc.struct_value()
                      .fields()
                      .at("mask")
                      .struct_value()
                      .fields()
                      .at("kind")
                      .string_value(),
                  "CAUSAL");
      }
    }
    total_tokens += tokens;
    for (const char* name : {"q", "o", "do", "dq"}) {
      EXPECT_EQ(std::filesystem::file_size(absl::StrCat(path, "/", name, ".f32")),
                static_cast<uintmax_t>(tokens * q_heads * head_dim * 4))
          << name;
    }
    for (const char* name : {"k", "v", "dk", "dv"}) {
      EXPECT_EQ(std::filesystem::file_size(absl::StrCat(path, "/", name, ".f32")),
                static_cast<uintmax_t>(tokens * kv_heads * head_dim * 4))
          << name;
    }
    EXPECT_EQ(std::filesystem::file_size(path + "/lse.f32"),
              static_cast<uintmax_t>(tokens * q_heads * 4));
  }
  EXPECT_EQ(total_tokens, 2 * 512);
  EXPECT_EQ(batch_tokens, 2 * 512);
}

// Runs ranks [0, world) of a gloo job as processes (rank `victim`, if >= 0, with a long run, to be
// killed); returns each rank's result.
std::vector<CliResult> RunGlooJob(int world, const std::string& rendezvous,
                                  std::vector<std::string> extra, int skip_rank = -1) {
  std::vector<CliResult> results(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    if (r == skip_rank) continue;
    threads.emplace_back([&, r] {
      std::vector<std::string> flags = {
          "--world", std::to_string(world), "--rank",  std::to_string(r), "--transport",
          "gloo",    "--rendezvous",        rendezvous};
      flags.insert(flags.end(), extra.begin(), extra.end());
      results[r] = RunCli(FCP_WORKER, JobFlags(flags));
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

TEST(WorkerProcessTest, FourGlooProcessesMatchReferenceAttention) {
  const std::string rendezvous = TestTempPath("gloo4");
  std::filesystem::remove_all(rendezvous);
  const std::vector<CliResult> results =
      RunGlooJob(4, rendezvous, {"--steps", "2", "--check-steps", "2", "--strategy", "fcp"});
  for (int r = 0; r < 4; ++r)
    EXPECT_EQ(results[r].code, 0) << "rank " << r << ": " << results[r].err;
  EXPECT_EQ(StepRows(results[0].out), 2) << results[0].out;
  EXPECT_THAT(results[0].out, HasSubstr("every rank ok"));
}

TEST(WorkerProcessTest, AKilledPeerFailsTheOthersWithinTheTimeoutNamingIt) {
  const std::string rendezvous = TestTempPath("gloo-kill");
  std::filesystem::remove_all(rendezvous);
  // Rank 3 joins, runs a little, and is SIGKILLed; ranks 0-2 must fail, not hang.
  std::vector<std::string> victim_args = {FCP_WORKER};
  for (const std::string& a :
       JobFlags({"--world", "4", "--rank", "3", "--transport", "gloo", "--rendezvous", rendezvous,
                 "--steps", "1000", "--check-steps", "0", "--timeout-s", "3"})) {
    victim_args.push_back(a);
  }
  Subprocess victim(victim_args);
  ASSERT_TRUE(victim.Start().ok());
  std::thread killer([&] {
    absl::SleepFor(absl::Seconds(2));
    victim.Signal(SIGKILL);
  });
  const absl::Time start = absl::Now();
  const std::vector<CliResult> results =
      RunGlooJob(4, rendezvous, {"--steps", "1000", "--check-steps", "0", "--timeout-s", "3"}, 3);
  killer.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(results[r].code, 1) << "rank " << r;
    EXPECT_THAT(results[r].err, HasSubstr("rank 3")) << "rank " << r << ": " << results[r].err;
  }
  EXPECT_EQ(victim.Wait(), 128 + SIGKILL);
}

// A running fcp-coordinator on 127.0.0.1 with the ports it printed.
struct RunningCoordinator {
  std::unique_ptr<Subprocess> process;
  int port = 0;
  int metrics_port = 0;
};

RunningCoordinator StartCoordinator() {
  RunningCoordinator c;
  c.process = std::make_unique<Subprocess>(std::vector<std::string>{
      FCP_COORDINATOR, "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"});
  EXPECT_TRUE(c.process->Start().ok());
  absl::StatusOr<std::string> line = c.process->ReadLine(absl::Seconds(30));
  EXPECT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(std::sscanf(line.value_or("").c_str(),
                        "fcp-coordinator: serving fcp.v1.Planner on port %d, metrics on port %d",
                        &c.port, &c.metrics_port),
            2)
      << line.value_or("");
  return c;
}

TEST(WorkerProcessTest, GlooRanksPlanAndMeetThroughTheCoordinator) {
  RunningCoordinator c = StartCoordinator();
  const std::string target = absl::StrCat("127.0.0.1:", c.port);
  const std::vector<CliResult> results =
      RunGlooJob(3, "coordinator",
                 {"--coordinator", target, "--steps", "3", "--check-steps", "1", "--training-job",
                  "through-coordinator"});
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(results[r].code, 0) << "rank " << r << ": " << results[r].err;
  }
  EXPECT_EQ(StepRows(results[0].out), 3) << results[0].out;
  EXPECT_THAT(results[0].out, Not(HasSubstr("(fallback)")));
  // 3 ranks x 3 steps asked; each step planned once (single-flight / cache), the rest hits.
  absl::StatusOr<std::string> scrape = HttpGet(c.metrics_port, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  EXPECT_THAT(*scrape,
              HasSubstr("fcp_plan_cache_misses_total{training_job=\"through-coordinator\"} 3"));
  EXPECT_THAT(*scrape,
              HasSubstr("fcp_plan_cache_hits_total{training_job=\"through-coordinator\"} 6"));
  // The closed loop: every rank reported every step, and step 3 was planned with the cost model
  // fitted from step 1's reports. Which parameters the fit could tell apart depends on what this
  // CPU measured (under load attention_tflops may not be among them); every fit has a step scale.
  EXPECT_THAT(*scrape, HasSubstr("fcp_step_reports_total{code=\"OK\",training_job=\"through-"
                                 "coordinator\"} 9"));
  EXPECT_THAT(*scrape, HasSubstr("fcp_calibration_value{parameter=\"step_scale\","
                                 "training_job=\"through-coordinator\"}"));
  c.process->Signal(SIGTERM);
  EXPECT_EQ(c.process->Wait(), 0);
}

TEST(WorkerProcessTest, AnUnreachableCoordinatorFallsBackToLocalPlansAndCountsThem) {
  const CliResult r =
      RunCli(FCP_WORKER, JobFlags({"--world", "2", "--steps", "2", "--coordinator", "127.0.0.1:1",
                                   "--plan-deadline-s", "1", "--check-steps", "2"}));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(StepRows(r.out), 2) << r.out;
  EXPECT_THAT(r.out, HasSubstr("(fallback)"));
  EXPECT_THAT(r.out, HasSubstr("every rank ok"));
}

TEST(WorkerProcessTest, LiveMetricsScrapePassesPromtool) {
  const int port = FreePort();
  std::vector<std::string> args = {FCP_WORKER};
  for (const std::string& a :
       JobFlags({"--world", "2", "--steps", "2", "--metrics-port", std::to_string(port),
                 "--linger-s", "60", "--training-job", "scrape-test"})) {
    args.push_back(a);
  }
  Subprocess worker(args);
  ASSERT_TRUE(worker.Start().ok());
  bool done = false;
  for (int i = 0; i < 20 && !done; ++i) {
    absl::StatusOr<std::string> line = worker.ReadLine(absl::Seconds(60));
    ASSERT_TRUE(line.ok()) << line.status();
    done = absl::StrContains(*line, "serving metrics for");
  }
  ASSERT_TRUE(done);
  absl::StatusOr<std::string> scrape = HttpGet(port, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  for (const char* name :
       {"fcp_worker_attention_seconds_total{", "fcp_worker_attention_flops_total{",
        "fcp_worker_comm_bytes_total{", "fcp_worker_comm_wait_seconds_total{",
        "fcp_worker_step_seconds_bucket{", "fcp_worker_tokens{",
        "fcp_worker_predicted_step_seconds{", "fcp_worker_plan_fallbacks_total{"}) {
    EXPECT_THAT(*scrape, HasSubstr(name));
  }
  EXPECT_THAT(*scrape, HasSubstr("direction=\"sent\""));
  EXPECT_THAT(*scrape, HasSubstr("training_job=\"scrape-test\""));
  EXPECT_THAT(*scrape, HasSubstr("rank=\"1\""));
  EXPECT_THAT(*scrape, HasSubstr("fcp_worker_steps_total{gpu_uuid=\"\",node=\"0\",rank=\"0\","
                                 "training_job=\"scrape-test\"} 2"));
  const std::string path = TestTempPath("worker_scrape.txt");
  std::ofstream(path) << *scrape;
  ASSERT_FALSE(std::string(FCP_PROMTOOL).empty())
      << "promtool is not installed: run scripts/setup.sh (Debian package 'prometheus')";
  const CliResult check =
      RunCli("/bin/sh", {"-c", absl::StrCat(FCP_PROMTOOL, " check metrics < ", path)});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool lint findings";
  worker.Signal(SIGTERM);
  worker.Wait();
}

}  // namespace
}  // namespace fcp
