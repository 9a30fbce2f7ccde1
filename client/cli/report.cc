#include "client/cli/report.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fcp::cli {
namespace {

using google::protobuf::Value;

Value Number(double x) {
  Value v;
  if (std::isfinite(x)) {
    v.set_number_value(x);
  } else {
    v.set_null_value(google::protobuf::NULL_VALUE);
  }
  return v;
}

Value String(const std::string& s) {
  Value v;
  v.set_string_value(s);
  return v;
}

Value Null() {
  Value v;
  v.set_null_value(google::protobuf::NULL_VALUE);
  return v;
}

std::string ValidText(const ResultRow& row) {
  if (!row.ok()) return "error";
  if (!row.valid.has_value()) return "skipped";
  return *row.valid ? "yes" : "NO";
}

std::string SpeedupText(const std::optional<double>& speedup) {
  return speedup.has_value() ? absl::StrFormat("%.2fx", *speedup) : "-";
}

constexpr char kHeaderFormat[] =
    "%-10s %-10s %6s %8s %8s %8s %10s %6s %10s %10s %9s %9s %8s %8s %7s\n";

// step_fwd / step_bwd: the step under the objective (the whole layer by default); att_fwd /
// att_bwd: the attention pipeline alone; max_tok: the fullest worker's tokens.
void PrintHeader(std::ostream& out) {
  out << absl::StrFormat(kHeaderFormat, "strategy", "chosen", "block", "comp_imb", "tok_imb",
                         "max_tok", "comm", "rounds", "step_fwd", "step_bwd", "att_fwd", "att_bwd",
                         "plan_ms", "vs_ring", "valid");
}

void PrintRow(const ResultRow& row, const std::string& valid, std::ostream& out) {
  if (!row.ok()) {
    out << absl::StrFormat("%-10s error: %s\n", row.strategy, row.error);
    return;
  }
  const PlanSummary& s = row.summary;
  out << absl::StrFormat(
      "%-10s %-10s %6d %8.3f %8.3f %8d %10s %6d %10.3f %10.3f %9.3f %9.3f %8.2f %8s %7s\n",
      row.strategy, row.chosen, row.block_size, s.compute_imbalance, s.token_imbalance,
      s.max_tokens_per_worker, HumanBytes(static_cast<double>(s.comm_bytes)), s.rounds,
      s.predicted_fwd_ms, s.predicted_bwd_ms, s.attention_fwd_ms, s.attention_bwd_ms, s.planning_ms,
      SpeedupText(row.speedup_vs_ring), valid);
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double MedianOf(const std::vector<const ResultRow*>& rows,
                const std::function<double(const ResultRow&)>& get) {
  std::vector<double> values;
  for (const ResultRow* r : rows) values.push_back(get(*r));
  return Median(std::move(values));
}

// A row whose every metric is the median over `rows` (all of one strategy, planned ok).
ResultRow MedianRow(const std::string& strategy, const std::vector<const ResultRow*>& rows) {
  ResultRow m;
  m.strategy = strategy;
  m.chosen = rows.front()->chosen;
  for (const ResultRow* r : rows) {
    if (r->chosen != m.chosen) m.chosen = "mixed";
  }
  m.block_size = static_cast<int64_t>(MedianOf(rows, [](auto& r) { return r.block_size; }));
  PlanSummary& s = m.summary;
  s.compute_imbalance = MedianOf(rows, [](auto& r) { return r.summary.compute_imbalance; });
  s.token_imbalance = MedianOf(rows, [](auto& r) { return r.summary.token_imbalance; });
  s.comm_bytes = static_cast<int64_t>(MedianOf(rows, [](auto& r) { return r.summary.comm_bytes; }));
  s.rounds = static_cast<int32_t>(MedianOf(rows, [](auto& r) { return r.summary.rounds; }));
  s.predicted_fwd_ms = MedianOf(rows, [](auto& r) { return r.summary.predicted_fwd_ms; });
  s.predicted_bwd_ms = MedianOf(rows, [](auto& r) { return r.summary.predicted_bwd_ms; });
  s.attention_fwd_ms = MedianOf(rows, [](auto& r) { return r.summary.attention_fwd_ms; });
  s.attention_bwd_ms = MedianOf(rows, [](auto& r) { return r.summary.attention_bwd_ms; });
  s.max_tokens_per_worker =
      static_cast<int64_t>(MedianOf(rows, [](auto& r) { return r.summary.max_tokens_per_worker; }));
  s.planning_ms = MedianOf(rows, [](auto& r) { return r.summary.planning_ms; });
  std::vector<double> speedups;
  for (const ResultRow* r : rows) {
    if (r->speedup_vs_ring.has_value()) speedups.push_back(*r->speedup_vs_ring);
  }
  if (!speedups.empty()) m.speedup_vs_ring = Median(std::move(speedups));
  return m;
}

}  // namespace

std::string HumanBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (std::abs(bytes) >= 1000 && unit < 5) {
    bytes /= 1000;
    ++unit;
  }
  if (unit == 0) return absl::StrFormat("%.0f B", bytes);
  return absl::StrFormat("%.2f %s", bytes, kUnits[unit]);
}

