// Fuzzes the job credentials path (issue 28): the --job-tokens and --job-identities files as
// JobCredentials::Parse reads them, and the `authorization` metadata and peer identities of a
// call as JobCredentials::Check judges them. Input: five sections separated by "\n%%\n": tokens
// file, identities file, job id, authorization value, peer identities (one per line).
//
// Checked: a decision is OK with reason none, or UNAUTHENTICATED / PERMISSION_DENIED with a
// reason; the message never contains the presented token (unless the job id does); the same
// call gets the same decision twice.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "service/job_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<absl::string_view> parts = absl::StrSplit(input, "\n%%\n");
  parts.resize(5);
  absl::StatusOr<fcp::JobCredentials> credentials = fcp::JobCredentials::Parse(parts[0], parts[1]);
  if (!credentials.ok()) {
    if (credentials.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  fcp::CallCredentials call;
  call.authorization = std::string(parts[3]);
  for (absl::string_view peer : absl::StrSplit(parts[4], '\n', absl::SkipEmpty())) {
    call.peer_identities.emplace_back(peer);
  }
  const fcp::AuthDecision decision = credentials->Check(parts[2], call);
  const absl::StatusCode code = decision.status.code();
  if (decision.status.ok() != (decision.reason == fcp::DenyReason::kNone)) std::abort();
  if (!decision.status.ok() && code != absl::StatusCode::kUnauthenticated &&
      code != absl::StatusCode::kPermissionDenied) {
    std::abort();
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (absl::StartsWithIgnoreCase(call.authorization, kBearer)) {
    const absl::string_view token = absl::string_view(call.authorization).substr(kBearer.size());
    if (token.size() >= 4 && !absl::StrContains(parts[2], token) &&
        absl::StrContains(decision.status.message(), token)) {
      std::abort();  // the token was echoed
    }
  }
  const fcp::AuthDecision again = credentials->Check(parts[2], call);
  if (again.status != decision.status || again.reason != decision.reason) std::abort();
  return 0;
}
