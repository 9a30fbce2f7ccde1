// Soak and overload of the real fcp-coordinator binary over loopback: the figures of
// docs/reliability.md ("Load and overload"), and, with small sizes and --check, a ctest. The
// coordinator process and the statistics it reports with: soak_coordinator.h.
//
//   build/bench/coordinator_soak                       # full size: 64 ranks x 10,000 calls
//   build/bench/coordinator_soak --scenario=overload   # queue bound, oversized requests, fallback
//   build/bench/coordinator_soak --ranks=8 --calls_per_rank=200 --steps=20 --check   # ctest size
//
// soak: --ranks threads, each a trainer rank with its own connection, walk --steps training steps
// of a W = --workers job (a wikipedia batch per step, the same on every rank) and make
// --calls_per_rank PlanBatch calls for their own slice: the first call of a step asks for that
// step (one rank plans it, the others wait for it or hit the cache); the rest ask for the step
// again or for one of the last --lookback steps, which the byte-bounded cache (--cache_bytes) may
// have evicted (a miss: planned again). Reported: calls, errors, hits, client-side p50/p99/max,
// and the coordinator's resident memory (VmRSS from /proc) before, at the end, and its peak.
//
// overload: (1) --burst distinct plannings at once against --planning_threads threads and a
// --max_queued_plannings queue: the excess is refused at once with RESOURCE_EXHAUSTED; the same
// burst through fcp::PlannerClient (retry + local fallback) gives every rank its plan, with the
// coordinator's plan id. (2) requests over --max-request-bytes, --max-documents, --max-workers,
// --max-blocks and --max-transfers, many at once: each refused in milliseconds, memory flat.
//
// --job_tokens: the same with job credentials on (issue 28): every call carries its job's bearer
// token, and the expectations are unchanged.
//
// --check exits 1 if a soak call failed, the coordinator's memory grew by more than the cache plus
// --rss_slack_mb, an overload answer was not the expected one, or a refusal was slow.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/soak_coordinator.h"
#include "client/job_token.h"
#include "fcp/client.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "google/protobuf/arena.h"
#include "proto/plan_convert.h"
#include "workload/workload.h"

ABSL_FLAG(std::string, coordinator, FCP_COORDINATOR, "the fcp-coordinator binary");
ABSL_FLAG(std::string, lengths, std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths",
          "document lengths file");
ABSL_FLAG(std::string, scenario, "soak,overload", "soak, overload, or both");
ABSL_FLAG(int32_t, ranks, 64, "soak: concurrent ranks (threads, one connection each)");
ABSL_FLAG(int32_t, calls_per_rank, 10000, "soak: PlanBatch calls per rank");
ABSL_FLAG(int32_t, steps, 1000, "soak: training steps walked (a distinct batch each)");
ABSL_FLAG(int32_t, lookback, 200, "soak: later calls may ask for any of the last N steps");
ABSL_FLAG(int32_t, workers, 64, "W of every plan");
ABSL_FLAG(int64_t, tokens_per_worker, 32768, "tokens per worker of every batch");
ABSL_FLAG(std::string, strategy, "fcp", "soak: strategy of the requests");
ABSL_FLAG(int64_t, cache_bytes, 64 << 20, "the coordinator's --cache-bytes");
ABSL_FLAG(int32_t, planning_threads, 2, "the coordinator's --planning-threads");
ABSL_FLAG(int32_t, max_queued_plannings, 4, "overload: the coordinator's --max-queued-plannings");
ABSL_FLAG(int32_t, burst, 64, "overload: distinct plannings sent at once");
ABSL_FLAG(int32_t, oversized, 256, "overload: requests over each limit, sent from 16 threads");
ABSL_FLAG(double, rss_slack_mb, 64, "--check: allowed growth beyond --cache_bytes, MiB");
ABSL_FLAG(bool, check, false, "exit 1 when an expectation fails (the ctest mode)");
ABSL_FLAG(bool, job_tokens, false,
          "run the coordinator with --job-tokens (a token for each job of the run) and send it "
          "with every call, as trainers do on a coordinator with job credentials");

