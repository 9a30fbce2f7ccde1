// Round scheduling: puts point-to-point transfers into rounds so that in each round every worker
// sends to at most one peer and receives from at most one peer (a matching), with as few rounds as
// possible. Transfers are edges src → dst of a bipartite graph (senders | receivers); a proper edge
// colouring with Δ colours (König's theorem; Δ = the largest number of transfers at one worker in
// one direction) gives Δ rounds. Built by the alternating-path method: O(E·W) worst case.
//
// NICs: every GPU has its own (Topology), so a matching also puts at most one outgoing and one
// incoming inter-node transfer on each NIC per round; links are never shared within a round.
#ifndef FCP_SERVICE_PLANNER_ROUND_SCHEDULER_H_
#define FCP_SERVICE_PLANNER_ROUND_SCHEDULER_H_

#include <cstdint>
#include <vector>

namespace fcp {

struct Edge {
  int32_t src = 0;
  int32_t dst = 0;
  int64_t bytes = 0;
};

// Returns the round (>= 1) of each edge, in edge order. No two edges share a (src, round) or a
// (dst, round). Edges are coloured heaviest first, so the largest transfers land in early rounds
// and their data is in place first. At most one edge per (src, dst) pair; src != dst.
std::vector<int32_t> ScheduleRounds(const std::vector<Edge>& edges, int32_t num_workers);

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_ROUND_SCHEDULER_H_
