#include "service/planning_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "proto/plan_convert.h"

namespace fcp {

struct PlanningService::Prepared {
  std::string job_id;
  Batch batch;
  PlanOptions options;
  std::vector<int32_t> ranks;  // empty = every rank
  // The job's fitted cost model it is planned with (already applied to batch and options).
  std::shared_ptr<const calibration::Calibration> calibration;
};

namespace {

// The planner's errors as the API documents them: bad input and unplannable batches keep their
// codes; anything else is the planner's fault.
absl::Status PlanningError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInternal:
      return status;
    default:
      return absl::InternalError(absl::StrCat("planning failed: ", status.ToString()));
  }
}

// The calibration store's options: its prior is the service's cost model.
calibration::JobCalibrationOptions CalibrationOptions(const PlanningServiceOptions& options) {
  calibration::JobCalibrationOptions out = options.calibration;
  out.prior = options.defaults.cost;
  return out;
}

// PlanResponse.calibration, encoded, for a plan made with `fit` (empty without one).
std::string CalibrationField(const calibration::Calibration* fit) {
  if (fit == nullptr) return std::string();
  v1::PlanResponse response;
  PlanCalibrationToProto(*fit, response.mutable_calibration());
  return response.SerializeAsString();
}

}  // namespace

absl::StatusOr<PlanningService::Prepared> PlanningService::Prepare(
    const v1::PlanRequest& request, const PlanningServiceOptions& service) {
  RETURN_IF_ERROR(CheckLimits(request, service.limits));
  Prepared p;
  p.job_id = request.job_id();
  ASSIGN_OR_RETURN(p.batch, BatchFromProto(request));
  ASSIGN_OR_RETURN(p.options, OptionsFromProto(request.options(), service.defaults));
  RETURN_IF_ERROR(ValidateBatch(p.batch));
  RETURN_IF_ERROR(ValidateOptions(p.options));
  RETURN_IF_ERROR(CheckPlanSize(p.batch, p.options, service.limits));
  ASSIGN_OR_RETURN(OutputSpec output, OutputSpecFromProto(request, p.batch.topology.num_workers));
  if (!output.all_ranks) p.ranks = std::move(output.ranks);
  return p;
}

