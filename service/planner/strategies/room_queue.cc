#include "service/planner/strategies/room_queue.h"

#include <cstring>

namespace fcp {

RoomQueue::MinKeys::MinKeys(int32_t size) {
  size_t leaves = 4;
  while (leaves < static_cast<size_t>(size)) leaves *= 4;
  first_leaf_ = (leaves - 1) / 3;
  node_.assign(first_leaf_ + leaves, kNone);
}

void RoomQueue::MinKeys::Set(int32_t i, Key key) {
  size_t n = first_leaf_ + static_cast<size_t>(i);
  node_[n] = key;
  while (n > 0) {
    const size_t first = ((n - 1) & ~size_t{3}) + 1;
    const Key a = node_[first] < node_[first + 1] ? node_[first] : node_[first + 1];
    const Key b = node_[first + 2] < node_[first + 3] ? node_[first + 2] : node_[first + 3];
    n = (n - 1) >> 2;
    node_[n] = a < b ? a : b;
  }
}

// Doubles map to unsigned integers in the same order (negatives flipped, -0 as +0), so ties
// between equal loads fall to the index below them.
RoomQueue::MinKeys::Key RoomQueue::LoadKey(double load, int32_t w) {
  const double l = load == 0 ? 0.0 : load;
  uint64_t bits;
  std::memcpy(&bits, &l, sizeof bits);
  bits = (bits >> 63) != 0 ? ~bits : bits | (uint64_t{1} << 63);
  return (MinKeys::Key{bits} << 32) | static_cast<uint32_t>(w);
}

RoomQueue::MinKeys::Key RoomQueue::TokensKey(int64_t tokens, int32_t w) {
  const uint64_t bits = static_cast<uint64_t>(tokens) ^ (uint64_t{1} << 63);
  return (MinKeys::Key{bits} << 32) | static_cast<uint32_t>(w);
}

RoomQueue::RoomQueue(int32_t size)
    : load_(size, 0),
      tokens_(size, 0),
      where_(size, Where::kOpen),
      open_key_(size),
      open_(size),
      parked_(size) {
  for (int32_t w = 0; w < size; ++w) {
    open_key_[w] = LoadKey(0, w);
    open_.Set(w, open_key_[w]);
  }
}

void RoomQueue::Set(int32_t w, double load, int64_t tokens) {
  load_[w] = load;
  tokens_[w] = tokens;
  if (where_[w] == Where::kParked) {
    parked_.Set(w, TokensKey(tokens, w));
    return;
  }
  const MinKeys::Key key = LoadKey(load, w);
  // A grown load may wait: the open tree's minimum is checked against the current load before
  // it is answered (a key below the worker's current one never hides a lighter worker).
  if (where_[w] == Where::kOpen && key >= open_key_[w]) return;
  where_[w] = Where::kOpen;
  open_key_[w] = key;
  open_.Set(w, key);
}

void RoomQueue::Hide(int32_t w) {
  if (where_[w] == Where::kOpen) open_.Set(w, MinKeys::kNone);
  if (where_[w] == Where::kParked) parked_.Set(w, MinKeys::kNone);
  where_[w] = Where::kHidden;
}

int32_t RoomQueue::LeastLoadedWithRoom(int64_t max_tokens) {
  // Parked workers with room go back to the open queue; every parked one left is full.
  for (MinKeys::Key k = parked_.Min(); k != MinKeys::kNone; k = parked_.Min()) {
    const int32_t w = Worker(k);
    if (tokens_[w] > max_tokens) break;
    parked_.Set(w, MinKeys::kNone);
    open_key_[w] = LoadKey(load_[w], w);
    open_.Set(w, open_key_[w]);
    where_[w] = Where::kOpen;
  }
  // The lightest open worker with room; the full ones in front of it are parked.
  for (MinKeys::Key k = open_.Min(); k != MinKeys::kNone; k = open_.Min()) {
    const int32_t w = Worker(k);
    if (tokens_[w] <= max_tokens) {
      const MinKeys::Key current = LoadKey(load_[w], w);
      if (current == k) return w;
      open_key_[w] = current;  // its load grew since it was keyed: re-keyed, look again
      open_.Set(w, current);
      continue;
    }
    open_.Set(w, MinKeys::kNone);
    parked_.Set(w, TokensKey(tokens_[w], w));
    where_[w] = Where::kParked;
  }
  return -1;
}

}  // namespace fcp
