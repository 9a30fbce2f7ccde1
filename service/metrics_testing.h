// Test helpers for Prometheus metrics: the text exposition of a registry, and one sample's value
// read from an exposition (ours in-process, or a live scrape).
//
//   EXPECT_EQ(MetricValue(Exposition(registry),
//                         R"(fcp_plan_cache_misses_total{training_job="j"})"), 1);
//
// `series` is the sample's name and labels exactly as exposed: labels sorted by name, as
// prometheus-cpp writes them.
#ifndef FCP_SERVICE_METRICS_TESTING_H_
#define FCP_SERVICE_METRICS_TESTING_H_

#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace fcp {

inline std::string Exposition(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

// The value of `series` in `exposition`, or nullopt if it is not there.
inline std::optional<double> MetricValue(absl::string_view exposition, absl::string_view series) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (line.size() <= series.size() || line.substr(0, series.size()) != series ||
        line[series.size()] != ' ') {
      continue;
    }
    absl::string_view rest = line.substr(series.size() + 1);
    rest = rest.substr(0, rest.find(' '));  // drop a timestamp, if any
    double value = 0;
    if (absl::SimpleAtod(rest, &value)) return value;
  }
  return std::nullopt;
}

}  // namespace fcp

#endif  // FCP_SERVICE_METRICS_TESTING_H_
