#include "service/planner/strategies/fcp_packer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/container/inlined_vector.h"
#include "service/planner/strategies/packing.h"

namespace fcp {

Packer::Packer(const Topology& topology, std::vector<PackItem>* items)
    : topology_(topology),
      items_(*items),
      workers_(topology.num_workers),
      cap_(TokenCap(topology)),
      load_(workers_, 0),
      tokens_(workers_, 0),
      owned_(workers_),
      unpinned_count_(workers_, 0),
      pinned_(items->size()) {
  double total_seconds = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    total_seconds += items_[i].seconds;
    pinned_[i] = items_[i].owner >= 0;
  }
  mean_seconds_ = std::max(total_seconds / workers_, 1e-12);
  inv_mean_seconds_ = 1 / mean_seconds_;
  // Tokens weigh only against the memory cap (none: 0, not weighed).
  inv_token_budget_ = topology.max_tokens_per_worker > 0
                          ? 1 / static_cast<double>(topology.max_tokens_per_worker)
                          : 0;
}

inline void Packer::Assign(int32_t i, int32_t w) {
  PackItem& it = items_[i];
  it.owner = w;
  load_[w] += it.seconds;
  tokens_[w] += it.tokens();
  if (tracking_owned_ && !pinned_[i]) Owned(w).push_back(i);
}

void Packer::Unassign(int32_t i) {
  PackItem& it = items_[i];
  load_[it.owner] -= it.seconds;
  tokens_[it.owner] -= it.tokens();
  std::vector<int32_t>& list = Owned(it.owner);
  list.erase(std::find(list.begin(), list.end(), i));
  it.owner = -1;
}

namespace {

uint64_t IndexMask(int index_bits) { return (uint64_t{1} << index_bits) - 1; }

}  // namespace

// The least-loaded worker is full (token budget): the lowest score with the item among the workers
// with room, ties to the lowest index. It is rarely near the least-loaded ones (16 probes from
// both ends lost up to 6% of the step at W = 1024). Two ways to the same answer:
//  - a RoomTree of every worker's load and tokens, built at the first such item, that prunes what
//    cannot win (a scan of every worker per item was two thirds of fcp's time at W = 1024);
//  - for a run of identical items (short documents of one length: at W = 1024 on wikipedia, fcp's
//    18.3K such items came in ~350 runs), a LeastScoreTree of every worker's score with the run's
//    item (out: no room), filled once and updated by a walk up per assignment. (A tree of only
//    the workers with room, 170-550 of 1024 there, cost more: the scan that finds them.)
// The RoomTree is brought up to date (the workers assigned to since) only when it searches.
class Packer::RoomSearch {
 public:
  RoomSearch(const Packer& packer, const std::vector<uint64_t>& order, uint64_t index_mask)
      : p_(packer),
        order_(order),
        index_mask_(index_mask),
        min_run_(std::max<size_t>(2, static_cast<size_t>(packer.workers_) / 256)) {}

  // For the item at order[k].
  int32_t Best(size_t k) {
    const PackItem& it = Item(k);
    if (in_run_ && !Alike(it, run_item_)) in_run_ = false;
    if (!in_run_ && k >= short_end_) {
      size_t end = k + 1;
      while (end < order_.size() && end - k < min_run_ && Alike(Item(end), it)) ++end;
      if (end - k >= min_run_) {
        StartRun(it);
      } else {
        short_end_ = end;  // items k .. end - 1: alike, too few for a run tree
      }
    }
    if (!in_run_) return SearchRoomTree(it);
    return run_tree_.ArgMin();
  }

  // After an assignment to w.
  void Changed(int32_t w) {
    if (in_run_) run_tree_.Set(w, RunScore(w));
    if (room_tree_ && !dirty_[w]) {
      dirty_[w] = true;
      dirty_list_.push_back(w);
    }
  }

 private:
  const PackItem& Item(size_t k) const { return p_.items_[order_[k] & index_mask_]; }
  static bool Alike(const PackItem& a, const PackItem& b) {
    return a.seconds == b.seconds && a.tokens() == b.tokens();
  }
  void StartRun(const PackItem& it) {
    run_item_ = it;
    in_run_ = true;
    // RunScore with the run's constants held in registers (the tree's stores might alias the
    // packer's members, so RunScore reloads them per worker).
    const double seconds = it.seconds, inv_mean = p_.inv_mean_seconds_;
    const double inv_budget = p_.inv_token_budget_;
    const int64_t tokens = it.tokens(), room = p_.cap_ - tokens;
    const double* const load = p_.load_.data();
    const int64_t* const held = p_.tokens_.data();
    run_tree_.Fill(p_.workers_, [=](int32_t w) {
      return RunScoreAt(load[w], held[w], seconds, tokens, room, inv_mean, inv_budget);
    });
  }
  // A worker's score with the run's item, infinite when it has no room for it.
  static double RunScoreAt(double load, int64_t held, double seconds, int64_t tokens, int64_t room,
                           double inv_mean, double inv_budget) {
    return held <= room ? Packer::ScoreAt(load + seconds, held + tokens, inv_mean, inv_budget)
                        : std::numeric_limits<double>::infinity();
  }
  double RunScore(int32_t w) const {
    const int64_t tokens = run_item_.tokens();
    return RunScoreAt(p_.load_[w], p_.tokens_[w], run_item_.seconds, tokens, p_.cap_ - tokens,
                      p_.inv_mean_seconds_, p_.inv_token_budget_);
  }

