// Fuzzes the plan JSON reader (`fcp plan --dump-plan` files read back): PlanFromJson, then
// PlanFromProto on what parses, and PlanToJson of it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fcp/v1/plan.pb.h"
#include "proto/plan_convert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<fcp::v1::Plan> proto = fcp::PlanFromJson(json);
  if (!proto.ok()) return 0;
  (void)fcp::PlanFromProto(*proto);
  const std::string printed = fcp::PlanToJson(*proto);
  (void)printed;
  return 0;
}
