// The execution C API (fcp/c_exec_api.h) as a trainer binding uses it: ranks as threads of this
// process, each with its own fcp_executor over gloo (rendezvous in a directory, through the
// trainer's own store callbacks, or through fcp-coordinator), plans from a local-only client, the
// rank's rows dispatched by fcp_plan_rank_tokens, forward/backward checked against single-process
// reference attention (kernels/reference.h, double accumulation; fp32 within 1e-5), o gathered
// and a gradient scattered back. Also: metrics on metrics_port, a peer that is absent or gone, and
// every bad input returning INVALID_ARGUMENT naming the argument.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fcp/c_api.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/dtype_convert.h"
#include "kernels/reference.h"
#include "service/coordinator.h"
#include "tests/http_get.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int32_t kQHeads = 4, kKvHeads = 2, kHeadDim = 16;
constexpr int64_t kQRow = kQHeads * kHeadDim, kKvRow = kKvHeads * kHeadDim;
const std::vector<int64_t> kLengths = {131, 7, 1, 200, 65, 90};

std::string FreshDir() {
  static int n = 0;
  std::string dir = absl::StrCat(::testing::TempDir(), "/fcp-exec-", getpid(), "-", n++);
  return dir;
}

// A key-value store as a trainer's (torch's c10d store) would be: the callbacks of fcp_store.
class MemoryStore {
 public:
  fcp_store Callbacks() { return fcp_store{this, &Set, &Get}; }

 private:
  static int Set(void* context, const char* key, const void* value, size_t size) {
    auto* self = static_cast<MemoryStore*>(context);
    std::lock_guard<std::mutex> lock(self->mu_);
    const char* bytes = static_cast<const char*>(value);
    self->values_[key] = std::string(bytes, bytes + size);
    self->changed_.notify_all();
    return 0;
  }
  static int Get(void* context, const char* key, void* value, size_t capacity, size_t* size,
                 double timeout_seconds) {
    auto* self = static_cast<MemoryStore*>(context);
    std::unique_lock<std::mutex> lock(self->mu_);
    if (!self->changed_.wait_for(lock, std::chrono::duration<double>(timeout_seconds),
                                 [&] { return self->values_.count(key) > 0; })) {
      return 1;
    }
    const std::string& v = self->values_[key];
    *size = v.size();
    std::memcpy(value, v.data(), std::min(capacity, v.size()));
    return 0;
  }

  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::string> values_;
};

// A client that plans locally (no coordinator), and a batch of kLengths for `world` ranks.
fcp_client* LocalClient() {
  fcp_client_options options;
  fcp_client_options_init(&options);
  fcp_client* client = nullptr;
  EXPECT_EQ(fcp_client_new(&options, &client, nullptr), FCP_OK);
  return client;
}

fcp_batch TestBatch(int32_t world, const char* strategy) {
  fcp_batch batch;
  fcp_batch_init(&batch);
  batch.job_id = "c-exec";
  batch.step = 3;
  batch.document_lengths = kLengths.data();
  batch.num_documents = kLengths.size();
  batch.num_q_heads = kQHeads;
  batch.num_kv_heads = kKvHeads;
  batch.head_dim = kHeadDim;
  batch.num_workers = world;
  batch.strategy = strategy;
  return batch;
}

// Every rank's slices, every document under mask kind `mask` (window 37, prefix 50).
fcp_plan* MakePlan(int32_t world, int mask, const char* strategy) {
  fcp_client* client = LocalClient();
  const fcp_batch batch = TestBatch(world, strategy);
  std::vector<fcp_mask> masks(kLengths.size(), fcp_mask{mask, 37, 50});
  fcp_plan* plan = nullptr;
  fcp_error error;
  EXPECT_EQ(fcp_client_plan_masked(client, &batch, masks.data(), &plan, &error), FCP_OK)
      << error.message;
  fcp_client_free(client);
  return plan;
}

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = u(rng);
  return x;
}

std::vector<float> Rows(const std::vector<float>& global, const std::vector<int64_t>& index,
                        int64_t row) {
  std::vector<float> out;
  for (int64_t g : index) out.insert(out.end(), &global[g * row], &global[g * row] + row);
  return out;
}

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return got.size() != want.size() ? 1e30 : diff / std::max(scale, 1e-30);
}

