#include "common/pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace fcp {
namespace {

// Bounds what is read: a certificate bundle is kilobytes; a path to a huge file is a mistake.
constexpr std::streamoff kMaxPemBytes = 4 << 20;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

absl::Status Invalid(absl::string_view what, absl::string_view path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", path, ": ", why));
}

absl::StatusOr<std::string> ReadSmallFile(absl::string_view what, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": no file given"));
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return Invalid(what, path, absl::StrCat("cannot read: ", std::strerror(errno)));
  if (in.tellg() > kMaxPemBytes) {
    return Invalid(what, path, absl::StrCat("larger than ", kMaxPemBytes, " bytes"));
  }
  in.seekg(0);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

Bio MemoryBio(absl::string_view bytes) {
  return Bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

}  // namespace

absl::StatusOr<std::string> ReadPemCertificates(absl::string_view what, const std::string& path) {
  absl::StatusOr<std::string> pem = ReadSmallFile(what, path);
  if (!pem.ok()) return pem.status();
  Bio bio = MemoryBio(*pem);
  int certificates = 0;
  while (std::unique_ptr<X509, X509Free> cert{
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    ++certificates;
  }
  ERR_clear_error();  // the loop ends on "no start line": expected
  if (certificates == 0) return Invalid(what, path, "no PEM certificate in it");
  return pem;
}

absl::StatusOr<std::string> ReadPemPrivateKey(absl::string_view what, const std::string& path,
                                              absl::string_view cert_pem,
                                              absl::string_view cert_what) {
  absl::StatusOr<std::string> pem = ReadSmallFile(what, path);
  if (!pem.ok()) return pem.status();
  Bio key_bio = MemoryBio(*pem);
  std::unique_ptr<EVP_PKEY, KeyFree> key{
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)};
  if (key == nullptr) {
    ERR_clear_error();
    return Invalid(what, path, "no PEM private key in it (or it is encrypted)");
  }
  Bio cert_bio = MemoryBio(cert_pem);
  std::unique_ptr<X509, X509Free> cert{
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)};
  const bool matches = cert != nullptr && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!matches) {
    return Invalid(what, path,
                   absl::StrCat("not the private key of the certificate in ", cert_what));
  }
  return pem;
}

}  // namespace fcp
