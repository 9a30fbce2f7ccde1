#include "service/planner/timeline.h"

#include <algorithm>

namespace fcp {
namespace {

void SortByRound(std::vector<TimedTransfer>& transfers) {
  std::stable_sort(transfers.begin(), transfers.end(),
                   [](const TimedTransfer& a, const TimedTransfer& b) { return a.round < b.round; });
}

// Forward: returns per worker the time each round's data has arrived ([w][r], 0 if none).
std::vector<double> Forward(const CostModel& cost, int32_t rounds, const RoundCompute& compute,
                            const std::vector<TimedTransfer>& kv) {
  const size_t workers = compute.fwd.size();
  std::vector<double> link_free(workers, 0), next_free(workers, 0);
  std::vector<std::vector<double>> arrival(workers, std::vector<double>(rounds + 1, 0));
  size_t i = 0;
  for (int32_t r = 1; r <= rounds; ++r) {
    next_free = link_free;
    for (; i < kv.size() && kv[i].round == r; ++i) {
      const TimedTransfer& t = kv[i];
      const double start = std::max(link_free[t.src], link_free[t.dst]);
      const double end = start + cost.TransferSeconds(t.src, t.dst, t.bytes);
      next_free[t.src] = std::max(next_free[t.src], end);
      next_free[t.dst] = std::max(next_free[t.dst], end);
      arrival[t.dst][r] = std::max(arrival[t.dst][r], end);
    }
    link_free.swap(next_free);
  }
  std::vector<double> done(workers, 0);
  for (size_t w = 0; w < workers; ++w) {
    const std::vector<double>& c = compute.fwd[w];
    double t = c.empty() ? 0 : c[0];
    for (int32_t r = 1; r <= rounds && r < static_cast<int32_t>(c.size()); ++r) {
      if (c[r] > 0) t = std::max(t, arrival[w][r]) + c[r];
    }
    done[w] = std::max(t, link_free[w]);
  }
  return done;
}

std::vector<double> Backward(const CostModel& cost, int32_t rounds, const RoundCompute& compute,
                             const std::vector<TimedTransfer>& dkv) {
  const size_t workers = compute.bwd.size();
  // ready[w][r]: when w has recomputed rounds rounds..r (it may then send round r's partials).
  std::vector<std::vector<double>> ready(workers, std::vector<double>(rounds + 2, 0));
  std::vector<double> compute_done(workers, 0);
  for (size_t w = 0; w < workers; ++w) {
    const std::vector<double>& c = compute.bwd[w];
    double t = 0;
    for (int32_t r = rounds; r >= 1; --r) {
      if (r < static_cast<int32_t>(c.size())) t += c[r];
      ready[w][r] = t;
    }
    compute_done[w] = t + (c.empty() ? 0 : c[0]);
  }
  std::vector<double> link_free(workers, 0), next_free(workers, 0);
  // dkv is sorted by increasing round; walk it backwards, one round at a time.
  size_t end = dkv.size();
  for (int32_t r = rounds; r >= 1; --r) {
    size_t begin = end;
    while (begin > 0 && dkv[begin - 1].round == r) --begin;
    next_free = link_free;
    for (size_t i = begin; i < end; ++i) {
      const TimedTransfer& t = dkv[i];
      const double start = std::max({link_free[t.src], link_free[t.dst], ready[t.src][r]});
      const double finish = start + cost.TransferSeconds(t.src, t.dst, t.bytes);
      next_free[t.src] = std::max(next_free[t.src], finish);
      next_free[t.dst] = std::max(next_free[t.dst], finish);
    }
    link_free.swap(next_free);
    end = begin;
  }
  std::vector<double> done(workers);
  for (size_t w = 0; w < workers; ++w) done[w] = std::max(compute_done[w], link_free[w]);
  return done;
}

}  // namespace

Timeline SimulateTimeline(const CostModel& cost, int32_t rounds, const RoundCompute& compute,
                          std::vector<TimedTransfer> kv, std::vector<TimedTransfer> dkv,
                          const std::vector<double>& extra_seconds) {
  SortByRound(kv);
  SortByRound(dkv);
  Timeline out;
  out.fwd_seconds = Forward(cost, rounds, compute, kv);
  out.bwd_seconds = Backward(cost, rounds, compute, dkv);
  for (size_t w = 0; w < extra_seconds.size() && w < out.fwd_seconds.size(); ++w) {
    out.fwd_seconds[w] += extra_seconds[w];
    out.bwd_seconds[w] += 2 * extra_seconds[w];
  }
  return out;
}

}  // namespace fcp