struct Globals {
  std::vector<float> q, k, v, d_o;
  kernels::ReferenceResult ref;  // concatenated over documents
};

kernels::DType KernelDType(int32_t dtype) {
  return dtype == FCP_DTYPE_BF16   ? kernels::DType::kBf16
         : dtype == FCP_DTYPE_FP16 ? kernels::DType::kFp16
                                   : kernels::DType::kFp32;
}

// x in `dtype` (an fcp_dtype), and back.
std::vector<char> Encode(int32_t dtype, const std::vector<float>& x) {
  std::vector<char> out(x.size() * kernels::DTypeBytes(KernelDType(dtype)));
  kernels::ConvertFromFloat(x.data(), KernelDType(dtype), out.data(),
                            static_cast<int64_t>(x.size()));
  return out;
}
std::vector<float> Decode(int32_t dtype, const std::vector<char>& x) {
  std::vector<float> out(x.size() / kernels::DTypeBytes(KernelDType(dtype)));
  kernels::ConvertToFloat(x.data(), KernelDType(dtype), out.data(),
                          static_cast<int64_t>(out.size()));
  return out;
}

// Random inputs, representable in `dtype`, and their reference attention.
Globals MakeGlobals(int mask, int32_t dtype) {
  std::mt19937 rng(17);
  int64_t total = 0;
  for (int64_t n : kLengths) total += n;
  auto draw = [&](int64_t n) { return Decode(dtype, Encode(dtype, Random(n, rng))); };
  Globals g{
      draw(total * kQRow), draw(total * kKvRow), draw(total * kKvRow), draw(total * kQRow), {}};
  const kernels::TileMask tile_mask{static_cast<kernels::MaskKind>(mask), 37, 50};
  int64_t offset = 0;
  for (int64_t n : kLengths) {
    kernels::ReferenceResult r = kernels::ReferenceAttention(
        {kQHeads, kKvHeads, kHeadDim}, tile_mask, n, &g.q[offset * kQRow], &g.k[offset * kKvRow],
        &g.v[offset * kKvRow], &g.d_o[offset * kQRow]);
    for (auto [to, from] : {std::pair{&g.ref.o, &r.o},
                            {&g.ref.lse, &r.lse},
                            {&g.ref.dq, &r.dq},
                            {&g.ref.dk, &r.dk},
                            {&g.ref.dv, &r.dv}}) {
      to->insert(to->end(), from->begin(), from->end());
    }
    offset += n;
  }
  return g;
}

enum class Meet { kDirectory, kStore, kCoordinator, kLoopback };
constexpr const char* kMeet[] = {"Directory", "Store", "Coordinator", "Loopback"};

struct Case {
  int32_t world;
  int mask;
  const char* strategy;
  Meet meet;
  int32_t dtype = FCP_DTYPE_FP32;
};

class CExecApiTest : public ::testing::TestWithParam<Case> {};