  int32_t SearchRoomTree(const PackItem& it) {
    const int32_t workers = p_.workers_;
    if (!room_tree_) {
      room_tree_.emplace(workers);
      for (int32_t w = 0; w < workers; ++w) room_tree_->Set(w, p_.load_[w], p_.tokens_[w]);
      dirty_.assign(workers, false);
    }
    for (const int32_t w : dirty_list_) {
      room_tree_->Set(w, p_.load_[w], p_.tokens_[w]);
      dirty_[w] = false;
    }
    dirty_list_.clear();
    if (searches_++ % workers == 0) {
      // Workers by tokens in the leaves: the full ones (most of them, by now, with little load)
      // share subtrees that the room test prunes whole, instead of lending their low loads to
      // every subtree's bound. Tokens only grow; re-sorted every W searches.
      std::vector<int32_t> by_tokens(workers);
      for (int32_t w = 0; w < workers; ++w) by_tokens[w] = w;
      std::sort(by_tokens.begin(), by_tokens.end(), [&](int32_t a, int32_t b) {
        return p_.tokens_[a] != p_.tokens_[b] ? p_.tokens_[a] < p_.tokens_[b] : a < b;
      });
      room_tree_->Arrange(by_tokens);
    }
    const double seconds = it.seconds;
    const int64_t tokens = it.tokens();
    return room_tree_->LeastWithRoom(p_.cap_ - tokens, [&](double load, int64_t held) {
      return p_.Score(load + seconds, held + tokens);
    });
  }

  const Packer& p_;
  const std::vector<uint64_t>& order_;
  uint64_t index_mask_;
  size_t min_run_;  // the shortest run worth a run tree (by instruction counts at W = 1024)
  std::optional<RoomTree> room_tree_;
  std::vector<bool> dirty_;  // assigned to since room_tree_ was last brought up to date
  std::vector<int32_t> dirty_list_;
  int64_t searches_ = 0;
  LeastScoreTree run_tree_;
  bool in_run_ = false;  // run_tree_ holds the scores with run_item_
  PackItem run_item_;
  size_t short_end_ = 0;  // items before this position in order_ are in a run too short
};

