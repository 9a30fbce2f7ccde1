// METIS (libmetis), loaded on first use into a dynamic-linker namespace of its own (dlmopen with
// LM_ID_NEWLM), where it has its own copy of the C library.
//
// Why: METIS draws its random numbers from the C library's rand()/srand() (libmetis imports both;
// its GKlib is built without its own generator), and glibc keeps one rand() state per C library
// instance. Linked normally, METIS would share that state with every other thread of the process
// that calls rand() (gRPC's core does, in fcp-coordinator), which shifts METIS's sequence and
// changes a dcp plan without changing its plan id. In its own namespace, METIS's rand() and srand()
// are its namespace's, called by METIS alone (its calls are serialised, graph_partition.cc), and
// METIS seeds them (options[METIS_OPTION_SEED]) at the start of every partitioning: a dcp plan is
// the same in every process, whatever other threads draw, and no program's rand() is replaced
// (a program that links fcp keeps the C library's own rand(); so does a host of libfcp.so).
//
// Debian ships libmetis only as a shared library (libmetis5, no libmetis.a), so a private,
// renamed static copy is not available; dlmopen needs nothing but the shared library at run time.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_METIS_LIBRARY_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_METIS_LIBRARY_H_

#include <metis.h>

#include "absl/status/statusor.h"

namespace fcp {

// The METIS entry points dcp uses, resolved in METIS's own namespace.
struct MetisLibrary {
  decltype(&METIS_SetDefaultOptions) set_default_options = nullptr;
  decltype(&METIS_PartGraphRecursive) part_graph_recursive = nullptr;
  // The rand() that METIS calls: its namespace's C library's, not the process's.
  int (*rand)() = nullptr;
};

// The process's one MetisLibrary, loaded on the first call (thread-safe), or Unavailable naming
// the library and the loader's error (libmetis5 not installed).
absl::StatusOr<const MetisLibrary*> LoadMetis();

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_METIS_LIBRARY_H_
