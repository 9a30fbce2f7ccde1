#include "service/rendezvous_store.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/job_quota.h"

namespace fcp {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A clock the test moves by hand.
class FakeClock {
 public:
  void Advance(absl::Duration d) { now_ += d; }
  std::function<absl::Time()> AsFunction() {
    return [this] { return now_; };
  }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

TEST(RendezvousStoreTest, GetsWhatWasSetAndNotFoundOtherwise) {
  RendezvousStore store(RendezvousStoreOptions{});
  EXPECT_TRUE(absl::IsNotFound(store.Get("job", "a").status()));
  ASSERT_TRUE(store.Set("job", "a", std::string("v\0w", 3)).ok());
  EXPECT_EQ(*store.Get("job", "a"), std::string("v\0w", 3));
  ASSERT_TRUE(store.Set("job", "empty", "").ok());
  EXPECT_EQ(*store.Get("job", "empty"), "");
  EXPECT_EQ(store.entries(), 2);
}

TEST(RendezvousStoreTest, SetReplacesAndRecountsBytes) {
  RendezvousStore store(RendezvousStoreOptions{});
  ASSERT_TRUE(store.Set("j", "k", "12345").ok());
  EXPECT_EQ(store.total_bytes(), 1 + 1 + 5 + kRendezvousEntryOverheadBytes);
  ASSERT_TRUE(store.Set("j", "k", "12").ok());
  EXPECT_EQ(*store.Get("j", "k"), "12");
  EXPECT_EQ(store.entries(), 1);
  EXPECT_EQ(store.total_bytes(), 1 + 1 + 2 + kRendezvousEntryOverheadBytes);
}

TEST(RendezvousStoreTest, JobsAreSeparateNamespaces) {
  RendezvousStore store(RendezvousStoreOptions{});
  ASSERT_TRUE(store.Set("job-a", "rank/0", "a").ok());
  ASSERT_TRUE(store.Set("job-b", "rank/0", "b").ok());
  EXPECT_EQ(*store.Get("job-a", "rank/0"), "a");
  EXPECT_EQ(*store.Get("job-b", "rank/0"), "b");
  EXPECT_TRUE(absl::IsNotFound(store.Get("job-c", "rank/0").status()));
}

TEST(RendezvousStoreTest, BadNamesAreInvalidArgumentNamingTheField) {
  RendezvousStoreOptions options;
  options.max_key_bytes = 8;
  RendezvousStore store(options);
  absl::Status status = store.Set("", "k", "v");
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("job_id: must not be empty"));
  status = store.Get("j", "").status();
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("key: must not be empty"));
  status = store.Set("j", "123456789", "v");
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("key: 9 bytes, longer than the limit of 8"));
  status = store.Set("123456789", "k", "v");
  EXPECT_THAT(status.message(), HasSubstr("job_id: 9 bytes"));
  EXPECT_EQ(store.entries(), 0);
}

TEST(RendezvousStoreTest, ValueOverTheLimitIsResourceExhausted) {
  RendezvousStoreOptions options;
  options.max_value_bytes = 4;
  RendezvousStore store(options);
  EXPECT_TRUE(store.Set("j", "k", "1234").ok());
  absl::Status status = store.Set("j", "k", "12345");
  EXPECT_TRUE(absl::IsResourceExhausted(status));
  EXPECT_THAT(status.message(), AllOf(HasSubstr("value: 5 bytes"), HasSubstr("limit of 4"),
                                      HasSubstr("--rendezvous-max-value-bytes")));
  EXPECT_EQ(*store.Get("j", "k"), "1234");  // unchanged
}

TEST(RendezvousStoreTest, KeysPerJobAreBoundedButReplacingIsFine) {
  RendezvousStoreOptions options;
  options.max_keys_per_job = 2;
  RendezvousStore store(options);
  ASSERT_TRUE(store.Set("j", "a", "1").ok());
  ASSERT_TRUE(store.Set("j", "b", "1").ok());
  absl::Status status = store.Set("j", "c", "1");
  EXPECT_TRUE(absl::IsResourceExhausted(status));
  EXPECT_THAT(status.message(), AllOf(HasSubstr("job 'j': 2 keys"), HasSubstr("'c'"),
                                      HasSubstr("--rendezvous-max-keys-per-job")));
  EXPECT_TRUE(store.Set("j", "b", "2").ok());      // replacing adds no key
  EXPECT_TRUE(store.Set("other", "c", "1").ok());  // the limit is per job
}

TEST(RendezvousStoreTest, TotalBytesAreBounded) {
  RendezvousStoreOptions options;
  const int64_t entry = 1 + 1 + 10 + kRendezvousEntryOverheadBytes;
  options.max_total_bytes = 2 * entry;
  RendezvousStore store(options);
  ASSERT_TRUE(store.Set("j", "a", std::string(10, 'x')).ok());
  ASSERT_TRUE(store.Set("k", "b", std::string(10, 'x')).ok());
  absl::Status status = store.Set("j", "c", "");
  EXPECT_TRUE(absl::IsResourceExhausted(status));
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(absl::StrCat(2 * entry, " bytes held")),
                    HasSubstr(absl::StrCat("limit of ", 2 * entry)), HasSubstr("'c' of job 'j'"),
                    HasSubstr("--rendezvous-max-bytes")));
  // A smaller value in place of a held one fits; a larger one does not.
  EXPECT_TRUE(store.Set("j", "a", "").ok());
  EXPECT_TRUE(absl::IsResourceExhausted(store.Set("k", "b", std::string(21, 'x'))));
  EXPECT_TRUE(store.Set("k", "b", std::string(20, 'x')).ok());
  EXPECT_EQ(store.total_bytes(), 2 * entry);
}