namespace fcp {
namespace {

using soak::CodeName;
using soak::Codes;
using soak::Describe;
using soak::Max;
using soak::NewStub;
using soak::Percentile;
using soak::SoakCoordinator;

bool failed = false;

void Expect(bool ok, const std::string& what) {
  if (ok) return;
  failed = true;
  std::printf("CHECK FAILED: %s\n", what.c_str());
}

// --job_tokens: the token of every job of the run (they are test jobs; one token is enough).
constexpr char kSoakToken[] = "soak-token-0123456789abcdef";

// With --job_tokens, `context` carries the job token (otherwise it goes without, as before).
void Authorize(grpc::ClientContext* context) {
  if (absl::GetFlag(FLAGS_job_tokens)) AttachJobToken(kSoakToken, context);
}

// --job_tokens: a --job-tokens file with a line for each job of the run, removed with it.
class TokensFile {
 public:
  TokensFile() {
    if (!absl::GetFlag(FLAGS_job_tokens)) return;
    path_ = absl::StrCat(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp",
                         "/fcp_soak_tokens_", getpid());
    std::ofstream(path_) << "soak " << kSoakToken << "\nburst " << kSoakToken << "\nburst-client "
                         << kSoakToken << "\noversized " << kSoakToken << "\n";
  }
  ~TokensFile() {
    if (!path_.empty()) std::remove(path_.c_str());
  }
  // `flags` with the coordinator's --job-tokens flag added when the run uses tokens.
  std::vector<std::string> With(std::vector<std::string> flags) const {
    if (!path_.empty()) flags.insert(flags.end(), {"--job-tokens", path_});
    return flags;
  }

