#include "service/rendezvous_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "service/job_quota.h"

namespace fcp {
namespace {

int64_t Charge(absl::string_view job_id, absl::string_view key, absl::string_view value) {
  return static_cast<int64_t>(job_id.size() + key.size() + value.size()) +
         kRendezvousEntryOverheadBytes;
}

absl::Status CheckName(absl::string_view field, absl::string_view name, int64_t max_bytes) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"));
  if (static_cast<int64_t>(name.size()) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", name.size(), " bytes, longer than the limit of ", max_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRendezvousOptions(const RendezvousStoreOptions& o) {
  auto at_least_one = [](absl::string_view field, int64_t value) {
    return value >= 1 ? absl::OkStatus()
                      : absl::InvalidArgumentError(absl::StrCat(field, ": must be >= 1"));
  };
  RETURN_IF_ERROR(at_least_one("max_key_bytes", o.max_key_bytes));
  RETURN_IF_ERROR(at_least_one("max_value_bytes", o.max_value_bytes));
  RETURN_IF_ERROR(at_least_one("max_keys_per_job", o.max_keys_per_job));
  RETURN_IF_ERROR(at_least_one("max_bytes_per_job", o.max_bytes_per_job));
  RETURN_IF_ERROR(at_least_one("max_total_bytes", o.max_total_bytes));
  if (o.ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("ttl: must be > 0");
  return absl::OkStatus();
}

RendezvousStore::RendezvousStore(const RendezvousStoreOptions& options,
                                 std::function<absl::Time()> now)
    : options_(options), now_(std::move(now)) {}

absl::Status RendezvousStore::CheckNames(absl::string_view job_id, absl::string_view key) const {
  RETURN_IF_ERROR(CheckName("job_id", job_id, options_.max_key_bytes));
  return CheckName("key", key, options_.max_key_bytes);
}

absl::Status RendezvousStore::Set(absl::string_view job_id, absl::string_view key,
                                  absl::string_view value) {
  RETURN_IF_ERROR(CheckNames(job_id, key));
  if (static_cast<int64_t>(value.size()) > options_.max_value_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("value: ", value.size(), " bytes, over the coordinator's limit of ",
                     options_.max_value_bytes, " (--rendezvous-max-value-bytes)"));
  }
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  DropExpired(now);

  auto job = jobs_.find(job_id);
  const Entry* old = nullptr;
  if (job != jobs_.end()) {
    auto entry = job->second.find(key);
    if (entry != job->second.end()) old = &entry->second;
  }
  if (old == nullptr && job != jobs_.end() &&
      static_cast<int64_t>(job->second.size()) >= options_.max_keys_per_job) {
    return QuotaExceededError(
        "rendezvous_keys_per_job",
        absl::StrCat("quota rendezvous_keys_per_job: job '", job_id, "': ", job->second.size(),
                     " keys held, the coordinator's limit",
                     " (--rendezvous-max-keys-per-job); cannot add key '", key, "'"));
  }
  const int64_t old_bytes = old == nullptr ? 0 : Charge(job_id, key, old->value);
  const int64_t new_bytes = Charge(job_id, key, value);
  auto held = job_bytes_.find(job_id);
  const int64_t job_bytes = held == job_bytes_.end() ? 0 : held->second;
  if (job_bytes - old_bytes + new_bytes > options_.max_bytes_per_job) {
    return QuotaExceededError(
        "rendezvous_bytes_per_job",
        absl::StrCat("quota rendezvous_bytes_per_job: job '", job_id, "' holds ", job_bytes,
                     " bytes; key '", key, "' (", new_bytes, " bytes) would pass its limit of ",
                     options_.max_bytes_per_job, " (--rendezvous-max-bytes-per-job)"));
  }
  if (total_bytes_ - old_bytes + new_bytes > options_.max_total_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("rendezvous store: ", total_bytes_, " bytes held; key '", key, "' of job '",
                     job_id, "' (", new_bytes, " bytes) would pass the coordinator's limit of ",
                     options_.max_total_bytes, " (--rendezvous-max-bytes)"));
  }

  if (job == jobs_.end()) job = jobs_.try_emplace(std::string(job_id)).first;
  Entry& entry = job->second[std::string(key)];
  if (old != nullptr) expiry_.erase({entry.expires, std::string(job_id), std::string(key)});
  entry.value.assign(value.data(), value.size());
  entry.expires = now + options_.ttl;
  expiry_.emplace(entry.expires, std::string(job_id), std::string(key));
  total_bytes_ += new_bytes - old_bytes;
  job_bytes_[job->first] += new_bytes - old_bytes;
  return absl::OkStatus();
}

absl::StatusOr<std::string> RendezvousStore::Get(absl::string_view job_id, absl::string_view key) {
  RETURN_IF_ERROR(CheckNames(job_id, key));
  const absl::Time now = now_();
  absl::MutexLock lock(&mu_);
  DropExpired(now);
  auto job = jobs_.find(job_id);
  if (job != jobs_.end()) {
    auto entry = job->second.find(key);
    if (entry != job->second.end()) return entry->second.value;
  }
  return absl::NotFoundError(
      absl::StrCat("job '", job_id, "' has no key '", key, "' (not set yet, or expired)"));
}

void RendezvousStore::DropExpired(absl::Time now) {
  while (!expiry_.empty() && std::get<0>(*expiry_.begin()) <= now) {
    const auto [expires, job_id, key] = *expiry_.begin();
    expiry_.erase(expiry_.begin());
    auto job = jobs_.find(job_id);
    auto entry = job->second.find(key);
    const int64_t bytes = Charge(job_id, key, entry->second.value);
    total_bytes_ -= bytes;
    job->second.erase(entry);
    if (job->second.empty()) {
      jobs_.erase(job);
      job_bytes_.erase(job_id);
    } else {
      job_bytes_[job_id] -= bytes;
    }
  }
}

int64_t RendezvousStore::entries() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(expiry_.size());
}

int64_t RendezvousStore::total_bytes() const {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

}  // namespace fcp
