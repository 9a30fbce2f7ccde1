// Fuzzes the lengths-file reader (`fcp plan --lengths`, fcp-worker): ParseLengths, then an
// empirical LengthSampler and one sampled batch from what it accepted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workload/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<int64_t>> lengths = fcp::ParseLengths(text, "fuzz");
  if (!lengths.ok()) return 0;
  for (int64_t length : *lengths) {
    if (length < 1) std::abort();  // the contract: every accepted length is >= 1
  }
  absl::StatusOr<fcp::LengthSampler> sampler = fcp::LengthSampler::FromLengths(*lengths);
  if (!sampler.ok()) std::abort();  // what ParseLengths accepts, FromLengths accepts
  absl::StatusOr<std::vector<int64_t>> batch =
      fcp::SampleLengths(*sampler, /*total_tokens=*/4096, /*max_doc_len=*/1024, /*seed=*/size);
  if (!batch.ok()) std::abort();
  int64_t total = 0;
  for (int64_t length : *batch) total += length;
  if (total != 4096) std::abort();
  return 0;
}