 private:
  std::string path_;
};

// One request per step: the batch every rank of the job sends (its rank added per call).
std::vector<v1::PlanRequest> StepRequests(const LengthSampler& sampler, int steps,
                                          const std::string& job, const std::string& strategy) {
  const int32_t workers = absl::GetFlag(FLAGS_workers);
  std::vector<v1::PlanRequest> requests(steps);
  for (int s = 0; s < steps; ++s) {
    Batch batch;
    batch.topology.num_workers = workers;
    batch.documents = *SampleDocuments(sampler, workers * absl::GetFlag(FLAGS_tokens_per_worker),
                                       131072, /*seed=*/7000 + s);
    requests[s].set_job_id(job);
    requests[s].set_step(s);
    BatchToProto(batch, &requests[s]);
    requests[s].mutable_options()->set_strategy(strategy);
  }
  return requests;
}

void Soak(const LengthSampler& sampler) {
  const int ranks = absl::GetFlag(FLAGS_ranks), steps = absl::GetFlag(FLAGS_steps);
  const int calls = absl::GetFlag(FLAGS_calls_per_rank), lookback = absl::GetFlag(FLAGS_lookback);
  const int64_t cache_bytes = absl::GetFlag(FLAGS_cache_bytes);
  const std::vector<v1::PlanRequest> requests =
      StepRequests(sampler, steps, "soak", absl::GetFlag(FLAGS_strategy));
  const TokensFile tokens;
  SoakCoordinator coordinator(
      absl::GetFlag(FLAGS_coordinator),
      tokens.With({"--cache-bytes", std::to_string(cache_bytes), "--planning-threads",
                   std::to_string(absl::GetFlag(FLAGS_planning_threads))}));
  Expect(coordinator.ok(), "soak: fcp-coordinator started");
  if (!coordinator.ok()) return;
  const double rss_before = coordinator.MemoryMiB();

  std::vector<std::vector<double>> latencies(ranks);
  std::atomic<int64_t> hits{0};
  absl::Mutex mu;
  Codes codes;
  std::atomic<bool> done{false};
  std::atomic<int64_t> calls_done{0};
  double rss_max = rss_before;
  std::vector<double> rss_at(11, -1);  // RSS when 0%, 10%, ..., 100% of the calls were answered
  rss_at[0] = rss_before;
  std::thread sampler_thread([&] {  // the coordinator's RSS, 10 times a second
    while (!done.load()) {
      absl::SleepFor(absl::Milliseconds(100));
      const double rss = coordinator.MemoryMiB();
      rss_max = std::max(rss_max, rss);
      const int64_t decile = calls_done.load() * 10 / (int64_t{ranks} * calls);
      for (int d = 1; d <= decile && d <= 10; ++d) {
        if (rss_at[d] < 0) rss_at[d] = rss;
      }
    }
  });
  const absl::Time start = absl::Now();
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      std::unique_ptr<v1::Planner::Stub> stub = NewStub(coordinator.target());
      std::mt19937_64 rng(100 + r);
      Codes mine;
      latencies[r].reserve(calls);
      for (int i = 0; i < calls; ++i) {
        const int step = static_cast<int>(static_cast<int64_t>(i) * steps / calls);
        const bool first = i == 0 || static_cast<int64_t>(i - 1) * steps / calls != step;
        int asked = step;
        if (!first && rng() % 2 == 0) {
          asked = std::max(0, step - static_cast<int>(rng() % (lookback + 1)));
        }
        v1::PlanRequest request = requests[asked];
        request.add_ranks(r % request.topology().num_workers());
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
        Authorize(&context);
        google::protobuf::Arena arena;
        auto* response = google::protobuf::Arena::CreateMessage<v1::PlanResponse>(&arena);
        const absl::Time t0 = absl::Now();
        const grpc::Status status = stub->PlanBatch(&context, request, response);
        latencies[r].push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
        ++mine[CodeName(status.error_code())];
        ++calls_done;
        if (status.ok() && response->cache_hit()) ++hits;
      }
      absl::MutexLock lock(&mu);
      for (const auto& [code, n] : mine) codes[code] += n;
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  done = true;
  sampler_thread.join();
  const double rss_after = coordinator.MemoryMiB();
  const double rss_peak = coordinator.MemoryMiB("VmHWM");
  const double cache_mib = coordinator.Metric("fcp_plan_cache_bytes") / (1 << 20);
  const double plannings =
      coordinator.Metric(R"(fcp_plan_cache_misses_total{training_job="soak"})");
  const int exit_code = coordinator.Stop();

  std::vector<double> all;
  for (const std::vector<double>& l : latencies) all.insert(all.end(), l.begin(), l.end());
  const int64_t total = static_cast<int64_t>(all.size());
  const int64_t ok = codes["OK"];
  std::printf(
      "soak: %d ranks x %d calls over %d steps, W=%d x %lld tokens/worker (~%d documents), "
      "strategy %s, --cache-bytes %lld MiB\n",
      ranks, calls, steps, absl::GetFlag(FLAGS_workers),
      static_cast<long long>(absl::GetFlag(FLAGS_tokens_per_worker)), requests[0].documents_size(),
      absl::GetFlag(FLAGS_strategy).c_str(), static_cast<long long>(cache_bytes >> 20));
  std::printf(
      "| calls | errors | cache hits | plannings | calls/s | p50 µs | p99 µs | p99.9 µs | "
      "max µs | RSS before MiB | RSS after MiB | RSS peak MiB | cache MiB | exit |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::printf(
      "| %lld | %lld | %lld | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f | %.1f | "
      "%.1f | %d |\n",
      static_cast<long long>(total), static_cast<long long>(total - ok),
      static_cast<long long>(hits.load()), plannings, total / seconds, Percentile(all, 50),
      Percentile(all, 99), Percentile(all, 99.9), Max(all), rss_before, rss_after,
      std::max(rss_peak, rss_max), cache_mib, exit_code);
  if (total != ok) std::printf("soak: answers: %s\n", Describe(codes).c_str());
  std::string timeline;
  for (int d = 0; d <= 10; ++d) {
    absl::StrAppend(&timeline, d == 0 ? "" : ", ", d * 10, "% ",
                    absl::StrFormat("%.1f", d == 10 ? rss_after : rss_at[d]));
  }
  std::printf("soak: coordinator RSS MiB by share of calls answered: %s\n", timeline.c_str());
  std::fflush(stdout);
  Expect(total == ok, "soak: every call answered OK");
  const double bound =
      rss_before + cache_bytes / double{1 << 20} + absl::GetFlag(FLAGS_rss_slack_mb);
  Expect(rss_peak <= bound, absl::StrCat("soak: coordinator peak RSS ", rss_peak,
                                         " MiB <= before + cache + slack = ", bound, " MiB"));
  Expect(exit_code == 0, "soak: coordinator drained and exited 0 on SIGTERM");
}

// `count` calls of `request` from `threads` threads at once: answers by code, latencies.
struct Burst {
  Codes codes;
  std::vector<double> latencies_us;
  std::map<std::string, std::vector<double>> latencies_by_code;
  std::string message;  // one refusal's message
};

Burst SendAtOnce(const std::string& target, const std::vector<v1::PlanRequest>& requests,
                 int threads) {
  Burst burst;
  absl::Mutex mu;
  std::atomic<size_t> next{0};
  std::atomic<int> connected{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      // Connected first (one ListStrategies), then all at once: the latencies are the answers'.
      std::unique_ptr<v1::Planner::Stub> stub = NewStub(target);
      grpc::ClientContext warm;
      v1::ListStrategiesResponse strategies;
      (void)stub->ListStrategies(&warm, v1::ListStrategiesRequest(), &strategies);
      ++connected;
      while (connected.load() < threads) absl::SleepFor(absl::Microseconds(100));
      for (size_t i = next++; i < requests.size(); i = next++) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
        Authorize(&context);
        v1::PlanResponse response;
        const absl::Time t0 = absl::Now();
        const grpc::Status status = stub->PlanBatch(&context, requests[i], &response);
        const double us = absl::ToDoubleMicroseconds(absl::Now() - t0);
        absl::MutexLock lock(&mu);
        ++burst.codes[CodeName(status.error_code())];
        burst.latencies_us.push_back(us);
        burst.latencies_by_code[CodeName(status.error_code())].push_back(us);
        if (!status.ok() && burst.message.empty()) burst.message = status.error_message();
      }
    });
  }
  for (std::thread& t : pool) t.join();
  return burst;
}

