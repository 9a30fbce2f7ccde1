#include "worker/executor/row_exchange.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/dtype_convert.h"
#include "service/planner/token_dispatch.h"

namespace fcp {
namespace {

// Copies rows `rows[i]` of `src` to row i of `dst`.
void PackRows(const void* src, const std::vector<int64_t>& rows, size_t row_bytes, char* dst) {
  const char* s = static_cast<const char*>(src);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(dst + i * row_bytes, s + rows[i] * row_bytes, row_bytes);
  }
}

// Row i of `src` to row rows[i] of `dst`.
void UnpackRows(const char* src, const std::vector<int64_t>& rows, size_t row_bytes, void* dst) {
  char* d = static_cast<char*>(dst);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(d + rows[i] * row_bytes, src + i * row_bytes, row_bytes);
  }
}

// Sends `out[p]` to every peer p and receives `in[p]` from it, under `tag`.
absl::Status AllToAll(Transport& transport, uint64_t tag, absl::string_view what,
                      std::vector<std::vector<char>>& out, std::vector<std::vector<char>>& in) {
  const int32_t rank = transport.rank();
  std::vector<SendOp> sends;
  std::vector<RecvOp> recvs;
  for (int32_t p = 0; p < transport.world_size(); ++p) {
    if (p == rank) continue;
    sends.push_back({p, {{out[p].data(), out[p].size()}}});
    recvs.push_back({p, {{in[p].data(), in[p].size()}}});
  }
  if (sends.empty()) return absl::OkStatus();
  absl::Status status = transport.Exchange(tag, std::move(sends), std::move(recvs));
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(what, " (rank ", rank, "): ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status GatherRows(Transport& transport, const Plan& plan, uint64_t tag, size_t row_bytes,
                        const void* local, void* global) {
  const int32_t rank = transport.rank(), world = transport.world_size();
  ASSIGN_OR_RETURN(std::vector<int64_t> canonical, CanonicalToLocal(plan, rank));
  std::vector<char> mine(canonical.size() * row_bytes);
  PackRows(local, canonical, row_bytes, mine.data());
  std::vector<std::vector<int64_t>> owned(world);
  std::vector<std::vector<char>> out(world), in(world);
  for (int32_t p = 0; p < world; ++p) {
    owned[p] = OwnedTokens(plan, p);
    if (p == rank) continue;
    out[p] = mine;
    in[p].resize(owned[p].size() * row_bytes);
  }
  RETURN_IF_ERROR(AllToAll(transport, tag, "gather_rows", out, in));
  for (int32_t p = 0; p < world; ++p) {
    UnpackRows(p == rank ? mine.data() : in[p].data(), owned[p], row_bytes, global);
  }
  return absl::OkStatus();
}

absl::Status ScatterAddRows(Transport& transport, const Plan& plan, uint64_t tag,
                            kernels::DType dtype, int64_t row_elements, const void* global,
                            void* local) {
  const int32_t rank = transport.rank(), world = transport.world_size();
  const size_t row_bytes = row_elements * kernels::DTypeBytes(dtype);
  ASSIGN_OR_RETURN(std::vector<int64_t> canonical, CanonicalToLocal(plan, rank));
  const std::vector<int64_t> mine = OwnedTokens(plan, rank);
  std::vector<std::vector<char>> out(world), in(world);
  for (int32_t p = 0; p < world; ++p) {
    if (p == rank) continue;
    const std::vector<int64_t> theirs = OwnedTokens(plan, p);
    out[p].resize(theirs.size() * row_bytes);
    PackRows(global, theirs, row_bytes, out[p].data());
    in[p].resize(mine.size() * row_bytes);
  }
  in[rank].resize(mine.size() * row_bytes);
  PackRows(global, mine, row_bytes, in[rank].data());
  RETURN_IF_ERROR(AllToAll(transport, tag, "scatter_add_rows", out, in));
  const int64_t n = static_cast<int64_t>(mine.size()) * row_elements;
  std::vector<float> sum(n, 0.0f), part(n);
  for (int32_t p = 0; p < world; ++p) {
    kernels::ConvertToFloat(in[p].data(), dtype, part.data(), n);
    for (int64_t i = 0; i < n; ++i) sum[i] += part[i];
  }
  std::vector<char> rounded(n * kernels::DTypeBytes(dtype));
  kernels::ConvertFromFloat(sum.data(), dtype, rounded.data(), n);
  UnpackRows(rounded.data(), canonical, row_bytes, local);
  return absl::OkStatus();
}

}  // namespace fcp
