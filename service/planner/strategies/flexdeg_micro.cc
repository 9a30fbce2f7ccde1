#include "service/planner/strategies/flexdeg_micro.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/planner/mask_math.h"
#include "service/planner/strategies/flexdeg_singles.h"
#include "service/planner/strategies/packing.h"

namespace fcp {
namespace {

// A document costing more than kOver × the mean worker gets a group of ceil(cost / (fill ×
// mean)) workers, for each fill: below 1 the members keep room for short documents.
constexpr double kOver = 1.05;
constexpr double kFills[] = {1.0, 0.9 * kOver, 0.9, 0.8, 0.7};
// The bound's packings check whether the documents left can still fit below the bound sought
// (MicroPacker::FluidOver, TokensOver) once the groups are placed, then every max(kFluidEvery,
// W / 2) documents, at that bound × (1 + kFluidMargin).
constexpr int32_t kFluidEvery = 64;
constexpr double kFluidMargin = 1e-6;

// The least compute (forward + backward per ctx.options) of `tokens` rows of `doc` holding
// `pairs` allowed pairs: their tiles at most the whole document's size (no more efficient), tile
// overheads left out, and the rows' linear layers.
// (`per_pair`: SecondsPerPair(doc.length, doc.length), for a caller that prices many row ranges
// of one document)
double LeastSeconds(const PlanContext& ctx, double per_pair, int64_t pairs, int64_t tokens) {
  const bool backward = ctx.options.include_backward;
  return static_cast<double>(pairs) * per_pair * (backward ? 1 + ctx.cost.BackwardFactor() : 1) +
         ctx.cost.TokenSeconds(tokens) * (backward ? 3 : 1);
}
double LeastSeconds(const PlanContext& ctx, const Document& doc, int64_t pairs, int64_t tokens) {
  return LeastSeconds(ctx, ctx.cost.SecondsPerPair(doc.length, doc.length), pairs, tokens);
}

// The member of a group of k holding chunk c of the n = GroupChunks(doc, k).
int64_t Member(const Document& doc, int64_t n, int64_t c, int64_t k) {
  return (PairsZigzag(doc) ? std::min(c, n - 1 - c) : c) % k;
}

// The rule's rings for one fill, or nullopt when a document longer than the cap gets no group.
// (`mean`: the mean worker's seconds) The documents costing more than kOver × the mean are a
// prefix of sizing.docs() (costliest first); those longer than the cap come after it.
std::optional<SizingRings> RuleRings(const GroupSizing& sizing, int32_t workers, int64_t cap,
                                     double mean, double fill) {
  const std::vector<SizingDoc>& docs = sizing.docs();
  SizingRings rings;
  int64_t left = workers;
  auto group = [&](int32_t i) {
    const SizingDoc& d = docs[i];
    const int64_t least = GroupSizeForCap(d.length, cap, workers);
    int64_t k =
        std::max<int64_t>(least, static_cast<int64_t>(std::ceil(d.seconds / (fill * mean) - 1e-9)));
    k = std::min<int64_t>(k, d.length);
    if (k > left) k = left;
    if (k < least) return false;  // no workers left for a document over the cap
    if (k < 2) return true;
    rings.push_back({i, static_cast<int32_t>(k)});
    left -= k;
    return true;
  };
  int32_t i = 0;
  for (; i < static_cast<int32_t>(docs.size()) && docs[i].seconds > kOver * mean; ++i) {
    if (!group(i)) return std::nullopt;
  }
  for (int32_t j : sizing.over_cap()) {
    if (j >= i && !group(j)) return std::nullopt;
  }
  return rings;
}

}  // namespace

std::vector<SizingRings> MicroRings(const PlanContext& ctx, const GroupSizing& sizing,
                                    const std::optional<GroupSizing::Solution>& exact) {
  const Topology& topology = ctx.batch.topology;
  std::vector<SizingRings> candidates;
  if (sizing.docs().empty()) return candidates;
  auto add = [&](SizingRings rings) {
    if (std::find(candidates.begin(), candidates.end(), rings) != candidates.end()) return;
    candidates.push_back(std::move(rings));
  };
  double total = 0;
  for (const SizingDoc& d : sizing.docs()) total += d.seconds;
  for (double fill : kFills) {
    std::optional<SizingRings> rings = RuleRings(sizing, topology.num_workers, TokenCap(topology),
                                                 total / topology.num_workers, fill);
    if (rings) add(*std::move(rings));
  }
  if (exact) add(exact->rings);
  return candidates;
}

std::vector<std::vector<int32_t>> MicroSizes(const PlanContext& ctx, const GroupSizing& sizing,
                                             const std::optional<GroupSizing::Solution>& exact) {
  std::vector<std::vector<int32_t>> candidates;
  for (const SizingRings& rings : MicroRings(ctx, sizing, exact)) {
    std::vector<int32_t>& sizes = candidates.emplace_back(sizing.docs().size(), 1);
    for (const auto& [i, k] : rings) sizes[i] = k;
  }
  return candidates;
}

namespace {

// A packing of `sizes` (steps 1.-2. of flexdeg_micro.h): every document whole on one worker, or
// in zigzag pairs over a group.
struct MicroPacking {
  std::vector<int32_t> owner;  // per document: its worker, or -2 - its group (none: the bound)
  std::vector<std::vector<int32_t>> groups;  // each group's members
  std::vector<double> load;                  // per worker, the estimate's
  std::vector<double> least;                 // per worker, its least compute (bound mode)
};

std::vector<double> DensestFrom(const PlanContext& ctx, const GroupSizing& sizing,
                                std::vector<double>* whole);

class MicroPacker {
 public:
  // `whole` (bound mode, else null): every document's least compute whole (WholeSeconds).
  MicroPacker(const PlanContext& ctx, const GroupSizing& sizing,
              const std::vector<double>* whole = nullptr)
      : MicroPacker(ctx, sizing, whole != nullptr, false) {
    whole_ = whole;
  }
  // Bound mode with the fluid checks (MicroLowerBoundSeconds), no owners kept: the documents'
  // least compute whole and DensestFrom computed on first need (a packing that the tokens' check
  // stops once its groups are placed needs neither).
  struct FluidBound {};
  MicroPacker(const PlanContext& ctx, const GroupSizing& sizing, FluidBound)
      : MicroPacker(ctx, sizing, true, true) {}

