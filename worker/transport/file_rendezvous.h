// Rendezvous stores for the gloo transport. Ranks publish their addresses in a store Gloo reads
// (gloo::rendezvous::Store): a directory every rank sees now (OpenFileStore), the coordinator
// later (any Store subclass goes through NewGlooTransport's store overload).
//
// DeadlineStore bounds Gloo's rendezvous by the job's timeout (Gloo's own FileStore::get waits
// 30 s whatever it is told, and times waits in whole seconds) and remembers what it waited for,
// so that a rank that never joined can be named.
#ifndef FCP_WORKER_TRANSPORT_FILE_RENDEZVOUS_H_
#define FCP_WORKER_TRANSPORT_FILE_RENDEZVOUS_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/rendezvous/store.h"

namespace fcp {

// A store of files in `dir` (created if missing), as gloo's FileStore but with waits that honor
// their timeout to the poll (10 ms). Keys can be set once: a rendezvous directory serves each
// (prefix) attempt once.
absl::StatusOr<std::shared_ptr<gloo::rendezvous::Store>> OpenFileStore(const std::string& dir);

// Wraps `inner`: keys go under `prefix`/, and every wait ends by `deadline` (IoException, as
// Gloo's stores throw). Not thread-safe (one rendezvous at a time, as Gloo uses it).
class DeadlineStore final : public gloo::rendezvous::Store {
 public:
  DeadlineStore(std::shared_ptr<gloo::rendezvous::Store> inner, const std::string& prefix,
                std::chrono::steady_clock::time_point deadline);

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

  // The keys of the wait that timed out; empty if none did.
  const std::vector<std::string>& missing_keys() const { return missing_keys_; }

 private:
  std::shared_ptr<gloo::rendezvous::Store> inner_;  // outlives prefixed_, which refers to it
  gloo::rendezvous::PrefixStore prefixed_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<std::string> missing_keys_;
};

// The rank that publishes a key of Gloo's full-mesh rendezvous ("3", "rank_3"), or -1.
int RankOfRendezvousKey(const std::string& key);

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_FILE_RENDEZVOUS_H_
