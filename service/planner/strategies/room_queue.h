// The least-loaded worker with room for a piece of `n` tokens, exactly as a scan finds it (the
// least load, ties to the lowest index), for packers that ask once per document.
//
// RoomTree (packing.h) answers the same question by branch and bound over subtree minima, but a
// subtree's least tokens and least load may belong to different workers: when the least-loaded
// workers are full (the common case late in a packing under a token budget: workers holding many
// short documents fill their tokens before their load) it walks the full workers lighter than
// the answer again on every query (RoomTree::Arrange, leaves laid out by tokens, narrows that
// walk). RoomQueue keeps two tournament trees instead:
//
//   open:    workers by (load, index)        ← queries pop full workers off its front ...
//   parked:  the popped ones by tokens        ← ... and park them here, until a query with
//                                               at least their tokens of room comes along
//
// A full worker is popped once when it fills, not once per query; packers that place documents
// largest first (queries' room only grows) park each full worker about once. A load that grows
// is re-keyed only when its worker reaches the front (a stale key is lower, so it hides no
// lighter worker): a packer's update per document costs O(1), its query O(log W) amortised.
//
//   RoomQueue room(workers);
//   room.Set(w, load[w], tokens[w]);                    // after every change of w
//   const int32_t w = room.LeastLoadedWithRoom(cap - n);  // -1: no worker has room
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_ROOM_QUEUE_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_ROOM_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace fcp {

class RoomQueue {
 public:
  explicit RoomQueue(int32_t size);  // every worker at load 0, no tokens
  // Worker w now has `load` (not NaN) and `tokens`; it returns to the queue if it was hidden.
  // Inline for the common case: an open worker whose load did not drop waits to be re-keyed.
  void Set(int32_t w, double load, int64_t tokens) {
    load_[w] = load;
    tokens_[w] = tokens;
    if (where_[w] != Where::kOpen || load < open_load_[w]) Rekey(w);
  }
  // Takes w out of every answer until its next Set (a packer picking k distinct workers).
  void Hide(int32_t w);
  // The worker with the least load among those holding at most `max_tokens` (ties: the lowest
  // index), as a scan in index order keeping strictly lower loads finds it; -1 if none. Amortised
  // O(log W) when the queries' max_tokens rarely decrease; not thread-safe (it reorders itself).
  int32_t LeastLoadedWithRoom(int64_t max_tokens);

 private:
  // The least of `size` 128-bit keys under point updates: a binary tournament tree (an update
  // compares one sibling per level).
  class MinKeys {
   public:
    using Key = unsigned __int128;
    static constexpr Key kNone = ~Key{0};
    explicit MinKeys(int32_t size);
    // Every key i below `size` set to keys[i] (the rest kNone), in O(size).
    void Assign(const std::vector<Key>& keys);
    void Set(int32_t i, Key key) {
      size_t n = first_leaf_ + static_cast<size_t>(i);
      node_[n] = key;
      for (; n > 1; n >>= 1) {
        const Key sibling = node_[n ^ 1];
        key = sibling < key ? sibling : key;
        node_[n >> 1] = key;
      }
    }
    Key Min() const { return node_[1]; }

   private:
    size_t first_leaf_;
    std::vector<Key> node_;  // node_[1] is the root; children of n are 2n and 2n + 1
  };
  enum class Where : uint8_t { kOpen, kParked, kHidden };

  // Set's keys for a parked, hidden or open worker whose load dropped.
  void Rekey(int32_t w);

  // Doubles map to unsigned integers in the same order (negatives flipped, -0 as +0), so ties
  // between equal loads fall to the index below them.
  static MinKeys::Key LoadKey(double load, int32_t w) {
    const double l = load == 0 ? 0.0 : load;
    uint64_t bits;
    std::memcpy(&bits, &l, sizeof bits);
    bits = (bits >> 63) != 0 ? ~bits : bits | (uint64_t{1} << 63);
    return (MinKeys::Key{bits} << 32) | static_cast<uint32_t>(w);
  }
  static MinKeys::Key TokensKey(int64_t tokens, int32_t w) {
    const uint64_t bits = static_cast<uint64_t>(tokens) ^ (uint64_t{1} << 63);
    return (MinKeys::Key{bits} << 32) | static_cast<uint32_t>(w);
  }
  static int32_t Worker(MinKeys::Key key) { return static_cast<int32_t>(key & 0xffffffffu); }

  std::vector<double> load_;
  std::vector<int64_t> tokens_;
  std::vector<Where> where_;
  std::vector<double> open_load_;  // an open worker's load when keyed in open_ (at most load_)
  MinKeys open_, parked_;
};

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_ROOM_QUEUE_H_