  // Bound mode: stops (an error) once a worker's least compute reaches `above`, or, with
  // `densest`, once the documents left cannot all be placed without one reaching it (FluidOver).
  absl::StatusOr<MicroPacking> Pack(const SizingRings& rings, double above = HUGE_VAL) {
    const std::vector<SizingDoc>& docs = sizing_.docs();
    std::vector<int32_t> group_sizes;
    int64_t grouped = 0;
    for (const auto& [i, k] : rings) {
      group_sizes.push_back(k);
      grouped += k;
    }
    if (grouped > workers_) {
      return absl::FailedPreconditionError(
          absl::StrCat("flexdeg: groups of ", grouped, " workers in all, over ", workers_));
    }
    p_.groups = PlaceGroups(group_sizes, batch_.topology);
    // (the bound's packings, with `densest`, are read for their least compute alone: no owners)
    p_.owner.assign(fluid_ ? 0 : batch_.documents.size(), -1);
    p_.load.assign(workers_, 0);
    p_.least.assign(bound_ ? workers_ : 0, 0);
    tokens_.assign(workers_, 0);
    free_.assign(workers_, cap_);
    least_ready_ = false;  // (set once the groups are placed: no walks for their chunks)
    by_room_ready_ = false;
    above_ = above;
    // 1. The grouped documents' chunks, a pair per member.
    int32_t group = 0;
    for (const auto& [i, k] : rings) {
      if (!Spread(docs[i], group++)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "flexdeg: document ", docs[i].document, " (", docs[i].length, " tokens) over ", k,
            " workers leaves one over the token budget of ", cap_));
      }
    }
    // 2. The other documents whole, costliest first, onto the least-loaded worker with room; a
    // document that fits none whole is spread over the fewest of the roomiest workers it fits.
    const bool fluid = fluid_ && above_ < HUGE_VAL;
    // (fluid) the tokens of the documents not yet placed
    double tokens_left = 0;
    if (fluid) {
      tokens_left = sizing_.total_tokens();
      for (const auto& [i, k] : rings) tokens_left -= static_cast<double>(docs[i].length);
      if (TokensOver(tokens_left)) return absl::AbortedError("flexdeg: over the bound sought");
    }
    if (fluid_) Wholes();
    for (int32_t w = 0; w < workers_; ++w) least_.Set(w, p_.load[w]);
    least_ready_ = true;
    // (fluid) the least compute of the documents not yet placed: every document's, less the
    // grouped ones', a little low for the sums' rounding (a lower `left` only stops less often)
    double left = 0;
    if (fluid) {
      left = whole_total_;
      for (const auto& [i, k] : rings) left -= (*whole_)[docs[i].document];
      left *= 1 - kFluidMargin;
    }
    const size_t every = static_cast<size_t>(std::max(kFluidEvery, workers_ / 2));
    size_t next_ring = 0;  // rings[next_ring]: the next grouped document
    for (size_t i = 0; i < docs.size(); ++i) {
      if (next_ring < rings.size() && static_cast<size_t>(rings[next_ring].first) == i) {
        ++next_ring;
        continue;
      }
      if (fluid && i % every == 0 && (FluidOver(left, densest_[i]) || TokensOver(tokens_left))) {
        return absl::AbortedError("flexdeg: over the bound sought");
      }
      if (fluid) {
        left -= (*whole_)[docs[i].document];
        tokens_left -= static_cast<double>(docs[i].length);
      }
      const int64_t length = docs[i].length;
      // The least-loaded worker if it has room, else by room (SinglesByRoom: its answer is the
      // least-loaded worker too when that has room, so from the first full one on it alone is
      // searched and kept, the least-loaded tree no more).
      int32_t w = by_room_ready_ ? -1 : least_.ArgMin();
      if (w < 0 || tokens_[w] + length > cap_) {
        if (!by_room_ready_) {
          for (int32_t v = 0; v < workers_; ++v) by_room_.Set(v, free_[v], p_.load[v]);
          by_room_ready_ = true;
        }
        w = by_room_.LeastWithRoom(length, free_, p_.load);
      }
      if (w >= 0) {
        Take(w, length, docs[i].seconds);
        if (!fluid_) p_.owner[docs[i].document] = w;
        if (bound_ && (p_.least[w] += (*whole_)[docs[i].document]) >= above_) {
          return absl::AbortedError("flexdeg: over the bound sought");
        }
      } else if (!SpreadOverRoomiest(docs[i])) {
        return absl::FailedPreconditionError(
            absl::StrCat("flexdeg: document ", docs[i].document, " (", length,
                         " tokens) fits on no workers under the token budget of ", cap_));
      }
    }
    return std::move(p_);
  }