void Packer::Pack(int32_t documents, const std::vector<int32_t>& presorted) {
  constexpr double kLocalitySlack = 0.01;
  // Largest first. The sort key packs the cost's top bits (non-negative doubles order like their
  // bit patterns) above the item's index, so ties are broken by position and one integer sort
  // does it all. Presorted items only need checking, then a merge with the others, sorted.
  const int index_bits = IndexBits(items_.size());
  auto key = [&](size_t i) {
    uint64_t bits;
    std::memcpy(&bits, &items_[i].seconds, sizeof bits);
    return (~bits >> index_bits << index_bits) | i;
  };
  std::vector<uint64_t> given, rest;
  std::vector<char> is_given(items_.size());
  given.reserve(presorted.size());
  bool in_order = true;
  uint64_t last = 0;  // the previous key
  for (const int32_t i : presorted) {
    const uint64_t k = key(i);
    in_order &= given.empty() || last < k;
    given.push_back(last = k);
    is_given[i] = true;
  }
  rest.reserve(items_.size() - given.size());
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!is_given[i]) rest.push_back(key(i));
  }
  if (!in_order) {  // not sorted after all (near-ties): sort everything
    rest.insert(rest.end(), given.begin(), given.end());
    given.clear();
  }
  RadixSort(&rest);
  std::vector<uint64_t> order(items_.size());
  std::merge(rest.begin(), rest.end(), given.begin(), given.end(), order.begin());
  MinTree least_loaded(workers_);  // scores 0: raised as they come out least (below)
  RoomSearch room_search(*this, order, IndexMask(index_bits));
  // Workers holding blocks of each document cut into several units (few: documents span few
  // workers). A document's only unit (PackItem::sole) has no holders when it is placed, and none
  // is asked of it after: not listed.
  std::vector<int32_t> holders_of(documents, -1);  // index into holder_lists
  std::vector<absl::InlinedVector<int32_t, 2>> holder_lists;
  auto holders = [&](int32_t d) -> absl::InlinedVector<int32_t, 2>& {
    if (holders_of[d] < 0) {
      holders_of[d] = static_cast<int32_t>(holder_lists.size());
      holder_lists.emplace_back();
    }
    return holder_lists[holders_of[d]];
  };
  auto note_holder = [&](int32_t d, int32_t w) {
    absl::InlinedVector<int32_t, 2>& list = holders(d);
    if (std::find(list.begin(), list.end(), w) == list.end()) list.push_back(w);
  };
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!pinned_[i]) continue;
    const int32_t w = items_[i].owner;
    items_[i].owner = -1;
    Assign(static_cast<int32_t>(i), w);
    if (!items_[i].sole) note_holder(items_[i].document, w);
  }
  // Locality: a worker that already holds this document (no new sender for its KV) while it
  // stays under the mean load, so a long document spans as few workers as balance allows;
  // else one on the same node, if it is almost as good as the best.
  auto near_holders = [&](const PackItem& it, int32_t best) {
    const double best_score = best < 0 ? 0 : ScoreWith(best, it);  // < 0: not after ValidateBatch
    const absl::InlinedVector<int32_t, 2>& list = holders(it.document);
    const double holder_limit = std::max(1.0, best_score + kLocalitySlack);
    int32_t chosen = best;
    for (int32_t w : list) {
      if (Fits(w, it) && ScoreWith(w, it) <= holder_limit) {
        chosen = w;
        break;
      }
    }
    if (chosen == best && !list.empty()) {  // (also when the holder found is the best)
      const int32_t node = topology_.NodeOf(list.front());
      for (int32_t w = node * topology_.workers_per_node;
           w < std::min(workers_, (node + 1) * topology_.workers_per_node); ++w) {
        if (Fits(w, it) && ScoreWith(w, it) <= best_score + kLocalitySlack) return w;
      }
    }
    return chosen;
  };
  const uint64_t index_mask = IndexMask(index_bits);
  for (size_t k = 0; k < order.size(); ++k) {
    // Items are visited by cost, far apart in memory: fetch an item a few iterations ahead.
    constexpr size_t kAhead = 16;
    if (k + kAhead < order.size()) __builtin_prefetch(&items_[order[k + kAhead] & index_mask]);
    const int32_t i = static_cast<int32_t>(order[k] & index_mask);
    if (pinned_[i]) continue;
    const PackItem& it = items_[i];
    // least_loaded is brought up to date lazily: a worker's key only when it comes out least
    // (most assignments go to others once the least-loaded worker is full; scores only grow
    // while packing).
    const int32_t candidate = least_loaded.ArgMinDeferred([&](int32_t w) { return ScoreOf(w); });
    int32_t chosen = Fits(candidate, it) ? candidate : room_search.Best(k);
    if (!it.sole) chosen = near_holders(it, chosen);
    if (chosen < 0) chosen = 0;  // cannot happen after ValidateBatch's total-cap check
    Assign(i, chosen);
    ++unpinned_count_[chosen];
    if (!it.sole) note_holder(it.document, chosen);
    room_search.Changed(chosen);
  }
}

