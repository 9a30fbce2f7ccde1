// Server credentials of fcp-coordinator: plaintext by default, TLS with a certificate, mutual TLS
// with a client CA as well (every client must then present a certificate signed by that CA).
// The files are read and checked when the server starts (see pem.h); restart to rotate them.
//
//   fcp::ServerTlsOptions tls;
//   tls.cert_file = "/etc/fcp/tls/tls.crt";
//   tls.key_file = "/etc/fcp/tls/tls.key";
//   tls.client_ca_file = "/etc/fcp/tls/ca.crt";  // optional: mutual TLS
//   ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
//                    fcp::NewServerCredentials(tls));
//   builder.AddListeningPort(address, credentials);
#ifndef FCP_SERVICE_SERVER_CREDENTIALS_H_
#define FCP_SERVICE_SERVER_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace fcp {

struct ServerTlsOptions {
  std::string cert_file;       // PEM certificate chain of the server; empty = plaintext
  std::string key_file;        // PEM private key of cert_file
  std::string client_ca_file;  // PEM CA(s) client certificates must chain to; empty = no mTLS

  bool enabled() const { return !cert_file.empty(); }
};

// Insecure credentials when !tls.enabled(); else TLS (requiring and verifying a client
// certificate when client_ca_file is set). InvalidArgument naming the flag (--tls-cert, --tls-key,
// --tls-client-ca) for a missing, unreadable or mismatched file or an incomplete combination.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> NewServerCredentials(
    const ServerTlsOptions& tls);

}  // namespace fcp

#endif  // FCP_SERVICE_SERVER_CREDENTIALS_H_
