#include "service/planner/timeline.h"

#include <algorithm>
#include <utility>

namespace fcp {

RoundCompute::RoundCompute(int32_t workers, int32_t rounds)
    : workers_(workers),
      rounds_(rounds),
      row_first_(workers + 1),
      round_(static_cast<size_t>(workers) * (rounds + 1)),
      fwd_(round_.size(), 0),
      bwd_(round_.size(), 0) {
  for (int32_t w = 0; w <= workers; ++w) row_first_[w] = w * (rounds + 1);
  for (size_t i = 0; i < round_.size(); ++i) round_[i] = static_cast<int32_t>(i % (rounds + 1));
}

namespace {

// Counting sort by round (stable; rounds are small integers).
void SortByRound(std::vector<TimedTransfer>& transfers, int32_t rounds) {
  const auto by_round = [](const TimedTransfer& a, const TimedTransfer& b) {
    return a.round < b.round;
  };
  if (std::is_sorted(transfers.begin(), transfers.end(), by_round)) return;
  std::vector<size_t> start(rounds + 2, 0);
  for (const TimedTransfer& t : transfers) ++start[t.round + 1];
  for (int32_t r = 1; r <= rounds + 1; ++r) start[r] += start[r - 1];
  std::vector<TimedTransfer> sorted(transfers.size());
  for (const TimedTransfer& t : transfers) sorted[start[t.round]++] = t;
  transfers.swap(sorted);
}

// Each transfer's time on its link (computed once: the overlapped and the serial parts use it).
// `node[w]`: Topology::NodeOf(w).
std::vector<double> TransferSeconds(const CostModel& cost, const std::vector<int32_t>& node,
                                    const std::vector<TimedTransfer>& transfers) {
  std::vector<double> seconds(transfers.size());
  for (size_t i = 0; i < transfers.size(); ++i) {
    const TimedTransfer& t = transfers[i];
    seconds[i] = cost.LinkTransferSeconds(node[t.src] == node[t.dst], t.bytes);
  }
  return seconds;
}

// Whether `b` is `a` with every transfer reversed (same round and bytes).
bool Mirrors(const std::vector<TimedTransfer>& a, const std::vector<TimedTransfer>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].round != b[i].round || a[i].src != b[i].dst || a[i].dst != b[i].src ||
        a[i].bytes != b[i].bytes) {
      return false;
    }
  }
  return true;
}

// Adds the part of each transfer's time that does not overlap compute to both of its ranks.
void AddSerialSeconds(const CostModel& cost, const std::vector<TimedTransfer>& transfers,
                      const std::vector<double>& transfer_seconds, std::vector<double>& seconds) {
  const double serial = 1 - cost.params().transfer_overlap;
  if (serial <= 0) return;
  for (size_t i = 0; i < transfers.size(); ++i) {
    const double s = serial * transfer_seconds[i];
    seconds[transfers[i].src] += s;
    seconds[transfers[i].dst] += s;
  }
}

// Forward: per worker, when its last tile is done and its sends have left.
// (The part of a transfer's time that overlaps compute keeps its link busy.)
// `first_at[i]`: the receiver's first compute entry of kv[i]'s round or later (its End if none).
std::vector<double> Forward(const CostModel& cost, const RoundCompute& compute,
                            const std::vector<TimedTransfer>& kv,
                            const std::vector<double>& transfer_seconds,
                            std::vector<size_t>& first_at) {
  const double overlap = cost.params().transfer_overlap;
  const int32_t workers = compute.workers(), rounds = compute.rounds();
  std::vector<double> link_free(workers, 0), next_free(workers, 0);
  // arrival[i]: when compute entry i's round's data has arrived at its worker (0 if none).
  // next[w]: w's first entry not before the current round (rounds only increase).
  std::vector<double> arrival(compute.entries(), 0);
  std::vector<size_t> next(workers);
  for (int32_t w = 0; w < workers; ++w) next[w] = compute.Begin(w);
  first_at.resize(kv.size());
  size_t i = 0;
  for (int32_t r = 1; r <= rounds; ++r) {
    next_free = link_free;
    for (; i < kv.size() && kv[i].round == r; ++i) {
      const TimedTransfer& t = kv[i];
      const double start = std::max(link_free[t.src], link_free[t.dst]);
      const double end = start + overlap * transfer_seconds[i];
      next_free[t.src] = std::max(next_free[t.src], end);
      next_free[t.dst] = std::max(next_free[t.dst], end);
      size_t& e = next[t.dst];
      const size_t last = compute.End(t.dst);
      while (e < last && compute.RoundAt(e) < r) ++e;
      first_at[i] = e;
      if (e < last && compute.RoundAt(e) == r) arrival[e] = std::max(arrival[e], end);
    }
    link_free.swap(next_free);
  }
  std::vector<double> done(workers, 0);
  for (int32_t w = 0; w < workers; ++w) {
    double t = 0;
    for (size_t e = compute.Begin(w); e < compute.End(w); ++e) {
      const double c = compute.FwdAt(e);
      if (compute.RoundAt(e) == 0) {
        t = c;
      } else if (c > 0) {
        t = std::max(t, arrival[e]) + c;
      }
    }
    done[w] = std::max(t, link_free[w]);
  }
  return done;
}

