// The execution API for training (worker/executor/executor.h Forward/Backward, token dispatch, row
// exchanges) against single-process reference attention (kernels/reference.h: fp32 inputs, double
// accumulation), as a trainer uses it: every rank a thread over the loopback transport, global
// q/k/v/dO dispatched to ranks by RankTokensOf, two layers in flight per step (forward, forward,
// backward, backward: the second layer's messages must not mix with the first's), outputs gathered
// back into global order with GatherRows.
//
// Tolerances: fp32 1e-5 of the tensor's largest reference value. fp16/bf16 inputs are compared
// with a reference on the same rounded inputs: the CPU widens them exactly and computes in fp32,
// so the only extra error is rounding each output once to the dtype, at most half an ulp of the
// element, i.e. 2^-11 (fp16) or 2^-8 (bf16) of the largest reference value: tolerance that plus
// the fp32 1e-5. lse stays fp32 (1e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/dtype_convert.h"
#include "kernels/reference.h"
#include "service/planner/planner.h"
#include "service/planner/token_dispatch.h"
#include "worker/executor/executor.h"
#include "worker/executor/kernel_types.h"
#include "worker/executor/row_exchange.h"
#include "worker/transport/loopback_transport.h"
#include "worker/verify/executor_testing.h"

namespace fcp {
namespace {

using kernels::DType;

constexpr int kLayers = 2;
constexpr int64_t kStep = 5;

// Global tensors of one layer: rows of every token of the batch, in global order.
struct Globals {
  std::vector<float> q, k, v, d_o;
};

std::vector<float> Random(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = u(rng);
  return x;
}

std::vector<float> RoundTo(DType dtype, const std::vector<float>& x) {
  std::vector<uint16_t> packed(x.size());
  std::vector<float> back(x.size());
  if (dtype == DType::kFp32) return x;
  kernels::ConvertFromFloat(x.data(), dtype, packed.data(), static_cast<int64_t>(x.size()));
  kernels::ConvertToFloat(packed.data(), dtype, back.data(), static_cast<int64_t>(x.size()));
  return back;
}

std::vector<char> Encode(DType dtype, const std::vector<float>& x) {
  std::vector<char> out(x.size() * kernels::DTypeBytes(dtype));
  kernels::ConvertFromFloat(x.data(), dtype, out.data(), static_cast<int64_t>(x.size()));
  return out;
}

std::vector<float> Decode(DType dtype, const std::vector<char>& x, int64_t n) {
  std::vector<float> out(n);
  kernels::ConvertToFloat(x.data(), dtype, out.data(), n);
  return out;
}

// Rows `index` of a global tensor with `row` elements per token.
std::vector<float> Rows(const std::vector<float>& global, const std::vector<int64_t>& index,
                        int64_t row) {
  std::vector<float> out;
  out.reserve(index.size() * row);
  for (int64_t g : index) out.insert(out.end(), &global[g * row], &global[g * row] + row);
  return out;
}

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return got.size() != want.size() ? 1e30 : diff / std::max(scale, 1e-30);
}

// Every document's reference attention, concatenated in global order.
kernels::ReferenceResult Reference(const Batch& batch, const Globals& g) {
  const kernels::AttentionShape shape{4, 2, 16};
  const int64_t qr = 4 * 16, kr = 2 * 16;
  kernels::ReferenceResult all;
  int64_t offset = 0;
  for (const Document& d : batch.documents) {
    const kernels::TileMask mask = ToKernelMask(d.mask);
    kernels::ReferenceResult r =
        kernels::ReferenceAttention(shape, mask, d.length, &g.q[offset * qr], &g.k[offset * kr],
                                    &g.v[offset * kr], &g.d_o[offset * qr]);
    for (auto [to, from] : {std::pair{&all.o, &r.o},
                            {&all.lse, &r.lse},
                            {&all.dq, &r.dq},
                            {&all.dk, &r.dk},
                            {&all.dv, &r.dv}}) {
      to->insert(to->end(), from->begin(), from->end());
    }
    offset += d.length;
  }
  return all;
}

// One rank's outputs of one layer, decoded to fp32, in global order (gathered) or local order.
struct LayerOut {
  std::vector<float> o_global, lse, dq, dk, dv;  // lse .. dv: local rows
};

struct RankResult {
  absl::Status status;
  std::vector<int64_t> global_index;
  LayerOut layers[kLayers];
};

// Runs every rank: dispatch, kLayers forwards, kLayers backwards in reverse, gather of o.
std::vector<RankResult> RunTraining(const Plan& plan, int32_t world, DType dtype,
                                    const Globals (&layers)[kLayers]) {
  const kernels::AttentionShape shape{4, 2, 16};
  const int64_t qr = 4 * 16, kr = 2 * 16;
  const int64_t total = TotalTokens(plan);
  LoopbackHub hub(world);
  std::vector<RankResult> results(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      RankResult& result = results[r];
      result.status = [&]() -> absl::Status {
        LoopbackTransport transport(&hub, r);
        transport.set_timeout(absl::Seconds(60));
        Executor executor(&transport, shape, 1);
        ASSIGN_OR_RETURN(RankTokens mine, RankTokensOf(plan, r));
        result.global_index = mine.global_index;
        const int64_t n = static_cast<int64_t>(mine.global_index.size());
        std::vector<char> q[kLayers], k[kLayers], v[kLayers], o[kLayers];
        std::vector<float> lse[kLayers];
        std::unique_ptr<ForwardContext> contexts[kLayers];
        for (int l = 0; l < kLayers; ++l) {
          q[l] = Encode(dtype, Rows(layers[l].q, mine.global_index, qr));
          k[l] = Encode(dtype, Rows(layers[l].k, mine.global_index, kr));
          v[l] = Encode(dtype, Rows(layers[l].v, mine.global_index, kr));
          o[l].assign(n * qr * kernels::DTypeBytes(dtype), 0);
          lse[l].assign(n * 4, 0.0f);
          const ForwardTensors f{dtype,       dtype,       q[l].data(),   k[l].data(),
                                 v[l].data(), o[l].data(), lse[l].data(), n};
          ASSIGN_OR_RETURN(contexts[l], executor.Forward(plan, plan.plan_id, kStep, f));
        }
        for (int l = kLayers - 1; l >= 0; --l) {
          const std::vector<char> d_o = Encode(dtype, Rows(layers[l].d_o, mine.global_index, qr));
          std::vector<char> dq(q[l].size()), dk(k[l].size()), dv(v[l].size());
          RETURN_IF_ERROR(
              executor.Backward(*contexts[l], {d_o.data(), dq.data(), dk.data(), dv.data()})
                  .status());
          LayerOut& out = result.layers[l];
          out.lse = lse[l];
          out.dq = Decode(dtype, dq, n * qr);
          out.dk = Decode(dtype, dk, n * kr);
          out.dv = Decode(dtype, dv, n * kr);
          std::vector<char> o_global(total * qr * kernels::DTypeBytes(dtype));
          RETURN_IF_ERROR(GatherRows(transport, plan, RowsTag(kStep, executor.NextCall()),
                                     qr * kernels::DTypeBytes(dtype), o[l].data(),
                                     o_global.data()));
          out.o_global = Decode(dtype, o_global, total * qr);
        }
        return absl::OkStatus();
      }();
      if (!result.status.ok()) hub.Abort(r);
    });
  }
  for (std::thread& t : threads) t.join();
  return results;
}

