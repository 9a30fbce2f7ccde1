// Internal to fcp_kernels_cuda: the host half of a launch, without any CUDA call. Checks a tile
// list (attention_cuda.h's contracts), groups its tiles by the output block they write and cuts
// each block into work items, heaviest first (the grid's first blocks take the longest work, so
// the tail of a launch is short). attention_cuda.cc copies the tables to the device;
// attention_cuda_emulation_test.cc hands them, in host memory, to the emulated kernels.
#ifndef FCP_KERNELS_ATTENTION_CUDA_TABLES_H_
#define FCP_KERNELS_ATTENTION_CUDA_TABLES_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/attention.h"
#include "kernels/attention_cuda_launch.h"

namespace fcp {
namespace kernels {
namespace cuda_internal {

template <typename Tile>
struct HostTables {
  std::vector<Tile> tiles;     // the non-empty tiles, in list order
  std::vector<int32_t> index;  // their index in the caller's list (for messages)
  std::vector<int32_t> order;  // tiles of group 0, then of group 1, ... (each in list order)
  std::vector<int32_t> begin;  // group g: order[begin[g] .. begin[g+1])
  std::vector<WorkItem> items;

  // The tables as LaunchTables, for memory laid out as these vectors (host: the vectors).
  LaunchTables<Tile> HostView() const {
    return {tiles.data(), order.data(), begin.data(), items.data()};
  }
};

// InvalidArgument unless q_heads is a positive multiple of kv_heads (≤ 65535, the grid's y) and
// head_dim has kernels.
absl::Status CheckShape(const AttentionShape& shape);

// Groups by o (forward) or dk (backward); work items of kForwardRows query rows or
// BackwardRows(dtype) key rows that reach at least one allowed pair.
absl::StatusOr<HostTables<ForwardTile>> ForwardTables(const AttentionShape& shape, DType dtype,
                                                      const std::vector<ForwardTile>& tiles);
absl::StatusOr<HostTables<BackwardTile>> BackwardTables(const AttentionShape& shape, DType dtype,
                                                        const std::vector<BackwardTile>& tiles);

// The separate dQ pass of the v2 backward (CudaDqMode::kSeparate): the same tiles grouped by dq
// (tiles writing one dq block must share q, d_o, lse, delta, q_rows and q_begin), work items of
// kForwardRows query rows that reach an allowed key.
absl::StatusOr<HostTables<BackwardTile>> BackwardDqTables(const AttentionShape& shape,
                                                          const std::vector<BackwardTile>& tiles);

}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp

#endif  // FCP_KERNELS_ATTENTION_CUDA_TABLES_H_
