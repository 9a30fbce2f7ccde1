#include "client/job_token.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace fcp {

absl::StatusOr<std::string> ReadJobTokenFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token(absl::StripAsciiWhitespace(text.str()));
  if (token.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is empty"));
  absl::Status checked = CheckJobToken(flag, token);
  if (!checked.ok())
    return absl::InvalidArgumentError(absl::StrCat(checked.message(), " (", path, ")"));
  return token;
}

std::string JobTokenOrEnvironment(absl::string_view token) {
  if (!token.empty()) return std::string(token);
  const char* environment = std::getenv(kJobTokenEnvironment);
  return environment == nullptr ? "" : std::string(absl::StripAsciiWhitespace(environment));
}

absl::Status CheckJobToken(absl::string_view field, absl::string_view token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": the job token has characters other than printable ASCII"));
    }
  }
  return absl::OkStatus();
}

void AttachJobToken(const std::string& token, grpc::ClientContext* context) {
  if (!token.empty()) context->AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

}  // namespace fcp
