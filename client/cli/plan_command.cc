#include "client/cli/plan_command.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/remote_plan.h"
#include "client/cli/report.h"
#include "common/status_macros.h"
#include "proto/plan_convert.h"
#include "service/planner/planner.h"
#include "service/planner/validator.h"
#include "workload/workload.h"

namespace fcp::cli {
namespace {

// State of one run: where notes go and what went wrong so far.
struct Run {
  const PlanConfig& config;
  std::ostream& err;
  PlanFunction plan;         // in-process, or through --coordinator
  bool plan_failed = false;  // exit 1
  bool bad_input = false;    // exit 2

  std::ostream& Note(const BatchInfo& b, const std::string& strategy) {
    return err << "fcp: batch " << b.batch << ", strategy " << strategy << ": ";
  }
};

void DumpPlan(Run& run, const Plan& plan) {
  v1::Plan proto;
  PlanToProto(plan, &proto);
  const std::string& path = run.config.dump_plan_path;
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << PlanToJson(proto) << "\n";
  file.close();
  if (!file) {
    run.err << "fcp: --dump-plan: " << path << ": cannot write: " << std::strerror(errno) << "\n";
    run.bad_input = true;
  }
}

// Makes every worker's slice, validates it when within the tile budget, dumps it if asked.
void CheckAndDump(Run& run, const Batch& batch, const PlanOptions& options, bool validate,
                  ResultRow& row) {
  absl::StatusOr<Plan> full = run.plan(batch, options, OutputSpec::AllRanks(), row.info.batch);
  if (!full.ok()) {
    run.Note(row.info, row.strategy) << "full plan failed: " << full.status() << "\n";
    row.valid = false;
    run.plan_failed = true;
    return;
  }
  if (validate) {
    const absl::Status status = ValidatePlan(batch, options, *full);
    row.valid = status.ok();
    if (!status.ok()) {
      run.Note(row.info, row.strategy) << "invalid plan: " << status.message() << "\n";
      run.plan_failed = true;
    }
  }
  if (!run.config.dump_plan_path.empty()) DumpPlan(run, *full);
}

ResultRow PlanOne(Run& run, const Batch& batch, const BatchInfo& info,
                  const std::string& strategy) {
  ResultRow row;
  row.info = info;
  row.strategy = strategy;
  PlanOptions options = run.config.options;
  options.strategy = strategy;
  absl::StatusOr<Plan> plan = run.plan(batch, options, OutputSpec::SummaryOnly(), info.batch);
  if (!plan.ok()) {
    row.error = plan.status().ToString();
    run.Note(info, strategy) << "planning failed: " << plan.status() << "\n";
    run.plan_failed = true;
    return row;
  }
  row.chosen = plan->strategy;
  row.plan_id = plan->plan_id;
  row.block_size = plan->block_size;
  row.summary = plan->summary;
  row.step_ms = plan->PredictedStepMs(options.include_backward);

  const bool validate = plan->summary.tiles <= run.config.validate_max_tiles;
  if (!validate) {
    run.Note(info, strategy) << "validation skipped: the plan has " << plan->summary.tiles
                             << " tiles, more than --validate-max-tiles "
                             << run.config.validate_max_tiles << " (raise it to validate)\n";
  }
  if (validate || !run.config.dump_plan_path.empty()) {
    CheckAndDump(run, batch, options, validate, row);
  }
  return row;
}

// Ring's predicted step time on this batch: from the rows if ring was run, else planned here.
std::optional<double> RingStepMs(Run& run, const Batch& batch, int32_t b,
                                 const std::vector<ResultRow>& rows) {
  for (const ResultRow& row : rows) {
    if (row.strategy == "ring") return row.ok() ? std::optional<double>(row.step_ms) : std::nullopt;
  }
  PlanOptions options = run.config.options;
  options.strategy = "ring";
  absl::StatusOr<Plan> ring = run.plan(batch, options, OutputSpec::SummaryOnly(), b);
  if (!ring.ok()) return std::nullopt;  // no ring in this build, or it cannot plan this batch
  return ring->PredictedStepMs(options.include_backward);
}

BatchInfo DescribeBatch(const PlanConfig& config, int32_t b, const Batch& batch) {
  BatchInfo info;
  info.batch = b;
  info.seed = config.seed + static_cast<uint64_t>(b);
  info.workers = config.topology.num_workers;
  info.tokens_per_worker = config.tokens_per_worker;
  info.tokens = batch.TotalTokens();
  info.documents = static_cast<int64_t>(batch.documents.size());
  for (const Document& d : batch.documents) {
    info.longest_document = std::max(info.longest_document, d.length);
  }
  return info;
}

}  // namespace

int RunPlanCommand(const PlanConfig& config, std::ostream& out, std::ostream& err) {
  absl::StatusOr<LengthSampler> sampler = LoadSampler(config);
  if (!sampler.ok()) {
    err << "fcp: " << (config.lengths_path.empty() ? "--histogram: " : "--lengths: ")
        << sampler.status().message() << "\n";
    return kExitBadInput;
  }
  Run run{config, err, LocalPlanFunction()};
  if (!config.coordinator.empty()) {
    absl::StatusOr<PlanFunction> remote =
        CoordinatorPlanFunction(config.coordinator, config.tls, config.job_token);
    if (!remote.ok()) {
      err << "fcp: --coordinator: " << remote.status().message() << "\n";
      return kExitBadInput;
    }
    run.plan = *std::move(remote);
  }
  const std::vector<std::string> strategies = config.Strategies();
  std::vector<ResultRow> all;
  for (int32_t b = 0; b < config.batches; ++b) {
    const uint64_t seed = config.seed + static_cast<uint64_t>(b);
    absl::StatusOr<std::vector<Document>> documents = SampleBatchDocuments(config, *sampler, seed);
    Batch batch;
    if (documents.ok()) batch.documents = std::move(*documents);
    batch.model = config.model;
    batch.topology = config.topology;
    const absl::Status valid = documents.ok() ? ValidateBatch(batch) : documents.status();
    if (!valid.ok()) {
      err << "fcp: batch " << b << ": " << valid.message() << "\n";
      return kExitBadInput;
    }
    const BatchInfo info = DescribeBatch(config, b, batch);
    std::vector<ResultRow> rows;
    for (const std::string& s : strategies) rows.push_back(PlanOne(run, batch, info, s));
    const std::optional<double> ring_ms = RingStepMs(run, batch, b, rows);
    for (ResultRow& row : rows) {
      if (row.ok() && ring_ms.has_value() && row.step_ms > 0) {
        row.speedup_vs_ring = *ring_ms / row.step_ms;
      }
      if (config.json) out << JsonLine(row) << "\n";
    }
    if (!config.json) PrintBatchTable(rows, out);
    out.flush();
    all.insert(all.end(), rows.begin(), rows.end());
  }
  if (!config.json && config.batches > 1) PrintMedians(strategies, all, out);
  if (run.bad_input) return kExitBadInput;
  return run.plan_failed ? kExitPlanFailed : kExitOk;
}

}  // namespace fcp::cli
