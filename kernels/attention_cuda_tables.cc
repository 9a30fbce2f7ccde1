#include "kernels/attention_cuda_tables.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace fcp {
namespace kernels {
namespace cuda_internal {
namespace {

constexpr uintptr_t kInputAlignment = 16;

absl::Status CheckInput(const void* p, size_t index, const char* field) {
  if (p == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("tiles[", index, "].", field, ": null"));
  }
  if (reinterpret_cast<uintptr_t>(p) % kInputAlignment != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tiles[", index, "].", field, ": not 16-byte aligned"));
  }
  return absl::OkStatus();
}

absl::Status CheckOutputs(std::initializer_list<const float*> outputs, size_t index) {
  for (const float* p : outputs) {
    if (p == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("tiles[", index, "]: null output pointer"));
    }
  }
  return absl::OkStatus();
}

// Memory [begin, end) written by a group's lead tile (`tile`: its index in the caller's list).
struct Extent {
  uintptr_t begin = 0, end = 0;
  int32_t tile = 0;
};

Extent ExtentOf(const float* p, int64_t count, int32_t tile) {
  const auto begin = reinterpret_cast<uintptr_t>(p);
  return {begin, begin + static_cast<uintptr_t>(count) * sizeof(float), tile};
}

// Different groups' outputs must not overlap.
absl::Status CheckDisjoint(std::vector<Extent> extents, const char* what) {
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < extents.size(); ++i) {
    if (extents[i].begin < extents[i - 1].end) {
      return absl::InvalidArgumentError(absl::StrCat("tiles[", extents[i - 1].tile, "] and tiles[",
                                                     extents[i].tile, "]: their ", what,
                                                     " overlap without being the same block"));
    }
  }
  return absl::OkStatus();
}

// Groups the non-empty tiles by the output `key(tile)` they write; `differs(lead, tile)` names a
// field in which a tile differs from its group's first tile, or returns null.
template <typename Tile, typename Key, typename Differs>
absl::Status Group(const std::vector<Tile>& all, Key key, Differs differs, HostTables<Tile>* tables,
                   std::vector<std::vector<int32_t>>* members) {
  absl::flat_hash_map<const void*, int32_t> group_of;
  for (size_t i = 0; i < all.size(); ++i) {
    const Tile& t = all[i];
    if (t.q_rows <= 0 || t.kv_rows <= 0) continue;
    if (t.q_rows > INT32_MAX || t.kv_rows > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("tiles[", i, "]: more than 2^31 rows"));
    }
    const int32_t local = static_cast<int32_t>(tables->tiles.size());
    auto [it, inserted] = group_of.try_emplace(key(t), static_cast<int32_t>(members->size()));
    if (inserted) {
      members->emplace_back();
    } else {
      const int32_t lead = (*members)[it->second].front();
      if (const char* field = differs(tables->tiles[lead], t)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tiles[", i, "]: writes the output block of tiles[", tables->index[lead],
                         "] but its ", field, " differs (tiles writing one block must share it)"));
      }
    }
    (*members)[it->second].push_back(local);
    tables->tiles.push_back(t);
    tables->index.push_back(static_cast<int32_t>(i));
  }
  return absl::OkStatus();
}

// Fills order/begin and the work items: chunks of `rows_per_item` rows of each group's block with
// some work (`cost(tile, first_row, rows)`: allowed positions the chunk reaches in a tile),
// heaviest first.
template <typename Tile, typename Rows, typename Cost>
absl::Status MakeItems(const std::vector<std::vector<int32_t>>& members, int rows_per_item,
                       Rows block_rows, Cost cost, HostTables<Tile>* tables) {
  std::vector<std::pair<double, WorkItem>> items;
  tables->begin.push_back(0);
  for (size_t g = 0; g < members.size(); ++g) {
    for (int32_t t : members[g]) tables->order.push_back(t);
    tables->begin.push_back(static_cast<int32_t>(tables->order.size()));
    const int64_t rows = block_rows(tables->tiles[members[g].front()]);
    for (int64_t row0 = 0; row0 < rows; row0 += rows_per_item) {
      const int64_t n = std::min<int64_t>(rows_per_item, rows - row0);
      double work = 0;
      for (int32_t t : members[g]) work += cost(tables->tiles[t], row0, n);
      if (work > 0) {
        items.push_back({work, WorkItem{static_cast<int32_t>(g), static_cast<int32_t>(row0)}});
      }
    }
  }
  if (items.size() > INT32_MAX) return absl::InvalidArgumentError("more than 2^31 work items");
  std::stable_sort(items.begin(), items.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& item : items) tables->items.push_back(item.second);
  return absl::OkStatus();
}

