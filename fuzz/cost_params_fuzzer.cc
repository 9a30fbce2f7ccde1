// Fuzzes the cost-model calibration reader (the coordinator's --cost-params file): ParseCostParams,
// and that what it accepts prints and parses back to the same parameters.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/planner/cost_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<fcp::CostParams> params = fcp::ParseCostParams(text);
  if (!params.ok()) return 0;
  const std::string printed = fcp::CostParamsToString(*params);
  if (!fcp::ParseCostParams(printed).ok()) std::abort();
  return 0;
}
