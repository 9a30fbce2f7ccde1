// Certificates for TLS tests, made at test time with the openssl command (no keys in the repo):
//
//   ca.pem / ca.key          a CA
//   server.pem / server.key  signed by ca, subjectAltName localhost and 127.0.0.1
//   client.pem / client.key  signed by ca (a client certificate for mutual TLS)
//   other_ca.pem             another CA, trusted by nobody
//   rogue.pem / rogue.key    a client certificate signed by other_ca
//
//   absl::StatusOr<fcp::TestCertificates> certs = fcp::MakeTestCertificates(dir);
//   ASSERT_TRUE(certs.ok()) << certs.status();
//   options.tls.cert_file = certs->Path("server.pem");
#ifndef FCP_TESTS_TEST_CERTIFICATES_H_
#define FCP_TESTS_TEST_CERTIFICATES_H_

#include <string>

#include "absl/status/statusor.h"

namespace fcp {

struct TestCertificates {
  std::string dir;
  std::string Path(const std::string& name) const { return dir + "/" + name; }
};

// Creates `dir` (and parents) and the files above in it (EC P-256 keys: fast). Internal error
// naming the openssl command that failed.
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

}  // namespace fcp

#endif  // FCP_TESTS_TEST_CERTIFICATES_H_
