#include "worker/transport/file_rendezvous.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/file_store.h"

namespace fcp {
namespace {

using Clock = std::chrono::steady_clock;

// Gloo's FileStore::wait compares whole elapsed seconds with its timeout, so a 1.5 s timeout
// waits 2 s; this one polls against the exact deadline.
class FileStore final : public gloo::rendezvous::FileStore {
 public:
  using gloo::rendezvous::FileStore::FileStore;

  void wait(const std::vector<std::string>& keys) override { wait(keys, kDefaultTimeout); }

  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (!check(keys)) {
      if (Clock::now() >= deadline) {
        throw gloo::IoException(
            absl::StrCat("timed out waiting for key(s) ", absl::StrJoin(keys, ", ")));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
};

}  // namespace

absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> OpenFileStore(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("rendezvous_dir: must not be empty");
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("rendezvous_dir ", dir, ": cannot create: ", error.message()));
  }
  try {
    return std::make_shared<FileStore>(dir);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rendezvous_dir ", dir, ": ", e.what()));
  }
}

DeadlineStore::DeadlineStore(std::shared_ptr<gloo::rendezvous::Store> inner,
                             const std::string& prefix, Clock::time_point deadline)
    : inner_(std::move(inner)), prefixed_(prefix, *inner_), deadline_(deadline) {}

void DeadlineStore::set(const std::string& key, const std::vector<char>& data) {
  prefixed_.set(key, data);
}

std::vector<char> DeadlineStore::get(const std::string& key) {
  wait({key});
  return prefixed_.get(key);
}

void DeadlineStore::wait(const std::vector<std::string>& keys) { wait(keys, kDefaultTimeout); }

void DeadlineStore::wait(const std::vector<std::string>& keys,
                         const std::chrono::milliseconds& timeout) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
  // At least 1 ms: Gloo's stores read a zero timeout as "wait forever".
  const std::chrono::milliseconds bounded =
      std::max(std::chrono::milliseconds(1), std::min(timeout, left));
  try {
    prefixed_.wait(keys, bounded);
  } catch (...) {
    missing_keys_ = keys;
    throw;
  }
}

int RankOfRendezvousKey(const std::string& key) {
  absl::string_view digits = key;
  absl::ConsumePrefix(&digits, "rank_");
  int rank = -1;
  return absl::SimpleAtoi(digits, &rank) ? rank : -1;
}

}  // namespace fcp
