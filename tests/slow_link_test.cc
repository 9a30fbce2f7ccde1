// Clients of a TLS coordinator behind a slow link (tests/slow_link.h: every chunk of bytes 500 ms
// late, so one TLS handshake takes about 1.5–2 s), as on a loaded machine: the planner client and
// the rendezvous store must still connect. gRPC reads GRPC_ARG_MIN_RECONNECT_BACKOFF_MS as the
// least time one connection attempt may take; when both channels set it to 100 ms, every attempt
// was cut off mid-handshake ("tcp handshaker shutdown") until the caller's deadline, which is how
// CI's ASan run once lost a rendezvous (TlsTest.BinariesWorkOverMutualTls).
#include "tests/slow_link.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fcp/client.h"
#include "gloo/rendezvous/store.h"
#include "gtest/gtest.h"
#include "service/coordinator.h"
#include "service/test_requests.h"
#include "tests/cli_runner.h"
#include "tests/test_certificates.h"
#include "worker/transport/coordinator_store.h"

namespace fcp {
namespace {

constexpr absl::Duration kDelay = absl::Milliseconds(500);

class SlowLinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TestCertificates> made = MakeTestCertificates(TestTempPath("slow-link-certs"));
    ASSERT_TRUE(made.ok()) << made.status();
    certs_ = *made;
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    options.tls.cert_file = certs_.Path("server.pem");
    options.tls.key_file = certs_.Path("server.key");
    absl::StatusOr<std::unique_ptr<Coordinator>> started = Coordinator::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    coordinator_ = *std::move(started);
    absl::StatusOr<std::unique_ptr<SlowLink>> link = SlowLink::Start(coordinator_->port(), kDelay);
    ASSERT_TRUE(link.ok()) << link.status();
    link_ = *std::move(link);
  }

  // Through the slow link, by the name in the server's certificate.
  std::string Target() const { return absl::StrCat("localhost:", link_->port()); }
  ClientTlsOptions Tls() const {
    ClientTlsOptions tls;
    tls.enabled = true;
    tls.ca_file = certs_.Path("ca.pem");
    return tls;
  }

  TestCertificates certs_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<SlowLink> link_;  // destroyed before the coordinator
};

TEST_F(SlowLinkTest, PlannerClientConnectsWhenTheTlsHandshakeTakesSeconds) {
  PlannerClientOptions options;
  options.target = Target();
  options.tls = Tls();
  options.max_attempts = 1;
  options.local_fallback = false;
  options.deadline = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<PlannerClient>> client = PlannerClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<PlanResult> planned = (*client)->PlanBatch(TestRequest(4, /*seed=*/3));
  ASSERT_TRUE(planned.ok()) << planned.status();
  EXPECT_EQ(planned->source, PlanSource::kCoordinator);
  EXPECT_EQ(planned->plan.workers_size(), 4);
}

TEST_F(SlowLinkTest, RendezvousStoreConnectsWhenTheTlsHandshakeTakesSeconds) {
  CoordinatorStoreOptions options;
  options.target = Target();
  options.tls = Tls();
  options.job_id = "slow-link";
  options.timeout = absl::Seconds(60);
  options.rpc_timeout = absl::Seconds(20);
  absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> store = NewCoordinatorStore(options);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::vector<char> value = {'o', 'k'};
  (*store)->set("key", value);  // throws gloo::IoException if it never connects
  EXPECT_EQ((*store)->get("key"), value);
}

}  // namespace
}  // namespace fcp
