// Issue 28 over real gRPC on loopback: a coordinator with --job-tokens (and --job-identities under
// mutual TLS) keeps jobs apart. A job's client cannot read or overwrite another job's rendezvous
// keys or fetch a plan in its name; refusals are counted without job labels; per-job quotas
// refuse a noisy job and leave a quiet one alone (step reports: one limit, the job's quota); the
// C++ client and the worker's coordinator store send their job's token.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/channel_credentials.h"
#include "fcp/c_api.h"
#include "fcp/client.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "fcp/v1/rendezvous.grpc.pb.h"
#include "gloo/common/error.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"
#include "service/metrics_testing.h"
#include "service/test_requests.h"
#include "tests/grpc_probes.h"
#include "tests/test_certificates.h"
#include "worker/transport/coordinator_store.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTokenA[] = "alpha-token-5b1f0c9e2d7a4c31";
constexpr char kTokenB[] = "bravo-token-8e3d6a0f1b9c2e47";

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(testing::TempDir(), "/fcp_", name, "_", getpid());
  std::ofstream(path) << text;
  return path;
}

std::string TokensFile() {
  return WriteTemp("job_tokens",
                   absl::StrCat("# test jobs\njob-a ", kTokenA, "\njob-b ", kTokenB, "\n"));
}

std::unique_ptr<Coordinator> StartCoordinator(CoordinatorOptions options) {
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
  EXPECT_TRUE(started.ok()) << started.status();
  return started.ok() ? *std::move(started) : nullptr;
}

// A coordinator with TokensFile(): jobs job-a and job-b, no quotas.
std::unique_ptr<Coordinator> StartWithTokens() {
  CoordinatorOptions options;
  options.auth.tokens_file = TokensFile();
  return StartCoordinator(options);
}

// Calls of one client, with or without a token, on the coordinator's services.
class Caller {
 public:
  Caller(int port, std::string token,
         std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials(),
         const std::string& host = "127.0.0.1")
      : token_(std::move(token)) {
    auto channel = grpc::CreateChannel(absl::StrCat(host, ":", port), credentials);
    rendezvous_ = v1::Rendezvous::NewStub(channel);
    planner_ = v1::Planner::NewStub(channel);
  }

  grpc::Status Set(const std::string& job, const std::string& key, const std::string& value) {
    grpc::ClientContext context;
    Prepare(context);
    v1::RendezvousSetRequest request;
    request.set_job_id(job);
    request.set_key(key);
    request.set_value(value);
    v1::RendezvousSetResponse response;
    return rendezvous_->Set(&context, request, &response);
  }

  grpc::Status Get(const std::string& job, const std::string& key, std::string* value) {
    grpc::ClientContext context;
    Prepare(context);
    v1::RendezvousGetRequest request;
    request.set_job_id(job);
    request.set_key(key);
    v1::RendezvousGetResponse response;
    grpc::Status status = rendezvous_->Get(&context, request, &response);
    *value = response.found() ? response.value() : "<not found>";
    return status;
  }

  grpc::Status Report(const std::string& job, int64_t step) {
    grpc::ClientContext context;
    Prepare(context);
    v1::StepReport report;
    report.set_job_id(job);
    report.set_step(step);
    report.set_num_workers(1);
    report.set_forward_seconds(0.1);
    v1::ReportStepResponse response;
    return planner_->ReportStep(&context, report, &response);
  }

  grpc::Status Plan(const std::string& job) {
    grpc::ClientContext context;
    Prepare(context);
    v1::PlanResponse response;
    return planner_->PlanBatch(&context, TestRequest(4, 1, 4096, job), &response);
  }

 private:
  void Prepare(grpc::ClientContext& context) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    if (!token_.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }

  std::string token_;
  std::unique_ptr<v1::Rendezvous::Stub> rendezvous_;
  std::unique_ptr<v1::Planner::Stub> planner_;
};

double Denied(Coordinator& c, const std::string& reason) {
  return MetricValue(Exposition(c.registry()),
                     absl::StrCat("fcp_auth_denied_total{reason=\"", reason, "\"}"))
      .value_or(0);
}