double Length(PositionRange r) { return r.hi > r.lo ? static_cast<double>(r.hi - r.lo) : 0; }

}  // namespace

absl::Status CheckShape(const AttentionShape& shape) {
  if (shape.q_heads < 1 || shape.kv_heads < 1 || shape.q_heads % shape.kv_heads != 0 ||
      shape.q_heads > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("attention shape: q_heads ", shape.q_heads,
                                                   " must be a positive multiple of kv_heads ",
                                                   shape.kv_heads, " (at most 65535)"));
  }
  if (shape.head_dim != 64 && shape.head_dim != 128) {
    return absl::InvalidArgumentError(absl::StrCat("attention shape: head_dim ", shape.head_dim,
                                                   " has no CUDA kernel (64 or 128)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<HostTables<ForwardTile>> ForwardTables(const AttentionShape& shape, DType dtype,
                                                      const std::vector<ForwardTile>& tiles) {
  RETURN_IF_ERROR(CheckShape(shape));
  for (size_t i = 0; i < tiles.size(); ++i) {
    const ForwardTile& t = tiles[i];
    if (t.q_rows <= 0 || t.kv_rows <= 0) continue;
    RETURN_IF_ERROR(CheckInput(t.q, i, "q"));
    RETURN_IF_ERROR(CheckInput(t.k, i, "k"));
    RETURN_IF_ERROR(CheckInput(t.v, i, "v"));
    RETURN_IF_ERROR(CheckOutputs({t.o, t.lse}, i));
  }
  HostTables<ForwardTile> tables;
  std::vector<std::vector<int32_t>> members;
  RETURN_IF_ERROR(Group(
      tiles, [](const ForwardTile& t) { return static_cast<const void*>(t.o); },
      [](const ForwardTile& a, const ForwardTile& b) -> const char* {
        if (a.q != b.q) return "q";
        if (a.lse != b.lse) return "lse";
        if (a.q_rows != b.q_rows) return "q_rows";
        if (a.q_begin != b.q_begin) return "q_begin";
        return nullptr;
      },
      &tables, &members));
  std::vector<Extent> o_extents, lse_extents;
  for (const auto& group : members) {
    const ForwardTile& lead = tables.tiles[group.front()];
    const int32_t index = tables.index[group.front()];
    o_extents.push_back(ExtentOf(lead.o, lead.q_rows * shape.q_heads * shape.head_dim, index));
    lse_extents.push_back(ExtentOf(lead.lse, lead.q_rows * shape.q_heads, index));
  }
  RETURN_IF_ERROR(CheckDisjoint(std::move(o_extents), "o blocks"));
  RETURN_IF_ERROR(CheckDisjoint(std::move(lse_extents), "lse blocks"));
  RETURN_IF_ERROR(MakeItems(
      members, kForwardRows, [](const ForwardTile& t) { return t.q_rows; },
      [](const ForwardTile& t, int64_t row0, int64_t rows) {
        const int64_t i_lo = t.q_begin + row0;
        return Length(Intersect(KeysOf(t.mask, i_lo, i_lo + rows - 1), t.kv_begin, t.kv_rows));
      },
      &tables));
  return tables;
}

namespace {

absl::Status CheckBackwardTiles(const AttentionShape& shape,
                                const std::vector<BackwardTile>& tiles) {
  RETURN_IF_ERROR(CheckShape(shape));
  for (size_t i = 0; i < tiles.size(); ++i) {
    const BackwardTile& t = tiles[i];
    if (t.q_rows <= 0 || t.kv_rows <= 0) continue;
    RETURN_IF_ERROR(CheckInput(t.q, i, "q"));
    RETURN_IF_ERROR(CheckInput(t.k, i, "k"));
    RETURN_IF_ERROR(CheckInput(t.v, i, "v"));
    RETURN_IF_ERROR(CheckInput(t.d_o, i, "d_o"));
    RETURN_IF_ERROR(CheckOutputs({t.lse, t.delta, t.dq, t.dk, t.dv}, i));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<HostTables<BackwardTile>> BackwardTables(const AttentionShape& shape, DType dtype,
                                                        const std::vector<BackwardTile>& tiles) {
  RETURN_IF_ERROR(CheckBackwardTiles(shape, tiles));
  HostTables<BackwardTile> tables;
  std::vector<std::vector<int32_t>> members;
  RETURN_IF_ERROR(Group(
      tiles, [](const BackwardTile& t) { return static_cast<const void*>(t.dk); },
      [](const BackwardTile& a, const BackwardTile& b) -> const char* {
        if (a.k != b.k) return "k";
        if (a.v != b.v) return "v";
        if (a.dv != b.dv) return "dv";
        if (a.kv_rows != b.kv_rows) return "kv_rows";
        if (a.kv_begin != b.kv_begin) return "kv_begin";
        return nullptr;
      },
      &tables, &members));
  std::vector<Extent> grads;
  for (const auto& group : members) {
    const BackwardTile& lead = tables.tiles[group.front()];
    const int32_t index = tables.index[group.front()];
    const int64_t n = lead.kv_rows * shape.kv_heads * shape.head_dim;
    grads.push_back(ExtentOf(lead.dk, n, index));
    grads.push_back(ExtentOf(lead.dv, n, index));
  }
  RETURN_IF_ERROR(CheckDisjoint(std::move(grads), "dk/dv blocks"));
  RETURN_IF_ERROR(MakeItems(
      members, BackwardRows(dtype), [](const BackwardTile& t) { return t.kv_rows; },
      [](const BackwardTile& t, int64_t row0, int64_t rows) {
        const int64_t j_lo = t.kv_begin + row0;
        return Length(Intersect(QueriesOf(t.mask, j_lo, j_lo + rows - 1), t.q_begin, t.q_rows));
      },
      &tables));
  return tables;
}

absl::StatusOr<HostTables<BackwardTile>> BackwardDqTables(const AttentionShape& shape,
                                                          const std::vector<BackwardTile>& tiles) {
  RETURN_IF_ERROR(CheckBackwardTiles(shape, tiles));
  HostTables<BackwardTile> tables;
  std::vector<std::vector<int32_t>> members;
  RETURN_IF_ERROR(Group(
      tiles, [](const BackwardTile& t) { return static_cast<const void*>(t.dq); },
      [](const BackwardTile& a, const BackwardTile& b) -> const char* {
        if (a.q != b.q) return "q";
        if (a.d_o != b.d_o) return "d_o";
        if (a.lse != b.lse) return "lse";
        if (a.delta != b.delta) return "delta";
        if (a.q_rows != b.q_rows) return "q_rows";
        if (a.q_begin != b.q_begin) return "q_begin";
        return nullptr;
      },
      &tables, &members));
  std::vector<Extent> dq_extents;
  for (const auto& group : members) {
    const BackwardTile& lead = tables.tiles[group.front()];
    dq_extents.push_back(ExtentOf(lead.dq, lead.q_rows * shape.q_heads * shape.head_dim,
                                  tables.index[group.front()]));
  }
  RETURN_IF_ERROR(CheckDisjoint(std::move(dq_extents), "dq blocks"));
  RETURN_IF_ERROR(MakeItems(
      members, kForwardRows, [](const BackwardTile& t) { return t.q_rows; },
      [](const BackwardTile& t, int64_t row0, int64_t rows) {
        const int64_t i_lo = t.q_begin + row0;
        return Length(Intersect(KeysOf(t.mask, i_lo, i_lo + rows - 1), t.kv_begin, t.kv_rows));
      },
      &tables));
  return tables;
}

}  // namespace cuda_internal
}  // namespace kernels
}  // namespace fcp
