// gRPC channel credentials for connections to fcp-coordinator (the planner client, fcp-worker's
// rendezvous store): plaintext, TLS, or mutual TLS, from fcp::ClientTlsOptions (fcp/client.h).
//
//   ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
//                    fcp::NewChannelCredentials(options.tls));
//   auto channel = grpc::CreateCustomChannel(target, credentials, args);
//   ...
//   if (!status.ok()) return fcp::WithTlsHint(FromGrpc(status), options.tls);
#ifndef FCP_CLIENT_CHANNEL_CREDENTIALS_H_
#define FCP_CLIENT_CHANNEL_CREDENTIALS_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fcp/client.h"
#include "grpcpp/security/credentials.h"

namespace fcp {

// Insecure credentials when !tls.enabled, else SSL credentials with the PEM files read and checked
// (see common/pem.h). InvalidArgument naming the field (tls.ca_file, tls.cert_file,
// tls.key_file) for a missing, unreadable or mismatched file, or a certificate without its key.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> NewChannelCredentials(
    const ClientTlsOptions& tls);

// `status`, the failure of an RPC to the coordinator, with a hint appended when it looks like a
// TLS mismatch: gRPC reports a server that drops the connection during the handshake as a bare
// "Socket closed" (the server's log names the real cause).
absl::Status WithTlsHint(const absl::Status& status, const ClientTlsOptions& tls);

}  // namespace fcp

#endif  // FCP_CLIENT_CHANNEL_CREDENTIALS_H_
