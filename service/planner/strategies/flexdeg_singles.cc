#include "service/planner/strategies/flexdeg_singles.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "service/planner/radix_sort.h"

namespace fcp {
namespace {

int Bucket(int64_t free) {
  return free > 0 ? 63 - __builtin_clzll(static_cast<uint64_t>(free)) : -1;
}

}  // namespace

SinglesByRoom::SinglesByRoom(int32_t size)
    : bucket_(size, -1),
      key_(size, 0),
      index_mask_((uint64_t{1} << IndexBits(static_cast<size_t>(std::max(size, 1)))) - 1) {}

// As MinTree::Key: the load's bits (non-negative doubles order like them) with the lowest bits
// replaced by the index.
uint64_t SinglesByRoom::Key(int32_t w, double load) const {
  const double s = load > 0 ? load : 0.0;
  uint64_t bits;
  std::memcpy(&bits, &s, sizeof bits);
  return (bits & ~index_mask_) | static_cast<uint64_t>(w);
}

void SinglesByRoom::Set(int32_t w, int64_t free, double load) {
  const int b = Bucket(free);
  const int old = bucket_[w];
  if (old >= 0 && old != b) {
    trees_[old]->Set(w, HUGE_VAL);
    --members_[old];
    Leave(old, w);
  }
  bucket_[w] = b;
  if (b < 0) return;
  // (w is the bucket's first member: every other worker outside it)
  if (!trees_[b]) {
    trees_[b] = std::make_unique<MinTree>(static_cast<int32_t>(bucket_.size()), HUGE_VAL);
    top_ = std::max(top_, b);
  }
  trees_[b]->Set(w, load);
  const uint64_t key = Key(w, load);
  if (old == b) {
    Change(b, key, w);
  } else {
    ++members_[b];
    Enter(b, key, w);
  }
  key_[w] = key;
}

bool SinglesByRoom::Remove(Lightest* l, int32_t w) {
  for (int i = 0; i < l->n; ++i) {
    if (l->worker[i] != w) continue;
    for (int j = i + 1; j < l->n; ++j) {
      l->key[j - 1] = l->key[j];
      l->worker[j - 1] = l->worker[j];
    }
    --l->n;
    return true;
  }
  return false;
}

void SinglesByRoom::Insert(Lightest* l, uint64_t key, int32_t w) {
  if (l->n == kKept && key > l->key[kKept - 1]) return;  // (full: only below the last)
  int i = std::min(l->n, kKept - 1);                     // (full: the last one is dropped)
  for (; i > 0 && l->key[i - 1] > key; --i) {
    l->key[i] = l->key[i - 1];
    l->worker[i] = l->worker[i - 1];
  }
  l->key[i] = key;
  l->worker[i] = w;
  l->n = std::min(l->n + 1, kKept);
}

// (valid: the known are the n least, n >= kPops or all the bucket's members)
void SinglesByRoom::Leave(int b, int32_t w) {
  Lightest& l = lightest_[b];
  // Fewer than kPops known while the bucket has others beyond them: the next one is unknown.
  if (l.valid && Remove(&l, w) && l.n < kPops && members_[b] > l.n) l.valid = false;
}

void SinglesByRoom::Enter(int b, uint64_t key, int32_t w) {
  Lightest& l = lightest_[b];
  if (!l.valid) return;
  // All known (before w): w is known too while there is room; else it is if below the last.
  if (l.n == members_[b] - 1 || (l.n > 0 && key < l.key[l.n - 1])) Insert(&l, key, w);
}

void SinglesByRoom::Change(int b, uint64_t key, int32_t w) {
  Lightest& l = lightest_[b];
  if (!l.valid) return;
  const bool known = Remove(&l, w);
  // Back in (or in) if all the others are known, or if below the last known; else, if it was
  // known, the known are one fewer, which must stay kPops unless they are all.
  if (l.n == members_[b] - 1 || (l.n > 0 && key < l.key[l.n - 1])) {
    Insert(&l, key, w);
  } else if (known && l.n < kPops) {
    l.valid = false;
  }
}

void SinglesByRoom::Rebuild(int b, const std::vector<double>& load) {
  Lightest& l = lightest_[b];
  l.n = 0;
  MinTree& tree = *trees_[b];
  while (l.n < std::min(kKept, members_[b])) {
    const int32_t w = tree.ArgMin();
    l.key[l.n] = key_[w];
    l.worker[l.n++] = w;
    tree.Set(w, HUGE_VAL);
  }
  for (int i = 0; i < l.n; ++i) tree.Set(l.worker[i], load[l.worker[i]]);
  l.valid = true;
}

int32_t SinglesByRoom::LeastWithRoom(int64_t need, const std::vector<int64_t>& free,
                                     const std::vector<double>& load) {
  const int own = need > 0 ? 63 - __builtin_clzll(static_cast<uint64_t>(need)) : 0;
  int32_t best = -1;
  auto consider = [&](int32_t w) {
    if (best < 0 || load[w] < load[best]) best = w;
  };
  for (int b = own + 1; b <= top_; ++b) {
    if (!trees_[b]) continue;
    const int32_t w = trees_[b]->ArgMin();
    if (bucket_[w] == b) consider(w);
  }
  if (trees_[own]) {
    if (!lightest_[own].valid) Rebuild(own, load);
    const Lightest& l = lightest_[own];
    for (int i = 0; i < std::min(l.n, kPops); ++i) {
      const int32_t w = l.worker[i];
      if (best >= 0 && load[w] >= load[best]) break;
      if (free[w] >= need) {
        consider(w);
        break;
      }
    }
  }
  return best;
}

}  // namespace fcp
