#include "worker/worker_options.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workload/flags.h"
#include "workload/plan_config.h"

// Defined by the CLI's plan flags (workload/plan_config.cc).
ABSL_DECLARE_FLAG(int32_t, workers);
ABSL_DECLARE_FLAG(int64_t, tokens_per_worker);

ABSL_FLAG(int32_t, world, 4, "ranks of the job (the CLI's --workers)");
ABSL_FLAG(int32_t, rank, -1, "this process's rank with --transport gloo or nccl; -1 with loopback");
ABSL_FLAG(std::string, transport, "loopback",
          "loopback: every rank a thread of this process; gloo: one process per rank over TCP; "
          "nccl: one process per rank, GPU to GPU (needs --device cuda)");
ABSL_FLAG(std::string, device, "cpu",
          "cpu: host memory and the CPU kernels (fp32); cuda: GPU memory and the CUDA kernels, "
          "inputs in --dtype (outputs, merges and gradients fp32)");
ABSL_FLAG(int32_t, cuda_device, -1,
          "--device cuda: the GPU every rank of this process uses; -1 = rank modulo the GPUs "
          "visible (loopback: ranks spread over them)");
ABSL_FLAG(std::string, rendezvous, "",
          "gloo, nccl: where ranks meet: 'coordinator' (the --coordinator address), "
          "'coordinator:HOST:PORT' (one coordinator replica), or a directory every rank sees "
          "(Gloo file store); empty = coordinator with --coordinator, else /tmp/fcp-rendezvous");
ABSL_FLAG(int32_t, attempt, 0,
          "gloo: attempt number of this job run; rendezvous keys are per (training job, attempt), "
          "so a restarted job needs a new attempt (or a fresh directory)");
ABSL_FLAG(std::string, listen_address, "127.0.0.1",
          "gloo: the address this rank listens on and tells its peers (a pod: its IP); "
          "--interface takes precedence");
ABSL_FLAG(std::string, interface, "", "gloo: listen on this network interface (e.g. eth0)");
ABSL_FLAG(double, timeout_s, 30, "seconds a rank waits for a peer's transfer before failing");
ABSL_FLAG(int32_t, steps, 3, "training steps to run; step s plans the CLI's batch s - 1");
ABSL_FLAG(int32_t, threads, 0, "attention threads per rank; 0 = cores / ranks in this process");
ABSL_FLAG(int32_t, check_steps, 1,
          "compare the first N steps with single-process reference attention (0 = none)");
ABSL_FLAG(double, check_tolerance, 1e-5, "largest relative error the reference check accepts");
ABSL_FLAG(std::string, dump, "", "write each step's tensors and manifest under this directory");
ABSL_FLAG(int32_t, metrics_port, 0,
          "Prometheus metrics port of this process (all its ranks), 0 = off");
ABSL_FLAG(double, linger_s, 0,
          "with --metrics-port: keep serving metrics this many seconds after the last step "
          "(for a final scrape)");
ABSL_FLAG(std::string, training_job, "fcp-demo", "job id: plan requests and metric labels");
ABSL_FLAG(std::string, gpu_uuid, "", "gpu_uuid metric label (empty on CPU)");
ABSL_FLAG(std::string, summary_json, "", "rank 0 appends one JSON line per step to this file");
ABSL_FLAG(bool, report_steps, true,
          "--coordinator: report each step's measured times to it (ReportStep), so it plans this "
          "job with a cost model fitted from them");
ABSL_FLAG(double, plan_deadline_s, 10, "--coordinator: seconds per plan request before fallback");

namespace fcp {
namespace {

// The worker's own flags, then the planning flags it shares with `fcp plan`.
const std::vector<absl::string_view>& WorkerFlagNames() {
  static const auto* const kNames = new std::vector<absl::string_view>{
      "world",           "rank",        "transport",      "device",          "cuda_device",
      "rendezvous",      "attempt",     "listen_address", "interface",       "timeout_s",
      "steps",           "threads",     "check_steps",    "check_tolerance", "dump",
      "metrics_port",    "linger_s",    "training_job",   "gpu_uuid",        "summary_json",
      "plan_deadline_s", "report_steps"};
  return *kNames;
}

const std::vector<absl::string_view>& SharedPlanFlagNames() {
  static const auto* const kNames = new std::vector<absl::string_view>{"lengths",
                                                                       "histogram",
                                                                       "max_doc_len",
                                                                       "seed",
                                                                       "tokens_per_worker",
                                                                       "workers_per_node",
                                                                       "intra_node_gbps",
                                                                       "inter_node_gbps",
                                                                       "attention_tflops",
                                                                       "max_tokens_per_worker",
                                                                       "heads",
                                                                       "kv_heads",
                                                                       "head_dim",
                                                                       "dtype",
                                                                       "strategy",
                                                                       "block_size",
                                                                       "time_budget_ms",
                                                                       "calibration",
                                                                       "coordinator",
                                                                       "tls_ca",
                                                                       "tls_cert",
                                                                       "tls_key",
                                                                       "job_token_file"};
  return *kNames;
}

absl::Status Invalid(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(cli::DashedFlag(flag), ": ", what));
}

}  // namespace

