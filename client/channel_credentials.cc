#include "client/channel_credentials.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/pem.h"
#include "common/status_macros.h"

namespace fcp {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> NewChannelCredentials(
    const ClientTlsOptions& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls: cert_file and key_file go together (a client certificate and its key)");
  }
  grpc::SslCredentialsOptions options;
  if (!tls.ca_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadPemCertificates("tls.ca_file", tls.ca_file));
  }
  if (!tls.cert_file.empty()) {
    ASSIGN_OR_RETURN(options.pem_cert_chain, ReadPemCertificates("tls.cert_file", tls.cert_file));
    ASSIGN_OR_RETURN(
        options.pem_private_key,
        ReadPemPrivateKey("tls.key_file", tls.key_file, options.pem_cert_chain, "tls.cert_file"));
  }
  return grpc::SslCredentials(options);
}

absl::Status WithTlsHint(const absl::Status& status, const ClientTlsOptions& tls) {
  if (status.code() != absl::StatusCode::kUnavailable ||
      !absl::StrContains(status.message(), "Socket closed")) {
    return status;
  }
  const char* hint =
      !tls.enabled ? " (if the coordinator uses TLS, this plaintext client is refused at the "
                     "handshake: give it the CA, --tls-ca)"
      : tls.cert_file.empty()
          ? " (if the coordinator requires client certificates (mutual TLS), give one: "
            "--tls-cert and --tls-key)"
          : " (if the coordinator requires client certificates (mutual TLS), it did not accept "
            "this one: is it signed by the coordinator's --tls-client-ca?)";
  return absl::Status(status.code(), absl::StrCat(status.message(), hint));
}

}  // namespace fcp
