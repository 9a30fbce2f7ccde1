// Job-scoped credentials: who may act for which training job on the coordinator (issue 28).
//
// Every call that names a job (PlanBatch, Rendezvous Set/Get, and step reports once they exist)
// must show credentials of that job, in one of two forms:
//   * a bearer token: gRPC metadata `authorization: Bearer TOKEN` (the scheme in any case), where
//     the coordinator's --job-tokens file lists TOKEN for the job. Lines `JOB_ID TOKEN`; '#' starts
//     a comment; blank lines are skipped; a job may have several tokens (rotation: add the new
//     one, reload, move the jobs over, remove the old one, reload);
//   * a client-certificate identity (mutual TLS): the --job-identities file binds a job to a SAN
//     of the certificate its workers present, lines `JOB_ID IDENTITY` with IDENTITY a URI SAN
//     (e.g. spiffe://cluster/ns/train/sa/llama) or a DNS SAN.
//
//   no credentials at all                       -> UNAUTHENTICATED   reason no_credentials
//   an `authorization` value that is not Bearer -> UNAUTHENTICATED   reason malformed_credentials
//   a token no job has                          -> UNAUTHENTICATED   reason unknown_token
//   another job's token or certificate          -> PERMISSION_DENIED reason other_job
//   a job the files do not name                 -> PERMISSION_DENIED reason unknown_job
// Messages name the job, never the token: e.g. "job 'llama-8b': the bearer token is not one of
// this job's (--job-tokens)". Tokens are kept as SHA-256 digests and compared in constant time;
// they are never logged or put in metric labels.
//
//   ASSIGN_OR_RETURN(fcp::JobCredentials credentials,
//                    fcp::JobCredentials::Parse(tokens_text, identities_text));
//   fcp::CallCredentials call{.authorization = "Bearer s3cr3t"};
//   fcp::AuthDecision decision = credentials.Check("llama-8b", call);
//
// JobCredentials is immutable; JobAuthorizer (below) holds the current one and swaps in a new one
// on Reload (SIGHUP), so calls in progress finish with the table they started with.
#ifndef FCP_SERVICE_JOB_AUTH_H_
#define FCP_SERVICE_JOB_AUTH_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fcp {

// Why a call was refused: the `reason` label of fcp_auth_denied_total (a closed set).
enum class DenyReason {
  kNone,                  // allowed
  kNoCredentials,         // neither a token nor a bound certificate
  kMalformedCredentials,  // an authorization header that is not "Bearer TOKEN"
  kUnknownToken,          // a token of no job
  kOtherJob,              // a token or certificate of another job
  kUnknownJob,            // the job has no credentials configured
};
const char* DenyReasonName(DenyReason reason);

// What a call shows: its `authorization` metadata (empty if none) and, under mutual TLS, the
// subject alternative names (URI and DNS) of its client certificate.
struct CallCredentials {
  std::string authorization;
  std::vector<std::string> peer_identities;
};

struct AuthDecision {
  absl::Status status;  // OK, UNAUTHENTICATED or PERMISSION_DENIED naming the job
  DenyReason reason = DenyReason::kNone;
};

// `a` == `b`, in time that depends on their lengths only (never on where they differ).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

class JobCredentials {
 public:
  // Parses the two files' contents (either may be empty). INVALID_ARGUMENT naming the file and
  // line for a bad line: not two fields, a job id longer than kMaxJobIdBytes, a token shorter than
  // kMinTokenBytes or with characters gRPC metadata cannot carry. `tokens_name` and
  // `identities_name` name the sources in errors (the flag and path).
  static absl::StatusOr<JobCredentials> Parse(
      absl::string_view tokens, absl::string_view identities,
      absl::string_view tokens_name = "--job-tokens",
      absl::string_view identities_name = "--job-identities");

  static constexpr size_t kMinTokenBytes = 16;

  // Whether `call` may act for `job_id` (see the file comment).
  AuthDecision Check(absl::string_view job_id, const CallCredentials& call) const;

  size_t jobs() const { return jobs_.size(); }

 private:
  using Digest = std::array<unsigned char, 32>;  // SHA-256
  struct Job {
    std::vector<Digest> tokens;
    std::vector<std::string> identities;
  };
  static Digest Hash(absl::string_view token);
  bool TokenOfAnyJob(const Digest& digest) const;
  bool IdentityOfAnyJob(const CallCredentials& call) const;

  absl::flat_hash_map<std::string, Job> jobs_;
};

struct JobAuthOptions {
  std::string tokens_file;      // --job-tokens; empty = no tokens
  std::string identities_file;  // --job-identities; empty = no certificate bindings
  bool enabled() const { return !tokens_file.empty() || !identities_file.empty(); }
};

// The coordinator's current credentials, reloadable. Disabled (both files empty): every call is
// allowed, as before issue 28.
class JobAuthorizer {
 public:
  // Reads the files. INVALID_ARGUMENT naming the file (and line) if one cannot be read or parsed.
  static absl::StatusOr<std::unique_ptr<JobAuthorizer>> Create(const JobAuthOptions& options);

  bool enabled() const { return options_.enabled(); }
  // Re-reads the files and swaps the new table in; on error keeps the old one and returns why.
  // Calls being checked meanwhile use the old or the new table, never a mix, and none is dropped.
  absl::Status Reload();
  AuthDecision Check(absl::string_view job_id, const CallCredentials& call) const;
  size_t jobs() const;

 private:
  explicit JobAuthorizer(JobAuthOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::shared_ptr<const JobCredentials>> Load() const;

  const JobAuthOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const JobCredentials> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fcp

#endif  // FCP_SERVICE_JOB_AUTH_H_
