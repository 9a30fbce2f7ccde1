// fcp-coordinator: the planning service. Trainer ranks ask it for each step's plan over gRPC;
// it plans each batch once, caches it, and answers every rank with its slice.
//
//   fcp-coordinator --port 50051 --metrics-port 9464
//
// Deployment story: start, warm the planner up, report SERVING on grpc.health.v1; on SIGTERM or
// SIGINT report NOT_SERVING, keep serving for --drain-delay-seconds (load balancers notice), stop
// accepting, let in-flight RPCs finish within --shutdown-grace-seconds, exit 0.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/malloc_tuning.h"
#include "service/coordinator.h"
#include "service/planner/strategies/dcp.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "address to listen on (gRPC and metrics)");
ABSL_FLAG(int32_t, port, 50051, "gRPC port; 0 = any free port (printed at start)");
ABSL_FLAG(int32_t, metrics_port, 9464, "Prometheus /metrics port; 0 = any free port, -1 = none");
ABSL_FLAG(int32_t, health_port, -1,
          "plaintext port serving grpc.health.v1 only, for probes that cannot speak TLS "
          "(Kubernetes gRPC probes) when --tls-cert is set; 0 = any free port, -1 = none");
ABSL_FLAG(int32_t, planning_threads, 2, "plannings running at once (worker threads)");
ABSL_FLAG(int32_t, max_queued_plannings, 256,
          "distinct plannings waiting for a thread; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, cache_bytes, int64_t{1} << 30, "plan cache capacity, bytes (LRU)");
ABSL_FLAG(int32_t, max_request_bytes, 64 << 20,
          "largest PlanRequest accepted, bytes; larger gets RESOURCE_EXHAUSTED");
ABSL_FLAG(
    int64_t, rpc_memory_bytes, int64_t{1} << 30,
    "gRPC resource quota: memory all calls in progress may hold (>= 2 x --max-request-bytes); "
    "beyond it new calls get RESOURCE_EXHAUSTED instead of growing the process");
ABSL_FLAG(int32_t, rpc_threads, 0,
          "gRPC resource quota: RPCs served at once (threads); beyond it new calls get "
          "RESOURCE_EXHAUSTED; 0 = gRPC's default");
ABSL_FLAG(int64_t, max_documents, fcp::RequestLimits().max_documents,
          "most documents in one request");
ABSL_FLAG(int32_t, max_workers, fcp::RequestLimits().max_workers,
          "most workers (topology.num_workers) in one request");
ABSL_FLAG(int64_t, max_total_tokens, fcp::RequestLimits().max_total_tokens,
          "most tokens (sum of document lengths) in one request");
ABSL_FLAG(int64_t, max_blocks, fcp::RequestLimits().max_blocks,
          "most blocks one planning may make (ring: 2W chunks per document; others: "
          "tokens / block size); bounds planning memory and time");
ABSL_FLAG(int64_t, max_transfers, fcp::RequestLimits().max_transfers,
          "most worker-to-worker KV transfers one planning may schedule (ring: W x (W - 1); "
          "per_doc: k x (k - 1) per document over k ranks); bounds planning memory and time");
ABSL_FLAG(std::string, default_strategy, "auto",
          "strategy for requests that name none (clients' local fallback must use the same)");
ABSL_FLAG(double, time_budget_ms, fcp::PlanOptions().time_budget_ms,
          "planning time budget for requests that leave it 0, milliseconds");
ABSL_FLAG(double, max_time_budget_ms, fcp::RequestLimits().max_time_budget_ms,
          "largest planning time budget a request may ask for, milliseconds");
ABSL_FLAG(int32_t, max_metric_jobs, 256,
          "distinct training_job label values before further jobs are labelled \"other\"");
ABSL_FLAG(int64_t, rendezvous_max_bytes, fcp::RendezvousStoreOptions().max_total_bytes,
          "rendezvous store capacity, all jobs, bytes (keys + values + 64 per entry); a Set "
          "past it gets RESOURCE_EXHAUSTED");
ABSL_FLAG(int64_t, rendezvous_max_value_bytes, fcp::RendezvousStoreOptions().max_value_bytes,
          "largest rendezvous value, bytes");
ABSL_FLAG(int64_t, rendezvous_max_keys_per_job, fcp::RendezvousStoreOptions().max_keys_per_job,
          "most rendezvous keys one training job may hold at once");
ABSL_FLAG(double, rendezvous_ttl_seconds, absl::ToDoubleSeconds(fcp::RendezvousStoreOptions().ttl),
          "a rendezvous value is dropped this long after it was last set, seconds");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (default plaintext; /metrics stays plain)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: mutual TLS, clients must present a certificate it signed");
ABSL_FLAG(std::string, job_tokens, "",
          "file of 'JOB_ID TOKEN' lines: job-scoped calls must carry 'authorization: Bearer TOKEN' "
          "of their job (reloaded on SIGHUP); empty = no tokens");
ABSL_FLAG(std::string, job_identities, "",
          "file of 'JOB_ID SAN' lines (mutual TLS): a client certificate with that URI or DNS SAN "
          "may act for the job (reloaded on SIGHUP)");
ABSL_FLAG(double, job_plan_requests_per_second, 0,
          "per-job quota: PlanBatch requests per second (bursts up to "
          "--job-plan-request-burst); 0 = unlimited");
ABSL_FLAG(int64_t, job_plan_request_burst, 0,
          "per-job quota: PlanBatch requests admitted at once before the rate applies; "
          "0 = the rate, at least 1");
ABSL_FLAG(int64_t, job_max_plans_in_flight, 0,
          "per-job quota: PlanBatch requests being answered at once; 0 = unlimited");
ABSL_FLAG(double, job_reports_per_second, 2048,
          "per-job quota: ReportStep calls per second (bursts up to one second's worth; beyond: "
          "RESOURCE_EXHAUSTED naming reports_per_second); 0 = unlimited");
ABSL_FLAG(int64_t, rendezvous_max_bytes_per_job, fcp::RendezvousStoreOptions().max_bytes_per_job,
          "per-job quota: rendezvous bytes one training job may hold (keys + values + 64 per "
          "entry)");
ABSL_FLAG(double, drain_delay_seconds, 0,
          "on SIGTERM, keep serving this long after reporting NOT_SERVING, seconds");
ABSL_FLAG(double, shutdown_grace_seconds, 10,
          "on SIGTERM, time in-flight RPCs get to finish before they are cancelled, seconds");
ABSL_FLAG(bool, calibrate_from_reports, true,
          "plan each job with the cost model fitted from its workers' ReportStep measurements");
ABSL_FLAG(int32_t, calibration_window_steps, fcp::calibration::JobCalibrationOptions().window_steps,
          "steps of reports one calibration fit uses (the sliding window)");

namespace fcp {
namespace {

constexpr char kUsage[] = R"(the fcp planning service (gRPC fcp.v1.Planner).

usage: fcp-coordinator [--port 50051] [--metrics-port 9464] [flags]

Trainer ranks call PlanBatch for each step with the batch's documents and their rank; the
coordinator plans the batch once (identical concurrent requests share one planning), caches the
plan (LRU, --cache-bytes) and answers each rank with its slice. Workers of a job exchange their
connection info through fcp.v1.Rendezvous (--rendezvous-* flags). Workers report each step's
measured times (ReportStep); the coordinator fits each job's cost model from them and plans the
job's next steps with it (--calibrate-from-reports). Health: grpc.health.v1
(NOT_SERVING until ready and while draining); server reflection; Prometheus metrics on
--metrics-port.
Flags may be written with dashes or underscores (--metrics-port, --metrics_port).)";

// Abseil flags are underscored; the documented spellings are dashed. Rewrites "--metrics-port=1"
// to "--metrics_port=1" (names only, up to "=", never after a bare "--").
std::vector<char*> UnderscoreFlagNames(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& arg = storage[i];
    if (arg == "--") break;
    if (!absl::StartsWith(arg, "-")) continue;
    const size_t start = arg.find_first_not_of('-');
    const size_t end = std::min(arg.find('='), arg.size());
    for (size_t c = start; c < end && start != std::string::npos; ++c) {
      if (arg[c] == '-') arg[c] = '_';
    }
  }
  std::vector<char*> out;
  for (std::string& s : storage) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

CoordinatorOptions OptionsFromFlags() {
  CoordinatorOptions o;
  o.host = absl::GetFlag(FLAGS_host);
  o.port = absl::GetFlag(FLAGS_port);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  o.health_port = absl::GetFlag(FLAGS_health_port);
  o.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  o.rpc_memory_bytes = absl::GetFlag(FLAGS_rpc_memory_bytes);
  o.rpc_threads = absl::GetFlag(FLAGS_rpc_threads);
  o.max_metric_jobs = absl::GetFlag(FLAGS_max_metric_jobs);
  o.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  o.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  PlanningServiceOptions& p = o.planning;
  p.planning_threads = absl::GetFlag(FLAGS_planning_threads);
  p.max_queued_plannings =
      static_cast<size_t>(std::max(0, absl::GetFlag(FLAGS_max_queued_plannings)));
  p.cache_bytes = static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_cache_bytes)));
  p.limits.max_documents = absl::GetFlag(FLAGS_max_documents);
  p.limits.max_workers = absl::GetFlag(FLAGS_max_workers);
  p.limits.max_total_tokens = absl::GetFlag(FLAGS_max_total_tokens);
  p.limits.max_time_budget_ms = absl::GetFlag(FLAGS_max_time_budget_ms);
  p.limits.max_blocks = absl::GetFlag(FLAGS_max_blocks);
  p.limits.max_transfers = absl::GetFlag(FLAGS_max_transfers);
  p.defaults.strategy = absl::GetFlag(FLAGS_default_strategy);
  p.defaults.time_budget_ms = absl::GetFlag(FLAGS_time_budget_ms);
  p.calibrate_from_reports = absl::GetFlag(FLAGS_calibrate_from_reports);
  p.calibration.window_steps = std::max(1, absl::GetFlag(FLAGS_calibration_window_steps));
  p.report_limits.max_workers = p.limits.max_workers;
  RendezvousStoreOptions& r = o.rendezvous;
  r.max_total_bytes = absl::GetFlag(FLAGS_rendezvous_max_bytes);
  r.max_value_bytes = absl::GetFlag(FLAGS_rendezvous_max_value_bytes);
  r.max_keys_per_job = absl::GetFlag(FLAGS_rendezvous_max_keys_per_job);
  r.max_bytes_per_job = absl::GetFlag(FLAGS_rendezvous_max_bytes_per_job);
  r.ttl = absl::Seconds(absl::GetFlag(FLAGS_rendezvous_ttl_seconds));
  o.auth.tokens_file = absl::GetFlag(FLAGS_job_tokens);
  o.auth.identities_file = absl::GetFlag(FLAGS_job_identities);
  o.quotas.plan_requests_per_second = absl::GetFlag(FLAGS_job_plan_requests_per_second);
  o.quotas.plan_request_burst = absl::GetFlag(FLAGS_job_plan_request_burst);
  o.quotas.plans_in_flight = absl::GetFlag(FLAGS_job_max_plans_in_flight);
  o.quotas.reports_per_second = absl::GetFlag(FLAGS_job_reports_per_second);
  return o;
}