 private:
  MicroPacker(const PlanContext& ctx, const GroupSizing& sizing, bool bound, bool fluid)
      : ctx_(ctx),
        bound_(bound),
        fluid_(fluid),
        batch_(ctx.batch),
        sizing_(sizing),
        workers_(batch_.topology.num_workers),
        cap_(TokenCap(batch_.topology)),
        least_per_token_(ctx.cost.TokenSeconds(1) * (ctx.options.include_backward ? 3 : 1)),
        least_(workers_),
        by_room_(workers_) {}

  // (fluid) whole_, densest_ and whole_total_, once.
  void Wholes() {
    if (whole_ != nullptr) return;
    densest_ = DensestFrom(ctx_, sizing_, &own_whole_);
    whole_ = &own_whole_;
    for (double seconds : own_whole_) whole_total_ += seconds;
  }

  // Whether every completion of the packing leaves a worker's least compute above above_ by the
  // tokens alone: the documents left, `tokens` in all, each carrying at least least_per_token_
  // seconds per token (its linear layers), go to the workers with room, each of which holds at
  // most its room and, to stay below the level, the level less its least compute so far over
  // least_per_token_. (Under a cap the roomy workers are light and the loaded ones full.)
  bool TokensOver(double tokens) const {
    if (!(least_per_token_ > 0) || tokens <= 0) return false;
    const double level = above_ * (1 + kFluidMargin);
    double holds = 0;
    for (int32_t w = 0; w < workers_; ++w) {
      const double headroom = level - p_.least[w];
      if (headroom > 0) {
        holds += std::min(static_cast<double>(free_[w]), headroom / least_per_token_);
      }
      if (holds >= tokens) return false;
    }
    return true;
  }

  // Whether every completion of the packing leaves a worker's least compute above above_: the
  // documents left, `left` seconds at most `densest` seconds per token, go to the workers with
  // room, each of which takes at most its room × densest and, to stay below the level, the level
  // less its least compute so far. (The level is above_ a little raised: the sums of the
  // packing's least compute round differently.)
  bool FluidOver(double left, double densest) const {
    if (left <= 0) return false;
    const double level = above_ * (1 + kFluidMargin);
    double takes = 0;
    for (int32_t w = 0; w < workers_; ++w) {
      const double headroom = level - p_.least[w];
      if (headroom > 0) takes += std::min(headroom, densest * static_cast<double>(free_[w]));
      if (takes >= left) return false;
    }
    return true;
  }

