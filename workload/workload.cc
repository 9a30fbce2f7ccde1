#include "workload/workload.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace fcp {
namespace {

// The line without its comment and surrounding whitespace.
absl::string_view Content(absl::string_view line) {
  const size_t hash = line.find('#');
  if (hash != absl::string_view::npos) line = line.substr(0, hash);
  return absl::StripAsciiWhitespace(line);
}

// `text` quoted for an error message, shortened if long.
std::string Quoted(absl::string_view text) {
  constexpr size_t kMax = 40;
  if (text.size() <= kMax) return absl::StrCat("'", text, "'");
  return absl::StrCat("'", text.substr(0, kMax), "...'");
}

absl::Status LineError(absl::string_view name, size_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ":", line, ": ", what));
}

// Parses `"[lo, hi]",count,...` (already stripped) into a bin.
absl::StatusOr<HistogramBin> ParseHistogramRow(absl::string_view row, absl::string_view name,
                                               size_t line) {
  const absl::string_view original = row;
  const bool open = absl::ConsumePrefix(&row, "\"[");
  const size_t close = row.find("]\"");
  if (!open || close == absl::string_view::npos) {
    return LineError(name, line,
                     absl::StrCat("expected \"[lo, hi]\",count,..., got ", Quoted(original)));
  }
  const absl::string_view range = row.substr(0, close);
  const absl::string_view rest = row.substr(close + 2);
  const std::vector<absl::string_view> bounds = absl::StrSplit(range, ',');
  HistogramBin bin;
  if (bounds.size() != 2 || !absl::SimpleAtoi(bounds[0], &bin.lo) ||
      !absl::SimpleAtoi(bounds[1], &bin.hi)) {
    return LineError(name, line, absl::StrCat("bad range ", Quoted(range)));
  }
  const std::vector<absl::string_view> fields = absl::StrSplit(rest, ',');
  if (fields.size() < 2 || !fields[0].empty() || !absl::SimpleAtoi(fields[1], &bin.count)) {
    return LineError(name, line, absl::StrCat("bad count in ", Quoted(rest)));
  }
  if (bin.count < 0) return LineError(name, line, "count must be >= 0");
  if (bin.hi < std::max<int64_t>(bin.lo, 1)) {
    return LineError(name, line, absl::StrCat("empty range [", bin.lo, ", ", bin.hi, "]"));
  }
  return bin;
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string text;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(f) != 0;
  const int error = errno;
  std::fclose(f);
  if (failed) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read: ", std::strerror(error)));
  }
  return text;
}

uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  // Values below 2^64 mod n would make the low residues more likely; redraw them.
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

absl::StatusOr<std::vector<int64_t>> ParseLengths(absl::string_view text, absl::string_view name) {
  std::vector<int64_t> lengths;
  size_t line = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line;
    const absl::string_view content = Content(raw);
    if (content.empty()) continue;
    int64_t length;
    if (!absl::SimpleAtoi(content, &length)) {
      return LineError(name, line, absl::StrCat("not an integer: ", Quoted(content)));
    }
    if (length < 1) {
      return LineError(name, line, absl::StrCat("length must be >= 1, got ", length));
    }
    lengths.push_back(length);
  }
  if (lengths.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no lengths (empty file)"));
  }
  return lengths;
}

absl::StatusOr<std::vector<int64_t>> ReadLengthsFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  return ParseLengths(text, path);
}

absl::StatusOr<std::vector<HistogramBin>> ParseHistogramCsv(absl::string_view text,
                                                            absl::string_view name) {
  std::vector<HistogramBin> bins;
  bool header = true;
  size_t line = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line;
    const absl::string_view content = absl::StripAsciiWhitespace(raw);
    if (content.empty() || content[0] == '#') continue;
    if (header) {  // column names
      header = false;
      continue;
    }
    ASSIGN_OR_RETURN(HistogramBin bin, ParseHistogramRow(content, name, line));
    bins.push_back(bin);
  }
  if (bins.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no histogram rows"));
  }
  return bins;
}

absl::StatusOr<std::vector<HistogramBin>> ReadHistogramFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  return ParseHistogramCsv(text, path);
}

absl::StatusOr<LengthSampler> LengthSampler::FromLengths(std::vector<int64_t> lengths) {
  if (lengths.empty()) return absl::InvalidArgumentError("lengths: must not be empty");
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("lengths[", i, "]: must be >= 1, got ", lengths[i]));
    }
  }
  LengthSampler sampler;
  sampler.lengths_ = std::move(lengths);
  return sampler;
}

absl::StatusOr<LengthSampler> LengthSampler::FromHistogram(std::vector<HistogramBin> bins) {
  LengthSampler sampler;
  uint64_t total = 0;
  for (size_t i = 0; i < bins.size(); ++i) {
    HistogramBin bin = bins[i];
    bin.lo = std::max<int64_t>(bin.lo, 1);
    if (bin.count < 0 || bin.hi < bin.lo) {
      return absl::InvalidArgumentError(
          absl::StrCat("bins[", i, "]: needs count >= 0 and hi >= ", bin.lo, ", got [", bins[i].lo,
                       ", ", bin.hi, "] x ", bin.count));
    }
    if (bin.count == 0) continue;
    total += static_cast<uint64_t>(bin.count);
    sampler.bins_.push_back(bin);
    sampler.cumulative_.push_back(total);
  }
  if (total == 0) return absl::InvalidArgumentError("bins: no bin has a positive count");
  return sampler;
}