void Overload(const LengthSampler& sampler) {
  const int burst_size = absl::GetFlag(FLAGS_burst);
  const int queue = absl::GetFlag(FLAGS_max_queued_plannings);
  const int threads = absl::GetFlag(FLAGS_planning_threads);
  constexpr int kMaxRequestBytes = 1 << 20;
  const TokensFile tokens;
  SoakCoordinator coordinator(
      absl::GetFlag(FLAGS_coordinator),
      tokens.With({"--planning-threads", std::to_string(threads), "--max-queued-plannings",
                   std::to_string(queue), "--max-request-bytes", std::to_string(kMaxRequestBytes),
                   "--max-documents", "50000", "--max-workers", "4096"}));
  Expect(coordinator.ok(), "overload: fcp-coordinator started");
  if (!coordinator.ok()) return;
  const double rss_before = coordinator.MemoryMiB();
  std::printf(
      "overload: --planning-threads %d --max-queued-plannings %d --max-request-bytes %d "
      "--max-documents 50000 --max-workers 4096 (--max-blocks, --max-transfers default)\n",
      threads, queue, kMaxRequestBytes);
  std::printf(
      "| load | sent | answers | p50 ms | max ms | message | RSS after MiB |\n"
      "|---|---|---|---|---|---|---|\n");
  auto row = [&](const std::string& what, const Burst& b) {
    std::printf("| %s | %zu | %s | %.1f | %.1f | %s | %.1f |\n", what.c_str(),
                b.latencies_us.size(), Describe(b.codes).c_str(),
                Percentile(b.latencies_us, 50) / 1e3, Max(b.latencies_us) / 1e3, b.message.c_str(),
                coordinator.MemoryMiB());
    std::fflush(stdout);
  };

  // (1) More distinct plannings than threads + queue, all at once: `auto` with a long budget keeps
  // the planning threads busy while the rest arrive.
  std::vector<v1::PlanRequest> distinct = StepRequests(sampler, burst_size, "burst", "auto");
  for (v1::PlanRequest& r : distinct) {
    r.add_ranks(0);
    r.mutable_options()->set_time_budget_ms(2000);
  }
  const Burst raw = SendAtOnce(coordinator.target(), distinct, burst_size);
  row(absl::StrCat(burst_size, " distinct plannings at once (raw stub)"), raw);
  const int64_t refused =
      raw.codes.count("RESOURCE_EXHAUSTED") ? raw.codes.at("RESOURCE_EXHAUSTED") : 0;
  const int64_t served = raw.codes.count("OK") ? raw.codes.at("OK") : 0;
  Expect(served + refused == burst_size, "overload: only OK or RESOURCE_EXHAUSTED");
  Expect(served >= threads && served <= threads + queue + 2,
         absl::StrCat("overload: ", served, " served, ~threads + queue = ", threads + queue));
  const std::vector<double> refusals = raw.latencies_by_code.count("RESOURCE_EXHAUSTED")
                                           ? raw.latencies_by_code.at("RESOURCE_EXHAUSTED")
                                           : std::vector<double>();
  const std::vector<double> plans =
      raw.latencies_by_code.count("OK") ? raw.latencies_by_code.at("OK") : std::vector<double>();
  std::printf(
      "| of which the %lld refusals | %lld | RESOURCE_EXHAUSTED %lld | %.1f | %.1f | - | - |\n",
      static_cast<long long>(refused), static_cast<long long>(refused),
      static_cast<long long>(refused), Percentile(refusals, 50) / 1e3, Max(refusals) / 1e3);
  std::printf("| of which the %lld plans | %lld | OK %lld | %.1f | %.1f | - | - |\n",
              static_cast<long long>(served), static_cast<long long>(served),
              static_cast<long long>(served), Percentile(plans, 50) / 1e3, Max(plans) / 1e3);
  // Refusals do not wait for planning: every one is back before the median plan.
  Expect(Max(refusals) < Percentile(plans, 50),
         "overload: every refusal answered before the median accepted planning");

  // The same burst through PlannerClient: retry on UNAVAILABLE, local fallback on
  // RESOURCE_EXHAUSTED. Every rank gets its plan, with the coordinator's plan id.
  for (v1::PlanRequest& r : distinct) r.set_job_id("burst-client");
  std::atomic<int64_t> errors{0}, fallbacks{0};
  std::vector<double> client_us(burst_size);
  std::vector<std::string> fallback_ids(burst_size);  // of the plans made locally
  std::vector<std::thread> ranks;
  for (int i = 0; i < burst_size; ++i) {
    ranks.emplace_back([&, i] {
      PlannerClientOptions options;
      options.target = coordinator.target();
      options.deadline = absl::Seconds(60);
      if (absl::GetFlag(FLAGS_job_tokens)) options.job_token = kSoakToken;
      std::unique_ptr<PlannerClient> client = *PlannerClient::Create(options);
      const absl::Time t0 = absl::Now();
      absl::StatusOr<PlanResult> result = client->PlanBatch(distinct[i]);
      client_us[i] = absl::ToDoubleMicroseconds(absl::Now() - t0);
      if (!result.ok()) {
        ++errors;
        return;
      }
      if (result->source == PlanSource::kLocalFallback) {
        ++fallbacks;
        fallback_ids[i] = result->plan.plan_id();
      }
    });
  }
  for (std::thread& t : ranks) t.join();
  // A plan made locally is the coordinator's plan: ask it now (its queue is empty) for a few.
  int compared = 0;
  std::unique_ptr<v1::Planner::Stub> stub = NewStub(coordinator.target());
  for (int i = 0; i < burst_size && compared < 4; ++i) {
    if (fallback_ids[i].empty()) continue;
    grpc::ClientContext context;
    Authorize(&context);
    v1::PlanResponse response;
    const grpc::Status status = stub->PlanBatch(&context, distinct[i], &response);
    Expect(status.ok() && response.plan().plan_id() == fallback_ids[i],
           absl::StrCat("overload: the local plan of request ", i, " has the coordinator's id"));
    ++compared;
  }
  std::printf(
      "| %d distinct plannings at once (PlannerClient, fallback on) | %d | OK %d (%lld "
      "planned locally, %d of them checked: the coordinator's plan id), errors %lld | %.1f "
      "| %.1f | - | %.1f |\n",
      burst_size, burst_size, burst_size - static_cast<int>(errors.load()),
      static_cast<long long>(fallbacks.load()), compared, static_cast<long long>(errors.load()),
      Percentile(client_us, 50) / 1e3, Max(client_us) / 1e3, coordinator.MemoryMiB());
  Expect(errors == 0, "overload: PlannerClient: every rank got a plan");
  Expect(fallbacks > 0, "overload: PlannerClient: some plans were made locally (fallback)");

  // (2) Requests over each limit, `oversized` of each from 16 threads.
  const int n = absl::GetFlag(FLAGS_oversized);
  struct Oversized {
    std::string what;
    v1::PlanRequest request;
  };
  std::vector<Oversized> cases(5);
  cases[0].what = "over --max-request-bytes (2.4 MB)";
  for (int i = 0; i < 400000; ++i) cases[0].request.add_documents()->set_length(100000 + i % 7);
  cases[1].what = "over --max-documents (60,000 documents, 180 KB)";
  for (int i = 0; i < 60000; ++i) cases[1].request.add_documents()->set_length(100);
  cases[2].what = "over --max-workers (W = 100,000)";
  cases[2].request.add_documents()->set_length(1000);
  cases[3].what = "over --max-blocks (ring, W = 2048, 2,000 x 100K tokens: 6 KB)";
  for (int i = 0; i < 2000; ++i) cases[3].request.add_documents()->set_length(100000);
  cases[3].request.mutable_options()->set_strategy("ring");
  cases[4].what = "over --max-transfers (ring, W = 4096, one 8K-token document: 10 bytes)";
  cases[4].request.add_documents()->set_length(8192);
  cases[4].request.mutable_options()->set_strategy("ring");
  const int32_t workers[] = {64, 64, 100000, 2048, 4096};
  for (int c = 0; c < 5; ++c) {
    v1::PlanRequest& r = cases[c].request;
    r.set_job_id("oversized");
    r.mutable_topology()->set_num_workers(workers[c]);
    r.mutable_model()->set_num_q_heads(32);
    r.mutable_model()->set_num_kv_heads(8);
    r.mutable_model()->set_head_dim(128);
    // One at a time (the refusal's own latency), then `n` from 16 threads (memory under a flood).
    const Burst one = SendAtOnce(coordinator.target(), std::vector<v1::PlanRequest>(8, r), 1);
    row(cases[c].what + ", one at a time", one);
    const Burst flood = SendAtOnce(coordinator.target(), std::vector<v1::PlanRequest>(n, r), 16);
    row(absl::StrCat(cases[c].what, ", ", n, " from 16 threads"), flood);
    for (const Burst* b : {&one, &flood}) {
      Expect(b->codes.size() == 1 && b->codes.count("RESOURCE_EXHAUSTED") == 1,
             absl::StrCat("overload: ", cases[c].what, ": every one RESOURCE_EXHAUSTED"));
    }
    Expect(Percentile(one.latencies_us, 50) < 100e3,
           absl::StrCat("overload: ", cases[c].what, ": refused in < 100 ms (p50)"));
  }
  const double rss_after = coordinator.MemoryMiB();
  const double rss_peak = coordinator.MemoryMiB("VmHWM");
  const int exit_code = coordinator.Stop();
  std::printf("overload: coordinator RSS %.1f MiB before, %.1f after, peak %.1f; exit %d\n",
              rss_before, rss_after, rss_peak, exit_code);
  Expect(exit_code == 0, "overload: coordinator drained and exited 0 on SIGTERM");
}

int Main() {
  absl::StatusOr<std::vector<int64_t>> lengths = ReadLengthsFile(absl::GetFlag(FLAGS_lengths));
  if (!lengths.ok()) {
    std::fprintf(stderr, "coordinator_soak: %s\n", std::string(lengths.status().message()).c_str());
    return 2;
  }
  const LengthSampler sampler = *LengthSampler::FromLengths(*std::move(lengths));
  const std::string scenario = absl::GetFlag(FLAGS_scenario);
  if (scenario.find("soak") != std::string::npos) Soak(sampler);
  if (scenario.find("overload") != std::string::npos) Overload(sampler);
  return absl::GetFlag(FLAGS_check) && failed ? 1 : 0;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every mutex acquisition for lock-order cycles; gRPC locks a lot.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return fcp::Main();
}