  void Take(int32_t w, int64_t length, double seconds) {
    p_.load[w] += seconds;
    tokens_[w] += length;
    free_[w] = cap_ - tokens_[w];
    if (by_room_ready_) {
      by_room_.Set(w, free_[w], p_.load[w]);
    } else if (least_ready_) {
      least_.Set(w, p_.load[w]);
    }
  }

  // The chunks of `doc` onto p_.groups[group]; false if a member goes over the cap.
  bool Spread(const SizingDoc& d, int32_t group) {
    const Document& doc = batch_.documents[d.document];
    const std::vector<int32_t>& ranks = p_.groups[group];
    const int64_t k = static_cast<int64_t>(ranks.size());
    const int64_t n = GroupChunks(doc, k);
    // Its attention in tiles of a chunk's size rather than one (less efficient).
    const int64_t chunk = doc.length / n;
    const double seconds = d.linear + (d.seconds - d.linear) *
                                          ctx_.cost.Efficiency(doc.length, doc.length) /
                                          ctx_.cost.Efficiency(chunk, chunk);
    // (bound mode) its pairs at the whole document's tile efficiency
    const double per_pair = bound_ ? ctx_.cost.SecondsPerPair(doc.length, doc.length) : 0;
    bool fits = true;
    int64_t begin = ChunkBegin(doc.length, n, 0);
    for (int64_t c = 0; c < n; ++c) {
      const int64_t end = ChunkBegin(doc.length, n, c + 1), tokens = end - begin;
      const int32_t w = ranks[Member(doc, n, c, k)];
      Take(w, tokens, seconds * static_cast<double>(tokens) / static_cast<double>(doc.length));
      fits = fits && tokens_[w] <= cap_;
      if (bound_) {
        p_.least[w] +=
            LeastSeconds(ctx_, per_pair, AllowedPairs(doc.mask, begin, end, 0, doc.length), tokens);
      }
      begin = end;
    }
    if (!fluid_) p_.owner[d.document] = -2 - group;
    return fits;
  }

  // `d` over the fewest workers, the roomiest, whose members' shares fit; false if none do.
  bool SpreadOverRoomiest(const SizingDoc& d) {
    std::vector<int32_t> order(workers_);
    for (int32_t w = 0; w < workers_; ++w) order[w] = w;
    // Roomiest first (ties: the lowest rank), a total order: sorted only as far as the search
    // reads it (the fewest workers are few), each extension the next of the same order.
    auto roomier = [&](int32_t a, int32_t b) {
      return free_[a] > free_[b] || (free_[a] == free_[b] && a < b);
    };
    int64_t sorted = 0;
    for (int64_t r = 2; r <= std::min<int64_t>(workers_, d.length); ++r) {
      if (r > sorted) {
        const int64_t more = std::min<int64_t>(workers_, std::max<int64_t>(2 * sorted, 32));
        std::partial_sort(order.begin() + sorted, order.begin() + more, order.end(), roomier);
        sorted = more;
      }
      if (free_[order[r - 1]] < MemberTokens(d.length, r)) continue;
      order.resize(r);
      std::sort(order.begin(), order.end());
      p_.groups.push_back(std::move(order));
      return Spread(d, static_cast<int32_t>(p_.groups.size()) - 1);
    }
    return false;
  }

  const PlanContext& ctx_;
  bool bound_;  // least compute kept (p_.least)
  bool fluid_;  // the fluid checks, no owners
  const std::vector<double>* whole_ = nullptr;
  std::vector<double> own_whole_, densest_;  // (fluid) Wholes()
  const Batch& batch_;
  const GroupSizing& sizing_;
  int32_t workers_;
  int64_t cap_;
  double least_per_token_;  // the least compute of a token: its linear layers
  MinTree least_;
  SinglesByRoom by_room_;
  bool least_ready_ = false;  // least_ holds every worker's load
  bool by_room_ready_ = false;
  double above_ = HUGE_VAL;
  double whole_total_ = 0;  // (fluid) the sum of *whole_
  MicroPacking p_;
  std::vector<int64_t> tokens_, free_;
};

