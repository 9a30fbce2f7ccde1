// TLS and mutual TLS between fcp-coordinator and its clients, with certificates made by openssl
// at test time (tests/test_certificates.h): plans and rendezvous over TLS; a plaintext client, a
// client without a certificate, one with a certificate of another CA and one that trusts another
// CA are all refused with a message that says why; bad certificate files are flag errors; the
// binaries (fcp-coordinator, fcp, fcp-worker over gloo meeting through the coordinator) work
// over mutual TLS.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fcp/c_api.h"
#include "fcp/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"
#include "service/test_requests.h"
#include "tests/cli_runner.h"
#include "tests/subprocess.h"
#include "tests/test_certificates.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<TestCertificates> made = MakeTestCertificates(TestTempPath("certs"));
    ASSERT_TRUE(made.ok()) << made.status();
    certs_ = new TestCertificates(*made);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(certs_->dir);
    delete certs_;
  }

  static std::string Path(const std::string& name) { return certs_->Path(name); }

  // A coordinator on 127.0.0.1 over TLS; mutual TLS (clients need a certificate of ca.pem) if
  // `mutual`.
  static std::unique_ptr<Coordinator> StartCoordinator(bool mutual) {
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    options.tls.cert_file = Path("server.pem");
    options.tls.key_file = Path("server.key");
    if (mutual) options.tls.client_ca_file = Path("ca.pem");
    absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
    EXPECT_TRUE(started.ok()) << started.status();
    return started.ok() ? *std::move(started) : nullptr;
  }

  // A client of `coordinator` (by the name in its certificate) with no fallback and no retries.
  static absl::StatusOr<std::unique_ptr<PlannerClient>> Client(const Coordinator& coordinator,
                                                               ClientTlsOptions tls,
                                                               bool fallback = false) {
    PlannerClientOptions options;
    options.target = absl::StrCat("localhost:", coordinator.port());
    options.max_attempts = 1;
    options.local_fallback = fallback;
    options.tls = std::move(tls);
    return PlannerClient::Create(options);
  }

  // PlanBatch of a small request through a client of `coordinator` with `tls`.
  static absl::StatusOr<PlanResult> Plan(const Coordinator& coordinator, ClientTlsOptions tls) {
    absl::StatusOr<std::unique_ptr<PlannerClient>> client = Client(coordinator, std::move(tls));
    if (!client.ok()) return client.status();
    return (*client)->PlanBatch(TestRequest(4, /*seed=*/3));
  }

  static ClientTlsOptions Tls(const std::string& ca, const std::string& cert = "",
                              const std::string& key = "") {
    ClientTlsOptions tls;
    tls.enabled = true;
    tls.ca_file = ca.empty() ? "" : Path(ca);
    tls.cert_file = cert.empty() ? "" : Path(cert);
    tls.key_file = key.empty() ? "" : Path(key);
    return tls;
  }

  static TestCertificates* certs_;
};

TestCertificates* TlsTest::certs_ = nullptr;