// Blocks SIGTERM, SIGINT and SIGHUP in every thread (call before any thread starts), so Main can
// take them synchronously.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int Main(int argc, char** argv) {
  const sigset_t stop_signals = BlockStopSignals();
  // Debian's Abseil checks every mutex acquisition for lock-order cycles (a debugging aid that
  // costs on each of gRPC's many locks); a server runs without it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::StrContains(file, "coordinator_main");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  std::vector<std::string> storage;
  std::vector<char*> args = UnderscoreFlagNames(argc, argv, storage);
  const std::vector<char*> rest = absl::ParseCommandLine(argc, args.data());
  if (rest.size() > 1) {
    std::fprintf(stderr, "fcp-coordinator: unexpected argument '%s' (try --help)\n", rest[1]);
    return 2;
  }

  const CoordinatorOptions options = OptionsFromFlags();
  absl::StatusOr<std::unique_ptr<Coordinator>> coordinator = Coordinator::Start(options);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "fcp-coordinator: %s\n",
                 std::string(coordinator.status().message()).c_str());
    return coordinator.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const char* security = !options.tls.enabled()               ? ""
                         : options.tls.client_ca_file.empty() ? " (TLS)"
                                                              : " (mutual TLS)";
  const std::string health =
      options.health_port < 0
          ? ""
          : absl::StrCat(" (health on port ", (*coordinator)->health_port(), ")");
  std::printf("fcp-coordinator: serving fcp.v1.Planner on port %d, metrics on port %d%s%s%s\n",
              (*coordinator)->port(), (*coordinator)->metrics_port(), security,
              options.auth.enabled() ? " (job credentials)" : "", health.c_str());
  std::fflush(stdout);

  int signal = 0;
  // SIGHUP: re-read the credential files; calls keep being served meanwhile.
  while (sigwait(&stop_signals, &signal) == 0 && signal == SIGHUP) {
    const absl::Status reloaded = (*coordinator)->ReloadCredentials();
    if (reloaded.ok()) {
      std::printf("fcp-coordinator: SIGHUP: credentials reloaded (%zu jobs)\n",
                  (*coordinator)->guard().authorizer().jobs());
    } else {
      std::printf("fcp-coordinator: SIGHUP: credentials NOT reloaded, the old ones stay: %s\n",
                  std::string(reloaded.message()).c_str());
    }
    std::fflush(stdout);
  }
  std::printf("fcp-coordinator: %s: draining\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  (*coordinator)->StartDraining();
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_drain_delay_seconds)));
  (*coordinator)->Shutdown(absl::Seconds(absl::GetFlag(FLAGS_shutdown_grace_seconds)));
  std::printf("fcp-coordinator: stopped\n");
  return 0;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  // Plans' memory stays in the process for the next plan (common/malloc_tuning.h).
  fcp::RetainFreedMemoryForReplanning();
  fcp::RegisterDcpPlanner();
  return fcp::Main(argc, argv);
}