std::string JsonLine(const ResultRow& row) {
  const PlanSummary& s = row.summary;
  const bool ok = row.ok();
  auto metric = [ok](double x) { return ok ? Number(x) : Null(); };
  Value valid = Null();
  if (!ok || row.valid.has_value()) valid.set_bool_value(ok && *row.valid);
  // Keys in a fixed, readable order (a Struct would print them in hash-map order).
  std::vector<std::pair<const char*, Value>> fields = {
      {"batch", Number(row.info.batch)},
      {"seed", Number(static_cast<double>(row.info.seed))},
      {"strategy", String(row.strategy)},
      {"chosen", ok ? String(row.chosen) : Null()},
      {"workers", Number(row.info.workers)},
      {"tokens", Number(static_cast<double>(row.info.tokens))},
      {"documents", Number(static_cast<double>(row.info.documents))},
      {"block_size", metric(static_cast<double>(row.block_size))},
      {"compute_imbalance", metric(s.compute_imbalance)},
      {"token_imbalance", metric(s.token_imbalance)},
      {"comm_bytes", metric(static_cast<double>(s.comm_bytes))},
      {"max_worker_comm_bytes", metric(static_cast<double>(s.max_worker_comm_bytes))},
      {"inter_node_bytes", metric(static_cast<double>(s.inter_node_bytes))},
      {"rounds", metric(s.rounds)},
      {"tiles", metric(static_cast<double>(s.tiles))},
      {"predicted_fwd_ms", metric(s.predicted_fwd_ms)},
      {"predicted_bwd_ms", metric(s.predicted_bwd_ms)},
      {"predicted_step_fwd_ms", metric(s.predicted_fwd_ms)},
      {"predicted_step_bwd_ms", metric(s.predicted_bwd_ms)},
      {"attention_fwd_ms", metric(s.attention_fwd_ms)},
      {"attention_bwd_ms", metric(s.attention_bwd_ms)},
      {"balanced_fwd_ms", metric(s.balanced_fwd_ms)},
      {"balanced_bwd_ms", metric(s.balanced_bwd_ms)},
      {"max_tokens_per_worker", metric(static_cast<double>(s.max_tokens_per_worker))},
      {"token_budget", metric(static_cast<double>(s.token_budget))},
      {"model", ok ? String(s.model) : Null()},
      {"planning_ms", metric(s.planning_ms)},
      {"speedup_vs_ring", row.speedup_vs_ring ? Number(*row.speedup_vs_ring) : Null()},
      {"plan_id", ok ? String(row.plan_id) : Null()},
      {"valid", valid},
  };
  if (!ok) fields.push_back({"error", String(row.error)});
  // Keys are fixed identifiers; every value goes through protobuf's JSON writer (escaping).
  std::string json = "{";
  for (const auto& [key, value] : fields) {
    std::string text;
    // Cannot fail: finite numbers, strings, booleans and nulls.
    (void)google::protobuf::util::MessageToJsonString(value, &text);
    absl::StrAppend(&json, json.size() > 1 ? "," : "", "\"", key, "\":", text);
  }
  return json + "}";
}

void PrintBatchTable(const std::vector<ResultRow>& rows, std::ostream& out) {
  if (rows.empty()) return;
  const BatchInfo& b = rows.front().info;
  out << absl::StrFormat(
      "batch %d (seed %d): %d workers x %d tokens = %d tokens, %d documents (longest %d)\n",
      b.batch, b.seed, b.workers, b.tokens_per_worker, b.tokens, b.documents, b.longest_document);
  PrintHeader(out);
  for (const ResultRow& row : rows) PrintRow(row, ValidText(row), out);
  out << "\n";
}

void PrintMedians(const std::vector<std::string>& strategies, const std::vector<ResultRow>& rows,
                  std::ostream& out) {
  std::set<int32_t> batches;
  for (const ResultRow& r : rows) batches.insert(r.info.batch);
  out << absl::StrFormat("median over %d batches\n", batches.size());
  PrintHeader(out);
  for (const std::string& strategy : strategies) {
    std::vector<const ResultRow*> ok;
    int runs = 0;
    int valid = 0;
    int checked = 0;
    for (const ResultRow& r : rows) {
      if (r.strategy != strategy) continue;
      ++runs;
      if (!r.ok()) continue;
      ok.push_back(&r);
      checked += r.valid.has_value();
      valid += r.valid.value_or(false);
    }
    if (runs == 0) continue;
    if (ok.empty()) {
      out << absl::StrFormat("%-10s error in all %d batches\n", strategy, runs);
      continue;
    }
    const std::string valid_text = checked == 0 ? "skipped" : absl::StrFormat("%d/%d", valid, runs);
    PrintRow(MedianRow(strategy, ok), valid_text, out);
  }
}

}  // namespace fcp::cli
