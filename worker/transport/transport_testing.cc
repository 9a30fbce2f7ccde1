#include "worker/transport/transport_testing.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "worker/transport/transport_factory.h"

namespace fcp {

std::vector<size_t> PatternSizes(int32_t src, int32_t dst, uint64_t tag, size_t bytes) {
  return {8, bytes + (src * 3 + dst * 5 + tag) % 7, 0, bytes / 2 + 1};
}

uint8_t PatternByte(int32_t src, int32_t dst, uint64_t tag, size_t buffer, size_t offset) {
  return static_cast<uint8_t>(src * 131 + dst * 29 + tag * 7 + buffer * 61 + offset * 13 +
                              offset / 256);
}

absl::Status ExchangePattern(Transport& transport, uint64_t tag, const std::vector<int32_t>& to,
                             const std::vector<int32_t>& from, size_t bytes) {
  const int32_t me = transport.rank();
  std::vector<std::vector<std::vector<uint8_t>>> out(to.size());
  std::vector<std::vector<std::vector<uint8_t>>> in(from.size());
  std::vector<SendOp> sends;
  std::vector<RecvOp> recvs;
  for (size_t i = 0; i < to.size(); ++i) {
    const std::vector<size_t> sizes = PatternSizes(me, to[i], tag, bytes);
    SendOp op{to[i], {}};
    for (size_t b = 0; b < sizes.size(); ++b) {
      std::vector<uint8_t>& data = out[i].emplace_back(sizes[b]);
      for (size_t j = 0; j < data.size(); ++j) data[j] = PatternByte(me, to[i], tag, b, j);
    }
    for (std::vector<uint8_t>& data : out[i]) op.buffers.push_back({data.data(), data.size()});
    sends.push_back(std::move(op));
  }
  for (size_t i = 0; i < from.size(); ++i) {
    RecvOp op{from[i], {}};
    for (size_t size : PatternSizes(from[i], me, tag, bytes)) in[i].emplace_back(size, 0xEE);
    for (std::vector<uint8_t>& data : in[i]) op.buffers.push_back({data.data(), data.size()});
    recvs.push_back(std::move(op));
  }
  std::mt19937 random(static_cast<uint32_t>(me * 1000003 + tag));
  std::shuffle(sends.begin(), sends.end(), random);
  std::shuffle(recvs.begin(), recvs.end(), random);
  if (absl::Status s = transport.Exchange(tag, std::move(sends), std::move(recvs)); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < from.size(); ++i) {
    for (size_t b = 0; b < in[i].size(); ++b) {
      for (size_t j = 0; j < in[i][b].size(); ++j) {
        const uint8_t want = PatternByte(from[i], me, tag, b, j);
        if (in[i][b][j] != want) {
          return absl::DataLossError(absl::StrFormat(
              "rank %d, tag %d: byte %d of buffer %d from rank %d is 0x%02x, want 0x%02x", me, tag,
              j, b, from[i], in[i][b][j], want));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status RingPattern(Transport& transport, uint64_t tag, size_t bytes) {
  const int32_t w = transport.world_size();
  if (w == 1) return ExchangePattern(transport, tag, {}, {}, bytes);
  const int32_t r = transport.rank();
  return ExchangePattern(transport, tag, {(r + 1) % w}, {(r + w - 1) % w}, bytes);
}

absl::Status AllToAllPattern(Transport& transport, uint64_t tag, size_t bytes) {
  std::vector<int32_t> others;
  for (int32_t p = 0; p < transport.world_size(); ++p) {
    if (p != transport.rank()) others.push_back(p);
  }
  return ExchangePattern(transport, tag, others, others, bytes);
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/fcp-transport-XXXXXX");
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
}

absl::StatusOr<std::unique_ptr<LocalRanks>> LocalRanks::Make(absl::string_view kind, int32_t world,
                                                             absl::Duration timeout) {
  ASSIGN_OR_RETURN(const TransportKind parsed, ParseTransportKind(kind));
  std::unique_ptr<LocalRanks> ranks(new LocalRanks());
  ranks->kind_ = std::string(kind);
  ranks->transports_.resize(world);
  TransportOptions options;
  options.world_size = world;
  options.timeout = timeout;
  options.key_prefix = "test";
  if (parsed == TransportKind::kLoopback) {
    ranks->hub_ = std::make_unique<LoopbackHub>(world);
    options.hub = ranks->hub_.get();
  } else {
    ranks->dir_ = std::make_unique<TempDir>();
    options.rendezvous_dir = ranks->dir_->path();
  }
  // Concurrently: a rendezvous needs every rank at once.
  std::vector<absl::Status> status(world);
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world; ++r) {
    threads.emplace_back([&, r, options]() mutable {
      options.rank = r;
      absl::StatusOr<std::unique_ptr<Transport>> t = NewTransport(parsed, options);
      status[r] = t.status();
      if (t.ok()) ranks->transports_[r] = std::move(*t);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return ranks;
}

LocalRanks::~LocalRanks() { transports_.clear(); }

std::vector<absl::Status> LocalRanks::Run(const std::function<absl::Status(Transport&)>& body) {
  std::vector<absl::Status> status(transports_.size());
  std::vector<std::thread> threads;
  for (int32_t r = 0; r < world(); ++r) {
    threads.emplace_back([&, r] {
      status[r] = body(*transports_[r]);
      if (!status[r].ok() && hub_ != nullptr) hub_->Abort(r);
    });
  }
  for (std::thread& t : threads) t.join();
  return status;
}

}  // namespace fcp