TEST(RendezvousStoreTest, BytesPerJobAreAQuotaThatLeavesOtherJobsRoom) {
  FakeClock clock;
  RendezvousStoreOptions options;
  const int64_t entry = 5 + 1 + 10 + kRendezvousEntryOverheadBytes;  // "noisy"/"quiet", key, value
  options.max_bytes_per_job = 2 * entry;
  RendezvousStore store(options, clock.AsFunction());
  ASSERT_TRUE(store.Set("noisy", "a", std::string(10, 'x')).ok());
  ASSERT_TRUE(store.Set("noisy", "b", std::string(10, 'x')).ok());
  absl::Status over = store.Set("noisy", "c", std::string(10, 'x'));
  EXPECT_TRUE(absl::IsResourceExhausted(over));
  EXPECT_EQ(QuotaName(over), "rendezvous_bytes_per_job");
  EXPECT_THAT(over.message(),
              AllOf(HasSubstr("quota rendezvous_bytes_per_job"), HasSubstr("job 'noisy'"),
                    HasSubstr("--rendezvous-max-bytes-per-job")));
  // Replacing a held value with one of the same size fits; the quiet job has its whole quota.
  EXPECT_TRUE(store.Set("noisy", "b", std::string(10, 'y')).ok());
  EXPECT_TRUE(store.Set("quiet", "a", std::string(10, 'x')).ok());
  EXPECT_TRUE(store.Set("quiet", "b", std::string(10, 'x')).ok());
  // Expiry gives the noisy job its bytes back.
  clock.Advance(options.ttl);
  EXPECT_TRUE(store.Set("noisy", "c", std::string(10, 'x')).ok());
  EXPECT_EQ(QuotaName(store.Set("quiet", "z", std::string(200, 'x'))), "rendezvous_bytes_per_job");
}

TEST(RendezvousStoreTest, ValuesExpireTtlAfterTheirLastSet) {
  FakeClock clock;
  RendezvousStoreOptions options;
  options.ttl = absl::Minutes(10);
  RendezvousStore store(options, clock.AsFunction());
  ASSERT_TRUE(store.Set("j", "old", "1").ok());
  clock.Advance(absl::Minutes(6));
  ASSERT_TRUE(store.Set("j", "new", "2").ok());
  ASSERT_TRUE(store.Set("other", "x", "3").ok());
  clock.Advance(absl::Minutes(3));
  ASSERT_TRUE(store.Set("other", "x", "4").ok());  // restarts x's time to live
  clock.Advance(absl::Minutes(1));                 // 10 min after "old" was set
  EXPECT_TRUE(absl::IsNotFound(store.Get("j", "old").status()));
  EXPECT_EQ(*store.Get("j", "new"), "2");
  EXPECT_EQ(store.entries(), 2);
  clock.Advance(absl::Minutes(6));  // 10 min after "new" and the first "x"
  EXPECT_TRUE(absl::IsNotFound(store.Get("j", "new").status()));
  EXPECT_EQ(*store.Get("other", "x"), "4");
  clock.Advance(absl::Minutes(3));
  EXPECT_TRUE(absl::IsNotFound(store.Get("other", "x").status()));
  EXPECT_EQ(store.entries(), 0);
  EXPECT_EQ(store.total_bytes(), 0);
}

TEST(RendezvousStoreTest, ExpiredEntriesFreeTheirBytes) {
  FakeClock clock;
  RendezvousStoreOptions options;
  options.max_total_bytes = 1 + 1 + 100 + kRendezvousEntryOverheadBytes;
  options.max_keys_per_job = 1;
  RendezvousStore store(options, clock.AsFunction());
  ASSERT_TRUE(store.Set("j", "a", std::string(100, 'x')).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(store.Set("j", "b", "")));
  clock.Advance(options.ttl);
  EXPECT_TRUE(store.Set("j", "b", std::string(100, 'x')).ok());
}

TEST(RendezvousStoreTest, OptionsAreValidatedNamingTheField) {
  EXPECT_TRUE(ValidateRendezvousOptions(RendezvousStoreOptions{}).ok());
  RendezvousStoreOptions options;
  options.max_value_bytes = 0;
  EXPECT_THAT(ValidateRendezvousOptions(options).message(), HasSubstr("max_value_bytes"));
  options = RendezvousStoreOptions{};
  options.ttl = absl::ZeroDuration();
  EXPECT_THAT(ValidateRendezvousOptions(options).message(), HasSubstr("ttl: must be > 0"));
}

TEST(RendezvousStoreTest, ConcurrentSetsAndGets) {
  RendezvousStore store(RendezvousStoreOptions{});
  constexpr int kThreads = 8;
  constexpr int kKeys = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      const std::string job = absl::StrCat("job-", t % 2);
      for (int k = 0; k < kKeys; ++k) {
        const std::string key = absl::StrCat(t, "/", k);
        ASSERT_TRUE(store.Set(job, key, key).ok());
        ASSERT_EQ(*store.Get(job, key), key);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(store.entries(), kThreads * kKeys);
}

}  // namespace
}  // namespace fcp
