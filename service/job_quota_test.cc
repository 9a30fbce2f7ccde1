#include "service/job_quota.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

// A clock the test moves by hand: no test below depends on real time.
struct FakeClock {
  absl::Time now = absl::FromUnixSeconds(1000);
  std::function<absl::Time()> fn() {
    return [this] { return now; };
  }
};

TEST(JobQuotasTest, UnlimitedByDefault) {
  FakeClock clock;
  JobQuotas quotas(JobQuotaOptions{}, clock.fn());
  std::vector<JobQuotas::Ticket> tickets;
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<JobQuotas::Ticket> t = quotas.AdmitPlanRequest("job");
    ASSERT_TRUE(t.ok()) << t.status();
    tickets.push_back(*std::move(t));
  }
  EXPECT_EQ(quotas.in_flight("job"), 1000);
  EXPECT_TRUE(quotas.AdmitReport("job").ok());
}

TEST(JobQuotasTest, RateRefillsWithTimeAndNamesTheQuota) {
  FakeClock clock;
  JobQuotaOptions options;
  options.plan_requests_per_second = 2;
  options.plan_request_burst = 4;
  JobQuotas quotas(options, clock.fn());
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(quotas.AdmitPlanRequest("job").ok()) << i;
  absl::StatusOr<JobQuotas::Ticket> over = quotas.AdmitPlanRequest("job");
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(over.status().message(), HasSubstr("quota plan_requests_per_second"));
  EXPECT_THAT(over.status().message(), HasSubstr("job 'job'"));
  EXPECT_EQ(QuotaName(over.status()), "plan_requests_per_second");

  clock.now += absl::Milliseconds(500);  // one token back
  EXPECT_TRUE(quotas.AdmitPlanRequest("job").ok());
  EXPECT_FALSE(quotas.AdmitPlanRequest("job").ok());
  clock.now += absl::Seconds(100);  // refilled to the burst, not beyond
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(quotas.AdmitPlanRequest("job").ok()) << i;
  EXPECT_FALSE(quotas.AdmitPlanRequest("job").ok());
}

TEST(JobQuotasTest, InFlightCountsUntilTheTicketIsDestroyed) {
  FakeClock clock;
  JobQuotaOptions options;
  options.plans_in_flight = 2;
  JobQuotas quotas(options, clock.fn());
  absl::StatusOr<JobQuotas::Ticket> first = quotas.AdmitPlanRequest("job");
  absl::StatusOr<JobQuotas::Ticket> second = quotas.AdmitPlanRequest("job");
  ASSERT_TRUE(first.ok() && second.ok());
  absl::StatusOr<JobQuotas::Ticket> third = quotas.AdmitPlanRequest("job");
  EXPECT_EQ(QuotaName(third.status()), "plans_in_flight");
  EXPECT_THAT(third.status().message(), HasSubstr("--job-max-plans-in-flight"));
  EXPECT_EQ(quotas.in_flight("job"), 2);
  JobQuotas::Ticket moved = *std::move(first);
  EXPECT_EQ(quotas.in_flight("job"), 2);  // a move hands the count over, it does not release it
  moved = JobQuotas::Ticket();
  EXPECT_EQ(quotas.in_flight("job"), 1);
  EXPECT_TRUE(quotas.AdmitPlanRequest("job").ok());  // destroyed at once: back to 1
  EXPECT_EQ(quotas.in_flight("job"), 1);
}

TEST(JobQuotasTest, ANoisyJobAtItsQuotaLeavesAQuietJobUnaffected) {
  FakeClock clock;  // frozen: the noisy job's bucket never refills during the test
  JobQuotaOptions options;
  options.plan_requests_per_second = 5;
  options.plans_in_flight = 3;
  JobQuotas quotas(options, clock.fn());
  std::vector<JobQuotas::Ticket> noisy_tickets;
  int noisy_refused = 0;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<JobQuotas::Ticket> t = quotas.AdmitPlanRequest("noisy");
    if (t.ok()) {
      noisy_tickets.push_back(*std::move(t));
    } else {
      ++noisy_refused;
    }
  }
  EXPECT_EQ(noisy_tickets.size(), 3u);  // in flight caps it first
  EXPECT_EQ(noisy_refused, 97);
  // The quiet job gets its whole quota, as if the noisy one did not exist.
  std::vector<JobQuotas::Ticket> quiet_tickets;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<JobQuotas::Ticket> t = quotas.AdmitPlanRequest("quiet");
    ASSERT_TRUE(t.ok()) << i << ": " << t.status();
    quiet_tickets.push_back(*std::move(t));
  }
  EXPECT_EQ(quotas.in_flight("quiet"), 3);
  EXPECT_EQ(quotas.in_flight("noisy"), 3);
}

TEST(JobQuotasTest, ReportRateIsPerJob) {
  FakeClock clock;
  JobQuotaOptions options;
  options.reports_per_second = 1;
  JobQuotas quotas(options, clock.fn());
  EXPECT_TRUE(quotas.AdmitReport("a").ok());
  absl::Status over = quotas.AdmitReport("a");
  EXPECT_EQ(QuotaName(over), "reports_per_second");
  EXPECT_TRUE(quotas.AdmitReport("b").ok());
  clock.now += absl::Seconds(1);
  EXPECT_TRUE(quotas.AdmitReport("a").ok());
}

TEST(JobQuotasTest, IdleJobsAreForgotten) {
  FakeClock clock;
  JobQuotaOptions options;
  options.plan_requests_per_second = 1;
  JobQuotas quotas(options, clock.fn());
  absl::StatusOr<JobQuotas::Ticket> held = quotas.AdmitPlanRequest("held");
  ASSERT_TRUE(held.ok());
  for (size_t i = 0; i < JobQuotas::kMaxIdleJobs + 10; ++i) {
    (void)quotas.AdmitPlanRequest(absl::StrCat("made-up-", i));
    clock.now += absl::Seconds(1);
  }
  EXPECT_LE(quotas.tracked_jobs(), JobQuotas::kMaxIdleJobs + 1);
  EXPECT_EQ(quotas.in_flight("held"), 1);  // a job with a request in flight is kept
}

TEST(JobQuotasTest, OptionsAreValidated) {
  JobQuotaOptions options;
  EXPECT_TRUE(ValidateJobQuotaOptions(options).ok());
  options.plans_in_flight = -1;
  EXPECT_THAT(ValidateJobQuotaOptions(options).message(), HasSubstr("plans_in_flight"));
  options = {};
  options.plan_requests_per_second = std::numeric_limits<double>::infinity();
  EXPECT_THAT(ValidateJobQuotaOptions(options).message(), HasSubstr("plan_requests_per_second"));
}

TEST(QuotaNameTest, OnlyTaggedStatusesHaveOne) {
  EXPECT_EQ(QuotaName(absl::ResourceExhaustedError("x")), std::nullopt);
  EXPECT_EQ(QuotaName(QuotaExceededError("q", "m")), "q");
}

}  // namespace
}  // namespace fcp
