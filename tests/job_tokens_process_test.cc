// The fcp-coordinator binary with --job-tokens: a bad file stops the start naming the line;
// SIGHUP reloads the file without a restart and without failing calls in progress.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fcp/v1/rendezvous.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/cli_runner.h"
#include "tests/subprocess.h"
#include "tests/worker_job_flags.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

constexpr char kOld[] = "old-token-of-job-a-7f3e2c1b";
constexpr char kNew[] = "new-token-of-job-a-9a8b7c6d";
constexpr char kSteady[] = "steady-token-job-b-1234abcd";

void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

grpc::StatusCode SetKey(v1::Rendezvous::Stub& stub, const std::string& job,
                        const std::string& token) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  v1::RendezvousSetRequest request;
  request.set_job_id(job);
  request.set_key("k");
  request.set_value("v");
  v1::RendezvousSetResponse response;
  return stub.Set(&context, request, &response).error_code();
}

// fcp-coordinator --job-tokens `tokens` on 127.0.0.1, and the first line it printed.
struct Running {
  std::unique_ptr<Subprocess> process;
  std::string line;
  int port = 0;
};

Running StartWithTokens(const std::string& tokens) {
  Running r;
  r.process = std::make_unique<Subprocess>(
      std::vector<std::string>{FCP_COORDINATOR, "--host", "127.0.0.1", "--port", "0",
                               "--metrics-port", "-1", "--job-tokens", tokens});
  EXPECT_TRUE(r.process->Start().ok());
  absl::StatusOr<std::string> line = r.process->ReadLine(absl::Seconds(30));
  EXPECT_TRUE(line.ok()) << line.status();
  r.line = line.value_or("");
  EXPECT_EQ(
      std::sscanf(r.line.c_str(), "fcp-coordinator: serving fcp.v1.Planner on port %d", &r.port), 1)
      << r.line;
  return r;
}

TEST(JobTokensProcessTest, SighupReloadsTheTokensWithoutARestart) {
  const std::string path = absl::StrCat(testing::TempDir(), "/fcp_tokens_", getpid());
  Write(path, absl::StrCat("job-a ", kOld, "\njob-b ", kSteady, "\n"));
  Running running = StartWithTokens(path);
  ASSERT_GT(running.port, 0);
  Subprocess& coordinator = *running.process;
  const int port = running.port;
  EXPECT_THAT(running.line, HasSubstr("(job credentials)"));
  absl::StatusOr<std::string> line;
  {
    auto stub = v1::Rendezvous::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
    EXPECT_EQ(SetKey(*stub, "job-a", kOld), grpc::StatusCode::OK);
    EXPECT_EQ(SetKey(*stub, "job-a", kNew), grpc::StatusCode::UNAUTHENTICATED);

    // Job b calls throughout; its token is in every version of the file, so none may fail.
    std::atomic<bool> stop{false};
    std::atomic<int> steady_calls{0}, steady_failures{0};
    std::thread steady([&] {
      auto own = v1::Rendezvous::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                             grpc::InsecureChannelCredentials()));
      while (!stop.load() || steady_calls.load() < 20) {
        if (SetKey(*own, "job-b", kSteady) != grpc::StatusCode::OK) ++steady_failures;
        ++steady_calls;
      }
    });

    Write(path, absl::StrCat("# rotated\njob-a ", kNew, "\njob-b ", kSteady, "\n"));
    coordinator.Signal(SIGHUP);
    line = coordinator.ReadLine(absl::Seconds(30));
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_THAT(*line, HasSubstr("SIGHUP: credentials reloaded (2 jobs)"));
    EXPECT_EQ(SetKey(*stub, "job-a", kNew), grpc::StatusCode::OK);
    EXPECT_EQ(SetKey(*stub, "job-a", kOld), grpc::StatusCode::UNAUTHENTICATED);

    // A broken file is refused; the tokens loaded before stay in force.
    Write(path, absl::StrCat("job-a ", kOld, "\njob-b\n"));
    coordinator.Signal(SIGHUP);
    line = coordinator.ReadLine(absl::Seconds(30));
    ASSERT_TRUE(line.ok()) << line.status();
    EXPECT_THAT(*line, HasSubstr("NOT reloaded"));
    EXPECT_THAT(*line, HasSubstr("line 2"));
    EXPECT_EQ(SetKey(*stub, "job-a", kNew), grpc::StatusCode::OK);
    EXPECT_EQ(SetKey(*stub, "job-a", kOld), grpc::StatusCode::UNAUTHENTICATED);

    stop = true;
    steady.join();
    EXPECT_GE(steady_calls.load(), 20);
    EXPECT_EQ(steady_failures.load(), 0);
  }
  coordinator.Signal(SIGTERM);
  EXPECT_EQ(coordinator.Wait(), 0);
  std::remove(path.c_str());
}

