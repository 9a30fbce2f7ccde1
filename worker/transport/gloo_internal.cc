#include "worker/transport/gloo_internal.h"

#include <exception>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gloo/common/error.h"
#include "gloo/common/logging.h"

namespace fcp {
namespace gloo_internal {
namespace {

// Gloo's messages open with "[./gloo/transport/tcp/pair.cc:598] " (sometimes twice); what
// follows, the peer's address included, stays.
std::string CleanGlooMessage(absl::string_view what) {
  while (absl::StartsWith(what, "[")) {
    const size_t end = what.find("] ");
    if (end == absl::string_view::npos) break;
    const absl::string_view where = what.substr(1, end - 1);
    if (!absl::StrContains(where, ".cc:") && !absl::StrContains(where, ".h:")) break;
    what.remove_prefix(end + 2);
  }
  return std::string(what);
}

}  // namespace

absl::Status GlooExceptionStatus(absl::string_view context) {
  try {
    throw;
  } catch (const gloo::IoException& e) {
    const std::string message = absl::StrCat(context, " (", CleanGlooMessage(e.what()), ")");
    return absl::StrContains(e.what(), "Timed out") ? absl::DeadlineExceededError(message)
                                                    : absl::UnavailableError(message);
  } catch (const gloo::EnforceNotMet& e) {
    return absl::InternalError(
        absl::StrCat(context, " (Gloo check failed: ", CleanGlooMessage(e.what()), ")"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, " (", CleanGlooMessage(e.what()), ")"));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, " (unknown exception)"));
  }
}

std::string LostConnection(absl::string_view who, int32_t peer) {
  return absl::StrCat(who, ": lost the connection to rank ", peer);
}

}  // namespace gloo_internal
}  // namespace fcp
