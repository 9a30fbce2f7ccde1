#include "service/job_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "service/limits.h"

namespace fcp {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

// One `JOB_ID VALUE` line per entry, comments and blank lines skipped; `add` checks and keeps it.
template <typename Add>
absl::Status ForEachEntry(absl::string_view text, absl::string_view name, absl::string_view shape,
                          Add add) {
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(name, " line ", line_number, ": ", why));
    };
    if (fields.size() != 2) {
      return bad(absl::StrCat("expected '", shape, "' (2 fields), got ", fields.size()));
    }
    if (fields[0].size() > kMaxJobIdBytes) {
      return bad(
          absl::StrCat("job id of ", fields[0].size(), " bytes, more than ", kMaxJobIdBytes));
    }
    absl::Status added = add(fields[0], fields[1]);
    if (!added.ok()) return bad(added.message());
  }
  return absl::OkStatus();
}

// Printable ASCII without spaces: what an HTTP/2 header value after "Bearer " can carry intact.
bool PrintableToken(absl::string_view token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

AuthDecision Deny(absl::StatusCode code, DenyReason reason, absl::string_view job_id,
                  absl::string_view why) {
  return {absl::Status(code, absl::StrCat("job '", job_id, "': ", why)), reason};
}

}  // namespace

const char* DenyReasonName(DenyReason reason) {
  switch (reason) {
    case DenyReason::kNone:
      return "none";
    case DenyReason::kNoCredentials:
      return "no_credentials";
    case DenyReason::kMalformedCredentials:
      return "malformed_credentials";
    case DenyReason::kUnknownToken:
      return "unknown_token";
    case DenyReason::kOtherJob:
      return "other_job";
    case DenyReason::kUnknownJob:
      return "unknown_job";
  }
  return "unknown";
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Every byte of the longer one is visited; the lengths are folded into the result.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

JobCredentials::Digest JobCredentials::Hash(absl::string_view token) {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  return digest;
}

absl::StatusOr<JobCredentials> JobCredentials::Parse(absl::string_view tokens,
                                                     absl::string_view identities,
                                                     absl::string_view tokens_name,
                                                     absl::string_view identities_name) {
  JobCredentials credentials;
  RETURN_IF_ERROR(ForEachEntry(
      tokens, tokens_name, "JOB_ID TOKEN", [&](absl::string_view job, absl::string_view token) {
        if (token.size() < kMinTokenBytes) {
          return absl::InvalidArgumentError(
              absl::StrCat("token of job '", job, "' is shorter than ", kMinTokenBytes, " bytes"));
        }
        if (!PrintableToken(token)) {
          return absl::InvalidArgumentError(
              absl::StrCat("token of job '", job, "' has characters other than printable ASCII"));
        }
        credentials.jobs_[std::string(job)].tokens.push_back(Hash(token));
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(ForEachEntry(identities, identities_name, "JOB_ID IDENTITY",
                               [&](absl::string_view job, absl::string_view identity) {
                                 credentials.jobs_[std::string(job)].identities.emplace_back(
                                     identity);
                                 return absl::OkStatus();
                               }));
  return credentials;
}

bool JobCredentials::TokenOfAnyJob(const Digest& digest) const {
  bool found = false;
  for (const auto& [job, entry] : jobs_) {
    for (const Digest& token : entry.tokens) {
      found |= CRYPTO_memcmp(token.data(), digest.data(), digest.size()) == 0;
    }
  }
  return found;
}

bool JobCredentials::IdentityOfAnyJob(const CallCredentials& call) const {
  for (const auto& [job, entry] : jobs_) {
    for (const std::string& identity : entry.identities) {
      for (const std::string& peer : call.peer_identities) {
        if (identity == peer) return true;
      }
    }
  }
  return false;
}

AuthDecision JobCredentials::Check(absl::string_view job_id, const CallCredentials& call) const {
  const bool has_token = !call.authorization.empty();
  if (has_token && !absl::StartsWithIgnoreCase(call.authorization, kBearer)) {
    return Deny(absl::StatusCode::kUnauthenticated, DenyReason::kMalformedCredentials, job_id,
                "the authorization metadata is not 'Bearer TOKEN'");
  }
  const Digest digest = Hash(has_token ? call.authorization.substr(kBearer.size()) : "");
  auto job = jobs_.find(job_id);
  if (job != jobs_.end()) {
    if (has_token) {
      bool match = false;
      for (const Digest& token : job->second.tokens) {
        match |= CRYPTO_memcmp(token.data(), digest.data(), digest.size()) == 0;
      }
      if (match) return {};
    }
    for (const std::string& identity : job->second.identities) {
      for (const std::string& peer : call.peer_identities) {
        if (identity == peer) return {};
      }
    }
  }
  // Refused: tell the caller which of its mistakes it made, never what the right token is.
  if (has_token && !TokenOfAnyJob(digest)) {
    return Deny(absl::StatusCode::kUnauthenticated, DenyReason::kUnknownToken, job_id,
                "the bearer token is not one the coordinator knows (--job-tokens)");
  }
  const bool other_job = has_token || IdentityOfAnyJob(call);
  if (job == jobs_.end()) {
    if (!other_job) {
      return Deny(absl::StatusCode::kUnauthenticated, DenyReason::kNoCredentials, job_id,
                  "the call carries no credentials (authorization: Bearer TOKEN metadata)");
    }
    return Deny(absl::StatusCode::kPermissionDenied, DenyReason::kUnknownJob, job_id,
                "no credentials are configured for this job (--job-tokens, --job-identities)");
  }
  if (other_job) {
    return Deny(absl::StatusCode::kPermissionDenied, DenyReason::kOtherJob, job_id,
                "the call's credentials belong to another job");
  }
  return Deny(absl::StatusCode::kUnauthenticated, DenyReason::kNoCredentials, job_id,
              "the call carries no credentials (authorization: Bearer TOKEN metadata, or a client "
              "certificate bound by --job-identities)");
}

absl::StatusOr<std::unique_ptr<JobAuthorizer>> JobAuthorizer::Create(
    const JobAuthOptions& options) {
  std::unique_ptr<JobAuthorizer> authorizer(new JobAuthorizer(options));
  RETURN_IF_ERROR(authorizer->Reload());
  return authorizer;
}

absl::StatusOr<std::shared_ptr<const JobCredentials>> JobAuthorizer::Load() const {
  std::string tokens, identities;
  if (!options_.tokens_file.empty()) {
    ASSIGN_OR_RETURN(tokens, ReadFile("--job-tokens", options_.tokens_file));
  }
  if (!options_.identities_file.empty()) {
    ASSIGN_OR_RETURN(identities, ReadFile("--job-identities", options_.identities_file));
  }
  ASSIGN_OR_RETURN(
      JobCredentials credentials,
      JobCredentials::Parse(tokens, identities, absl::StrCat("--job-tokens ", options_.tokens_file),
                            absl::StrCat("--job-identities ", options_.identities_file)));
  return std::make_shared<const JobCredentials>(std::move(credentials));
}

absl::Status JobAuthorizer::Reload() {
  ASSIGN_OR_RETURN(std::shared_ptr<const JobCredentials> loaded, Load());
  absl::MutexLock lock(&mu_);
  current_ = std::move(loaded);
  return absl::OkStatus();
}

AuthDecision JobAuthorizer::Check(absl::string_view job_id, const CallCredentials& call) const {
  if (!enabled()) return {};
  std::shared_ptr<const JobCredentials> credentials;
  {
    absl::MutexLock lock(&mu_);
    credentials = current_;
  }
  return credentials->Check(job_id, call);
}

size_t JobAuthorizer::jobs() const {
  absl::MutexLock lock(&mu_);
  return current_->jobs();
}

}  // namespace fcp
