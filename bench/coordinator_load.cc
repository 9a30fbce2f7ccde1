// Coordinator round trip under load, over loopback TCP: p50/p99 latency and responses/s of
// PlanBatch for one rank's slice of a W-worker wikipedia batch, with 1..N concurrent clients
// (each its own TCP connection), for cache misses (every request plans) and cache hits.
//
//   build/bench/coordinator_load                                  # in-process coordinator
//   build/bench/coordinator_load --target=host:50051 --mode=hit   # a running fcp-coordinator
//   build/bench/coordinator_load --concurrency=1,8 --duration_s=5 --strategy=auto --json
//
// Bounded: each (mode, concurrency) cell runs --duration_s seconds. Misses: the in-process
// coordinator runs without a cache (every request plans) and each client cycles through its own
// batches, so no two requests share a planning. Hits: the batches are planned once first, then
// requests rotate over ranks and batches. Latency is client-side: send, plan or look up, slice,
// receive, parse. --client picks the caller: fcp::PlannerClient (default, what trainers call; the
// clients of one process share one connection, gRPC's subchannel pool), the generated stub
// parsing into an arena, or raw bytes (both with a connection per client). Results and method:
// docs/benchmarks.md ("Coordinator round trip").
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/call_and_wait.h"
#include "fcp/client.h"
#include "fcp/v1/planner.grpc.pb.h"
#include "google/protobuf/arena.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/proto_buffer_writer.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "proto/plan_convert.h"
#include "service/coordinator.h"
#include "service/planner/strategies/dcp.h"
#include "workload/workload.h"

ABSL_FLAG(std::string, target, "", "fcp-coordinator HOST:PORT; empty = start one in-process");
ABSL_FLAG(std::string, lengths, std::string(FCP_SHARED_DIR) + "/workloads/wikipedia.lengths",
          "document lengths file");
ABSL_FLAG(int32_t, workers, 64, "W: workers per plan (each request asks for one rank's slice)");
ABSL_FLAG(int64_t, tokens_per_worker, 32768, "tokens per worker");
ABSL_FLAG(std::string, strategy, "fcp", "planning strategy");
ABSL_FLAG(std::string, mode, "miss,hit", "miss, hit, or both");
ABSL_FLAG(std::string, concurrency, "1,4,16,64", "concurrent clients, comma-separated");
ABSL_FLAG(double, duration_s, 2, "seconds per (mode, concurrency) cell");
ABSL_FLAG(int32_t, batches_per_client, 8, "distinct batches each client cycles through");
ABSL_FLAG(int32_t, planning_threads, 2, "in-process coordinator: planning threads");
ABSL_FLAG(std::string, client, "planner",
          "what each client calls: planner = fcp::PlannerClient::PlanBatch, as trainers do "
          "(callback stub, response parsed onto the heap, plan id checked); proto = the generated "
          "callback stub, response parsed into an arena; raw = the response left as bytes (the "
          "server's cost alone)");
ABSL_FLAG(bool, json, false, "one JSON object per cell instead of a table");

namespace fcp {
namespace {

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own connection, as a rank would
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// Sum and count of the server's PlanBatch handling time (its grpc_server_handling_seconds).
std::pair<double, double> ServerHandling(prometheus::Registry* registry) {
  if (registry == nullptr) return {0, 0};
  for (const prometheus::MetricFamily& family : registry->Collect()) {
    if (family.name != "grpc_server_handling_seconds") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name == "grpc_method" && l.value == "PlanBatch") {
          return {m.histogram.sample_sum, static_cast<double>(m.histogram.sample_count)};
        }
      }
    }
  }
  return {0, 0};
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// PlanBatch with the response left as bytes (counted into `bytes`), not parsed.
grpc::Status RawCall(grpc::GenericStub& stub, grpc::ClientContext& context,
                     const v1::PlanRequest& request, std::atomic<int64_t>* bytes) {
  grpc::ByteBuffer send, receive;
  bool own_buffer = false;
  grpc::Status status =
      grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::PlanRequest>(request, &send, &own_buffer);
  if (!status.ok()) return status;
  status = CallAndWait([&](auto done) {
    stub.UnaryCall(&context, "/fcp.v1.Planner/PlanBatch", grpc::StubOptions(), &send, &receive,
                   std::move(done));
  });
  if (bytes != nullptr) *bytes += static_cast<int64_t>(receive.Length());
  return status;
}

enum class ClientKind { kPlannerClient, kProto, kRaw };

struct Cell {
  std::string mode;
  double server_us = 0;  // mean server handling time (in-process coordinator only)
  int clients = 0;
  std::vector<double> latencies_us;
  double seconds = 0;
  int64_t errors = 0;
  int64_t cache_hits = 0;
  int64_t response_bytes = 0;  // over `sized` responses
  int64_t sized = 0;
};

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p / 100 * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