// `fcp plan --coordinator` sends the token of --job-token-file (its job id is "fcp-cli").
TEST(JobTokensProcessTest, TheCliSendsItsJobTokenFile) {
  const std::string tokens = absl::StrCat(testing::TempDir(), "/fcp_cli_tokens_", getpid());
  Write(tokens, absl::StrCat("fcp-cli ", kSteady, "\n"));
  const std::string token_file = absl::StrCat(testing::TempDir(), "/fcp_cli_token_", getpid());
  Write(token_file, absl::StrCat(kSteady, "\n"));
  const std::string wrong_file = absl::StrCat(testing::TempDir(), "/fcp_cli_wrong_", getpid());
  Write(wrong_file, kOld);
  Running running = StartWithTokens(tokens);
  ASSERT_GT(running.port, 0);
  Subprocess& coordinator = *running.process;
  const int port = running.port;
  auto plan = [&](const std::string& token_file) {
    return RunCli(
        FCP_BINARY,
        {"plan", "--lengths", std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths",
         "--workers", "4", "--tokens-per-worker", "4096", "--strategy", "fcp", "--coordinator",
         absl::StrCat("127.0.0.1:", port), "--job-token-file", token_file});
  };
  const CliResult ok = plan(token_file);
  EXPECT_EQ(ok.code, 0) << ok.err;
  const CliResult refused = plan(wrong_file);
  EXPECT_NE(refused.code, 0);
  EXPECT_THAT(refused.err, HasSubstr("job 'fcp-cli'"));
  EXPECT_THAT(refused.err, ::testing::Not(HasSubstr(kOld)));
  const CliResult missing = plan("/nonexistent/token");
  EXPECT_EQ(missing.code, 2) << missing.err;
  EXPECT_THAT(missing.err, HasSubstr("--job-token-file"));
  coordinator.Signal(SIGTERM);
  EXPECT_EQ(coordinator.Wait(), 0);
}

// fcp-worker --job-token-file: two gloo ranks plan and meet through a token-checking
// coordinator; ranks holding another job's token are refused at their first call.
TEST(JobTokensProcessTest, WorkerRanksSendTheirJobTokenFile) {
  const std::string tokens = absl::StrCat(testing::TempDir(), "/fcp_worker_tokens_", getpid());
  Write(tokens, absl::StrCat("job-w ", kNew, "\nother-job ", kOld, "\n"));
  const std::string own = absl::StrCat(testing::TempDir(), "/fcp_worker_token_", getpid());
  Write(own, kNew);
  const std::string other = absl::StrCat(testing::TempDir(), "/fcp_worker_other_", getpid());
  Write(other, kOld);
  Running running = StartWithTokens(tokens);
  ASSERT_GT(running.port, 0);
  Subprocess& coordinator = *running.process;
  const int port = running.port;
  auto run_job = [&](const std::string& token_file) {
    std::vector<CliResult> results(2);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r) {
      ranks.emplace_back([&, r] {
        results[r] = RunCli(
            FCP_WORKER,
            SmallWorkerJobFlags(
                {"--steps", "1", "--world", "2", "--rank", std::to_string(r), "--transport", "gloo",
                 "--rendezvous", "coordinator", "--coordinator", absl::StrCat("127.0.0.1:", port),
                 "--training-job", "job-w", "--timeout-s", "20", "--job-token-file", token_file}));
      });
    }
    for (std::thread& t : ranks) t.join();
    return results;
  };
  for (const CliResult& r : run_job(own)) EXPECT_EQ(r.code, 0) << r.err;
  for (const CliResult& r : run_job(other)) {
    EXPECT_NE(r.code, 0);
    EXPECT_THAT(r.err, HasSubstr("job 'job-w'"));
    EXPECT_THAT(r.err, ::testing::Not(HasSubstr(kOld)));
  }
  coordinator.Signal(SIGTERM);
  EXPECT_EQ(coordinator.Wait(), 0);
}

TEST(JobTokensProcessTest, ABadTokensFileStopsTheStart) {
  const std::string path = absl::StrCat(testing::TempDir(), "/fcp_bad_tokens_", getpid());
  Write(path, absl::StrCat("# comment\n\njob-a ", kOld, " trailing-field\n"));
  Subprocess coordinator(
      {FCP_COORDINATOR, "--port", "0", "--metrics-port", "-1", "--job-tokens", path});
  ASSERT_TRUE(coordinator.Start().ok());
  EXPECT_EQ(coordinator.Wait(), 2);  // an invalid flag value (the message, on stderr, names line 3)
  std::remove(path.c_str());
}

}  // namespace
}  // namespace fcp
