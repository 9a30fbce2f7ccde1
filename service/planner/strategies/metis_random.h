// METIS draws its random numbers from the C library's rand()/srand() (libmetis imports both; its
// GKlib is built without its own generator). glibc keeps one rand() state for the whole process,
// so any other thread calling rand() while METIS runs — gRPC's core does, in fcp-coordinator —
// shifts METIS's sequence and changes the dcp plan without changing its plan id: a coordinator and
// a worker's local fallback could then execute different plans under one id.
//
// The rand() and srand() defined in graph_partition.cc take the C library's place in every program
// linked with fcp_planner (the dynamic linker binds libmetis's imports to the executable's
// definitions first). They keep glibc's own generator (random_r, TYPE_3, the state glibc's rand()
// starts from), one state per thread: METIS, seeded by srand() on the planning thread, sees exactly
// the sequence it would see alone in the process, whatever other threads draw. A program that never
// shares rand() between threads sees no difference.
//
// Not covered: libfcp.so (the C API for ctypes and other languages) hides every symbol but fcp_*,
// so inside a host process METIS uses the host's rand(); dcp plans made there are deterministic
// only while no other thread of the host calls rand() during planning.
#ifndef FCP_SERVICE_PLANNER_STRATEGIES_METIS_RANDOM_H_
#define FCP_SERVICE_PLANNER_STRATEGIES_METIS_RANDOM_H_

namespace fcp {

// Whether the rand() that shared libraries (libmetis) call is this thread-private one.
bool MetisRandomIsPrivate();

}  // namespace fcp

#endif  // FCP_SERVICE_PLANNER_STRATEGIES_METIS_RANDOM_H_
