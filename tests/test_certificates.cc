#include "tests/test_certificates.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace fcp {
namespace {

constexpr char kNewKey[] = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

absl::Status Run(const std::string& dir, const std::string& args) {
  const std::string command = absl::StrCat("cd '", dir, "' && openssl ", args, " >/dev/null 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("test certificates: failed: openssl ", args));
  }
  return absl::OkStatus();
}

absl::Status MakeCa(const std::string& dir, const std::string& name) {
  return Run(dir, absl::StrCat("req -x509 ", kNewKey, " -keyout ", name, ".key -out ", name,
                               ".pem -days 2 -subj /CN=fcp-test-", name));
}

absl::Status MakeSigned(const std::string& dir, const std::string& name, const std::string& ca,
                        const std::string& san) {
  std::ofstream(absl::StrCat(dir, "/", name, ".ext")) << "subjectAltName=" << san << "\n";
  if (absl::Status s = Run(dir, absl::StrCat("req ", kNewKey, " -keyout ", name, ".key -out ", name,
                                             ".csr -subj /CN=fcp-test-", name));
      !s.ok()) {
    return s;
  }
  return Run(dir, absl::StrCat("x509 -req -in ", name, ".csr -CA ", ca, ".pem -CAkey ", ca,
                               ".key -CAcreateserial -days 2 -extfile ", name, ".ext -out ", name,
                               ".pem"));
}

}  // namespace

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", error.message()));
  for (const char* ca : {"ca", "other_ca"}) {
    if (absl::Status s = MakeCa(dir, ca); !s.ok()) return s;
  }
  struct Leaf {
    const char* name;
    const char* ca;
    const char* san;
  };
  for (const Leaf& leaf : std::vector<Leaf>{{"server", "ca", "DNS:localhost,IP:127.0.0.1"},
                                            {"client", "ca", "DNS:fcp-test-client"},
                                            {"rogue", "other_ca", "DNS:fcp-test-client"}}) {
    if (absl::Status s = MakeSigned(dir, leaf.name, leaf.ca, leaf.san); !s.ok()) return s;
  }
  return TestCertificates{dir};
}

}  // namespace fcp
