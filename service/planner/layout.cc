#include "service/planner/layout.h"

namespace fcp {

std::vector<int64_t> SplitEvenly(int64_t length, int64_t block_size) {
  const int64_t pieces = (length + block_size - 1) / block_size;
  std::vector<int64_t> bounds(pieces + 1);
  for (int64_t i = 0; i <= pieces; ++i) bounds[i] = ChunkBegin(length, pieces, i);
  return bounds;
}

}  // namespace fcp
