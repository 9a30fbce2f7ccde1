// PEM files for TLS between fcp-coordinator and its clients: read and checked up front, so a bad
// file is reported naming its flag ("--tls-key: /etc/fcp/key.pem is not the private key of
// --tls-cert /etc/fcp/cert.pem") instead of as a failed listen or a failed handshake later.
//
//   ASSIGN_OR_RETURN(std::string cert, fcp::ReadPemCertificates("--tls-cert", cert_path));
//   ASSIGN_OR_RETURN(std::string key, fcp::ReadPemPrivateKey("--tls-key", key_path, cert,
//   "--tls-cert"));
//
// `what` names the file in errors (a flag or an option field). Errors are InvalidArgument.
// Thread-safe.
#ifndef FCP_COMMON_PEM_H_
#define FCP_COMMON_PEM_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fcp {

// The contents of `path`: one or more PEM certificates (a chain, or a bundle of CA roots).
absl::StatusOr<std::string> ReadPemCertificates(absl::string_view what, const std::string& path);

// The contents of `path`: a PEM private key, checked to belong to the first certificate of
// `cert_pem` (named `cert_what` in errors).
absl::StatusOr<std::string> ReadPemPrivateKey(absl::string_view what, const std::string& path,
                                              absl::string_view cert_pem,
                                              absl::string_view cert_what);

}  // namespace fcp

#endif  // FCP_COMMON_PEM_H_