absl::StatusOr<WorkerOptions> ParseWorkerOptions(const std::vector<std::string>& args, bool* help) {
  std::vector<absl::string_view> allowed = WorkerFlagNames();
  for (absl::string_view n : SharedPlanFlagNames()) allowed.push_back(n);
  ASSIGN_OR_RETURN(cli::ParsedArgs parsed, cli::ParseArgs(args, allowed));
  *help = parsed.help;
  if (parsed.help) return WorkerOptions();
  if (!parsed.positional.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", parsed.positional.front(), "'"));
  }
  WorkerOptions o;
  o.world = absl::GetFlag(FLAGS_world);
  if (o.world < 1) return Invalid("world", absl::StrCat("must be >= 1, got ", o.world));
  ASSIGN_OR_RETURN(o.transport, ParseTransportKind(absl::GetFlag(FLAGS_transport)));
  o.rank = absl::GetFlag(FLAGS_rank);
  if (o.transport == TransportKind::kLoopback) {
    if (o.rank != -1) return Invalid("rank", "loopback runs every rank in this process: omit it");
  } else if (o.rank < 0 || o.rank >= o.world) {
    return Invalid("rank", absl::StrCat("must be in [0, ", o.world, ") with --transport ",
                                        TransportKindName(o.transport), ", got ", o.rank));
  }
  o.device = absl::GetFlag(FLAGS_device);
  if (o.device != "cpu" && o.device != "cuda") {
    return Invalid("device", absl::StrCat("expected cpu or cuda, got '", o.device, "'"));
  }
  if (o.transport == TransportKind::kNccl && o.device != "cuda") {
    return Invalid("transport", "nccl moves GPU memory: it needs --device cuda");
  }
  o.cuda_device = absl::GetFlag(FLAGS_cuda_device);
  if (o.cuda_device < -1) return Invalid("cuda_device", "must be >= 0, or -1 for rank % GPUs");
  o.rendezvous = absl::GetFlag(FLAGS_rendezvous);
  o.attempt = absl::GetFlag(FLAGS_attempt);
  if (o.attempt < 0) return Invalid("attempt", "must be >= 0");
  o.listen_address = absl::GetFlag(FLAGS_listen_address);
  o.interface = absl::GetFlag(FLAGS_interface);
  if (o.listen_address.empty() && o.interface.empty()) {
    return Invalid("listen_address", "must not be empty (or give --interface)");
  }
  const double timeout_s = absl::GetFlag(FLAGS_timeout_s);
  if (!(timeout_s > 0)) return Invalid("timeout_s", "must be > 0");
  o.timeout = absl::Seconds(timeout_s);
  o.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (o.metrics_port < 0 || o.metrics_port > 65535) {
    return Invalid("metrics_port", absl::StrCat("must be 0 (off) or a port, got ", o.metrics_port));
  }
  o.linger = absl::Seconds(absl::GetFlag(FLAGS_linger_s));
  if (o.linger < absl::ZeroDuration()) return Invalid("linger_s", "must be >= 0");
  o.summary_json = absl::GetFlag(FLAGS_summary_json);
  o.gpu_uuid = absl::GetFlag(FLAGS_gpu_uuid);

  // The planning flags, read by the CLI's own code: --world is its --workers, and
  // --tokens-per-worker (required by the CLI) defaults to a CPU-sized 2048 here.
  absl::SetFlag(&FLAGS_workers, o.world);
  parsed.given.insert("workers");
  if (!parsed.Given("tokens_per_worker")) {
    absl::SetFlag(&FLAGS_tokens_per_worker, int64_t{2048});
    parsed.given.insert("tokens_per_worker");
  }
  ASSIGN_OR_RETURN(o.loop.plan, cli::PlanConfigFromFlags(parsed));
  if (o.rendezvous.empty()) {
    o.rendezvous = o.loop.plan.coordinator.empty() ? "/tmp/fcp-rendezvous" : "coordinator";
  }
  if (o.rendezvous == "coordinator") {
    if (o.loop.plan.coordinator.empty()) {
      return Invalid("rendezvous", "'coordinator' needs --coordinator HOST:PORT");
    }
    o.rendezvous_target = o.loop.plan.coordinator;
  } else if (absl::StartsWith(o.rendezvous, "coordinator:")) {
    o.rendezvous_target = o.rendezvous.substr(std::strlen("coordinator:"));
    if (o.rendezvous_target.empty()) return Invalid("rendezvous", "coordinator: needs HOST:PORT");
  }
  if (o.loop.plan.strategy == "all") {
    return Invalid("strategy", "a worker runs one strategy (or auto), not all");
  }
  WorkerConfig& c = o.loop;
  c.steps = absl::GetFlag(FLAGS_steps);
  if (c.steps < 1) return Invalid("steps", absl::StrCat("must be >= 1, got ", c.steps));
  c.threads = absl::GetFlag(FLAGS_threads);
  if (c.threads < 0) return Invalid("threads", "must be >= 0");
  if (c.threads == 0) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    c.threads = std::max(1, o.transport == TransportKind::kLoopback ? cores / o.world : cores);
  }
  c.check_steps = absl::GetFlag(FLAGS_check_steps);
  if (c.check_steps < 0) return Invalid("check_steps", "must be >= 0");
  c.check_tolerance = absl::GetFlag(FLAGS_check_tolerance);
  if (!(c.check_tolerance > 0)) return Invalid("check_tolerance", "must be > 0");
  const int32_t head_dim = c.plan.model.head_dim;
  if (o.device == "cuda" && head_dim != 64 && head_dim != 128) {
    return Invalid("head_dim",
                   absl::StrCat("--device cuda has kernels for 64 and 128, got ", head_dim));
  }
  if (o.device == "cuda" && !parsed.Given("check_tolerance")) {
    // The reference is fp32 on unrounded inputs; the GPU sums in another order, and in fp16/bf16
    // its inputs themselves are rounded.
    c.check_tolerance = c.plan.model.dtype == DType::kFp32 ? 1e-4 : 5e-2;
  }
  c.dump_dir = absl::GetFlag(FLAGS_dump);
  c.training_job = absl::GetFlag(FLAGS_training_job);
  c.report_steps = absl::GetFlag(FLAGS_report_steps);
  if (c.training_job.empty()) return Invalid("training_job", "must not be empty");
  const double deadline_s = absl::GetFlag(FLAGS_plan_deadline_s);
  if (!(deadline_s > 0)) return Invalid("plan_deadline_s", "must be > 0");
  c.plan_deadline = absl::Seconds(deadline_s);
  return o;
}