// Every rank: executor, dispatch, forward, backward, gather of o, scatter-add of a gradient.
TEST_P(CExecApiTest, RanksOverGlooEqualReferenceAttention) {
  const Case c = GetParam();
  std::unique_ptr<Coordinator> coordinator;
  std::string rendezvous = absl::StrCat("file:", FreshDir());
  if (c.meet == Meet::kCoordinator) {
    CoordinatorOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.metrics_port = -1;
    coordinator = *Coordinator::Start(options);
    rendezvous = absl::StrCat("coordinator:127.0.0.1:", coordinator->port());
  }
  MemoryStore store;
  const fcp_store callbacks = store.Callbacks();
  const std::string job = absl::StrCat("job-", c.world, "-", c.mask, "-", c.strategy);
  fcp_plan* plan = MakePlan(c.world, c.mask, c.strategy);
  ASSERT_NE(plan, nullptr);
  const Globals g = MakeGlobals(c.mask, c.dtype);
  // fp32: 1e-5 of the largest reference value; bf16: plus one rounding of each output (2^-8; the
  // CPU widens the inputs exactly and computes in fp32). lse stays fp32.
  const double tolerance = 1e-5 + (c.dtype == FCP_DTYPE_BF16 ? std::ldexp(1.0, -8) : 0.0);
  const size_t elem = kernels::DTypeBytes(KernelDType(c.dtype));
  const int64_t total = static_cast<int64_t>(g.ref.lse.size()) / kQHeads;
  std::vector<std::string> failures(c.world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < c.world; ++r) {
    threads.emplace_back([&, r] {
      std::string& failure = failures[r];
      fcp_error error;
      fcp_executor_options options;
      fcp_executor_options_init(&options);
      options.rank = r;
      options.world_size = c.world;
      options.job_id = job.c_str();
      options.timeout_seconds = 60;
      options.threads = 1;
      if (c.meet == Meet::kLoopback) {
        options.transport = "loopback";
      } else if (c.meet == Meet::kStore) {
        options.store = &callbacks;
      } else {
        options.rendezvous = rendezvous.c_str();
      }
      fcp_executor* ex = nullptr;
      if (fcp_executor_new(&options, &ex, &error) != FCP_OK) {
        failure = absl::StrCat("executor_new: ", error.message);
        return;
      }
      int64_t n = 0;
      EXPECT_EQ(fcp_plan_rank_tokens(plan, r, nullptr, nullptr, 0, &n, nullptr), FCP_OK);
      std::vector<int64_t> index(n), position(n);
      EXPECT_EQ(fcp_plan_rank_tokens(plan, r, index.data(), position.data(), n, &n, nullptr),
                FCP_OK);
      const std::vector<char> q = Encode(c.dtype, Rows(g.q, index, kQRow)),
                              k = Encode(c.dtype, Rows(g.k, index, kKvRow)),
                              v = Encode(c.dtype, Rows(g.v, index, kKvRow)),
                              d_o = Encode(c.dtype, Rows(g.d_o, index, kQRow)),
                              d_global = Encode(c.dtype, g.d_o);
      std::vector<char> o(n * kQRow * elem), dq(n * kQRow * elem), dk(n * kKvRow * elem),
          dv(n * kKvRow * elem), o_global(total * kQRow * elem), grad(n * kQRow * elem);
      std::vector<float> lse(n * kQHeads);
      const fcp_attention_shape shape{kQHeads, kKvHeads, kHeadDim, c.dtype};
      fcp_context* context = nullptr;
      if (fcp_forward(ex, plan, 3, &shape, n, q.data(), k.data(), v.data(), o.data(), lse.data(),
                      nullptr, &context, &error) != FCP_OK ||
          fcp_backward(ex, context, d_o.data(), dq.data(), dk.data(), dv.data(), nullptr, &error) !=
              FCP_OK ||
          fcp_gather_rows(ex, plan, 3, kQRow * elem, o.data(), o_global.data(), &error) != FCP_OK ||
          fcp_scatter_add_rows(ex, plan, 3, c.dtype, kQRow, d_global.data(), grad.data(), &error) !=
              FCP_OK) {
        failure = error.message;
      } else {
        fcp_exec_stats stats;
        fcp_executor_last_stats(ex, &stats);
        EXPECT_GT(stats.tiles, 0);
        if (c.world == 1) EXPECT_EQ(stats.bytes_sent, 0);  // nobody to send to
        if (c.world > 1 && std::string(c.strategy) == "ring") EXPECT_GT(stats.bytes_sent, 0);
        const std::string at = absl::StrCat("rank ", r);
        EXPECT_LT(RelError(Decode(c.dtype, o), Rows(g.ref.o, index, kQRow)), tolerance) << at;
        EXPECT_LT(RelError(lse, Rows(g.ref.lse, index, kQHeads)), 1e-5) << at;
        EXPECT_LT(RelError(Decode(c.dtype, dq), Rows(g.ref.dq, index, kQRow)), tolerance) << at;
        EXPECT_LT(RelError(Decode(c.dtype, dk), Rows(g.ref.dk, index, kKvRow)), tolerance) << at;
        EXPECT_LT(RelError(Decode(c.dtype, dv), Rows(g.ref.dv, index, kKvRow)), tolerance) << at;
        EXPECT_LT(RelError(Decode(c.dtype, o_global), g.ref.o), tolerance) << at << " (gathered)";
        std::vector<float> world_sum = Rows(g.d_o, index, kQRow);
        for (float& x : world_sum) x *= static_cast<float>(c.world);  // every rank sent d_o
        // The fp32 sum of every rank's d_o, rounded once (fp32: up to 1 ulp from W * d_o).
        EXPECT_LT(RelError(Decode(c.dtype, grad), Decode(c.dtype, Encode(c.dtype, world_sum))),
                  1e-6)
            << at << " (scatter-add)";
        int64_t offset = 0;  // positions restart at each document
        for (int64_t i = 0; i < n; ++i) {
          int64_t d = 0;
          for (offset = 0; index[i] >= offset + kLengths[d]; offset += kLengths[d++]) {
          }
          EXPECT_EQ(position[i], index[i] - offset);
        }
      }
      fcp_context_free(context);
      fcp_executor_free(ex);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int32_t r = 0; r < c.world; ++r) EXPECT_EQ(failures[r], "") << "rank " << r;
  fcp_plan_free(plan);
}

// Every mask x strategy x W 1..4 (ranks meeting in a directory or through the callback store,
// alternately), plus the coordinator's store, the loopback transport and bf16.
std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (int32_t world = 1; world <= 4; ++world) {
    for (int mask = 0; mask < 4; ++mask) {
      for (const char* strategy : {"ring", "fcp", "auto"}) {
        cases.push_back(
            {world, mask, strategy, (world + mask) % 2 ? Meet::kStore : Meet::kDirectory});
      }
    }
  }
  cases.push_back({3, 2, "fcp", Meet::kCoordinator});
  cases.push_back({1, 3, "auto", Meet::kLoopback});
  cases.push_back({3, 0, "fcp", Meet::kDirectory, FCP_DTYPE_BF16});
  cases.push_back({2, 2, "ring", Meet::kStore, FCP_DTYPE_BF16});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(MasksStrategiesWorlds, CExecApiTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return absl::StrCat("W", info.param.world, "_Mask", info.param.mask, "_",
                                               info.param.strategy, "_",
                                               kMeet[static_cast<int>(info.param.meet)]);
                         });

// A port nothing listens on right now (bound, then released).
TEST(CExecApiMetricsTest, MetricsPortServesTheWorkerMetricsWithTheTrainersLabels) {
  fcp_executor_options options;
  fcp_executor_options_init(&options);
  options.transport = "loopback";
  options.job_id = "metrics-job";
  options.threads = 1;
  options.metrics_port = FreePort();
  fcp_executor* ex = nullptr;
  fcp_error error;
  ASSERT_EQ(fcp_executor_new(&options, &ex, &error), FCP_OK) << error.message;
  fcp_plan* plan = MakePlan(1, FCP_MASK_CAUSAL, "fcp");
  int64_t n = 0;
  ASSERT_EQ(fcp_plan_rank_tokens(plan, 0, nullptr, nullptr, 0, &n, nullptr), FCP_OK);
  std::vector<float> x(n * kQRow, 0.25f), o(n * kQRow), lse(n * kQHeads), dq(n * kQRow),
      dk(n * kKvRow), dv(n * kKvRow);
  const fcp_attention_shape shape{kQHeads, kKvHeads, kHeadDim, FCP_DTYPE_FP32};
  fcp_context* context = nullptr;
  ASSERT_EQ(fcp_forward(ex, plan, 1, &shape, n, x.data(), x.data(), x.data(), o.data(), lse.data(),
                        nullptr, &context, &error),
            FCP_OK)
      << error.message;
  ASSERT_EQ(fcp_backward(ex, context, x.data(), dq.data(), dk.data(), dv.data(), nullptr, &error),
            FCP_OK)
      << error.message;
  absl::StatusOr<std::string> body = HttpGet(options.metrics_port, "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("fcp_worker_steps_total{"));
  EXPECT_THAT(*body, HasSubstr("training_job=\"metrics-job\""));
  EXPECT_THAT(*body, HasSubstr("rank=\"0\""));
  EXPECT_THAT(*body, HasSubstr("gpu_uuid=\"\""));
  EXPECT_THAT(*body, HasSubstr(absl::StrCat("fcp_worker_tokens{")));
  fcp_context_free(context);
  fcp_executor_free(ex);
  fcp_plan_free(plan);
}

// Rank 1 meets rank 0, then either never runs the forward (absent: rank 0 times out naming it)
// or frees its executor (gone: rank 0 sees the connection drop, naming it).
TEST(CExecApiFaultTest, AnAbsentOrDeadPeerFailsTheCallNamingIt) {
  for (bool gone : {false, true}) {
    const std::string dir = absl::StrCat("file:", FreshDir());
    fcp_plan* plan = MakePlan(2, FCP_MASK_CAUSAL, "ring");
    fcp_executor* executors[2] = {nullptr, nullptr};
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < 2; ++r) {
      threads.emplace_back([&, r] {
        fcp_executor_options options;
        fcp_executor_options_init(&options);
        options.rank = r;
        options.world_size = 2;
        options.rendezvous = dir.c_str();
        options.job_id = "fault";
        options.timeout_seconds = 1;
        options.threads = 1;
        fcp_error error;
        EXPECT_EQ(fcp_executor_new(&options, &executors[r], &error), FCP_OK) << error.message;
      });
    }
    for (std::thread& t : threads) t.join();
    ASSERT_NE(executors[0], nullptr);
    ASSERT_NE(executors[1], nullptr);
    if (gone) {
      fcp_executor_free(executors[1]);
      executors[1] = nullptr;
    }
    int64_t n = 0;
    ASSERT_EQ(fcp_plan_rank_tokens(plan, 0, nullptr, nullptr, 0, &n, nullptr), FCP_OK);
    std::vector<float> x(n * kQRow, 0.25f), o(n * kQRow), lse(n * kQHeads);
    const fcp_attention_shape shape{kQHeads, kKvHeads, kHeadDim, FCP_DTYPE_FP32};
    fcp_error error;
    const int code = fcp_forward(executors[0], plan, 1, &shape, n, x.data(), x.data(), x.data(),
                                 o.data(), lse.data(), nullptr, nullptr, &error);
    EXPECT_EQ(code, gone ? FCP_UNAVAILABLE : FCP_DEADLINE_EXCEEDED) << error.message;
    EXPECT_EQ(error.code, code);
    EXPECT_THAT(error.message, HasSubstr("rank 1")) << (gone ? "gone" : "absent");
    fcp_executor_free(executors[0]);
    fcp_executor_free(executors[1]);
    fcp_plan_free(plan);
  }
}

// Each bad input returns INVALID_ARGUMENT with a message that starts with the argument's name.
class CExecApiBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fcp_executor_options_init(&options_);
    options_.transport = "loopback";
    options_.threads = 1;
    ASSERT_EQ(fcp_executor_new(&options_, &ex_, nullptr), FCP_OK);
    plan_ = MakePlan(1, FCP_MASK_CAUSAL, "fcp");
    ASSERT_EQ(fcp_plan_rank_tokens(plan_, 0, nullptr, nullptr, 0, &n_, nullptr), FCP_OK);
    x_.assign(n_ * kQRow, 0.5f);
    y_.assign(n_ * kQRow, 0.0f);
  }
  void TearDown() override {
    fcp_executor_free(ex_);
    fcp_plan_free(plan_);
  }

  // fcp_executor_new with options_ changed by `edit`.
  void ExpectBadOption(const std::function<void(fcp_executor_options&)>& edit,
                       const std::string& name) {
    fcp_executor_options o;
    fcp_executor_options_init(&o);
    o.threads = 1;
    edit(o);
    fcp_executor* ex = nullptr;
    fcp_error error;
    EXPECT_EQ(fcp_executor_new(&o, &ex, &error), FCP_INVALID_ARGUMENT) << name;
    EXPECT_THAT(error.message, StartsWith(name + ":"));
    EXPECT_EQ(ex, nullptr);
  }

  int Forward(const fcp_plan* plan, const fcp_attention_shape* shape, int64_t tokens, const void* q,
              fcp_context** context, fcp_error* error) {
    return fcp_forward(ex_, plan, 1, shape, tokens, q, x_.data(), x_.data(), y_.data(),
                       reinterpret_cast<float*>(y_.data()), nullptr, context, error);
  }

  fcp_executor_options options_;
  fcp_executor* ex_ = nullptr;
  fcp_plan* plan_ = nullptr;
  int64_t n_ = 0;
  std::vector<float> x_, y_;
  const fcp_attention_shape shape_{kQHeads, kKvHeads, kHeadDim, FCP_DTYPE_FP32};
};

