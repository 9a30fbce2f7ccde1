// SingleFlight: merges concurrent requests for the same key into one computation. The first
// caller for a key becomes its leader and starts the work; callers arriving while it runs become
// followers and are called back with the leader's result. When W ranks of a training job ask for
// the same step at once, the coordinator plans it once.
//
//   fcp::SingleFlight<absl::StatusOr<Result>> flights;
//   auto reply = [](const absl::StatusOr<Result>& r, fcp::SingleFlightRole role) { Reply(r); };
//   if (flights.Join(key, reply) == fcp::SingleFlightRole::kLeader) {
//     StartWork([&flights, key](absl::StatusOr<Result> r) { flights.Finish(key, r); });
//   }
//
// Keys are not remembered after Finish: a later Join starts a new flight (put results in a cache
// first, and look there before joining). Thread-safe; callbacks run outside the lock, in the
// thread that calls Finish, in the order they joined (the leader's first).
#ifndef FCP_SERVICE_SINGLE_FLIGHT_H_
#define FCP_SERVICE_SINGLE_FLIGHT_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fcp {

enum class SingleFlightRole {
  kLeader,    // no flight was in progress: the caller must do the work and call Finish once
  kFollower,  // the callback runs when the flight's leader calls Finish
};

template <typename Value>
class SingleFlight {
 public:
  // Called with the flight's value and the role its caller had.
  using Callback = absl::AnyInvocable<void(const Value&, SingleFlightRole) &&>;

  SingleFlight() = default;
  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;

  // Registers `callback` for the flight of `key`, starting the flight if there is none.
  SingleFlightRole Join(absl::string_view key, Callback callback) {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = flights_.try_emplace(key);
    it->second.push_back(std::move(callback));
    return inserted ? SingleFlightRole::kLeader : SingleFlightRole::kFollower;
  }

  // Ends the flight of `key` (which must be in progress): every callback registered for it runs
  // with `value`. Later Joins start a new flight.
  void Finish(absl::string_view key, const Value& value) {
    std::vector<Callback> callbacks;
    {
      absl::MutexLock lock(&mu_);
      auto it = flights_.find(key);
      if (it == flights_.end()) return;
      callbacks = std::move(it->second);
      flights_.erase(it);
    }
    for (size_t i = 0; i < callbacks.size(); ++i) {
      std::move(callbacks[i])(value,
                              i == 0 ? SingleFlightRole::kLeader : SingleFlightRole::kFollower);
    }
  }

  // Flights in progress.
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return flights_.size();
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<Callback>> flights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fcp

#endif  // FCP_SERVICE_SINGLE_FLIGHT_H_