std::string WorkerUsage() {
  return absl::StrCat(R"(fcp-worker: runs context-parallel attention steps with fcp plans.

Each step draws a batch (the same on every rank: --seed), gets its plan (from fcp-coordinator with
--coordinator, prefetching the next step's, or planned locally), generates deterministic Q/K/V/dO
for the rank's tokens, runs attention forward and backward with the plan's transfers, checks the
first --check-steps steps against single-process reference attention, and reports per step.

usage:
  fcp-worker --lengths wikipedia.lengths --world 4                     # 4 ranks as threads
  fcp-worker --lengths wikipedia.lengths --world 4 --rank R --transport gloo \
      --coordinator localhost:50051      # one process per rank; plans + rendezvous: coordinator
  fcp-worker --lengths wikipedia.lengths --world 4 --rank R --transport gloo \
      --rendezvous /shared/dir           # local planning, rendezvous in a shared directory
  fcp-worker --lengths wikipedia.lengths --world 8 --rank R --transport nccl --device cuda \
      --coordinator localhost:50051      # one process per GPU; NCCL id through the coordinator
  fcp-worker --lengths wikipedia.lengths --world 8 --device cuda
                                         # 8 ranks as threads on this machine's GPU(s)

Rank 0 prints a table per step: strategy, predicted and measured imbalance (max/mean attention
time over ranks), bytes sent, predicted (cost model, GPU) and measured (this machine) step time,
the time ranks waited on transfers and the reference check's largest relative error.
Exit codes: 0 ok; 1 a step failed (transport, plan or reference check); 2 bad flags.

worker flags:
)",
                      cli::FlagsHelp(WorkerFlagNames()), "\nplanning flags (as `fcp plan`):\n",
                      cli::FlagsHelp(SharedPlanFlagNames()));
}

}  // namespace fcp