#define EXPECT_INVALID(call, name)                                    \
  do {                                                                \
    fcp_error error_;                                                 \
    fcp_error* error = &error_;                                       \
    EXPECT_EQ((call), FCP_INVALID_ARGUMENT) << name;                  \
    EXPECT_THAT(error_.message, StartsWith(std::string(name) + ":")); \
  } while (false)

TEST_F(CExecApiBadInputTest, ExecutorOptions) {
  fcp_executor* ex = nullptr;
  EXPECT_INVALID(fcp_executor_new(nullptr, &ex, error), "options");
  EXPECT_INVALID(fcp_executor_new(&options_, nullptr, error), "executor");
  ExpectBadOption([](auto& o) { o.world_size = 0; }, "options.world_size");
  ExpectBadOption([](auto& o) { o.world_size = 2, o.rank = 2; }, "options.rank");
  ExpectBadOption([](auto& o) { o.rank = -1; }, "options.rank");
  ExpectBadOption([](auto& o) { o.transport = "tcp"; }, "options.transport");
  ExpectBadOption([](auto& o) { o.transport = "loopback", o.world_size = 2; }, "options.transport");
  ExpectBadOption([](auto& o) { o.transport = "nccl", o.rendezvous = "file:/tmp/x"; },
                  "options.transport");
  ExpectBadOption([](auto& o) { o.device = "tpu"; }, "options.device");
  ExpectBadOption([](auto& o) { o.world_size = 2; }, "options.rendezvous");
  ExpectBadOption([](auto& o) { o.rendezvous = "nfs:/x"; }, "options.rendezvous");
  ExpectBadOption([](auto& o) { o.rendezvous = "file:"; }, "options.rendezvous");
  ExpectBadOption([](auto& o) { o.job_id = "", o.transport = "loopback"; }, "options.job_id");
  ExpectBadOption([](auto& o) { o.timeout_seconds = -1; }, "options.timeout_seconds");
  ExpectBadOption([](auto& o) { o.timeout_seconds = NAN; }, "options.timeout_seconds");
  ExpectBadOption([](auto& o) { o.threads = -1, o.transport = "loopback"; }, "options.threads");
  ExpectBadOption([](auto& o) { o.metrics_port = 70000, o.transport = "loopback"; },
                  "options.metrics_port");
  ExpectBadOption([](auto& o) { o.cuda_device = -1, o.transport = "loopback"; },
                  "options.cuda_device");
  ExpectBadOption([](auto& o) { o.job_token = "has space", o.transport = "loopback"; },
                  "options.job_token");
  static const fcp_store half_store{nullptr, nullptr, nullptr};
  ExpectBadOption([](auto& o) { o.store = &half_store; }, "options.store");
}

