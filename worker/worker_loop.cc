#include "worker/worker_loop.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "fcp/client.h"
#include "proto/report_convert.h"
#include "service/calibration/plan_measurement.h"
#include "service/planner/cost_model.h"
#include "service/planner/planner.h"
#include "worker/executor/executor_backend.h"
#include "worker/verify/dump.h"
#include "worker/verify/reference_check.h"
#include "worker/verify/step_data.h"

namespace fcp {
namespace {

// What every rank tells every other after a step (a plain struct sent as bytes: all ranks run
// the same binary).
struct StepRecord {
  StepStats stats;
  int64_t tokens = 0;
  double reference_error = -1;
  int32_t failed = 0;  // 1: this rank's check failed; everyone stops after this step
};

kernels::AttentionShape ShapeOf(const ModelShape& model) {
  return {model.num_q_heads, model.num_kv_heads, model.head_dim};
}

// Every rank's record on every rank (one all-to-all exchange).
absl::StatusOr<std::vector<StepRecord>> AllGather(Transport* transport, int64_t step,
                                                  StepRecord mine) {
  const int32_t world = transport->world_size(), rank = transport->rank();
  std::vector<StepRecord> all(world);
  all[rank] = mine;
  std::vector<SendOp> sends;
  std::vector<RecvOp> recvs;
  for (int32_t p = 0; p < world; ++p) {
    if (p == rank) continue;
    sends.push_back({p, {{&all[rank], sizeof(StepRecord)}}});
    recvs.push_back({p, {{&all[p], sizeof(StepRecord)}}});
  }
  if (!sends.empty()) {
    absl::Status s = transport->Exchange(GatherTag(step), std::move(sends), std::move(recvs));
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("worker ", rank, ", step ", step,
                                                 ", gathering statistics: ", s.message()));
    }
  }
  return all;
}

class Loop {
 public:
  Loop(const WorkerConfig& config, const LengthSampler& sampler, Transport* transport,
       PlannerClient* client, std::unique_ptr<ExecutorBackend> backend)
      : config_(config),
        sampler_(sampler),
        transport_(transport),
        client_(client),
        rank_(transport->rank()),
        shape_(ShapeOf(config.plan.model)),
        executor_(transport, shape_,
                  backend != nullptr ? std::move(backend) : NewCpuBackend(config.threads)) {
    options_ = config.plan.options;
    options_.strategy = config.plan.strategy;
  }

  absl::StatusOr<Batch> BatchOf(int64_t step) const {
    Batch batch;
    ASSIGN_OR_RETURN(batch.documents,
                     SampleDocuments(sampler_, config_.plan.TotalTokens(), config_.plan.max_doc_len,
                                     config_.plan.seed + step - 1));
    batch.model = config_.plan.model;
    batch.topology = config_.plan.topology;
    return batch;
  }

  BatchRequest RequestOf(Batch batch, int64_t step) const {
    BatchRequest request;
    request.job_id = config_.training_job;
    request.step = step;
    request.batch = std::move(batch);
    request.options = options_;
    request.ranks = {rank_};
    return request;
  }

  // The plan of `step` (with this rank's slice and its id) and whether it was a local fallback;
  // prefetches the next step's plan from the coordinator.
  absl::StatusOr<std::pair<Plan, bool>> PlanOf(const Batch& batch, int64_t step) {
    if (client_ == nullptr) {
      ASSIGN_OR_RETURN(Plan plan, MakePlan(batch, options_, OutputSpec::Ranks({rank_})));
      return std::make_pair(std::move(plan), false);
    }
    absl::StatusOr<BatchPlanResult> result =
        prefetched_ ? client_->GetPlan(step) : absl::NotFoundError("");
    if (!prefetched_ || absl::IsNotFound(result.status())) {
      result = client_->PlanBatch(RequestOf(batch, step));
    }
    prefetched_ = false;
    if (!result.ok()) {
      return absl::Status(result.status().code(),
                          absl::StrCat("worker ", rank_, ", step ", step,
                                       ", planning: ", result.status().message()));
    }
    if (step < config_.steps) {
      ASSIGN_OR_RETURN(Batch next, BatchOf(step + 1));
      prefetched_ = client_->Prefetch(RequestOf(std::move(next), step + 1)).ok();
    }
    return std::make_pair(std::move(result->plan), result->source == PlanSource::kLocalFallback);
  }