int64_t LengthSampler::Sample(std::mt19937_64& rng) const {
  if (!lengths_.empty()) return lengths_[UniformBelow(rng, lengths_.size())];
  const uint64_t u = UniformBelow(rng, cumulative_.back());
  const size_t i =
      std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
  const HistogramBin& bin = bins_[i];
  return bin.lo +
         static_cast<int64_t>(UniformBelow(rng, static_cast<uint64_t>(bin.hi - bin.lo) + 1));
}

absl::StatusOr<std::vector<int64_t>> SampleLengths(const LengthSampler& sampler,
                                                   int64_t total_tokens, int64_t max_doc_len,
                                                   uint64_t seed) {
  if (total_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("total_tokens: must be >= 1, got ", total_tokens));
  }
  if (max_doc_len < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_doc_len: must be >= 1, got ", max_doc_len));
  }
  std::mt19937_64 rng(seed);
  std::vector<int64_t> lengths;
  int64_t sum = 0;
  while (sum < total_tokens) {
    const int64_t length = std::min({sampler.Sample(rng), max_doc_len, total_tokens - sum});
    lengths.push_back(length);
    sum += length;
  }
  return lengths;
}

absl::StatusOr<std::vector<Document>> SampleDocuments(const LengthSampler& sampler,
                                                      int64_t total_tokens, int64_t max_doc_len,
                                                      uint64_t seed) {
  ASSIGN_OR_RETURN(const std::vector<int64_t> lengths,
                   SampleLengths(sampler, total_tokens, max_doc_len, seed));
  std::vector<Document> documents(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) documents[i] = {lengths[i], Mask::Causal()};
  return documents;
}

namespace {

absl::Status BadEntry(size_t index, absl::string_view entry, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("entry ", index + 1, " ('", entry, "'): ", what));
}

}  // namespace

bool MaskMix::AllCausal() const {
  for (const MaskMixEntry& e : entries) {
    if (e.kind != MaskKind::kCausal) return false;
  }
  return true;
}

Mask MaskMix::MaskOf(const MaskMixEntry& entry, int64_t length) {
  switch (entry.kind) {
    case MaskKind::kCausal:
      return Mask::Causal();
    case MaskKind::kFull:
      return Mask::Full();
    case MaskKind::kSlidingWindow:
      return Mask::SlidingWindow(entry.window);
    case MaskKind::kPrefixLm:
      return Mask::PrefixLm(
          static_cast<int64_t>(std::floor(static_cast<double>(length) * entry.prefix_fraction)));
  }
  return Mask::Causal();
}

absl::StatusOr<MaskMix> ParseMaskMix(absl::string_view text) {
  MaskMix mix;
  if (absl::StripAsciiWhitespace(text).empty()) return mix;
  const std::vector<absl::string_view> entries = absl::StrSplit(text, ',');
  for (size_t i = 0; i < entries.size(); ++i) {
    const absl::string_view entry = absl::StripAsciiWhitespace(entries[i]);
    MaskMixEntry e;
    absl::string_view spec = entry;
    if (const size_t colon = spec.find(':'); colon != absl::string_view::npos) {
      if (!absl::SimpleAtod(spec.substr(colon + 1), &e.weight) || !(e.weight > 0) ||
          !std::isfinite(e.weight)) {
        return BadEntry(i, entry, "weight must be a finite number > 0");
      }
      spec = spec.substr(0, colon);
    }
    absl::string_view kind = spec, param;
    const size_t eq = spec.find('=');
    if (eq != absl::string_view::npos) {
      kind = spec.substr(0, eq);
      param = spec.substr(eq + 1);
    }
    if (kind == "causal" || kind == "full") {
      if (!param.empty()) return BadEntry(i, entry, absl::StrCat(kind, " takes no parameter"));
      e.kind = kind == "causal" ? MaskKind::kCausal : MaskKind::kFull;
    } else if (kind == "sliding_window") {
      e.kind = MaskKind::kSlidingWindow;
      e.window = 4096;
      if (!param.empty() && (!absl::SimpleAtoi(param, &e.window) || e.window < 1)) {
        return BadEntry(i, entry, "window must be an integer >= 1");
      }
    } else if (kind == "prefix_lm") {
      e.kind = MaskKind::kPrefixLm;
      e.prefix_fraction = 0.5;
      if (!param.empty() && (!absl::SimpleAtod(param, &e.prefix_fraction) ||
                             !(e.prefix_fraction >= 0 && e.prefix_fraction <= 1))) {
        return BadEntry(i, entry, "prefix fraction must be a number in [0, 1]");
      }
    } else {
      return BadEntry(i, entry,
                      "unknown mask (expected causal, full, sliding_window[=W] or prefix_lm[=F])");
    }
    mix.entries.push_back(e);
  }
  return mix;
}

void AssignMasks(const MaskMix& mix, uint64_t seed, std::vector<Document>* documents) {
  if (mix.AllCausal()) return;
  double total = 0;
  for (const MaskMixEntry& e : mix.entries) total += e.weight;
  std::mt19937_64 rng(seed ^ kMaskStreamSalt);
  for (Document& d : *documents) {
    // 53 random bits as a double in [0, 1): exact, so the choice is the same everywhere.
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
    size_t pick = 0;
    double cumulative = mix.entries[0].weight;
    while (pick + 1 < mix.entries.size() && u >= cumulative) {
      cumulative += mix.entries[++pick].weight;
    }
    d.mask = MaskMix::MaskOf(mix.entries[pick], d.length);
  }
}

}  // namespace fcp
