// dcp, the optional strategy (library fcp_planner_dcp): DCP's hypergraph partitioning, METIS's
// graph partition refined with exact connectivity − 1 moves (dcp.cc, graph_partition.h,
// hypergraph.h; METIS loaded apart from the program: metis_library.h). The planning
// core (fcp_planner) does not offer it by itself; a program that does links fcp_planner_dcp and
// calls RegisterDcpPlanner() before planning (fcp-coordinator, fcp, fcp-worker, libfcp.so and the
// benchmarks do, first thing). Plan ids do not say which strategies a program offers: `auto`
// chooses among the registered ones, so every program that plans for the same job (coordinator,
// workers' local fallback) must offer the same set, as fcp's programs do.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_DCP_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_DCP_H_

#include <memory>

#include "service/planner/planner.h"

namespace fcp {

std::unique_ptr<Planner> NewDcpPlanner();

// RegisterStrategy(NewDcpPlanner): "dcp" joins ListStrategies() and NewPlanner(). Idempotent.
inline void RegisterDcpPlanner() { RegisterStrategy(NewDcpPlanner); }

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_DCP_H_