// A phase of rounds after (or before) a pass: worker w enters it at ready[w]; each round's
// transfer starts once both ranks are done with the previous round's; ready[w] becomes when w's
// last transfer of the phase is done. `transfers` sorted by round.
void Phase(const CostModel& cost, const std::vector<TimedTransfer>& transfers,
           const std::vector<double>& transfer_seconds, std::vector<double>& ready) {
  const double overlap = cost.params().transfer_overlap;
  std::vector<double> next = ready;
  for (size_t i = 0; i < transfers.size();) {
    const int32_t round = transfers[i].round;
    for (; i < transfers.size() && transfers[i].round == round; ++i) {
      const TimedTransfer& t = transfers[i];
      const double end = std::max(ready[t.src], ready[t.dst]) + overlap * transfer_seconds[i];
      next[t.src] = std::max(next[t.src], end);
      next[t.dst] = std::max(next[t.dst], end);
    }
    ready = next;
  }
}

// `start[w]`: when w's backward tiles may start. kReversed: each of `dkv` goes from its dst to its
// src (the forward's list, for partials that go back along its edges), and `kv_first_at` is
// Forward's first_at for it (the sender's entry from which its partials' round is recomputed).
template <bool kReversed>
std::vector<double> Backward(const CostModel& cost, const RoundCompute& compute,
                             const std::vector<TimedTransfer>& dkv,
                             const std::vector<double>& transfer_seconds,
                             const std::vector<double>& start,
                             const std::vector<size_t>& kv_first_at) {
  const double overlap = cost.params().transfer_overlap;
  const int32_t workers = compute.workers(), rounds = compute.rounds();
  // ready[i]: when w has recomputed the rounds from the last down to entry i's (it may then send
  // that round's partials); rounds w has no entry for add nothing.
  UninitialisedVector<double> ready(compute.entries());
  std::vector<double> compute_done(workers, 0);
  for (int32_t w = 0; w < workers; ++w) {
    const size_t begin = compute.Begin(w), end = compute.End(w);
    const bool local = begin < end && compute.RoundAt(begin) == 0;
    double t = start[w];
    for (size_t e = end; e-- > begin + (local ? 1 : 0);) {
      t += compute.BwdAt(e);
      ready[e] = t;
    }
    compute_done[w] = local ? t + compute.BwdAt(begin) : t;
  }
  std::vector<double> link_free(workers, 0), next_free(workers, 0);
  // first[w]: w's first entry of a round >= the current one (rounds only decrease).
  std::vector<size_t> first(kReversed ? 0 : workers);
  for (int32_t w = 0; w < workers && !kReversed; ++w) first[w] = compute.End(w);
  // dkv is sorted by increasing round; walk it backwards, one round at a time.
  size_t end = dkv.size();
  for (int32_t r = rounds; r >= 1; --r) {
    size_t begin = end;
    while (begin > 0 && dkv[begin - 1].round == r) --begin;
    next_free = link_free;
    for (size_t i = begin; i < end; ++i) {
      const int32_t src = kReversed ? dkv[i].dst : dkv[i].src;
      const int32_t dst = kReversed ? dkv[i].src : dkv[i].dst;
      size_t e;
      if (kReversed) {
        e = kv_first_at[i];
      } else {
        size_t& first_src = first[src];
        const size_t row = compute.Begin(src);
        while (first_src > row && compute.RoundAt(first_src - 1) >= r) --first_src;
        e = first_src;
      }
      const double recomputed = e < compute.End(src) ? ready[e] : start[src];
      const double leave = std::max({link_free[src], link_free[dst], recomputed});
      const double finish = leave + overlap * transfer_seconds[i];
      next_free[src] = std::max(next_free[src], finish);
      next_free[dst] = std::max(next_free[dst], finish);
    }
    link_free.swap(next_free);
    end = begin;
  }
  std::vector<double> done(workers);
  for (int32_t w = 0; w < workers; ++w) done[w] = std::max(compute_done[w], link_free[w]);
  return done;
}