PlanningService::PlanningService(PlanningServiceOptions options, CoordinatorMetrics* metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      cache_(options_.cache_bytes),
      calibrations_(CalibrationOptions(options_)),
      pool_(options_.planning_threads, options_.max_queued_plannings) {}

PlanningService::~PlanningService() = default;

int64_t PlanningService::plannings() const { return plannings_.load(); }

void PlanningService::PlanBatch(const v1::PlanRequest& request, Done done) {
  const std::string strategy = request.options().strategy().empty() ? options_.defaults.strategy
                                                                    : request.options().strategy();
  // Every answer goes through here, to be counted.
  auto finish = [this, job = request.job_id(), strategy,
                 done = std::move(done)](absl::StatusOr<PlanReply> reply) mutable {
    metrics_->RecordRequest(job, strategy, reply.status().code());
    std::move(done)(std::move(reply));
  };

  if (absl::Status admitted = AdmitJob(request.job_id()); !admitted.ok()) {
    finish(admitted);
    return;
  }
  absl::StatusOr<Prepared> prepared = Prepare(request, options_);
  if (!prepared.ok()) {
    finish(prepared.status());
    return;
  }
  ApplyJobCalibration(request.step(), &*prepared);
  std::string plan_id = ComputePlanId(prepared->batch, prepared->options);
  if (std::shared_ptr<const CachedPlan> hit = cache_.Lookup(plan_id)) {
    metrics_->RecordCacheHit(prepared->job_id, /*waited=*/false);
    finish(PlanReply{std::move(hit), std::move(prepared->ranks), true});
    return;
  }

  // A waiting request keeps only its job and ranks, not its batch: W ranks asking for one step
  // hold one batch (the leader's), however many of them wait.
  auto on_result = [this, job = prepared->job_id, ranks = std::move(prepared->ranks),
                    finish = std::move(finish)](const FlightResult& result,
                                                SingleFlightRole role) mutable {
    if (!result.plan.ok()) {
      finish(result.plan.status());
      return;
    }
    const bool planned_here = result.planned && role == SingleFlightRole::kLeader;
    if (!planned_here) metrics_->RecordCacheHit(job, role == SingleFlightRole::kFollower);
    finish(PlanReply{*result.plan, std::move(ranks), !planned_here});
  };
  if (flights_.Join(plan_id, std::move(on_result)) == SingleFlightRole::kFollower) return;

  // A flight for this id may have ended between the lookup and the join: its plan is cached.
  if (std::shared_ptr<const CachedPlan> hit = cache_.Lookup(plan_id)) {
    flights_.Finish(plan_id, FlightResult{std::move(hit), false});
    return;
  }
  StartPlanning(std::move(plan_id), std::make_shared<const Prepared>(*std::move(prepared)));
}

void PlanningService::StartPlanning(std::string plan_id, std::shared_ptr<const Prepared> prepared) {
  metrics_->AddPlanningsInProgress(1);
  auto task = [this, plan_id, prepared] {
    metrics_->RecordCacheMiss(prepared->job_id);
    const absl::Time start = absl::Now();
    // Prepare validated the batch and options, and PlanBatch computed the id: not again.
    absl::StatusOr<std::unique_ptr<const PreparedPlan>> plan =
        PreparePlanChecked(prepared->batch, prepared->options, plan_id);
    plannings_.fetch_add(1);
    FlightResult result;
    if (plan.ok()) {
      auto cached =
          std::make_shared<const CachedPlan>(std::shared_ptr<const PreparedPlan>(*std::move(plan)),
                                             CalibrationField(prepared->calibration.get()));
      metrics_->RecordPlan(prepared->job_id, cached->plan(),
                           absl::ToDoubleSeconds(absl::Now() - start));
      cache_.Insert(cached);
      metrics_->SetCache(cache_.stats());
      result.plan = std::move(cached);
      result.planned = true;
    } else {
      result.plan = PlanningError(plan.status());
    }
    metrics_->AddPlanningsInProgress(-1);
    flights_.Finish(plan_id, result);
  };
  if (!pool_.TrySchedule(std::move(task))) {
    metrics_->AddPlanningsInProgress(-1);
    flights_.Finish(plan_id,
                    FlightResult{absl::ResourceExhaustedError(absl::StrCat(
                                     "planning queue full: ", options_.max_queued_plannings,
                                     " distinct plannings waiting "
                                     "(--max-queued-plannings); retry later")),
                                 false});
  }
}

absl::Status PlanningService::AdmitJob(absl::string_view job_id) { return CheckJobId(job_id); }

void PlanningService::ApplyJobCalibration(int64_t step, Prepared* prepared) {
  if (!options_.calibrate_from_reports) return;
  std::shared_ptr<const calibration::Calibration> fit =
      calibrations_.ForStep(prepared->job_id, step);
  if (fit == nullptr) return;
  CostParams cost = calibration::PlanningParams(*fit);
  ApplyRateOverrides(&cost, &prepared->batch.topology);
  prepared->options.cost = cost;
  prepared->calibration = fit;
  metrics_->RecordCalibration(prepared->job_id, *fit);
}

absl::Status PlanningService::ReportStep(const v1::StepReport& report) {
  absl::StatusOr<calibration::StepAccuracy> accuracy =
      [&]() -> absl::StatusOr<calibration::StepAccuracy> {
    RETURN_IF_ERROR(AdmitJob(report.job_id()));
    ASSIGN_OR_RETURN(calibration::RankStepMeasurement m,
                     MeasurementFromProto(report, options_.report_limits));
    return calibrations_.Report(report.job_id(), std::move(m));
  }();
  metrics_->RecordReport(report.job_id(), accuracy.status().code(),
                         accuracy.ok() ? &*accuracy : nullptr);
  return accuracy.status();
}

absl::StatusOr<v1::JobCalibration> PlanningService::GetCalibration(
    const v1::GetCalibrationRequest& request) {
  RETURN_IF_ERROR(AdmitJob(request.job_id()));
  ASSIGN_OR_RETURN(calibration::Calibration fit, calibrations_.Latest(request.job_id()));
  v1::JobCalibration out;
  CalibrationToProto(request.job_id(), fit, &out);
  return out;
}

absl::StatusOr<PlanReply> PlanningService::PlanBatchAndWait(const v1::PlanRequest& request) {
  absl::StatusOr<PlanReply> out;
  absl::Notification done;
  PlanBatch(request, [&](absl::StatusOr<PlanReply> reply) {
    out = std::move(reply);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

v1::ListStrategiesResponse PlanningService::ListStrategies() const {
  v1::ListStrategiesResponse response;
  for (const StrategyInfo& s : fcp::ListStrategies()) {
    auto* strategy = response.add_strategies();
    strategy->set_name(s.name);
    strategy->set_description(s.description);
  }
  response.set_planner_version(std::string(kPlannerVersion));
  response.set_default_strategy(options_.defaults.strategy);
  response.set_default_time_budget_ms(options_.defaults.time_budget_ms);
  return response;
}

}  // namespace fcp
