// Fuzzes the histogram reader (`fcp plan --histogram`, MagiAttention's CSV): ParseHistogramCsv,
// then LengthSampler::FromHistogram and one sampled batch when the bins make a distribution.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workload/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<fcp::HistogramBin>> bins = fcp::ParseHistogramCsv(text, "fuzz");
  if (!bins.ok()) return 0;
  absl::StatusOr<fcp::LengthSampler> sampler = fcp::LengthSampler::FromHistogram(*bins);
  if (!sampler.ok()) return 0;  // e.g. every count 0
  absl::StatusOr<std::vector<int64_t>> batch =
      fcp::SampleLengths(*sampler, /*total_tokens=*/4096, /*max_doc_len=*/1024, /*seed=*/size);
  if (!batch.ok()) std::abort();
  int64_t total = 0;
  for (int64_t length : *batch) {
    if (length < 1 || length > 1024) std::abort();
    total += length;
  }
  if (total != 4096) std::abort();
  return 0;
}