// `dkv` null: the forward's transfers reversed.
Timeline Simulate(const CostModel& cost, const RoundCompute& compute, std::vector<TimedTransfer> kv,
                  std::vector<TimedTransfer>* dkv, const std::vector<double>& extra_seconds,
                  PhaseTransfers phases) {
  SortByRound(kv, compute.rounds());
  if (dkv != nullptr) SortByRound(*dkv, compute.rounds());
  for (auto* list : {&phases.out, &phases.d_o, &phases.dq}) SortByRound(*list, compute.rounds());
  std::vector<int32_t> node(compute.workers());
  for (int32_t w = 0; w < compute.workers(); ++w) node[w] = cost.topology().NodeOf(w);
  const std::vector<double> kv_seconds = TransferSeconds(cost, node, kv);
  // The dK/dV partials usually go back along the forward's edges (a direct schedule's do, each
  // with its KV's bytes): their times are then the same (a link's rate is the same both ways).
  const bool mirrored = dkv == nullptr || Mirrors(kv, *dkv);
  const std::vector<double> dkv_seconds =
      mirrored ? std::vector<double>() : TransferSeconds(cost, node, *dkv);
  const std::vector<double> out_seconds = TransferSeconds(cost, node, phases.out);
  const std::vector<double> d_o_seconds = TransferSeconds(cost, node, phases.d_o);
  const std::vector<double> dq_seconds = TransferSeconds(cost, node, phases.dq);
  Timeline out;
  std::vector<size_t> kv_first_at;
  out.fwd_seconds = Forward(cost, compute, kv, kv_seconds, kv_first_at);
  Phase(cost, phases.out, out_seconds, out.fwd_seconds);
  std::vector<double> start(compute.workers(), 0);
  Phase(cost, phases.d_o, d_o_seconds, start);
  out.bwd_seconds = mirrored ? Backward<true>(cost, compute, kv, kv_seconds, start, kv_first_at)
                             : Backward<false>(cost, compute, *dkv, dkv_seconds, start, {});
  Phase(cost, phases.dq, dq_seconds, out.bwd_seconds);
  AddSerialSeconds(cost, kv, kv_seconds, out.fwd_seconds);
  AddSerialSeconds(cost, phases.out, out_seconds, out.fwd_seconds);
  // (Both ranks of a transfer get its serial part: a reversed list adds the same.)
  if (mirrored) {
    AddSerialSeconds(cost, kv, kv_seconds, out.bwd_seconds);
  } else {
    AddSerialSeconds(cost, *dkv, dkv_seconds, out.bwd_seconds);
  }
  AddSerialSeconds(cost, phases.d_o, d_o_seconds, out.bwd_seconds);
  AddSerialSeconds(cost, phases.dq, dq_seconds, out.bwd_seconds);
  for (size_t w = 0; w < extra_seconds.size() && w < out.fwd_seconds.size(); ++w) {
    out.fwd_seconds[w] += extra_seconds[w];
    out.bwd_seconds[w] += 2 * extra_seconds[w];
  }
  return out;
}

}  // namespace

Timeline SimulateTimeline(const CostModel& cost, const RoundCompute& compute,
                          std::vector<TimedTransfer> kv, std::vector<TimedTransfer> dkv,
                          const std::vector<double>& extra_seconds, PhaseTransfers phases) {
  return Simulate(cost, compute, std::move(kv), &dkv, extra_seconds, std::move(phases));
}

Timeline SimulateMirroredTimeline(const CostModel& cost, const RoundCompute& compute,
                                  std::vector<TimedTransfer> kv,
                                  const std::vector<double>& extra_seconds, PhaseTransfers phases) {
  return Simulate(cost, compute, std::move(kv), nullptr, extra_seconds, std::move(phases));
}

}  // namespace fcp
