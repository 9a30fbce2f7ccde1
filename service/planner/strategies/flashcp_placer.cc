#include "service/planner/strategies/flashcp_placer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace fcp {
namespace flashcp {

Placer::Placer(const PlanContext& ctx, const std::vector<Sorted>& sorted,
               const std::vector<double>& suffix_seconds, double mean)
    : ctx_(ctx),
      sorted_(sorted),
      suffix_seconds_(suffix_seconds),
      mean_(mean),
      workers_(ctx.batch.topology.num_workers),
      // Nodes of at most W workers: the same nodes (one, when workers_per_node >= W), and no
      // overflow in node arithmetic for a huge workers_per_node.
      per_node_(std::clamp(ctx.batch.topology.workers_per_node, 1, std::max(1, workers_))),
      cap_(TokenCap(ctx.batch.topology)) {
  const int32_t docs = static_cast<int32_t>(sorted_.size());
  whole_from_ = docs;
  // No cap (nothing bounds a worker's share), or one too large for W · cap in 63 bits.
  if (cap_ > std::numeric_limits<int64_t>::max() / 2 / std::max(1, workers_)) return;
  // Document i finds a worker with room when the room left, at least W · cap less the tokens
  // before it, exceeds W · (length - 1).
  const int64_t all_room = int64_t{workers_} * cap_;
  int64_t before = 0;  // the tokens of sorted_[..i), up to all_room
  for (int32_t i = 0; i < docs; ++i) {
    const int64_t length = sorted_[i].length;
    if (length <= 0 || length > cap_ || before >= workers_ * (cap_ - length + 1)) {
      whole_from_ = i + 1;
    }
    before = length < all_room - before ? before + length : all_room;
  }
  densest_.resize(docs + 1, 0);
  shortest_.resize(docs + 1, cap_);
  for (int32_t i = docs; i-- > whole_from_;) {
    const double density = sorted_[i].seconds / static_cast<double>(sorted_[i].length);
    densest_[i] = std::max(densest_[i + 1], density);
    shortest_[i] = std::min(shortest_[i + 1], sorted_[i].length);
  }
}

void Placer::SaveOpening(int32_t num_long, const Placement& p) {
  Opening& o = opening_;
  o.num_long = num_long;
  o.highest = highest_;
  o.load = load_;
  o.node_floor = node_floor_;
  o.traffic_seconds = traffic_seconds_;
  o.tokens = tokens_;
  o.least_loaded = least_loaded_;
  o.room = room_;
  o.members = p.members;
  o.degree.resize(num_long);
  for (int32_t i = 0; i < num_long; ++i) o.degree[i] = p.degree[sorted_[i].document];
}

int32_t Placer::RestoreOpening(Placement* p) {
  const Opening& o = opening_;
  highest_ = o.highest;
  load_ = o.load;
  node_floor_ = o.node_floor;
  traffic_seconds_ = o.traffic_seconds;
  tokens_ = o.tokens;
  least_loaded_ = o.least_loaded;
  room_ = o.room;
  p->members = o.members;
  for (int32_t i = 0, at = 0; i < o.num_long; at += o.degree[i++]) {
    p->degree[sorted_[i].document] = o.degree[i];
    p->at[sorted_[i].document] = at;
  }
  return o.num_long;
}

bool Placer::MustReach(int32_t i, double cut) const {
  const double densest = densest_[i];
  const int64_t shortest = shortest_[i];
  double below = 0;
  for (int32_t w = 0; w < workers_; ++w) {
    if (tokens_[w] + shortest > cap_) continue;
    below += std::min(cut - load_[w], static_cast<double>(cap_ - tokens_[w]) * densest);
  }
  // Rounding: a load's sum of positive seconds, the suffix's and `below` are each within
  // (terms) · epsilon of exact, relative to their sums (each load below cut).
  const double margin =
      1e-9 + 4 * std::numeric_limits<double>::epsilon() *
                 (static_cast<double>(sorted_.size()) + static_cast<double>(workers_));
  return suffix_seconds_[i] * (1 - margin) > below + margin * workers_ * cut;
}

void Placer::Place(int32_t num_long, double fill, double bound, double tie_bound, Placement* p) {
  const int32_t docs = static_cast<int32_t>(sorted_.size());
  // Past `tie_bound` is at or past the next double up.
  const double cut = std::min(bound, std::nextafter(tie_bound, HUGE_VAL));
  p_ = p;
  fill_ = fill;
  p->estimate = p->traffic = 0;
  p->degree.assign(docs, 1);
  p->at.resize(docs);
  auto reached = [&] {
    if (highest_ < cut) return false;
    p->estimate = HUGE_VAL;
    p->traffic = 0;
    return true;
  };
  // A plain candidate shards the documents of a plain one with fewer long documents first, as
  // that one did: it starts from that one's state there (a stop there, its highest load or
  // traffic being past `cut`, is where it would have stopped: both only grow).
  int32_t first = 0;
  if (fill == 1 && opening_.num_long > 0 && opening_.num_long <= num_long) {
    first = RestoreOpening(p);
    if (reached()) return;
  } else {
    highest_ = 0;
    load_.assign(workers_, 0);
    node_floor_.assign((workers_ + per_node_ - 1) / per_node_, 0);
    traffic_seconds_.assign(workers_, 0);  // receives, forward + backward
    tokens_.assign(workers_, 0);
    least_loaded_.emplace(workers_);
    room_.emplace(workers_);
    p->members.clear();
  }
  p->members.reserve(docs + 2 * workers_);
  for (int32_t i = first; i < num_long; ++i) {
    Shard(sorted_[i]);
    if (reached()) return;
  }
  if (fill == 1 && num_long > opening_.num_long) SaveOpening(num_long, *p);
  // The short documents, whole: the least-loaded worker, else the least loaded with room.
  // Every W documents (from whole_from_), whether the rest must take a load to `cut`.
  const int64_t* const tokens = tokens_.data();
  int32_t* const at = p->at.data();
  const int32_t check_every = std::max(256, workers_);
  int32_t until_check = 0;
  for (const Sorted *doc = sorted_.data() + num_long, *end = sorted_.data() + docs; doc != end;
       ++doc) {
    if (reached()) return;
    if (--until_check <= 0 && cut < HUGE_VAL) {
      const int32_t i = static_cast<int32_t>(doc - sorted_.data());
      until_check = i < whole_from_ ? whole_from_ - i : check_every;
      if (i >= whole_from_ && MustReach(i, cut)) {
        highest_ = cut;
        reached();
        return;
      }
    }
    if (doc->length > cap_) {  // too long to stay whole, whatever the threshold
      Shard(*doc);
      continue;
    }
    int32_t w = LeastLoaded();
    if (tokens[w] + doc->length > cap_) {
      w = room_->LeastLoadedWithRoom(cap_ - doc->length);
      if (w < 0) {  // fits whole on no worker: sharded instead, over workers with room
        Shard(*doc);
        continue;
      }
    }
    at[doc->document] = static_cast<int32_t>(p->members.size());
    p->members.push_back(w);
    Put(w, doc->length, doc->seconds);
  }
  for (int32_t w = 0; w < workers_; ++w) {
    p->traffic = std::max(p->traffic, traffic_seconds_[w]);
    p->estimate = std::max(p->estimate, std::max(load_[w], traffic_seconds_[w]));
  }
}

void Placer::LeastLoadedK(int64_t k, int64_t piece, std::vector<int32_t>* out) {
  out->clear();
  popped_.clear();
  full_.clear();
  while (static_cast<int64_t>(out->size()) < k && static_cast<int32_t>(popped_.size()) < workers_) {
    const int32_t w = LeastLoaded();
    least_loaded_->Set(w, HUGE_VAL);
    popped_.push_back(w);
    (tokens_[w] + piece <= cap_ ? *out : full_).push_back(w);
  }
  for (size_t i = 0; static_cast<int64_t>(out->size()) < k; ++i) out->push_back(full_[i]);
  for (int32_t w : popped_) least_loaded_->Set(w, load_[w]);
  std::sort(out->begin(), out->end());
}

bool Placer::WithinANode(int64_t k, int64_t piece, int32_t hint, std::vector<int32_t>* out) {
  out->clear();
  // Each node's k-th least load among its workers with room, against the best so far: a node
  // with fewer than k of them below it cannot beat it, nor can one whose floor (a load at or
  // below all of its workers': loads only grow) is not below it. No load is below 0: a node
  // whose k-th is 0 cannot be beaten. The best node's k workers are then taken as nth_element
  // takes them (among equal loads, its choice). The scan starts from just above the hint's
  // node's k-th (when it has k with room): above the least, so the same first node attains it.
  double best = HUGE_VAL;
  int32_t best_first = -1;
  kth_.resize(per_node_);
  if (hint >= 0) {
    const int32_t first = hint / per_node_ * per_node_,
                  last = std::min(workers_, first + per_node_);
    int64_t with_room = 0;
    for (int32_t w = first; w < last; ++w) {
      if (tokens_[w] + piece <= cap_) kth_[with_room++] = load_[w];
    }
    if (with_room >= k) {
      std::nth_element(kth_.begin(), kth_.begin() + (k - 1), kth_.begin() + with_room);
      best = std::nextafter(kth_[k - 1], HUGE_VAL);
    }
  }
  for (int32_t first = 0, node = 0; first < workers_ && best > 0; first += per_node_, ++node) {
    if (node_floor_[node] >= best) continue;
    const int32_t last = std::min(workers_, first + per_node_);
    int64_t below = 0;
    double floor = HUGE_VAL;
    for (int32_t w = first; w < last; ++w) {
      kth_[below] = load_[w];
      floor = std::min(floor, load_[w]);
      below += tokens_[w] + piece <= cap_ && load_[w] < best;
    }
    node_floor_[node] = floor;
    if (below < k) continue;
    std::nth_element(kth_.begin(), kth_.begin() + (k - 1), kth_.begin() + below);
    best = kth_[k - 1];
    best_first = first;
  }
  if (best_first < 0) return false;
  popped_.clear();
  for (int32_t w = best_first; w < std::min(workers_, best_first + per_node_); ++w) {
    if (tokens_[w] + piece <= cap_) popped_.push_back(w);
  }
  std::nth_element(popped_.begin(), popped_.begin() + (k - 1), popped_.end(),
                   [&](int32_t a, int32_t b) { return load_[a] < load_[b]; });
  out->assign(popped_.begin(), popped_.begin() + k);
  std::sort(out->begin(), out->end());
  return true;
}

double Placer::SlowestAfter(const std::vector<int32_t>& group) {
  const int64_t k = static_cast<int64_t>(group.size());
  double slowest = 0;
  after_load_.assign(k, 0);
  after_traffic_.assign(k, 0);
  // A send's seconds depend on its bytes and on whether its ends share a node alone: member j's
  // four (one chunk or two, same node or not), each priced once, summed in the same order.
  const Topology& topology = ctx_.cost.topology();
  sends_.assign(4 * k, -1);
  for (int64_t m = 0; m < k; ++m) {
    const int32_t to = group[m];
    double traffic = traffic_seconds_[to];
    for (int64_t j = 0; j < k; ++j) {
      if (j == m) continue;
      // Member j's first chunk precedes m's last; its second (chunk 2k-1-j) too when j > m.
      double& send = sends_[4 * j + 2 * (j > m) + topology.SameNode(group[j], to)];
      if (send < 0) {
        const int64_t needed = chunk_tokens_[j] + (j > m ? chunk_tokens_[2 * k - 1 - j] : 0);
        send = ctx_.cost.TransferSeconds(group[j], to, ctx_.cost.KvBytes(needed));
      }
      traffic += 2 * send;
    }
    after_load_[m] = load_[to] + share_seconds_[m];
    after_traffic_[m] = traffic;
    slowest = std::max(slowest, std::max(after_load_[m], traffic));
  }
  return slowest;
}

void Placer::Shard(const Sorted& doc_info) {
  const Batch& batch = ctx_.batch;
  const int32_t d = doc_info.document;
  const Document& doc = batch.documents[d];
  const double share = mean_ > 0 ? doc_info.seconds / (fill_ * mean_) : 1;
  int64_t k = std::max<int64_t>(2, static_cast<int64_t>(std::ceil(share - 1e-9)));
  if (cap_ < doc.length) k = std::max<int64_t>(k, (doc.length + cap_ - 1) / cap_);
  k = std::clamp<int64_t>(k, 1, std::min<int64_t>(workers_, doc.length));
  const int64_t piece = (doc.length + k - 1) / k;
  std::vector<int32_t>& members = p_->members;
  p_->at[d] = static_cast<int32_t>(members.size());
  p_->degree[d] = static_cast<int32_t>(k);
  bounds_.resize(2 * k + 1);
  for (int64_t c = 0; c <= 2 * k; ++c) bounds_[c] = ChunkBegin(doc.length, 2 * k, c);
  chunk_tokens_.resize(2 * k);
  share_seconds_.assign(k, 0);
  for (int64_t c = 0; c < 2 * k; ++c) {
    chunk_tokens_[c] = bounds_[c + 1] - bounds_[c];
    if (k == 1 || chunk_tokens_[c] == 0) continue;
    share_seconds_[c < k ? c : 2 * k - 1 - c] +=
        QueryRangeSeconds(ctx_.cost, doc, bounds_[c], bounds_[c + 1], bounds_) +
        3 * ctx_.cost.TokenSeconds(chunk_tokens_[c]);
  }
  if (k == 1) share_seconds_[0] = doc_info.seconds;
  // Topology-aware: a group that fits a node is placed inside one when that is no slower
  // than the least-loaded workers anywhere (whose receives may cross nodes).
  LeastLoadedK(k, piece, &chosen_);
  int32_t hint = -1;  // the least loaded of them with room
  for (int32_t w : chosen_) {
    if (tokens_[w] + piece <= cap_ && (hint < 0 || load_[w] < load_[hint])) hint = w;
  }
  if (k > 1 && k <= per_node_ && workers_ > per_node_ && WithinANode(k, piece, hint, &local_) &&
      SlowestAfter(local_) <= SlowestAfter(chosen_)) {
    chosen_.swap(local_);
  }
  SlowestAfter(chosen_);
  for (int64_t m = 0; m < k; ++m) {
    const int32_t w = chosen_[m];
    members.push_back(w);
    Put(w,
        chunk_tokens_.empty() || k == 1 ? doc.length
                                        : chunk_tokens_[m] + chunk_tokens_[2 * k - 1 - m],
        share_seconds_[m]);
    traffic_seconds_[w] = after_traffic_[m];
    highest_ = std::max(highest_, traffic_seconds_[w]);
  }
}

}  // namespace flashcp
}  // namespace fcp