// `clients` threads each send requests[their own slice of the pool] for `duration`.
Cell RunCell(const std::string& target, const std::string& mode, ClientKind kind, int clients,
             const std::vector<v1::PlanRequest>& pool, int per_client, absl::Duration duration,
             prometheus::Registry* registry) {
  const auto [sum_before, count_before] = ServerHandling(registry);
  Cell cell;
  cell.mode = mode;
  cell.clients = clients;
  std::vector<std::vector<double>> latencies(clients);
  std::atomic<int64_t> errors{0}, hits{0}, bytes{0}, sized{0};
  const int32_t workers = pool.front().topology().num_workers();
  const absl::Time start = absl::Now();
  const absl::Time end = start + duration;
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      std::shared_ptr<grpc::Channel> channel = NewChannel(target);
      auto stub = v1::Planner::NewStub(channel);
      grpc::GenericStub raw(channel);
      std::unique_ptr<PlannerClient> planner;
      if (kind == ClientKind::kPlannerClient) {
        PlannerClientOptions options;
        options.target = target;
        options.deadline = absl::Seconds(60);
        options.local_fallback = false;  // an error is counted, never hidden by local planning
        planner = *PlannerClient::Create(std::move(options));
      }
      // A rank builds its request once per step; the bench builds its batches once.
      std::vector<v1::PlanRequest> mine;
      for (int k = 0; k < per_client; ++k) {
        const size_t batch = mode == "miss" ? c * per_client + k : c + k;
        mine.push_back(pool[batch % pool.size()]);
        mine.back().add_ranks(0);
      }
      for (int64_t i = 0; absl::Now() < end; ++i) {
        v1::PlanRequest& request = mine[i % per_client];
        request.set_ranks(0, static_cast<int32_t>((c + i) % workers));
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
        // The response is parsed into an arena: thousands of blocks and documents, one free.
        google::protobuf::Arena arena;
        auto* response = google::protobuf::Arena::CreateMessage<v1::PlanResponse>(&arena);
        const absl::Time t0 = absl::Now();
        absl::Status status;
        bool hit = false;
        // Sizing a parsed message walks it: only a client's first responses are sized.
        const bool size_it = i < 8;
        switch (kind) {
          case ClientKind::kRaw:
            status = FromGrpc(RawCall(raw, context, request, size_it ? &bytes : nullptr));
            break;
          case ClientKind::kProto:
            status = FromGrpc(CallAndWait([&](auto done) {
              stub->async()->PlanBatch(&context, &request, response, std::move(done));
            }));
            hit = response->cache_hit();
            if (size_it) bytes += static_cast<int64_t>(response->ByteSizeLong());
            break;
          case ClientKind::kPlannerClient: {
            absl::StatusOr<PlanResult> result = planner->PlanBatch(request);
            status = result.status();
            if (result.ok()) {
              hit = result->cache_hit;
              if (size_it) bytes += static_cast<int64_t>(result->plan.ByteSizeLong());
            }
            break;
          }
        }
        latencies[c].push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
        if (!status.ok()) {
          if (errors++ == 0) std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
          continue;
        }
        hits += hit ? 1 : 0;
        sized += size_it ? 1 : 0;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  cell.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  for (auto& l : latencies) cell.latencies_us.insert(cell.latencies_us.end(), l.begin(), l.end());
  cell.errors = errors;
  cell.cache_hits = hits;
  cell.response_bytes = bytes;
  cell.sized = sized;
  const auto [sum_after, count_after] = ServerHandling(registry);
  if (count_after > count_before) {
    cell.server_us = (sum_after - sum_before) / (count_after - count_before) * 1e6;
  }
  return cell;
}

void Report(Cell& c, bool json) {
  const double n = static_cast<double>(c.latencies_us.size());
  const double p50 = Percentile(c.latencies_us, 50), p90 = Percentile(c.latencies_us, 90);
  const double p99 = Percentile(c.latencies_us, 99), p999 = Percentile(c.latencies_us, 99.9);
  const double max =
      c.latencies_us.empty() ? 0 : *std::max_element(c.latencies_us.begin(), c.latencies_us.end());
  const double per_s = n / c.seconds;
  const double kb = c.sized > 0 ? static_cast<double>(c.response_bytes) / c.sized / 1024 : 0;
  if (json) {
    std::printf(
        "{\"mode\":\"%s\",\"clients\":%d,\"requests\":%.0f,\"per_s\":%.1f,\"p50_us\":%.1f,"
        "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"cache_hits\":%lld,"
        "\"errors\":%lld,\"response_kib\":%.1f,\"server_mean_us\":%.1f}\n",
        c.mode.c_str(), c.clients, n, per_s, p50, p90, p99, p999, max,
        static_cast<long long>(c.cache_hits), static_cast<long long>(c.errors), kb, c.server_us);
  } else {
    std::printf(
        "| %-4s | %7d | %8.0f | %9.0f | %8.0f | %8.0f | %8.0f | %8.0f | %9.0f | %6lld | %8.1f |\n",
        c.mode.c_str(), c.clients, n, per_s, p50, p90, p99, max, c.server_us,
        static_cast<long long>(c.errors), kb);
  }
  std::fflush(stdout);
}

// One plain unary call's round trip (ListStrategies), the transport's floor on this machine.
double FloorMicros(const std::string& target) {
  auto stub = v1::Planner::NewStub(NewChannel(target));
  std::vector<double> us;
  const v1::ListStrategiesRequest request;
  for (int i = 0; i < 2000; ++i) {
    grpc::ClientContext context;
    v1::ListStrategiesResponse response;
    const absl::Time t0 = absl::Now();
    (void)CallAndWait([&](auto done) {
      stub->async()->ListStrategies(&context, &request, &response, std::move(done));
    });
    if (i >= 200) us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
  }
  return Percentile(us, 50);
}

int Main() {
  std::vector<int> concurrency;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(s, &v) || v < 1) {
      std::fprintf(stderr, "coordinator_load: --concurrency: bad value '%s'\n",
                   std::string(s).c_str());
      return 2;
    }
    concurrency.push_back(v);
  }
  absl::StatusOr<std::vector<int64_t>> lengths = ReadLengthsFile(absl::GetFlag(FLAGS_lengths));
  if (!lengths.ok()) {
    std::fprintf(stderr, "coordinator_load: %s\n", std::string(lengths.status().message()).c_str());
    return 2;
  }
  const std::string client_flag = absl::GetFlag(FLAGS_client);
  ClientKind kind;
  if (client_flag == "planner") {
    kind = ClientKind::kPlannerClient;
  } else if (client_flag == "proto") {
    kind = ClientKind::kProto;
  } else if (client_flag == "raw") {
    kind = ClientKind::kRaw;
  } else {
    std::fprintf(stderr, "coordinator_load: --client: '%s' is not planner, proto or raw\n",
                 client_flag.c_str());
    return 2;
  }
  const LengthSampler sampler = *LengthSampler::FromLengths(*std::move(lengths));
  const int32_t workers = absl::GetFlag(FLAGS_workers);
  const int per_client = absl::GetFlag(FLAGS_batches_per_client);
  const int max_clients = *std::max_element(concurrency.begin(), concurrency.end());
  std::vector<v1::PlanRequest> pool;
  for (int b = 0; b < per_client * max_clients; ++b) {
    Batch batch;
    batch.topology.num_workers = workers;
    batch.documents = *SampleDocuments(sampler, workers * absl::GetFlag(FLAGS_tokens_per_worker),
                                       131072, /*seed=*/1000 + b);
    v1::PlanRequest request;
    request.set_job_id("coordinator-load");
    request.set_step(b);
    BatchToProto(batch, &request);
    request.mutable_options()->set_strategy(absl::GetFlag(FLAGS_strategy));
    pool.push_back(std::move(request));
  }

  const std::string mode_flag = absl::GetFlag(FLAGS_mode);
  const absl::Duration duration = absl::Seconds(absl::GetFlag(FLAGS_duration_s));
  const bool json = absl::GetFlag(FLAGS_json);
  std::printf(
      "# W=%d x %lld tokens/worker, strategy %s, %zu distinct batches of ~%d documents, "
      "client %s\n",
      workers, static_cast<long long>(absl::GetFlag(FLAGS_tokens_per_worker)),
      absl::GetFlag(FLAGS_strategy).c_str(), pool.size(), pool[0].documents_size(),
      client_flag.c_str());
  if (!json) {
    std::printf(
        "| mode | clients | requests | per second | p50 µs | p90 µs | p99 µs | max µs | "
        "server µs | errors | resp KiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  }
  for (const std::string mode : {"miss", "hit"}) {
    if (mode_flag.find(mode) == std::string::npos) continue;
    std::unique_ptr<Coordinator> local;
    std::string target = absl::GetFlag(FLAGS_target);
    if (target.empty()) {
      CoordinatorOptions options;
      options.host = "127.0.0.1";
      options.port = 0;
      options.metrics_port = -1;
      options.planning.planning_threads = absl::GetFlag(FLAGS_planning_threads);
      if (mode == "miss") options.planning.cache_bytes = 1;  // nothing is kept: every request plans
      local = *Coordinator::Start(options);
      target = absl::StrCat("127.0.0.1:", local->port());
    }
    if (mode == "hit") {
      for (const v1::PlanRequest& r : pool) {
        auto stub = v1::Planner::NewStub(NewChannel(target));
        grpc::ClientContext context;
        v1::PlanResponse response;
        v1::PlanRequest one = r;
        one.add_ranks(0);
        (void)stub->PlanBatch(&context, one, &response);
      }
      std::printf("# unary floor (ListStrategies) p50: %.0f µs\n", FloorMicros(target));
    }
    for (int clients : concurrency) {
      Cell cell = RunCell(target, mode, kind, clients, pool, per_client, duration,
                          local != nullptr ? &local->registry() : nullptr);
      Report(cell, json);
    }
    if (local != nullptr) local->Shutdown(absl::ZeroDuration());
  }
  return 0;
}

}  // namespace
}  // namespace fcp

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // Debian's Abseil checks every mutex acquisition for lock-order cycles; gRPC locks a lot.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  fcp::RegisterDcpPlanner();
  return fcp::Main();
}
