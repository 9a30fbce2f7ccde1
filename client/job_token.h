// Job tokens on the client side (issue 28): a coordinator started with --job-tokens answers a
// job-scoped call (PlanBatch, Rendezvous Set/Get) only if it carries gRPC metadata
// `authorization: Bearer TOKEN` with a token of the call's job. Every fcp client takes the token
// the same way: given explicitly (PlannerClientOptions::job_token, the C API's
// fcp_client_new_auth, Python's job_token=), from a file (`fcp` and `fcp-worker`
// --job-token-file: the token is the file's content, surrounding whitespace trimmed), or else
// from the environment variable FCP_JOB_TOKEN. No token: calls go without one (an open
// coordinator accepts them).
//
//   ASSIGN_OR_RETURN(options.job_token, fcp::ReadJobTokenFile("--job-token-file", path));
//   grpc::ClientContext context;
//   fcp::AttachJobToken(options.job_token, &context);
//
// The token is a secret: nothing here logs it or puts it in an error message.
#ifndef FCP_CLIENT_JOB_TOKEN_H_
#define FCP_CLIENT_JOB_TOKEN_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/client_context.h"

namespace fcp {

inline constexpr char kJobTokenEnvironment[] = "FCP_JOB_TOKEN";

// The file's content, whitespace trimmed. INVALID_ARGUMENT naming `flag` and the path if it
// cannot be read, is empty or the token has characters other than printable ASCII.
absl::StatusOr<std::string> ReadJobTokenFile(absl::string_view flag, const std::string& path);

// `token` if not empty, else $FCP_JOB_TOKEN trimmed (empty if unset).
std::string JobTokenOrEnvironment(absl::string_view token);

// OK, or INVALID_ARGUMENT naming `field` when `token` is not printable ASCII without spaces
// (what gRPC metadata carries intact). Empty is OK: no token.
absl::Status CheckJobToken(absl::string_view field, absl::string_view token);

// Adds `authorization: Bearer TOKEN` to the call; nothing for an empty token.
void AttachJobToken(const std::string& token, grpc::ClientContext* context);

}  // namespace fcp

#endif  // FCP_CLIENT_JOB_TOKEN_H_
