#include "service/job_auth.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTokenA[] = "token-of-job-a-0123456789";
constexpr char kTokenB[] = "token-of-job-b-0123456789";

JobCredentials Parse(absl::string_view tokens, absl::string_view identities = "") {
  absl::StatusOr<JobCredentials> parsed = JobCredentials::Parse(tokens, identities);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *std::move(parsed);
}

CallCredentials Bearer(absl::string_view token) { return {absl::StrCat("Bearer ", token), {}}; }

const std::string kTokens = absl::StrCat("# job tokens\n\njob-a ", kTokenA, "\n  job-b\t", kTokenB,
                                         "   # trailing comment\n");

TEST(ConstantTimeEqualsTest, ComparesBytesAndLengths) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0", 2), "a"));
}

TEST(JobCredentialsTest, TheJobsOwnTokenIsAllowed) {
  JobCredentials credentials = Parse(kTokens);
  EXPECT_EQ(credentials.jobs(), 2u);
  AuthDecision a = credentials.Check("job-a", Bearer(kTokenA));
  EXPECT_TRUE(a.status.ok()) << a.status;
  EXPECT_EQ(a.reason, DenyReason::kNone);
  EXPECT_TRUE(credentials.Check("job-b", Bearer(kTokenB)).status.ok());
}

TEST(JobCredentialsTest, NoTokenIsUnauthenticatedNamingTheJob) {
  AuthDecision d = Parse(kTokens).Check("job-a", {});
  EXPECT_EQ(d.status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(d.reason, DenyReason::kNoCredentials);
  EXPECT_THAT(d.status.message(), HasSubstr("job 'job-a'"));
}

TEST(JobCredentialsTest, AnotherJobsTokenIsPermissionDeniedWithoutEchoingIt) {
  AuthDecision d = Parse(kTokens).Check("job-a", Bearer(kTokenB));
  EXPECT_EQ(d.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(d.reason, DenyReason::kOtherJob);
  EXPECT_THAT(d.status.message(), HasSubstr("job 'job-a'"));
  EXPECT_THAT(d.status.message(), Not(HasSubstr(kTokenB)));
  EXPECT_THAT(d.status.message(), Not(HasSubstr(kTokenA)));
}

TEST(JobCredentialsTest, AnUnknownTokenIsUnauthenticated) {
  const std::string guess = "not-a-token-anyone-has";
  AuthDecision d = Parse(kTokens).Check("job-a", Bearer(guess));
  EXPECT_EQ(d.status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(d.reason, DenyReason::kUnknownToken);
  EXPECT_THAT(d.status.message(), Not(HasSubstr(guess)));
}

TEST(JobCredentialsTest, APrefixOfTheTokenIsNotTheToken) {
  std::string prefix(kTokenA);
  prefix.pop_back();
  EXPECT_FALSE(Parse(kTokens).Check("job-a", Bearer(prefix)).status.ok());
  EXPECT_FALSE(Parse(kTokens).Check("job-a", Bearer(absl::StrCat(kTokenA, "x"))).status.ok());
}

TEST(JobCredentialsTest, TheBearerSchemeIsCaseInsensitive) {
  EXPECT_TRUE(Parse(kTokens).Check("job-a", {absl::StrCat("bearer ", kTokenA), {}}).status.ok());
  EXPECT_TRUE(Parse(kTokens).Check("job-a", {absl::StrCat("BEARER ", kTokenA), {}}).status.ok());
}

TEST(JobCredentialsTest, NotBearerIsMalformed) {
  AuthDecision d = Parse(kTokens).Check("job-a", {absl::StrCat("Basic ", kTokenA), {}});
  EXPECT_EQ(d.status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(d.reason, DenyReason::kMalformedCredentials);
  EXPECT_THAT(d.status.message(), Not(HasSubstr(kTokenA)));
}

TEST(JobCredentialsTest, AJobWithoutCredentialsIsDenied) {
  AuthDecision d = Parse(kTokens).Check("job-c", Bearer(kTokenA));
  EXPECT_EQ(d.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(d.reason, DenyReason::kUnknownJob);
  EXPECT_THAT(d.status.message(), HasSubstr("job 'job-c'"));
  EXPECT_EQ(Parse(kTokens).Check("job-c", {}).status.code(), absl::StatusCode::kUnauthenticated);
}

TEST(JobCredentialsTest, AJobMayHaveSeveralTokens) {
  JobCredentials credentials =
      Parse(absl::StrCat("job-a ", kTokenA, "\njob-a rotated-token-0123456789\n"));
  EXPECT_TRUE(credentials.Check("job-a", Bearer(kTokenA)).status.ok());
  EXPECT_TRUE(credentials.Check("job-a", Bearer("rotated-token-0123456789")).status.ok());
}

TEST(JobCredentialsTest, CertificateIdentitiesBindJobs) {
  JobCredentials credentials =
      Parse(kTokens, "job-a spiffe://cluster/ns/train/sa/job-a\njob-b job-b.workers.svc\n");
  const CallCredentials a{"", {"other.example", "spiffe://cluster/ns/train/sa/job-a"}};
  const CallCredentials b{"", {"job-b.workers.svc"}};
  EXPECT_TRUE(credentials.Check("job-a", a).status.ok());
  EXPECT_TRUE(credentials.Check("job-b", b).status.ok());
  AuthDecision cross = credentials.Check("job-a", b);
  EXPECT_EQ(cross.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(cross.reason, DenyReason::kOtherJob);
  AuthDecision stranger = credentials.Check("job-a", {"", {"stranger.example"}});
  EXPECT_EQ(stranger.status.code(), absl::StatusCode::kUnauthenticated);
}

TEST(JobCredentialsTest, BadLinesAreRejectedNamingTheLine) {
  absl::StatusOr<JobCredentials> one_field = JobCredentials::Parse("# ok\njob-a\n", "");
  EXPECT_EQ(one_field.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(one_field.status().message(), HasSubstr("--job-tokens line 2"));

  absl::StatusOr<JobCredentials> three =
      JobCredentials::Parse(absl::StrCat("job-a ", kTokenA, "\n\njob-b ", kTokenB, " extra\n"), "");
  EXPECT_THAT(three.status().message(), HasSubstr("line 3"));
  EXPECT_THAT(three.status().message(), Not(HasSubstr(kTokenB)));

  absl::StatusOr<JobCredentials> short_token = JobCredentials::Parse("job-a short\n", "");
  EXPECT_THAT(short_token.status().message(), HasSubstr("shorter than 16 bytes"));
  EXPECT_THAT(short_token.status().message(), Not(HasSubstr("short\n")));

  absl::StatusOr<JobCredentials> binary =
      JobCredentials::Parse("job-a token-with-\x01-control-char\n", "");
  EXPECT_EQ(binary.status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<JobCredentials> long_job =
      JobCredentials::Parse(absl::StrCat(std::string(300, 'j'), " ", kTokenA, "\n"), "");
  EXPECT_THAT(long_job.status().message(), HasSubstr("job id of 300 bytes"));

  absl::StatusOr<JobCredentials> identity = JobCredentials::Parse("", "job-a\n");
  EXPECT_THAT(identity.status().message(), HasSubstr("--job-identities line 1"));
}

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(testing::TempDir(), "/", name, "_", getpid());
  std::ofstream(path) << text;
  return path;
}

TEST(JobAuthorizerTest, DisabledAllowsEverything) {
  absl::StatusOr<std::unique_ptr<JobAuthorizer>> open = JobAuthorizer::Create({});
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_FALSE((*open)->enabled());
  EXPECT_TRUE((*open)->Check("any-job", {}).status.ok());
}

TEST(JobAuthorizerTest, ReloadSwapsTokensAndKeepsTheOldOnesOnError) {
  const std::string path = WriteFile("tokens", absl::StrCat("job-a ", kTokenA, "\n"));
  absl::StatusOr<std::unique_ptr<JobAuthorizer>> created = JobAuthorizer::Create({path, ""});
  ASSERT_TRUE(created.ok()) << created.status();
  JobAuthorizer& authorizer = **created;
  EXPECT_TRUE(authorizer.Check("job-a", Bearer(kTokenA)).status.ok());
  EXPECT_FALSE(authorizer.Check("job-a", Bearer(kTokenB)).status.ok());

  std::ofstream(path) << "job-a " << kTokenB << "\n";
  ASSERT_TRUE(authorizer.Reload().ok());
  EXPECT_FALSE(authorizer.Check("job-a", Bearer(kTokenA)).status.ok());
  EXPECT_TRUE(authorizer.Check("job-a", Bearer(kTokenB)).status.ok());

  std::ofstream(path) << "job-a\n";
  absl::Status bad = authorizer.Reload();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr(absl::StrCat(path, " line 1")));
  EXPECT_TRUE(authorizer.Check("job-a", Bearer(kTokenB)).status.ok());
  std::remove(path.c_str());
}

TEST(JobAuthorizerTest, AnUnreadableFileIsAnErrorNamingTheFlag) {
  absl::StatusOr<std::unique_ptr<JobAuthorizer>> created =
      JobAuthorizer::Create({"/nonexistent/tokens", ""});
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(created.status().message(), HasSubstr("--job-tokens: cannot read"));
}

}  // namespace
}  // namespace fcp