TEST_F(CExecApiBadInputTest, ForwardAndBackward) {
  fcp_context* context = nullptr;
  EXPECT_INVALID(
      fcp_forward(nullptr, plan_, 1, &shape_, n_, x_.data(), x_.data(), x_.data(), y_.data(),
                  reinterpret_cast<float*>(y_.data()), nullptr, &context, error),
      "executor");
  EXPECT_INVALID(Forward(nullptr, &shape_, n_, x_.data(), &context, error), "plan");
  EXPECT_INVALID(Forward(plan_, nullptr, n_, x_.data(), &context, error), "shape");
  EXPECT_INVALID(Forward(plan_, &shape_, n_ - 1, x_.data(), &context, error), "tokens");
  EXPECT_INVALID(Forward(plan_, &shape_, n_, nullptr, &context, error), "q");
  fcp_attention_shape bad = shape_;
  bad.dtype = 7;
  EXPECT_INVALID(Forward(plan_, &bad, n_, x_.data(), &context, error), "shape.dtype");
  bad = shape_;
  bad.num_q_heads = 3;
  EXPECT_INVALID(Forward(plan_, &bad, n_, x_.data(), &context, error), "shape");
  bad = shape_;
  bad.head_dim = 0;
  EXPECT_INVALID(Forward(plan_, &bad, n_, x_.data(), &context, error), "shape.head_dim");
  fcp_plan* wide = MakePlan(2, FCP_MASK_CAUSAL, "fcp");  // another world size
  EXPECT_INVALID(Forward(wide, &shape_, n_, x_.data(), &context, error), "plan");
  fcp_plan_free(wide);
  EXPECT_EQ(context, nullptr);

  ASSERT_EQ(Forward(plan_, &shape_, n_, x_.data(), &context, nullptr), FCP_OK);
  std::vector<float> g(n_ * kQRow);
  EXPECT_INVALID(
      fcp_backward(ex_, nullptr, x_.data(), g.data(), g.data(), g.data(), nullptr, error),
      "context");
  EXPECT_INVALID(
      fcp_backward(nullptr, context, x_.data(), g.data(), g.data(), g.data(), nullptr, error),
      "executor");
  EXPECT_INVALID(fcp_backward(ex_, context, nullptr, g.data(), g.data(), g.data(), nullptr, error),
                 "d_o");
  EXPECT_INVALID(fcp_backward(ex_, context, x_.data(), g.data(), nullptr, g.data(), nullptr, error),
                 "dk");
  fcp_executor* other = nullptr;
  ASSERT_EQ(fcp_executor_new(&options_, &other, nullptr), FCP_OK);
  EXPECT_INVALID(
      fcp_backward(other, context, x_.data(), g.data(), g.data(), g.data(), nullptr, error),
      "context");
  fcp_executor_free(other);
  fcp_context_free(context);
}