TEST_F(TlsTest, ServesPlansOverTlsAndRefusesPlaintextAndUntrustedServers) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator(/*mutual=*/false);
  ASSERT_NE(coordinator, nullptr);
  absl::StatusOr<PlanResult> ok = Plan(*coordinator, Tls("ca.pem"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->source, PlanSource::kCoordinator);
  EXPECT_EQ(ok->plan.workers_size(), 4);

  absl::StatusOr<PlanResult> plaintext = Plan(*coordinator, ClientTlsOptions());
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(plaintext.status().message(), HasSubstr("this plaintext client is refused"));
  EXPECT_THAT(plaintext.status().message(), HasSubstr("--tls-ca"));

  absl::StatusOr<PlanResult> wrong_ca = Plan(*coordinator, Tls("other_ca.pem"));
  EXPECT_EQ(wrong_ca.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(wrong_ca.status().message(), HasSubstr("certificate verify failed"));
}

TEST_F(TlsTest, MutualTlsRequiresAClientCertificateOfItsCa) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator(/*mutual=*/true);
  ASSERT_NE(coordinator, nullptr);
  absl::StatusOr<PlanResult> ok = Plan(*coordinator, Tls("ca.pem", "client.pem", "client.key"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->plan.workers_size(), 4);

  absl::StatusOr<PlanResult> no_cert = Plan(*coordinator, Tls("ca.pem"));
  EXPECT_EQ(no_cert.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(no_cert.status().message(), HasSubstr("requires client certificates"));

  absl::StatusOr<PlanResult> rogue = Plan(*coordinator, Tls("ca.pem", "rogue.pem", "rogue.key"));
  EXPECT_EQ(rogue.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(rogue.status().message(), HasSubstr("did not accept this one"));
}

TEST_F(TlsTest, ARefusedHandshakeFallsBackToLocalPlanningWithTheSamePlanId) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator(/*mutual=*/true);
  ASSERT_NE(coordinator, nullptr);
  absl::StatusOr<PlanResult> remote = Plan(*coordinator, Tls("ca.pem", "client.pem", "client.key"));
  ASSERT_TRUE(remote.ok()) << remote.status();
  absl::StatusOr<std::unique_ptr<PlannerClient>> client =
      Client(*coordinator, Tls("ca.pem"), /*fallback=*/true);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<PlanResult> fallback = (*client)->PlanBatch(TestRequest(4, /*seed=*/3));
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_EQ(fallback->source, PlanSource::kLocalFallback);
  EXPECT_EQ(fallback->plan.plan_id(), remote->plan.plan_id());
  EXPECT_EQ((*client)->stats().fallbacks, 1);
}

TEST_F(TlsTest, BadServerFilesAreInvalidArgumentNamingTheFlag) {
  struct Case {
    std::string cert, key, client_ca, message;
  };
  const std::vector<Case> cases = {
      {"missing.pem", "server.key", "", "--tls-cert: "},
      {"server.key", "server.key", "", "--tls-cert: "},  // a key is no certificate
      {"server.pem", "client.key", "", "--tls-key: "},   // the key of another certificate
      {"server.pem", "", "", "--tls-key: required"},
      {"", "server.key", "", "--tls-cert: required"},
      {"", "", "ca.pem", "--tls-cert: required"},
      {"server.pem", "server.key", "ca.key", "--tls-client-ca: "},
  };
  for (const Case& c : cases) {
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    options.tls.cert_file = c.cert.empty() ? "" : Path(c.cert);
    options.tls.key_file = c.key.empty() ? "" : Path(c.key);
    options.tls.client_ca_file = c.client_ca.empty() ? "" : Path(c.client_ca);
    absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
    EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(started.status().message(), HasSubstr(c.message));
  }
}

TEST_F(TlsTest, BadClientFilesAreInvalidArgumentNamingTheField) {
  PlannerClientOptions options;
  options.target = "localhost:1";
  options.tls = Tls("missing.pem");
  EXPECT_THAT(PlannerClient::Create(options).status().message(), HasSubstr("tls.ca_file: "));
  options.tls = Tls("ca.pem", "client.pem", "rogue.key");
  EXPECT_THAT(PlannerClient::Create(options).status().message(), HasSubstr("tls.key_file: "));
  options.tls = Tls("ca.pem", "client.pem");
  EXPECT_EQ(PlannerClient::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

// The C API over mutual TLS: a client with the certificate plans through the coordinator; one
// without is refused by the handshake (no fallback asked for) with the reason in the message;
// a missing file is INVALID_ARGUMENT naming the field at fcp_client_new.
TEST_F(TlsTest, TheCApiPlansOverMutualTls) {
  std::unique_ptr<Coordinator> coordinator = StartCoordinator(/*mutual=*/true);
  ASSERT_NE(coordinator, nullptr);
  const std::string target = absl::StrCat("localhost:", coordinator->port());
  const std::string ca = Path("ca.pem"), cert = Path("client.pem"), key = Path("client.key");
  int64_t lengths[] = {4096, 1024, 900};
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.job_id = "tls-job";
  batch.document_lengths = lengths;
  batch.num_documents = 3;
  batch.num_workers = 4;
  auto plan_with = [&](const char* cert_file, const char* key_file, fcp_error* error) {
    fcp_client_options options;
    fcp_client_options_init(&options);
    options.target = target.c_str();
    options.max_attempts = 1;
    options.local_fallback = 0;
    fcp_tls_options tls;
    tls.ca_file = ca.c_str();
    tls.cert_file = cert_file;
    tls.key_file = key_file;
    fcp_client* client = nullptr;
    int code = fcp_client_new_tls(&options, &tls, &client, error);
    if (code != FCP_OK) return code;
    fcp_plan* plan = nullptr;
    code = fcp_client_plan(client, &batch, &plan, error);
    if (code == FCP_OK) EXPECT_EQ(fcp_plan_source_of(plan), FCP_SOURCE_COORDINATOR);
    fcp_plan_free(plan);
    fcp_client_free(client);
    return code;
  };
  fcp_error error;
  EXPECT_EQ(plan_with(cert.c_str(), key.c_str(), &error), FCP_OK) << error.message;
  EXPECT_EQ(plan_with(nullptr, nullptr, &error), FCP_UNAVAILABLE);
  EXPECT_THAT(error.message, HasSubstr("requires client certificates"));
  const std::string missing = Path("missing.pem");
  EXPECT_EQ(plan_with(missing.c_str(), key.c_str(), &error), FCP_INVALID_ARGUMENT);
  EXPECT_THAT(error.message, HasSubstr("tls.cert_file: "));
}

// The binaries as deployed with mutual TLS: fcp-coordinator, the fcp CLI, and two fcp-worker
// processes that plan and meet (Gloo rendezvous) through the coordinator.
TEST_F(TlsTest, BinariesWorkOverMutualTls) {
  Subprocess coordinator({FCP_COORDINATOR, "--host", "127.0.0.1", "--port", "0", "--metrics-port",
                          "-1", "--tls-cert", Path("server.pem"), "--tls-key", Path("server.key"),
                          "--tls-client-ca", Path("ca.pem")});
  ASSERT_TRUE(coordinator.Start().ok());
  absl::StatusOr<std::string> line = coordinator.ReadLine(absl::Seconds(30));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_THAT(*line, HasSubstr("(mutual TLS)"));
  int port = 0;
  ASSERT_EQ(std::sscanf(line->c_str(), "fcp-coordinator: serving fcp.v1.Planner on port %d", &port),
            1);
  const std::string target = absl::StrCat("localhost:", port);
  const std::vector<std::string> tls = {
      "--coordinator",    target,      "--tls-ca",        Path("ca.pem"), "--tls-cert",
      Path("client.pem"), "--tls-key", Path("client.key")};
  const std::string lengths = absl::StrCat(FCP_SHARED_DIR, "/workloads/wikipedia.lengths");

  std::vector<std::string> plan = {"plan",      "--lengths",  lengths,
                                   "--workers", "4",          "--tokens-per-worker",
                                   "4096",      "--strategy", "fcp"};
  plan.insert(plan.end(), tls.begin(), tls.end());
  const CliResult planned = RunCli(FCP_BINARY, plan);
  EXPECT_EQ(planned.code, 0) << planned.err;
  EXPECT_THAT(planned.out, HasSubstr("yes"));  // the plan passed the validator

  std::vector<std::string> plaintext = {"plan", "--lengths",           lengths, "--workers",
                                        "4",    "--tokens-per-worker", "4096",  "--coordinator",
                                        target};
  const CliResult refused = RunCli(FCP_BINARY, plaintext);
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("this plaintext client is refused"));

  std::vector<std::string> bad_key = plan;
  bad_key.back() = Path("rogue.key");
  const CliResult bad = RunCli(FCP_BINARY, bad_key);
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--tls-key: "));

  // Two gloo ranks: plans from, and rendezvous through, the coordinator, all over mutual TLS.
  std::vector<std::unique_ptr<Subprocess>> workers;
  const std::string out = TestTempPath("tls-worker");
  for (int rank = 0; rank < 2; ++rank) {
    std::string command = absl::StrCat(
        "exec '", FCP_WORKER, "' --lengths '", lengths,
        "' --world 2 --transport gloo --rendezvous coordinator --training-job tls-test"
        " --tokens-per-worker 512 --max-doc-len 1024 --heads 2 --kv-heads 1 --head-dim 16"
        " --threads 1 --steps 2 --timeout-s 30 --rank ",
        rank);
    for (const std::string& flag : tls) absl::StrAppend(&command, " '", flag, "'");
    absl::StrAppend(&command, " >", out, rank, ".out 2>", out, rank, ".err");
    workers.push_back(
        std::make_unique<Subprocess>(std::vector<std::string>{"/bin/sh", "-c", command}));
    ASSERT_TRUE(workers.back()->Start().ok());
  }
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(workers[rank]->Wait(), 0)
        << "rank " << rank << ": " << ReadFileOrEmpty(absl::StrCat(out, rank, ".err"));
  }
  const std::string table = ReadFileOrEmpty(absl::StrCat(out, "0.out"));
  EXPECT_THAT(table, HasSubstr("every rank ok"));
  EXPECT_THAT(table, ::testing::Not(HasSubstr("(fallback)")));
  for (int rank = 0; rank < 2; ++rank) {
    for (const char* suffix : {".out", ".err"})
      std::remove(absl::StrCat(out, rank, suffix).c_str());
  }
  coordinator.Signal(SIGTERM);
  EXPECT_EQ(coordinator.Wait(), 0);
}

}  // namespace
}  // namespace fcp
