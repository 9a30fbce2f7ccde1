// The executor over a backend whose memory is not the transport's, without a GPU: a fake
// "device" backend (host memory it tracks, CPU kernels) under a loopback transport that checks
// every buffer it is handed. Over a host transport the executor must stage every device buffer
// through host memory; over a device transport (as nccl) it must hand over device buffers only,
// staging its host headers. Either way all ranks' outputs equal reference attention and the
// bytes counted are those of the plain CPU run.
#include "worker/executor/executor_backend.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/verify/executor_testing.h"
#include "worker/verify/reference_check.h"

namespace fcp {
namespace {

// Host memory posing as device memory: every byte comes from Allocate, so Owns() can tell it
// apart from the executor's own host memory. Kernels are the CPU backend's.
class FakeDeviceBackend final : public ExecutorBackend {
 public:
  absl::string_view name() const override { return "fake-device"; }
  kernels::DType dtype() const override { return kernels::DType::kFp32; }
  bool device_memory() const override { return true; }

  absl::StatusOr<StepTensors> BeginStep(const kernels::AttentionShape& shape,
                                        const LocalInputs& in) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      memory_.clear();
    }
    shape_ = shape;
    tokens_ = in.tokens;
    const size_t q = in.tokens * shape.q_heads * shape.head_dim * sizeof(float);
    const size_t kv = in.tokens * shape.kv_heads * shape.head_dim * sizeof(float);
    StepTensors t;
    t.q = Copy(in.q, q);
    t.k = Copy(in.k, kv);
    t.v = Copy(in.v, kv);
    t.d_o = Copy(in.d_o, q);
    t.o = static_cast<float*>(*Allocate(q, true));
    t.lse = static_cast<float*>(*Allocate(in.tokens * shape.q_heads * sizeof(float), false));
    std::fill(t.lse, t.lse + in.tokens * shape.q_heads, -std::numeric_limits<float>::infinity());
    t.dq = static_cast<float*>(*Allocate(q, true));
    t.dk = static_cast<float*>(*Allocate(kv, true));
    t.dv = static_cast<float*>(*Allocate(kv, true));
    t_ = t;
    return t;
  }
  absl::StatusOr<void*> Allocate(size_t bytes, bool zero) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto block = std::make_unique<char[]>(bytes + 1);
    if (!zero) std::memset(block.get(), 0x7F, bytes);  // not zero: a missed write shows
    char* p = block.get();
    memory_[p] = {std::move(block), bytes};
    return p;
  }
  absl::Status CopyFromHost(void* dst, const void* src, size_t bytes) override {
    if (!Owns(dst) || Owns(src)) return absl::InternalError("CopyFromHost: wrong memory");
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (Owns(dst) || !Owns(src)) return absl::InternalError("CopyToHost: wrong memory");
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status Forward(const kernels::AttentionShape& shape,
                       const std::vector<kernels::ForwardTile>& tiles) override {
    return cpu_->Forward(shape, tiles);
  }
  absl::Status Backward(const kernels::AttentionShape& shape,
                        const std::vector<kernels::BackwardTile>& tiles) override {
    return cpu_->Backward(shape, tiles);
  }
  absl::Status ComputeDelta(const kernels::AttentionShape& shape, const float* o, const void* d_o,
                            int64_t rows, float* delta) override {
    return cpu_->ComputeDelta(shape, o, d_o, rows, delta);
  }
  absl::Status Accumulate(float* dst, const float* src, int64_t n) override {
    return cpu_->Accumulate(dst, src, n);
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<double> AttentionSeconds() override { return cpu_->AttentionSeconds(); }
  absl::Status EndStep(LocalOutputs* out) override {
    auto take = [](const float* p, int64_t n) { return std::vector<float>(p, p + n); };
    const int64_t q = tokens_ * shape_.q_heads * shape_.head_dim;
    const int64_t kv = tokens_ * shape_.kv_heads * shape_.head_dim;
    *out = {take(t_.o, q), take(t_.lse, tokens_ * shape_.q_heads), take(t_.dq, q), take(t_.dk, kv),
            take(t_.dv, kv)};
    return absl::OkStatus();
  }

  // Whether `p` points into memory this backend allocated this step.
  bool Owns(const void* p) const {
    std::lock_guard<std::mutex> lock(mu_);
    const char* c = static_cast<const char*>(p);
    auto it = memory_.upper_bound(c);
    if (it == memory_.begin()) return false;
    --it;
    return c >= it->first && c < it->first + it->second.bytes + 1;
  }

 private:
  const void* Copy(const float* src, size_t bytes) {
    void* p = *Allocate(bytes, false);
    std::memcpy(p, src, bytes);
    return p;
  }

  struct Block {
    std::unique_ptr<char[]> data;
    size_t bytes = 0;
  };
  mutable std::mutex mu_;
  std::map<const char*, Block> memory_;
  std::unique_ptr<ExecutorBackend> cpu_ = NewCpuBackend(1);
  kernels::AttentionShape shape_;
  int64_t tokens_ = 0;
  StepTensors t_;
};

// A loopback transport that claims host or device buffers and counts buffers of the wrong kind.
class GuardTransport final : public Transport {
 public:
  GuardTransport(std::unique_ptr<Transport> inner, bool device, const FakeDeviceBackend* backend,
                 std::atomic<int>* wrong)
      : inner_(std::move(inner)), device_(device), backend_(backend), wrong_(wrong) {}

  int32_t rank() const override { return inner_->rank(); }
  int32_t world_size() const override { return inner_->world_size(); }
  absl::string_view name() const override { return "guard"; }
  bool device_buffers() const override { return device_; }
  absl::StatusOr<std::unique_ptr<PendingExchange>> Post(uint64_t tag, std::vector<SendOp> sends,
                                                        std::vector<RecvOp> recvs) override {
    for (const SendOp& op : sends) Check(op.buffers);
    for (const RecvOp& op : recvs) Check(op.buffers);
    inner_->set_timeout(timeout());
    return inner_->Post(tag, std::move(sends), std::move(recvs));
  }
  absl::Status Barrier() override { return inner_->Barrier(); }

 private:
  void Check(const std::vector<TransportBuffer>& buffers) {
    for (const TransportBuffer& b : buffers) {
      if (backend_->Owns(b.data) != device_) ++*wrong_;
    }
  }
  std::unique_ptr<Transport> inner_;
  const bool device_;
  const FakeDeviceBackend* backend_;
  std::atomic<int>* wrong_;
};

using Case = std::tuple<std::string, int, bool>;  // strategy, mask kind, device transport

class StagedExecutorTest : public ::testing::TestWithParam<Case> {};

TEST_P(StagedExecutorTest, EqualsReferenceAndMovesTheSameBytes) {
  const auto& [strategy, mask_kind, device_transport] = GetParam();
  const Mask mask = mask_kind == 0 ? Mask::Causal() : Mask::SlidingWindow(37);
  const int32_t world = 4;
  const Batch batch = BackendTestBatch(mask, world, 16, 200 + mask_kind);
  const Plan plan = BackendTestPlan(batch, strategy);
  ASSERT_FALSE(plan.workers.empty());
  std::vector<FakeDeviceBackend*> backends(world);
  std::atomic<int> wrong{0};
  const std::vector<RankRun> staged = RunRanks(
      plan, batch,
      [&](int32_t r) {
        auto backend = std::make_unique<FakeDeviceBackend>();
        backends[r] = backend.get();
        return backend;
      },
      [&](std::unique_ptr<Transport> loopback) -> std::unique_ptr<Transport> {
        const int32_t r = loopback->rank();
        return std::make_unique<GuardTransport>(std::move(loopback), device_transport, backends[r],
                                                &wrong);
      });
  const std::vector<RankRun> plain =
      RunRanks(plan, batch, [](int32_t) { return NewCpuBackend(1); });
  EXPECT_EQ(wrong.load(), 0) << "buffers of the wrong memory kind handed to the transport";
  for (int32_t r = 0; r < world; ++r) {
    ASSERT_TRUE(staged[r].status.ok()) << "rank " << r << ": " << staged[r].status;
    absl::StatusOr<ReferenceError> error =
        CompareWithReference(plan, r, ShapeOf(batch), kTestSeed, kTestStep, staged[r].outputs);
    ASSERT_TRUE(error.ok()) << error.status();
    EXPECT_LT(error->Max(), 1e-5) << "rank " << r << ": " << error->ToString();
    EXPECT_EQ(staged[r].stats.bytes_sent, plain[r].stats.bytes_sent);
    EXPECT_EQ(staged[r].stats.bytes_received, plain[r].stats.bytes_received);
    EXPECT_EQ(staged[r].outputs.o, plain[r].outputs.o) << "rank " << r;  // same kernels, same order
    EXPECT_EQ(staged[r].outputs.dk, plain[r].outputs.dk) << "rank " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, StagedExecutorTest,
                         ::testing::Combine(::testing::Values("fcp", "ring"),
                                            ::testing::Values(0, 1), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return absl::StrCat(
                               std::get<0>(info.param),
                               std::get<1>(info.param) == 0 ? "_Causal" : "_Window",
                               std::get<2>(info.param) ? "_DeviceTransport" : "_HostTransport");
                         });

TEST(CpuBackendTest, OutputsStartAtZeroAndNoKeys) {
  std::unique_ptr<ExecutorBackend> backend = NewCpuBackend(1);
  const std::vector<float> x(3 * 2 * 4, 1.0f);
  const LocalInputs in{x.data(), x.data(), x.data(), x.data(), 3};
  absl::StatusOr<StepTensors> t = backend->BeginStep({2, 1, 4}, in);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->q, x.data());  // read in place
  LocalOutputs out;
  ASSERT_TRUE(backend->EndStep(&out).ok());
  EXPECT_EQ(out.o, std::vector<float>(24, 0.0f));
  EXPECT_EQ(out.lse, std::vector<float>(6, -std::numeric_limits<float>::infinity()));
  EXPECT_EQ(out.dk, std::vector<float>(12, 0.0f));
}

}  // namespace
}  // namespace fcp