TEST_F(CExecApiBadInputTest, DispatchAndRows) {
  int64_t count = 0;
  std::vector<int64_t> index(n_);
  EXPECT_INVALID(fcp_plan_rank_tokens(plan_, 0, nullptr, nullptr, 0, nullptr, error), "count");
  EXPECT_INVALID(fcp_plan_rank_tokens(nullptr, 0, nullptr, nullptr, 0, &count, error), "plan");
  EXPECT_INVALID(fcp_plan_rank_tokens(plan_, 1, nullptr, nullptr, 0, &count, error), "rank");
  EXPECT_INVALID(fcp_plan_rank_tokens(plan_, 0, index.data(), nullptr, n_ - 1, &count, error),
                 "capacity");
  EXPECT_EQ(count, n_);  // set even when the arrays are too small
  EXPECT_INVALID(fcp_plan_rank_tokens(plan_, 0, index.data(), nullptr, -1, &count, error),
                 "capacity");
  fcp_plan* some = nullptr;  // rank 2's slice only
  {
    fcp_client* client = LocalClient();
    fcp_batch batch = TestBatch(4, "fcp");
    const int32_t rank = 2;
    batch.ranks = &rank;
    batch.num_ranks = 1;
    ASSERT_EQ(fcp_client_plan(client, &batch, &some, nullptr), FCP_OK);
    std::vector<fcp_mask> masks(kLengths.size(), fcp_mask{FCP_MASK_CAUSAL, 0, 0});
    masks[1].kind = 9;
    fcp_plan* masked = nullptr;
    EXPECT_INVALID(fcp_client_plan_masked(client, &batch, masks.data(), &masked, error),
                   "masks[1].kind");
    fcp_client_free(client);
  }
  EXPECT_INVALID(fcp_plan_rank_tokens(some, 1, nullptr, nullptr, 0, &count, error), "rank");
  EXPECT_EQ(fcp_plan_rank_tokens(some, 2, nullptr, nullptr, 0, &count, nullptr), FCP_OK);
  fcp_plan_free(some);

  std::vector<float> global(n_ * kQRow);
  EXPECT_INVALID(fcp_gather_rows(ex_, plan_, 1, 0, x_.data(), global.data(), error), "row_bytes");
  EXPECT_INVALID(fcp_gather_rows(ex_, plan_, 1, 4, x_.data(), nullptr, error), "global");
  EXPECT_INVALID(fcp_gather_rows(ex_, nullptr, 1, 4, x_.data(), global.data(), error), "plan");
  EXPECT_INVALID(fcp_gather_rows(nullptr, plan_, 1, 4, x_.data(), global.data(), error),
                 "executor");
  EXPECT_INVALID(fcp_scatter_add_rows(ex_, plan_, 1, 9, 4, global.data(), x_.data(), error),
                 "dtype");
  EXPECT_INVALID(
      fcp_scatter_add_rows(ex_, plan_, 1, FCP_DTYPE_FP32, 0, global.data(), x_.data(), error),
      "row_elements");
  EXPECT_INVALID(
      fcp_scatter_add_rows(ex_, plan_, 1, FCP_DTYPE_FP32, 4, global.data(), nullptr, error),
      "local");
  // Nothing above reached the transport: the executor still works.
  fcp_context* context = nullptr;
  EXPECT_EQ(Forward(plan_, &shape_, n_, x_.data(), &context, nullptr), FCP_OK);
  fcp_context_free(context);
}

}  // namespace
}  // namespace fcp
