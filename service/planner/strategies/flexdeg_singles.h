// flexdeg's single workers by their free tokens (strategies/flexdeg.cc, PackRest): where a short
// document goes once the least-loaded single worker is full.
//
// The singles are in power-of-two buckets by free tokens, each a MinTree by load: the
// least-loaded single with room for a document is the least of the buckets above its length's
// (all of whose members have room) and of the kPops least loaded in its own bucket (those only:
// a heuristic bound on the search, part of which plans flexdeg makes).
//
// Each bucket also keeps its least-loaded members, in the tree's order (Lightest: up to kKept,
// at least kPops of them or all), up to date under updates where that is known without the tree:
// only when fewer than kPops are left known while the bucket has more (members leaving it, or
// raised past the last known) is the list rebuilt from the tree (kKept taken out and put back),
// at the next search that needs it. At W = 1024 under a 5% token budget nearly every document
// searches its own bucket, and taking kPops out of the tree and back each time was most of
// flexdeg's planning time.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_SINGLES_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_SINGLES_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "service/planner/strategies/packing.h"

namespace fcp {

class SinglesByRoom {
 public:
  // Own-bucket members searched.
  static constexpr int kPops = 8;
  // Own-bucket members known at most (rebuilt: this many).
  static constexpr int kKept = 2 * kPops;

  explicit SinglesByRoom(int32_t size);

  // Worker w has `free` tokens of room (<= 0: none, out of every bucket) and `load`.
  void Set(int32_t w, int64_t free, double load);

  // The least-loaded w with free(w) >= need (`free`, `load`: every worker's, as last Set), or -1
  // if none is found (its own bucket is searched among its kPops least loaded only).
  int32_t LeastWithRoom(int64_t need, const std::vector<int64_t>& free,
                        const std::vector<double>& load);

 private:
  // A bucket's n least keys, ascending, n >= kPops or all its members; or not valid.
  struct Lightest {
    uint64_t key[kKept];
    int32_t worker[kKept];
    int n = 0;
    bool valid = true;
  };

  // The MinTree's key of w at `load` (its order: load, then index).
  uint64_t Key(int32_t w, double load) const;
  // Keeps `lightest_[b]` under w leaving bucket b, entering it, or changing its key in it.
  void Leave(int b, int32_t w);
  void Enter(int b, uint64_t key, int32_t w);
  void Change(int b, uint64_t key, int32_t w);
  // Takes w out of `l` if there, returning whether it was; puts it in at its key when below the
  // last or not full (full: the last one dropped).
  static bool Remove(Lightest* l, int32_t w);
  static void Insert(Lightest* l, uint64_t key, int32_t w);
  // Lightest of bucket b from its tree: its kKept least taken out, then put back.
  void Rebuild(int b, const std::vector<double>& load);

  std::vector<int> bucket_;    // of each worker, -1: none (no room, or not a single)
  std::vector<uint64_t> key_;  // of each worker in a bucket
  uint64_t index_mask_;
  std::unique_ptr<MinTree> trees_[64];
  Lightest lightest_[64];
  int32_t members_[64] = {};  // per bucket
  int top_ = -1;              // the highest bucket with a tree
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_FLEXDEG_SINGLES_H_
