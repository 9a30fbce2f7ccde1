// Helpers for transport tests and the gloo peer binary: exchange patterns whose every received
// byte is checked, and the W ranks of one transport kind inside this process.
//
//   ASSERT_OK_AND_ASSIGN(auto ranks, LocalRanks::Make("gloo", 4, absl::Seconds(5)));
//   for (const absl::Status& s : ranks->Run([](Transport& t) { return RingPattern(t, 1, 64); }))
//     EXPECT_TRUE(s.ok()) << s;
#ifndef FCP_WORKER_TRANSPORT_TRANSPORT_TESTING_H_
#define FCP_WORKER_TRANSPORT_TRANSPORT_TESTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "worker/transport/loopback_transport.h"
#include "worker/transport/transport.h"

namespace fcp {

// The buffer sizes of the message `src` → `dst` under `tag`: a few of varying sizes around
// `bytes`, one of them empty, so that misrouted or reordered data shows.
std::vector<size_t> PatternSizes(int32_t src, int32_t dst, uint64_t tag, size_t bytes);
// The byte at `offset` of buffer `buffer` of that message.
uint8_t PatternByte(int32_t src, int32_t dst, uint64_t tag, size_t buffer, size_t offset);

// Sends the pattern to each rank of `to` and receives it from each of `from` under `tag` (both
// lists posted in an order shuffled by rank and tag), then checks every received byte: DataLoss
// naming the first wrong one.
absl::Status ExchangePattern(Transport& transport, uint64_t tag, const std::vector<int32_t>& to,
                             const std::vector<int32_t>& from, size_t bytes);
// To rank + 1, from rank - 1 (nothing when alone).
absl::Status RingPattern(Transport& transport, uint64_t tag, size_t bytes);
// To and from every other rank.
absl::Status AllToAllPattern(Transport& transport, uint64_t tag, size_t bytes);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The W ranks of one transport kind (a name NewTransport knows) in this process: "loopback" (one
// hub) or "gloo" (each rank its own context, meeting in a temporary directory).
class LocalRanks {
 public:
  // Creates the transports concurrently (a gloo rendezvous needs every rank at once).
  static absl::StatusOr<std::unique_ptr<LocalRanks>> Make(absl::string_view kind, int32_t world,
                                                          absl::Duration timeout);
  ~LocalRanks();

  int32_t world() const { return static_cast<int32_t>(transports_.size()); }
  Transport& rank(int32_t r) { return *transports_[r]; }
  // Destroys rank r's transport (its peers see it gone). Only from rank r's own thread in Run.
  void Close(int32_t r) { transports_[r].reset(); }

  // Runs `body` for every rank at once, each on its own thread; returns each rank's status. A
  // loopback rank whose body failed is aborted, so that its peers fail fast (as the worker does).
  std::vector<absl::Status> Run(const std::function<absl::Status(Transport&)>& body);

 private:
  LocalRanks() = default;

  std::string kind_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<LoopbackHub> hub_;
  std::vector<std::unique_ptr<Transport>> transports_;
};

}  // namespace fcp

#endif  // FCP_WORKER_TRANSPORT_TRANSPORT_TESTING_H_
