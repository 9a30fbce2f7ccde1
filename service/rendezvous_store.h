// RendezvousStore: the coordinator's in-memory key-value store behind fcp.v1.Rendezvous
// (proto/fcp/v1/rendezvous.proto). Workers of a training job exchange connection information
// through it (Gloo addresses, the NCCL unique id) before their transports connect.
//
// Keys live in the namespace of a job id. Set replaces a value; every value expires `ttl` after it
// was last set, so a finished job's keys go away without anyone deleting them. The store is
// bounded: a Set over a limit gets RESOURCE_EXHAUSTED naming the limit and its coordinator flag,
// e.g. "value: 5000000 bytes, over the coordinator's limit of 4194304
// (--rendezvous-max-value-bytes)". The per-job limits (keys, bytes) are quotas: their errors carry
// the quota's name (rendezvous_keys_per_job, rendezvous_bytes_per_job; see QuotaName in
// job_quota.h), so one job at its quota leaves room for the others. An entry counts as its job id,
// key and value bytes plus kRendezvousEntryOverheadBytes towards max_total_bytes.
//
//   fcp::RendezvousStore store(fcp::RendezvousStoreOptions{});
//   RETURN_IF_ERROR(store.Set("job-7", "attempt-0/nccl-id", id_bytes));
//   absl::StatusOr<std::string> id = store.Get("job-7", "attempt-0/nccl-id");  // NotFound if unset
//
// Thread-safe. Expired entries are dropped by the next Set or Get.
#ifndef FCP_SERVICE_RENDEZVOUS_STORE_H_
#define FCP_SERVICE_RENDEZVOUS_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fcp {

// Bookkeeping per entry (map nodes, expiry index), counted towards max_total_bytes so that many
// tiny entries cannot hold much more memory than the limit says.
inline constexpr int64_t kRendezvousEntryOverheadBytes = 64;

struct RendezvousStoreOptions {
  int64_t max_key_bytes = 1024;                  // longest job id and longest key
  int64_t max_value_bytes = 4 << 20;             // largest value
  int64_t max_keys_per_job = 65536;              // keys one job may hold at once
  int64_t max_total_bytes = int64_t{256} << 20;  // everything held, all jobs
  absl::Duration ttl = absl::Hours(1);           // a value's life after its last Set
  // Bytes one job may hold at once, counted as for max_total_bytes.
  int64_t max_bytes_per_job = int64_t{64} << 20;
};

// OK, or INVALID_ARGUMENT naming the first field out of range (every limit must be >= 1, ttl > 0).
absl::Status ValidateRendezvousOptions(const RendezvousStoreOptions& options);

class RendezvousStore {
 public:
  // `options` must be valid (ValidateRendezvousOptions). `now` is the clock expiry follows; tests
  // pass a fake one.
  explicit RendezvousStore(const RendezvousStoreOptions& options,
                           std::function<absl::Time()> now = &absl::Now);

  RendezvousStore(const RendezvousStore&) = delete;
  RendezvousStore& operator=(const RendezvousStore&) = delete;

  // Sets job_id/key to `value`, replacing what was there and restarting its time to live.
  // INVALID_ARGUMENT for an empty or too long job id or key; RESOURCE_EXHAUSTED when the value,
  // the job's key count or bytes, or the store's bytes would pass a limit (nothing is changed
  // then).
  absl::Status Set(absl::string_view job_id, absl::string_view key, absl::string_view value);

  // The value of job_id/key. NOT_FOUND when it is not set or has expired; INVALID_ARGUMENT as
  // for Set.
  absl::StatusOr<std::string> Get(absl::string_view job_id, absl::string_view key);

  int64_t entries() const;      // values held, all jobs
  int64_t total_bytes() const;  // as counted towards max_total_bytes

 private:
  struct Entry {
    std::string value;
    absl::Time expires;
  };
  using Job = absl::flat_hash_map<std::string, Entry>;
  // (expires, job id, key) of every entry, soonest to expire first.
  using ExpiryIndex = absl::btree_set<std::tuple<absl::Time, std::string, std::string>>;

  absl::Status CheckNames(absl::string_view job_id, absl::string_view key) const;
  void DropExpired(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RendezvousStoreOptions options_;
  const std::function<absl::Time()> now_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  ExpiryIndex expiry_ ABSL_GUARDED_BY(mu_);
  int64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, int64_t> job_bytes_ ABSL_GUARDED_BY(mu_);  // per job, counted
};

}  // namespace fcp

#endif  // FCP_SERVICE_RENDEZVOUS_STORE_H_