  absl::Status Run(WorkerMetrics* metrics, const std::function<void(const StepReport&)>& on_step) {
    int64_t fallbacks_seen = 0;
    for (int64_t step = 1; step <= config_.steps; ++step) {
      ASSIGN_OR_RETURN(Batch batch, BatchOf(step));
      ASSIGN_OR_RETURN(auto planned, PlanOf(batch, step));
      const Plan& plan = planned.first;
      if (client_ != nullptr && metrics != nullptr) {
        const int64_t fallbacks = client_->stats().fallbacks;
        metrics->RecordFallbacks(fallbacks - fallbacks_seen);
        fallbacks_seen = fallbacks;
      }
      const WorkerPlan* slice = plan.FindWorker(rank_);
      if (slice == nullptr) {
        return absl::InternalError(absl::StrCat("worker ", rank_, ": no slice in the plan"));
      }
      const StepInputs inputs = MakeStepInputs(plan, *slice, shape_, config_.plan.seed, step);
      LocalOutputs outputs;
      absl::StatusOr<StepStats> stats =
          executor_.Run(plan, plan.plan_id, step, inputs.View(), &outputs);
      if (!stats.ok()) {
        if (metrics != nullptr) metrics->RecordError();
        return stats.status();
      }
      StepRecord record{*stats, inputs.tokens, -1, 0};
      std::string check_error;
      if (step <= config_.check_steps) {
        ASSIGN_OR_RETURN(
            ReferenceError error,
            CompareWithReference(plan, rank_, shape_, config_.plan.seed, step, outputs));
        record.reference_error = error.Max();
        if (!(error.Max() <= config_.check_tolerance)) {
          record.failed = 1;
          check_error = absl::StrCat("worker ", rank_, ", step ", step,
                                     ": outputs differ from reference attention beyond ",
                                     config_.check_tolerance, ": ", error.ToString());
        }
      }
      if (!config_.dump_dir.empty()) {
        RETURN_IF_ERROR(DumpStep(config_.dump_dir, plan, rank_, shape_, step, inputs, outputs));
      }
      const WorkerCost& cost = plan.costs[rank_];
      if (metrics != nullptr) {
        metrics->RecordStep(*stats, inputs.tokens, (cost.fwd_ms + cost.bwd_ms) / 1000);
        if (record.failed) metrics->RecordError();
      }
      // Before the end-of-step exchange: the coordinator has every rank's report of `step`
      // before any rank asks for the plan of step + 2 (job_calibrations.h).
      if (client_ != nullptr && config_.report_steps) ReportStep(plan, step, *stats);
      ASSIGN_OR_RETURN(std::vector<StepRecord> all, AllGather(transport_, step, record));
      if (rank_ == 0 && on_step) on_step(Report(plan, planned.second, step, all));
      if (!check_error.empty()) return absl::DataLossError(check_error);
      for (size_t r = 0; r < all.size(); ++r) {
        if (all[r].failed) {
          return absl::AbortedError(absl::StrCat("worker ", rank_, ": stopping after step ", step,
                                                 ": worker ", r, " failed its reference check"));
        }
      }
    }
    return absl::OkStatus();
  }

 private:
  // Sends this rank's measurement of `step` to the coordinator (the closed loop). A report that
  // fails is not retried and does not stop the job: the fit only waits for the next one.
  void ReportStep(const Plan& plan, int64_t step, const StepStats& stats) {
    absl::StatusOr<calibration::RankStepMeasurement> m =
        calibration::MeasurementOfPlan(plan, linear_cost_, rank_, step);
    absl::Status status = m.status();
    if (m.ok()) {
      m->forward_seconds = stats.forward_seconds;
      m->backward_seconds = stats.backward_seconds;
      m->comm_wait_seconds =
          std::min(stats.comm_wait_seconds, stats.forward_seconds + stats.backward_seconds);
      v1::StepReport report;
      MeasurementToProto(*m, &report);
      report.set_job_id(config_.training_job);
      report.set_plan_id(plan.plan_id);
      status = client_->ReportStep(report);
    }
    if (!status.ok() && !report_failed_) {
      report_failed_ = true;
      std::fprintf(stderr,
                   "fcp-worker: rank %d: step %lld not reported (%s); later failures "
                   "are not printed\n",
                   rank_, static_cast<long long>(step), status.ToString().c_str());
    }
  }

  StepReport Report(const Plan& plan, bool fallback, int64_t step,
                    const std::vector<StepRecord>& all) const {
    StepReport report;
    report.step = step;
    report.strategy = plan.strategy;
    report.plan_id = plan.plan_id;
    report.planning_ms = plan.summary.planning_ms;
    report.fallback = fallback;
    report.predicted_imbalance = plan.summary.compute_imbalance;
    // fcp-worker runs attention only: compare its steps with the attention pipeline's prediction
    // (predicted_fwd_ms also holds the linear layers under the whole-step objective).
    report.predicted_ms = calibration::AttentionStepSeconds(plan, linear_cost_) * 1e3;
    report.plan_bytes = plan.summary.comm_bytes;
    for (const StepRecord& r : all) {
      report.ranks.push_back(r.stats);
      report.tokens.push_back(r.tokens);
      report.reference_error = std::max(report.reference_error, r.reference_error);
    }
    return report;
  }

  const WorkerConfig& config_;
  const LengthSampler& sampler_;
  Transport* transport_;
  PlannerClient* client_;
  const int32_t rank_;
  const kernels::AttentionShape shape_;
  Executor executor_;
  PlanOptions options_;
  bool prefetched_ = false;
  bool report_failed_ = false;
  // The model and topology of the measurements; it prices the linear layers only for plans
  // without attention times (AttentionSeconds): fcp-worker runs attention only.
  CostModel linear_cost_{config_.plan.model, config_.plan.topology, config_.plan.options.cost,
                         config_.plan.options.objective};
};

}  // namespace

double StepReport::StepSeconds() const {
  double worst = 0;
  for (const StepStats& s : ranks) worst = std::max(worst, s.forward_seconds + s.backward_seconds);
  return worst;
}

double StepReport::MeasuredImbalance() const {
  double max = 0, sum = 0;
  for (const StepStats& s : ranks) {
    max = std::max(max, s.attention_seconds);
    sum += s.attention_seconds;
  }
  return sum > 0 ? max * ranks.size() / sum : 1;
}

int64_t StepReport::BytesSent() const {
  int64_t total = 0;
  for (const StepStats& s : ranks) total += s.bytes_sent;
  return total;
}

absl::Status RunWorkerLoop(const WorkerConfig& config, const LengthSampler& sampler,
                           Transport* transport, PlannerClient* client, WorkerMetrics* metrics,
                           const std::function<void(const StepReport&)>& on_step,
                           std::unique_ptr<ExecutorBackend> backend) {
  Loop loop(config, sampler, transport, client, std::move(backend));
  return loop.Run(metrics, on_step);
}

}  // namespace fcp