// Checks every rank's outputs of every layer against the reference of its (rounded) inputs.
void ExpectMatchesReference(const Batch& batch, const Plan& plan, int32_t world, DType dtype,
                            double tolerance) {
  std::mt19937 rng(11 + world);
  const int64_t total = TotalTokens(plan), qr = 4 * 16, kr = 2 * 16;
  Globals layers[kLayers];
  for (Globals& g : layers) {
    g = {RoundTo(dtype, Random(total * qr, rng)), RoundTo(dtype, Random(total * kr, rng)),
         RoundTo(dtype, Random(total * kr, rng)), RoundTo(dtype, Random(total * qr, rng))};
  }
  const std::vector<RankResult> results = RunTraining(plan, world, dtype, layers);
  for (int l = 0; l < kLayers; ++l) {
    const kernels::ReferenceResult ref = Reference(batch, layers[l]);
    for (int32_t r = 0; r < world; ++r) {
      const RankResult& got = results[r];
      ASSERT_TRUE(got.status.ok()) << "rank " << r << ": " << got.status;
      const LayerOut& out = got.layers[l];
      const std::string where = absl::StrCat("layer ", l, " rank ", r);
      EXPECT_LT(RelError(out.o_global, ref.o), tolerance) << where << " o (gathered)";
      EXPECT_LT(RelError(out.lse, Rows(ref.lse, got.global_index, 4)), 1e-5) << where << " lse";
      EXPECT_LT(RelError(out.dq, Rows(ref.dq, got.global_index, qr)), tolerance) << where << " dq";
      EXPECT_LT(RelError(out.dk, Rows(ref.dk, got.global_index, kr)), tolerance) << where << " dk";
      EXPECT_LT(RelError(out.dv, Rows(ref.dv, got.global_index, kr)), tolerance) << where << " dv";
    }
  }
}