// Per document of sizing.docs() from i on, the most least compute per token any of its tokens
// can carry (a query against every key of its document: at most L pairs at the whole document's
// efficiency, and its linear layers), for MicroPacker::FluidOver; and, in `whole`,
// MicroWholeSeconds (one pass: each document's SecondsPerPair once).
std::vector<double> DensestFrom(const PlanContext& ctx, const GroupSizing& sizing,
                                std::vector<double>* whole) {
  const std::vector<SizingDoc>& docs = sizing.docs();
  const bool backward = ctx.options.include_backward;
  const double attention_factor = backward ? 1 + ctx.cost.BackwardFactor() : 1;
  const double token = ctx.cost.TokenSeconds(1) * (backward ? 3 : 1);
  whole->resize(ctx.batch.documents.size());
  std::vector<double> densest(docs.size());
  double most = 0;
  for (size_t i = docs.size(); i-- > 0;) {
    const Document& doc = ctx.batch.documents[docs[i].document];
    const double per_pair = ctx.cost.SecondsPerPair(doc.length, doc.length);
    // (LeastSeconds's sums, term for term)
    most = std::max(most, static_cast<double>(doc.length) * per_pair * attention_factor + token);
    densest[i] = most;
    (*whole)[docs[i].document] =
        static_cast<double>(AllowedPairs(doc.mask, 0, doc.length, 0, doc.length)) * per_pair *
            attention_factor +
        ctx.cost.TokenSeconds(doc.length) * (backward ? 3 : 1);
  }
  return densest;
}

}  // namespace

std::vector<double> MicroWholeSeconds(const PlanContext& ctx) {
  const Batch& batch = ctx.batch;
  std::vector<double> whole(batch.documents.size());
  for (size_t d = 0; d < batch.documents.size(); ++d) {
    const Document& doc = batch.documents[d];
    whole[d] =
        LeastSeconds(ctx, doc, AllowedPairs(doc.mask, 0, doc.length, 0, doc.length), doc.length);
  }
  return whole;
}

absl::StatusOr<Layout> MicroBatchedLayout(const PlanContext& ctx, const GroupSizing& sizing,
                                          const std::vector<int32_t>& sizes, double* estimate,
                                          const std::vector<double>* whole, double* bound) {
  const Batch& batch = ctx.batch;
  // (the same packing in bound mode: its least compute per worker only read, never a choice)
  absl::StatusOr<MicroPacking> packing =
      MicroPacker(ctx, sizing, bound != nullptr ? whole : nullptr).Pack(RingsOf(sizes));
  if (!packing.ok()) return packing.status();
  *estimate = *std::max_element(packing->load.begin(), packing->load.end());
  if (bound != nullptr) *bound = *std::max_element(packing->least.begin(), packing->least.end());
  // 3. The blocks, by (document, begin); a causal document's middle pair is one block.
  Layout layout;
  layout.kind = Layout::Kind::kDirect;
  layout.strategy = "flexdeg";
  for (size_t d = 0; d < batch.documents.size(); ++d) {
    const Document& doc = batch.documents[d];
    const int32_t doc_id = static_cast<int32_t>(d);
    const int32_t owner = packing->owner[d];
    if (owner >= 0) {
      layout.blocks.push_back({doc_id, 0, doc.length, owner});
      continue;
    }
    const std::vector<int32_t>& ranks = packing->groups[-2 - owner];
    const int64_t k = static_cast<int64_t>(ranks.size());
    const int64_t n = GroupChunks(doc, k);
    for (int64_t c = 0; c < n; ++c) {
      const int32_t w = ranks[Member(doc, n, c, k)];
      const int64_t end = ChunkBegin(doc.length, n, c + 1);
      if (c > 0 && doc.mask.kind == MaskKind::kCausal && layout.blocks.back().owner == w) {
        layout.blocks.back().end = end;
        continue;
      }
      layout.blocks.push_back({doc_id, ChunkBegin(doc.length, n, c), end, w});
    }
  }
  for (const Block& b : layout.blocks) layout.block_size = std::max(layout.block_size, b.tokens());
  return layout;
}

double MicroLowerBoundSeconds(const PlanContext& ctx, const GroupSizing& sizing,
                              const std::optional<GroupSizing::Solution>& exact, double above) {
  // (a worker's least compute only grows as the packing goes: once it reaches the least so far,
  // the candidate cannot lower it, and its packing stops)
  double least = above;
  MicroPacker packer(ctx, sizing, MicroPacker::FluidBound());
  // (the exact sizing's and the smallest fills' first: at W = 1024 one of them is the least, and
  // the others' packings then stop sooner)
  std::vector<SizingRings> all = MicroRings(ctx, sizing, exact);
  std::reverse(all.begin(), all.end());
  for (const SizingRings& rings : all) {
    absl::StatusOr<MicroPacking> packing = packer.Pack(rings, least);
    if (!packing.ok()) continue;  // no plan of these sizes, or not below `least`
    least = std::min(least, *std::max_element(packing->least.begin(), packing->least.end()));
  }
  return least;
}

}  // namespace fcp
