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
#include "service/planner/placed_testing.h"
#include "worker/verify/executor_testing.h"
#include "worker/verify/reference_check.h"

namespace fcp {
namespace {

// Host memory posing as device memory: every byte comes from its arenas, so Owns() can tell it
// apart from the executor's own host memory. Kernels are the CPU backend's.
class FakeDeviceBackend final : public ExecutorBackend {
 public:
  absl::string_view name() const override { return "fake-device"; }
  kernels::DType dtype() const override { return kernels::DType::kFp32; }
  bool Computes(kernels::DType dtype) const override { return cpu_->Computes(dtype); }
  bool device_memory() const override { return true; }

  std::unique_ptr<BackendArena> NewArena() override { return std::make_unique<Arena>(this); }
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
  absl::Status Fill(float* dst, int64_t n, float value) override {
    if (!Owns(dst)) return absl::InternalError("Fill: host memory");
    return cpu_->Fill(dst, n, value);
  }
  absl::Status ConvertFromFloat(const float* src, kernels::DType dtype, void* dst,
                                int64_t n) override {
    if (!Owns(src) || !Owns(dst)) return absl::InternalError("ConvertFromFloat: host memory");
    return cpu_->ConvertFromFloat(src, dtype, dst, n);
  }
  absl::Status ConvertToFloat(const void* src, kernels::DType dtype, float* dst,
                              int64_t n) override {
    if (!Owns(src) || !Owns(dst)) return absl::InternalError("ConvertToFloat: host memory");
    return cpu_->ConvertToFloat(src, dtype, dst, n);
  }
  absl::Status Forward(const kernels::AttentionShape& shape, kernels::DType dtype,
                       const std::vector<kernels::ForwardTile>& tiles) override {
    return cpu_->Forward(shape, dtype, tiles);
  }
  absl::Status Backward(const kernels::AttentionShape& shape, kernels::DType dtype,
                        const std::vector<kernels::BackwardTile>& tiles) override {
    return cpu_->Backward(shape, dtype, tiles);
  }
  absl::Status ComputeDelta(const kernels::AttentionShape& shape, kernels::DType dtype,
                            const float* o, const void* d_o, int64_t rows, float* delta) override {
    return cpu_->ComputeDelta(shape, dtype, o, d_o, rows, delta);
  }
  absl::Status Accumulate(float* dst, const float* src, int64_t n) override {
    return cpu_->Accumulate(dst, src, n);
  }
  absl::Status MergeLse(const kernels::AttentionShape& shape, int64_t rows, float* o_a,
                        float* lse_a, const float* o_b, const float* lse_b) override {
    if (!Owns(o_a) || !Owns(lse_a) || !Owns(o_b) || !Owns(lse_b)) {
      return absl::InternalError("MergeLse: host memory");
    }
    return cpu_->MergeLse(shape, rows, o_a, lse_a, o_b, lse_b);
  }
  absl::Status OrderAfter(void* stream) override { return absl::OkStatus(); }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<double> TakeAttentionSeconds() override { return cpu_->TakeAttentionSeconds(); }

  // Whether `p` points into memory of a live arena of this backend.
  bool Owns(const void* p) const {
    std::lock_guard<std::mutex> lock(mu_);
    const char* c = static_cast<const char*>(p);
    auto it = memory_.upper_bound(c);
    if (it == memory_.begin()) return false;
    --it;
    return c >= it->first && c < it->first + it->second + 1;
  }

 private:
  class Arena final : public BackendArena {
   public:
    explicit Arena(FakeDeviceBackend* backend) : backend_(backend) {}
    ~Arena() override {
      std::lock_guard<std::mutex> lock(backend_->mu_);
      for (const auto& block : blocks_) backend_->memory_.erase(block.get());
    }
    absl::StatusOr<void*> Allocate(size_t bytes, bool zero) override {
      auto block = std::make_unique<char[]>(bytes + 1);
      if (!zero) std::memset(block.get(), 0x7F, bytes);  // not zero: a missed write shows
      char* p = block.get();
      blocks_.push_back(std::move(block));
      std::lock_guard<std::mutex> lock(backend_->mu_);
      backend_->memory_[p] = bytes;
      return p;
    }

   private:
    FakeDeviceBackend* backend_;
    std::vector<std::unique_ptr<char[]>> blocks_;
  };

  mutable std::mutex mu_;
  std::map<const char*, size_t> memory_;  // live allocations: start -> bytes
  std::unique_ptr<ExecutorBackend> cpu_ = NewCpuBackend(1);
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
  RegisterPlacedTestStrategy();
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
                         ::testing::Combine(::testing::Values("fcp", "ring", kPlacedTestStrategy),
                                            ::testing::Values(0, 1), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return absl::StrCat(
                               std::get<0>(info.param),
                               std::get<1>(info.param) == 0 ? "_Causal" : "_Window",
                               std::get<2>(info.param) ? "_DeviceTransport" : "_HostTransport");
                         });

TEST(CpuBackendTest, FillsConvertsAndAccumulatesInPlace) {
  std::unique_ptr<ExecutorBackend> backend = NewCpuBackend(1);
  EXPECT_TRUE(backend->Computes(kernels::DType::kFp32));
  EXPECT_FALSE(backend->Computes(kernels::DType::kBf16));
  std::unique_ptr<BackendArena> arena = backend->NewArena();
  absl::StatusOr<void*> zeros = arena->Allocate(4 * sizeof(float), true);
  ASSERT_TRUE(zeros.ok());
  float* f = static_cast<float*>(*zeros);
  EXPECT_EQ(std::vector<float>(f, f + 4), std::vector<float>(4, 0.0f));
  ASSERT_TRUE(backend->Fill(f, 4, -std::numeric_limits<float>::infinity()).ok());
  EXPECT_EQ(std::vector<float>(f, f + 4),
            std::vector<float>(4, -std::numeric_limits<float>::infinity()));
  const std::vector<float> x = {1.0f, -2.5f, 0.375f, 3.0f};
  std::vector<uint16_t> half(4);
  ASSERT_TRUE(backend->ConvertFromFloat(x.data(), kernels::DType::kFp16, half.data(), 4).ok());
  EXPECT_EQ(half[0], 0x3C00);
  std::vector<float> back(4);
  ASSERT_TRUE(backend->ConvertToFloat(half.data(), kernels::DType::kFp16, back.data(), 4).ok());
  EXPECT_EQ(back, x);  // exact in fp16
  ASSERT_TRUE(backend->Accumulate(back.data(), x.data(), 4).ok());
  EXPECT_EQ(back[1], -5.0f);
  EXPECT_FALSE(backend->Forward({2, 1, 4}, kernels::DType::kBf16, {}).ok());  // fp32 kernels only
}

}  // namespace
}  // namespace fcp
