#include "service/planner/strategies/room_queue.h"

#include <algorithm>
#include <cstddef>

namespace fcp {

RoomQueue::MinKeys::MinKeys(int32_t size) {
  size_t leaves = 1;
  while (leaves < static_cast<size_t>(size)) leaves *= 2;
  first_leaf_ = leaves;
  node_.assign(2 * leaves, kNone);
}

void RoomQueue::MinKeys::Assign(const std::vector<Key>& keys) {
  std::fill(node_.begin(), node_.end(), kNone);
  std::copy(keys.begin(), keys.end(), node_.begin() + static_cast<std::ptrdiff_t>(first_leaf_));
  for (size_t n = first_leaf_; n-- > 1;) {
    node_[n] = node_[2 * n] < node_[2 * n + 1] ? node_[2 * n] : node_[2 * n + 1];
  }
}

RoomQueue::RoomQueue(int32_t size)
    : load_(size, 0),
      tokens_(size, 0),
      where_(size, Where::kOpen),
      open_load_(size, 0),
      open_(size),
      parked_(size) {
  std::vector<MinKeys::Key> keys(size);
  for (int32_t w = 0; w < size; ++w) keys[w] = LoadKey(0, w);
  open_.Assign(keys);
}

// A grown load waits (Set): the open tree's minimum is checked against the current load before
// it is answered (a key below the worker's current one never hides a lighter worker). Keys order
// as their loads do (equal loads, equal keys).
void RoomQueue::Rekey(int32_t w) {
  if (where_[w] == Where::kParked) {
    parked_.Set(w, TokensKey(tokens_[w], w));
    return;
  }
  where_[w] = Where::kOpen;
  open_load_[w] = load_[w];
  open_.Set(w, LoadKey(load_[w], w));
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
    open_load_[w] = load_[w];
    open_.Set(w, LoadKey(load_[w], w));
    where_[w] = Where::kOpen;
  }
  // The lightest open worker with room; the full ones in front of it are parked.
  for (MinKeys::Key k = open_.Min(); k != MinKeys::kNone; k = open_.Min()) {
    const int32_t w = Worker(k);
    if (tokens_[w] <= max_tokens) {
      if (load_[w] == open_load_[w]) return w;
      open_load_[w] = load_[w];  // its load grew since it was keyed: re-keyed, look again
      open_.Set(w, LoadKey(load_[w], w));
      continue;
    }
    open_.Set(w, MinKeys::kNone);
    parked_.Set(w, TokensKey(tokens_[w], w));
    where_[w] = Where::kParked;
  }
  return -1;
}

}  // namespace fcp