TEST(JobIsolationTest, AJobCannotReadOrOverwriteAnotherJobsKeys) {
  std::unique_ptr<Coordinator> c = StartWithTokens();
  ASSERT_NE(c, nullptr);
  Caller a(c->port(), kTokenA), b(c->port(), kTokenB), anonymous(c->port(), "");

  ASSERT_TRUE(a.Set("job-a", "attempt-0/gloo/0", "10.0.0.1:4000").ok());
  std::string value;
  ASSERT_TRUE(a.Get("job-a", "attempt-0/gloo/0", &value).ok());
  EXPECT_EQ(value, "10.0.0.1:4000");

  // Job b's worker tries job a's keys: read, overwrite (the rank 0 hijack of issue 28).
  grpc::Status read = b.Get("job-a", "attempt-0/gloo/0", &value);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(read.error_message(), HasSubstr("job 'job-a'"));
  EXPECT_THAT(read.error_message(), Not(HasSubstr(kTokenB)));
  EXPECT_EQ(value, "<not found>");
  grpc::Status overwrite = b.Set("job-a", "attempt-0/gloo/0", "6.6.6.6:666");
  EXPECT_EQ(overwrite.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // No token at all.
  EXPECT_EQ(anonymous.Set("job-a", "attempt-0/gloo/0", "6.6.6.6:666").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(anonymous.Get("job-a", "attempt-0/gloo/0", &value).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // Job a's value is untouched; job b works in its own namespace.
  ASSERT_TRUE(a.Get("job-a", "attempt-0/gloo/0", &value).ok());
  EXPECT_EQ(value, "10.0.0.1:4000");
  EXPECT_TRUE(b.Set("job-b", "attempt-0/gloo/0", "10.0.0.2:4000").ok());
  EXPECT_EQ(c->rendezvous().entries(), 2);

  EXPECT_EQ(Denied(*c, "other_job"), 2);
  EXPECT_EQ(Denied(*c, "no_credentials"), 2);
  // Bounded labels: the job ids never become label values.
  EXPECT_THAT(Exposition(c->registry()), Not(HasSubstr("fcp_auth_denied_total{training_job")));
}

TEST(JobIsolationTest, AJobCannotFetchAPlanInAnotherJobsName) {
  std::unique_ptr<Coordinator> c = StartWithTokens();
  ASSERT_NE(c, nullptr);
  Caller a(c->port(), kTokenA), b(c->port(), kTokenB), guesser(c->port(), "guessed-token-0000");
  EXPECT_TRUE(a.Plan("job-a").ok());
  grpc::Status in_a_name = b.Plan("job-a");
  EXPECT_EQ(in_a_name.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(in_a_name.error_message(), HasSubstr("job 'job-a'"));
  grpc::Status guessed = guesser.Plan("job-a");
  EXPECT_EQ(guessed.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(guessed.error_message(), Not(HasSubstr("guessed-token")));
  EXPECT_EQ(a.Plan("job-c").error_code(), grpc::StatusCode::PERMISSION_DENIED);  // unknown job
  EXPECT_EQ(c->planning().plannings(), 1);  // refused calls planned nothing
  EXPECT_EQ(Denied(*c, "unknown_token"), 1);
  EXPECT_EQ(Denied(*c, "unknown_job"), 1);
}

TEST(JobIsolationTest, WithoutCredentialFilesTheCoordinatorStaysOpen) {
  std::unique_ptr<Coordinator> c = StartCoordinator(CoordinatorOptions{});
  ASSERT_NE(c, nullptr);
  Caller anonymous(c->port(), "");
  EXPECT_TRUE(anonymous.Set("job-a", "k", "v").ok());
  EXPECT_TRUE(anonymous.Plan("job-a").ok());
}

TEST(JobIsolationTest, ABadTokensFileStopsTheStartNamingTheLine) {
  CoordinatorOptions options;
  options.auth.tokens_file = WriteTemp("bad_tokens", absl::StrCat("job-a ", kTokenA, "\njob-b\n"));
  absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(started.status().message(), HasSubstr("line 2"));
}

TEST(JobIsolationTest, ANoisyJobAtItsQuotaLeavesAQuietJobUnaffected) {
  CoordinatorOptions options;
  options.auth.tokens_file = TokensFile();
  // A rate so low that no token comes back while the test runs: the counts below are exact.
  options.quotas.plan_requests_per_second = 0.001;
  options.quotas.plan_request_burst = 3;
  options.rendezvous.max_keys_per_job = 4;
  std::unique_ptr<Coordinator> c = StartCoordinator(options);
  ASSERT_NE(c, nullptr);
  Caller noisy(c->port(), kTokenA), quiet(c->port(), kTokenB);

  int noisy_ok = 0, noisy_exhausted = 0;
  for (int i = 0; i < 10; ++i) {
    grpc::Status s = noisy.Plan("job-a");
    if (s.ok()) ++noisy_ok;
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++noisy_exhausted;
      EXPECT_THAT(s.error_message(), HasSubstr("quota plan_requests_per_second"));
    }
  }
  EXPECT_EQ(noisy_ok, 3);
  EXPECT_EQ(noisy_exhausted, 7);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(quiet.Plan("job-b").ok()) << i;

  for (int i = 0; i < 4; ++i) ASSERT_TRUE(noisy.Set("job-a", absl::StrCat("k", i), "v").ok());
  grpc::Status full = noisy.Set("job-a", "k4", "v");
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(full.error_message(), HasSubstr("quota rendezvous_keys_per_job"));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(quiet.Set("job-b", absl::StrCat("k", i), "v").ok());

  const std::string exposition = Exposition(c->registry());
  EXPECT_EQ(MetricValue(exposition, "fcp_quota_exceeded_total{quota=\"plan_requests_per_second\"}"),
            7);
  EXPECT_EQ(MetricValue(exposition, "fcp_quota_exceeded_total{quota=\"rendezvous_keys_per_job\"}"),
            1);
}

TEST(JobIsolationTest, StepReportsHaveOneRateLimitTheJobsQuota) {
  CoordinatorOptions options;
  options.auth.tokens_file = TokensFile();
  options.quotas.reports_per_second = 0.001;  // a bucket of one report, none back during the test
  std::unique_ptr<Coordinator> c = StartCoordinator(options);
  ASSERT_NE(c, nullptr);
  Caller noisy(c->port(), kTokenA), quiet(c->port(), kTokenB);
  EXPECT_TRUE(noisy.Report("job-a", 1).ok());
  for (int step = 2; step <= 5; ++step) {
    grpc::Status over = noisy.Report("job-a", step);
    EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << step;
    EXPECT_THAT(over.error_message(), HasSubstr("quota reports_per_second"));
    EXPECT_THAT(over.error_message(), HasSubstr("--job-reports-per-second"));
  }
  EXPECT_TRUE(quiet.Report("job-b", 1).ok());
  const std::string exposition = Exposition(c->registry());
  EXPECT_EQ(MetricValue(exposition, "fcp_quota_exceeded_total{quota=\"reports_per_second\"}"), 4);
  // Refused reports never reach the job's calibration: one report of job-a was recorded.
  EXPECT_EQ(MetricValue(exposition, "fcp_step_reports_total{code=\"OK\",training_job=\"job-a\"}"),
            1);
}

TEST(JobIsolationTest, ClientsSendTheirJobsToken) {
  std::unique_ptr<Coordinator> c = StartWithTokens();
  ASSERT_NE(c, nullptr);
  const std::string target = absl::StrCat("127.0.0.1:", c->port());

  PlannerClientOptions client_options;
  client_options.target = target;
  client_options.local_fallback = true;
  client_options.job_token = kTokenA;
  absl::StatusOr<std::unique_ptr<PlannerClient>> client = PlannerClient::Create(client_options);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<PlanResult> planned = (*client)->PlanBatch(TestRequest(4, 1, 4096, "job-a"));
  ASSERT_TRUE(planned.ok()) << planned.status();
  EXPECT_EQ(planned->source, PlanSource::kCoordinator);
  // In another job's name: refused, and not hidden by the local fallback.
  absl::StatusOr<PlanResult> other = (*client)->PlanBatch(TestRequest(4, 1, 4096, "job-b"));
  EXPECT_EQ(other.status().code(), absl::StatusCode::kPermissionDenied);

  // FCP_JOB_TOKEN is the fallback when no token is given.
  ASSERT_EQ(setenv("FCP_JOB_TOKEN", kTokenB, 1), 0);
  client_options.job_token.clear();
  absl::StatusOr<std::unique_ptr<PlannerClient>> from_env = PlannerClient::Create(client_options);
  ASSERT_TRUE(from_env.ok());
  EXPECT_TRUE((*from_env)->PlanBatch(TestRequest(4, 1, 4096, "job-b")).ok());
  unsetenv("FCP_JOB_TOKEN");

  // The worker's rendezvous store.
  CoordinatorStoreOptions store_options;
  store_options.target = target;
  store_options.job_id = "job-a";
  store_options.timeout = absl::Seconds(10);
  store_options.job_token = kTokenA;
  absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> store =
      NewCoordinatorStore(store_options);
  ASSERT_TRUE(store.ok()) << store.status();
  (*store)->set("rank-0", std::vector<char>{'o', 'k'});
  EXPECT_EQ((*store)->get("rank-0"), (std::vector<char>{'o', 'k'}));
  store_options.job_token = kTokenB;
  absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> intruder =
      NewCoordinatorStore(store_options);
  ASSERT_TRUE(intruder.ok());
  try {
    (*intruder)->set("rank-0", std::vector<char>{'x'});
    ADD_FAILURE() << "job b's token set a key of job a";
  } catch (const gloo::IoException& e) {
    EXPECT_THAT(e.what(), HasSubstr("PERMISSION_DENIED"));
  }
  EXPECT_EQ((*store)->get("rank-0"), (std::vector<char>{'o', 'k'}));
}

TEST(JobIsolationTest, TheCApiSendsItsJobToken) {
  std::unique_ptr<Coordinator> c = StartWithTokens();
  ASSERT_NE(c, nullptr);
  const std::string target = absl::StrCat("127.0.0.1:", c->port());
  fcp_client_options client_options;
  fcp_client_options_init(&client_options);
  client_options.target = target.c_str();
  client_options.local_fallback = 1;
  const int64_t lengths[] = {4096, 2048};
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.document_lengths = lengths;
  batch.num_documents = 2;
  batch.num_workers = 2;
  batch.job_id = "job-a";
  for (const char* token : {kTokenA, kTokenB}) {
    fcp_client* client = nullptr;
    fcp_error error;
    ASSERT_EQ(fcp_client_new_auth(&client_options, nullptr, token, &client, &error), FCP_OK)
        << error.message;
    fcp_plan* plan = nullptr;
    const int code = fcp_client_plan(client, &batch, &plan, &error);
    if (token == kTokenA) {
      EXPECT_EQ(code, FCP_OK) << error.message;
      EXPECT_EQ(fcp_plan_source_of(plan), FCP_SOURCE_COORDINATOR);
    } else {
      EXPECT_EQ(code, FCP_PERMISSION_DENIED) << error.message;  // not hidden by the fallback
      EXPECT_THAT(error.message, HasSubstr("job 'job-a'"));
    }
    fcp_plan_free(plan);
    fcp_client_free(client);
  }
}

TEST(JobIsolationTest, MutualTlsBindsAJobToTheClientCertificate) {
  absl::StatusOr<TestCertificates> certs =
      MakeTestCertificates(absl::StrCat(testing::TempDir(), "/fcp_job_certs_", getpid()));
  ASSERT_TRUE(certs.ok()) << certs.status();
  CoordinatorOptions options;
  options.tls.cert_file = certs->Path("server.pem");
  options.tls.key_file = certs->Path("server.key");
  options.tls.client_ca_file = certs->Path("ca.pem");
  options.auth.tokens_file = TokensFile();
  // The test client certificate's SAN is DNS:fcp-test-client.
  options.auth.identities_file = WriteTemp("job_identities", "cert-job fcp-test-client\n");
  options.health_port = 0;  // plaintext grpc.health.v1 for probes that cannot speak TLS
  std::unique_ptr<Coordinator> c = StartCoordinator(options);
  ASSERT_NE(c, nullptr);
  ClientTlsOptions tls;
  tls.enabled = true;
  tls.ca_file = certs->Path("ca.pem");
  tls.cert_file = certs->Path("client.pem");
  tls.key_file = certs->Path("client.key");
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      NewChannelCredentials(tls);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  Caller by_certificate(c->port(), "", *credentials, "localhost");
  EXPECT_TRUE(by_certificate.Set("cert-job", "k", "v").ok());
  std::string value;
  EXPECT_TRUE(by_certificate.Get("cert-job", "k", &value).ok());
  EXPECT_EQ(value, "v");
  // The certificate is cert-job's, not job-a's.
  EXPECT_EQ(by_certificate.Set("job-a", "k", "v").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A token still works over mutual TLS.
  Caller with_token(c->port(), kTokenA, *credentials, "localhost");
  EXPECT_TRUE(with_token.Set("job-a", "k", "v").ok());

  // The health port answers plaintext probes, and serves nothing else.
  ASSERT_GT(c->health_port(), 0);
  auto plaintext = grpc::CreateChannel(absl::StrCat("127.0.0.1:", c->health_port()),
                                       grpc::InsecureChannelCredentials());
  absl::StatusOr<int> health = HealthStatus(plaintext, "fcp.v1.Rendezvous");
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, 1);  // SERVING
  Caller on_health_port(c->health_port(), kTokenA);
  EXPECT_EQ(on_health_port.Set("job-a", "k", "v").error_code(), grpc::StatusCode::UNIMPLEMENTED);
  c->StartDraining();
  EXPECT_EQ(HealthStatus(plaintext, "").value_or(-1), 2);  // NOT_SERVING
}

}  // namespace
}  // namespace fcp
