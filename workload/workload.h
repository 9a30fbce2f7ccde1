// Workloads: document-length distributions read from files, and seeded batch sampling, exactly as
// /work/shared/workloads/README.md (and DESIGN §7) define a benchmark batch:
//
//   draw documents i.i.d. with a seeded RNG, truncate each to max_doc_len, append until the batch
//   holds W × T tokens, trim the last document to fit exactly. Every document is CAUSAL, unless a
//   mask mix (`fcp plan --mask-mix`, below) gives each document its mask from a second, seeded
//   stream, so that a batch's lengths are the same whatever its masks.
//
//   ASSIGN_OR_RETURN(std::vector<int64_t> lengths, fcp::ReadLengthsFile("wikipedia.lengths"));
//   ASSIGN_OR_RETURN(fcp::LengthSampler sampler, fcp::LengthSampler::FromLengths(lengths));
//   ASSIGN_OR_RETURN(std::vector<fcp::Document> docs,
//                    fcp::SampleDocuments(sampler, /*total_tokens=*/64 * 32768,
//                                         /*max_doc_len=*/131072, /*seed=*/1));
//
// Sampling is portable: the same seed gives the same batch on every platform and standard library
// (std::mt19937_64 is fully specified; bounded draws use UniformBelow, not
// std::uniform_int_distribution, whose algorithm is implementation-defined).
#ifndef FCP_WORKLOAD_WORKLOAD_H_
#define FCP_WORKLOAD_WORKLOAD_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/planner/batch.h"

namespace fcp {

// A uniformly distributed integer in [0, n), unbiased (rejection of the 2^64 mod n lowest
// values). Requires n >= 1.
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n);

// The whole file at `path`; NotFound naming the path if it cannot be opened or read.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Parses a lengths file: one positive integer per line; blank lines and `#` comments (whole-line
// or trailing) allowed. `name` prefixes errors, which name the line: "NAME:7: not an integer:
// 'abc'", "NAME:9: length must be >= 1, got 0", "NAME: no lengths".
absl::StatusOr<std::vector<int64_t>> ParseLengths(absl::string_view text, absl::string_view name);
// ParseLengths of the file at `path` (errors start with the path; NotFound if it cannot be read).
absl::StatusOr<std::vector<int64_t>> ReadLengthsFile(const std::string& path);

// One bin of a length histogram: `count` documents with lengths in [lo, hi].
struct HistogramBin {
  int64_t lo = 0;
  int64_t hi = 0;
  int64_t count = 0;
};

// Parses a histogram CSV as MagiAttention writes it: a header line, then rows
// `"[lo, hi]",count,percentage,cumulative-percentage` (only the range and count are used).
// Blank lines and `#` comment lines are allowed. Errors name the line.
absl::StatusOr<std::vector<HistogramBin>> ParseHistogramCsv(absl::string_view text,
                                                            absl::string_view name);
absl::StatusOr<std::vector<HistogramBin>> ReadHistogramFile(const std::string& path);

// A distribution of document lengths (all >= 1). Immutable, cheap to sample, thread-compatible
// (each thread passes its own RNG).
class LengthSampler {
 public:
  // Each of `lengths` equally likely (the empirical distribution). InvalidArgument if empty or
  // some length < 1.
  static absl::StatusOr<LengthSampler> FromLengths(std::vector<int64_t> lengths);
  // A bin with probability count / total count, then a length uniform in [max(lo, 1), hi].
  // InvalidArgument if no bin has a positive count, or a bin has hi < max(lo, 1) or count < 0.
  static absl::StatusOr<LengthSampler> FromHistogram(std::vector<HistogramBin> bins);

  int64_t Sample(std::mt19937_64& rng) const;

 private:
  LengthSampler() = default;

  std::vector<int64_t> lengths_;      // empirical mode
  std::vector<HistogramBin> bins_;    // histogram mode (positive-count bins only)
  std::vector<uint64_t> cumulative_;  // running sum of bins_[i].count
};

// Document lengths of one batch: i.i.d. draws from `sampler` with std::mt19937_64(seed), each
// truncated to `max_doc_len`, appended until they sum to exactly `total_tokens` (the last one
// trimmed). InvalidArgument if total_tokens < 1 or max_doc_len < 1.
absl::StatusOr<std::vector<int64_t>> SampleLengths(const LengthSampler& sampler,
                                                   int64_t total_tokens, int64_t max_doc_len,
                                                   uint64_t seed);
// SampleLengths as CAUSAL documents.
absl::StatusOr<std::vector<Document>> SampleDocuments(const LengthSampler& sampler,
                                                      int64_t total_tokens, int64_t max_doc_len,
                                                      uint64_t seed);

// Masks for benchmark batches: each document draws one of `entries` with probability weight /
// total weight. Parsed from `kind[=param][:weight]` entries joined by commas (weight default 1):
//   causal | full | sliding_window[=WINDOW tokens, default 4096] | prefix_lm[=FRACTION, default
//   0.5]
// e.g. "causal:0.5,sliding_window=4096:0.25,prefix_lm:0.25". A prefix-LM document of length n
// gets the prefix floor(n × FRACTION) (its first tokens attend bidirectionally).
struct MaskMixEntry {
  MaskKind kind = MaskKind::kCausal;
  int64_t window = 0;          // kSlidingWindow
  double prefix_fraction = 0;  // kPrefixLm, in [0, 1]
  double weight = 1;           // > 0
};
struct MaskMix {
  std::vector<MaskMixEntry> entries;  // empty: every document CAUSAL

  bool AllCausal() const;
  // The mask of a document of `length` under `entry`.
  static Mask MaskOf(const MaskMixEntry& entry, int64_t length);
};

// InvalidArgument naming the entry, e.g. "entry 2 ('sliding_window=0'): window must be >= 1".
// The empty string is the all-causal mix.
absl::StatusOr<MaskMix> ParseMaskMix(absl::string_view text);

// Gives every document its mask: document i's entry is chosen by the i-th draw of
// std::mt19937_64(seed ^ kMaskStreamSalt), so the assignment is portable and depends only on the
// seed and the document's index, not on its length. A no-op for the all-causal mix.
inline constexpr uint64_t kMaskStreamSalt = 0x6d61736b6d697821;  // "maskmix!"
void AssignMasks(const MaskMix& mix, uint64_t seed, std::vector<Document>* documents);

}  // namespace fcp

#endif  // FCP_WORKLOAD_WORKLOAD_H_