constexpr const char* kMaskNames[] = {"Causal", "Full", "SlidingWindow", "PrefixLm"};

using Case = std::tuple<int, std::string, int>;  // mask kind, strategy, world

class TrainingApiTest : public ::testing::TestWithParam<Case> {};

TEST_P(TrainingApiTest, Fp32EqualsReferenceAttention) {
  const auto& [mask, strategy, world] = GetParam();
  const Batch batch = BackendTestBatch(MaskOfKind(mask), world, 16, 3);
  const Plan plan = BackendTestPlan(batch, strategy);
  ASSERT_EQ(static_cast<int32_t>(plan.workers.size()), world);
  ExpectMatchesReference(batch, plan, world, DType::kFp32, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(MasksStrategiesWorlds, TrainingApiTest,
                         ::testing::Combine(::testing::Values(0, 1, 2, 3),
                                            ::testing::Values("ring", "fcp", "auto"),
                                            ::testing::Values(1, 2, 3, 4)),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return absl::StrCat(kMaskNames[std::get<0>(info.param)], "_",
                                               std::get<1>(info.param), "_W",
                                               std::get<2>(info.param));
                         });

class TrainingApiDtypeTest : public ::testing::TestWithParam<std::tuple<int, DType>> {};

TEST_P(TrainingApiDtypeTest, HalfInputsEqualReferenceWithinOneRounding) {
  const auto& [mask, dtype] = GetParam();
  const double rounding = dtype == DType::kBf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  const Batch batch = BackendTestBatch(MaskOfKind(mask), 3, 16, 3);
  ExpectMatchesReference(batch, BackendTestPlan(batch, "fcp"), 3, dtype, rounding + 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, TrainingApiDtypeTest,
                         ::testing::Combine(::testing::Values(0, 2),
                                            ::testing::Values(DType::kBf16, DType::kFp16)),
                         [](const auto& info) {
                           return absl::StrCat(std::get<0>(info.param) == 0 ? "Causal" : "Window",
                                               "_", kernels::DTypeName(std::get<1>(info.param)));
                         });

// Scatter-add is the gradient of gather: each rank's local rows receive the sum of every rank's
// global tensor at its tokens.
TEST(RowExchangeTest, ScatterAddSumsEveryRanksRowsOfItsTokens) {
  for (DType dtype : {DType::kFp32, DType::kBf16}) {
    const int32_t world = 3;
    const Batch batch = BackendTestBatch(Mask::Causal(), world, 16, 3);
    const Plan plan = BackendTestPlan(batch, "fcp");
    const int64_t total = TotalTokens(plan), row = 6;
    std::mt19937 rng(5);
    std::vector<std::vector<float>> globals(world);
    std::vector<float> sum(total * row, 0.0f);
    for (auto& g : globals) {
      g = RoundTo(dtype, Random(total * row, rng));
      for (int64_t i = 0; i < total * row; ++i) sum[i] += g[i];
    }
    LoopbackHub hub(world);
    std::vector<absl::Status> status(world);
    std::vector<std::vector<float>> got(world), want(world);
    std::vector<std::thread> threads;
    for (int32_t r = 0; r < world; ++r) {
      threads.emplace_back([&, r] {
        LoopbackTransport transport(&hub, r);
        const RankTokens mine = *RankTokensOf(plan, r);
        const int64_t n = static_cast<int64_t>(mine.global_index.size());
        std::vector<char> local(n * row * kernels::DTypeBytes(dtype));
        const std::vector<char> global = Encode(dtype, globals[r]);
        status[r] = ScatterAddRows(transport, plan, RowsTag(kStep, 0), dtype, row, global.data(),
                                   local.data());
        got[r] = Decode(dtype, local, n * row);
        want[r] = RoundTo(dtype, Rows(sum, mine.global_index, row));
      });
    }
    for (std::thread& t : threads) t.join();
    for (int32_t r = 0; r < world; ++r) {
      ASSERT_TRUE(status[r].ok()) << status[r];
      EXPECT_EQ(got[r], want[r]) << "rank " << r << " " << kernels::DTypeName(dtype);
    }
  }
}

// A rank that never shows up fails the others' forward within the timeout, naming it.
TEST(TrainingApiFaultTest, AnAbsentPeerFailsTheOthersNamingIt) {
  const int32_t world = 3;
  const Batch batch = BackendTestBatch(Mask::Causal(), world, 16, 3);
  const Plan plan = BackendTestPlan(batch, "ring");
  LoopbackHub hub(world);
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world - 1; ++r) {  // rank 2 is absent
    threads.emplace_back([&, r] {
      LoopbackTransport transport(&hub, r);
      transport.set_timeout(absl::Milliseconds(300));
      Executor executor(&transport, {4, 2, 16}, 1);
      const int64_t n = static_cast<int64_t>(RankTokensOf(plan, r)->global_index.size());
      std::vector<float> q(n * 64, 0.5f), kv(n * 32, 0.5f), o(n * 64), lse(n * 4);
      const ForwardTensors f{DType::kFp32, DType::kFp32, q.data(),   kv.data(),
                             kv.data(),    o.data(),     lse.data(), n};
      status[r] = executor.Forward(plan, "", kStep, f).status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (int32_t r = 0; r < world - 1; ++r) {
    EXPECT_EQ(status[r].code(), absl::StatusCode::kDeadlineExceeded) << status[r];
    EXPECT_NE(status[r].message().find("rank 2"), std::string::npos) << status[r];
  }
}

TEST(TrainingApiArgsTest, BadTensorsAndContextsAreRefusedBeforeAnyExchange) {
  const Batch batch = BackendTestBatch(Mask::Causal(), 1, 16, 3);
  const Plan plan = BackendTestPlan(batch, "fcp");
  LoopbackHub hub(1);
  LoopbackTransport transport(&hub, 0);
  Executor executor(&transport, {4, 2, 16}, 1), other(&transport, {4, 2, 16}, 1);
  const int64_t n = TotalTokens(plan);
  std::vector<float> q(n * 64, 0.5f), kv(n * 32, 0.5f), o(n * 64), lse(n * 4);
  ForwardTensors f{DType::kFp32, DType::kFp32, q.data(),   kv.data(),
                   kv.data(),    o.data(),     lse.data(), n};
  f.v = nullptr;
  absl::Status s = executor.Forward(plan, "", kStep, f).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("v: null"), std::string::npos) << s;
  f.v = kv.data();
  f.tokens = n - 1;
  EXPECT_EQ(executor.Forward(plan, "", kStep, f).status().code(),
            absl::StatusCode::kFailedPrecondition);
  f.tokens = n;
  absl::StatusOr<std::unique_ptr<ForwardContext>> context = executor.Forward(plan, "", kStep, f);
  ASSERT_TRUE(context.ok()) << context.status();
  std::vector<float> dq(n * 64), dk(n * 32), dv(n * 32);
  const BackwardTensors b{q.data(), dq.data(), dk.data(), dv.data()};
  s = other.Backward(**context, b).status();
  EXPECT_NE(s.message().find("context: made by another executor"), std::string::npos) << s;
  EXPECT_TRUE(executor.Backward(**context, b).ok());
  s = executor.Backward(**context, b).status();
  EXPECT_NE(s.message().find("context: its backward already ran"), std::string::npos) << s;
}

}  // namespace
}  // namespace fcp
