#include "service/server_credentials.h"

#include "absl/status/status.h"
#include "common/pem.h"
#include "common/status_macros.h"

namespace fcp {

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> NewServerCredentials(
    const ServerTlsOptions& tls) {
  if (!tls.enabled()) {
    if (!tls.key_file.empty() || !tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert: required with --tls-key and --tls-client-ca (the server's certificate)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (tls.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-key: required with --tls-cert");
  }
  ASSIGN_OR_RETURN(std::string cert, ReadPemCertificates("--tls-cert", tls.cert_file));
  ASSIGN_OR_RETURN(std::string key,
                   ReadPemPrivateKey("--tls-key", tls.key_file, cert, "--tls-cert"));
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({std::move(key), std::move(cert)});
  if (!tls.client_ca_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs,
                     ReadPemCertificates("--tls-client-ca", tls.client_ca_file));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace fcp