// One move or swap off `hot` to one of the few least-loaded workers that lowers the larger of
// the two scores (the coldest alone may only hold units too small to swap for a large one).
int32_t Packer::TryImprove(int32_t hot, LeastScoreTree* coldest) {
  constexpr int kColdCandidates = 8;
  // The k coldest by (score, index), ascending: taken off the tree one by one, then put back.
  const int k = std::min<int>(kColdCandidates, workers_);
  int32_t colds[kColdCandidates];
  for (int c = 0; c < k; ++c) {
    colds[c] = coldest->ArgMin();
    coldest->Set(colds[c], std::numeric_limits<double>::infinity());
  }
  for (int c = 0; c < k; ++c) coldest->Set(colds[c], ScoreOf(colds[c]));
  const double before = ScoreOf(hot);
  double best = before;
  int32_t move = -1, swap = -1, to = -1;
  const double hot_load = load_[hot];
  const int64_t hot_tokens = tokens_[hot];
  // Pruning that skips only what cannot improve `best` (so the choice, ties included, is what
  // the full search finds): every move or swap adds seconds to `cold`, so its score with them is
  // at least its load's; and one of item i's moves or swaps leaves `hot` at least its load minus
  // i's seconds.
  for (int c = 0; c < k; ++c) {
    const int32_t cold = colds[c];
    const double cold_load = load_[cold];
    const int64_t cold_tokens = tokens_[cold];
    if (cold == hot || cold_load * inv_mean_seconds_ >= best - 1e-9) continue;
    // The cold worker's units side by side (the swaps' inner loop reads nothing else).
    const std::vector<int32_t>& theirs = Owned(cold);
    cold_seconds_.resize(theirs.size());
    cold_tokens_.resize(theirs.size());
    // A swap needs a unit of fewer seconds than a's (dd > 0) and enough tokens to leave the cold
    // worker within the cap: past the least seconds or the most tokens, none qualifies.
    double least_seconds = std::numeric_limits<double>::infinity();
    int64_t most_tokens = std::numeric_limits<int64_t>::min();
    for (size_t q = 0; q < theirs.size(); ++q) {
      cold_seconds_[q] = items_[theirs[q]].seconds;
      cold_tokens_[q] = items_[theirs[q]].tokens();
      least_seconds = std::min(least_seconds, cold_seconds_[q]);
      most_tokens = std::max(most_tokens, cold_tokens_[q]);
    }
    for (int32_t i : Owned(hot)) {
      const PackItem& a = items_[i];
      const double da = a.seconds;
      if ((hot_load - da) * inv_mean_seconds_ >= best - 1e-9) continue;
      const int64_t ta = a.tokens();
      if (cold_tokens + ta <= cap_) {
        const double s = std::max(Score(hot_load - da, hot_tokens - ta),
                                  Score(cold_load + da, cold_tokens + ta));
        if (s < best - 1e-9) best = s, move = i, swap = -1, to = cold;
      }
      if (da <= least_seconds || cold_tokens + (ta - most_tokens) > cap_) continue;
      for (size_t q = 0; q < theirs.size(); ++q) {
        const double dd = da - cold_seconds_[q];
        const int64_t dt = ta - cold_tokens_[q];
        if (dd <= 0 || cold_tokens + dt > cap_) continue;
        const double s = std::max(Score(hot_load - dd, hot_tokens - dt),
                                  Score(cold_load + dd, cold_tokens + dt));
        if (s < best - 1e-9) best = s, move = i, swap = theirs[q], to = cold;
      }
    }
  }
  if (move < 0) return -1;
  Unassign(move);
  if (swap >= 0) {
    Unassign(swap);
    Assign(swap, hot);
  }
  Assign(move, to);
  return to;
}

void Packer::TrackOwned() {
  if (tracking_owned_) return;
  tracking_owned_ = true;
  // A counting sort by owner keeps each worker's units in index order (TryImprove's ties go to
  // the first); a worker's list is copied out only when Refine first touches it (Owned).
  std::vector<int32_t>& start = owned_start_;
  start.assign(workers_ + 1, 0);
  for (int32_t w = 0; w < workers_; ++w) start[w + 1] = start[w] + unpinned_count_[w];
  owned_index_.resize(start[workers_]);
  std::vector<int32_t> next(start.begin(), start.end() - 1);
  for (size_t i = 0; i < items_.size(); ++i) {
    if (!pinned_[i] && items_[i].owner >= 0) {
      owned_index_[next[items_[i].owner]++] = static_cast<int32_t>(i);
    }
  }
  owned_ready_.assign(workers_, 0);
}

std::vector<int32_t>& Packer::Owned(int32_t w) {
  std::vector<int32_t>& list = owned_[w];
  if (!owned_ready_[w]) {
    owned_ready_[w] = 1;
    const auto begin = owned_index_.begin();
    list.reserve(owned_start_[w + 1] - owned_start_[w] + 4);
    list.assign(begin + owned_start_[w], begin + owned_start_[w + 1]);
  }
  return list;
}

void Packer::Refine(int iterations) {
  // Below this the remaining imbalance is within the cost model's own error: stop searching.
  constexpr double kGoodEnough = 1.01;
  // The hottest worker (the first of the highest score) as the least negated score; the coldest.
  LeastScoreTree hottest, coldest;
  hottest.Fill(workers_, [&](int32_t w) { return -ScoreOf(w); });
  coldest.Fill(workers_, [&](int32_t w) { return ScoreOf(w); });
  for (int it = 0; it < iterations; ++it) {
    const int32_t hot = hottest.ArgMin();
    if (ScoreOf(hot) <= kGoodEnough) return;
    TrackOwned();  // only now: most packings need no refinement
    const int32_t cold = TryImprove(hot, &coldest);
    if (cold < 0) return;
    for (const int32_t w : {hot, cold}) {
      hottest.Set(w, -ScoreOf(w));
      coldest.Set(w, ScoreOf(w));
    }
  }
}

}  // namespace fcp
