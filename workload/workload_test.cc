#include "workload/workload.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kSharedDir = FCP_SHARED_DIR;

bool Exists(const std::string& path) { return std::ifstream(path).good(); }

int64_t Sum(const std::vector<int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), int64_t{0});
}

LengthSampler Lengths(std::vector<int64_t> lengths) {
  return *LengthSampler::FromLengths(std::move(lengths));
}

TEST(UniformBelowTest, StaysInRangeAndCoversItEvenly) {
  std::mt19937_64 rng(7);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) ++counts[UniformBelow(rng, 7)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  EXPECT_EQ(UniformBelow(rng, 1), 0u);
  const uint64_t huge = (uint64_t{1} << 63) + 3;  // most draws of 2^64 are near the threshold
  for (int i = 0; i < 1000; ++i) EXPECT_LT(UniformBelow(rng, huge), huge);
}

// std::mt19937_64 is fully specified and UniformBelow is ours, so these numbers hold on every
// platform; a change here changes every benchmark batch.
TEST(SampleLengthsTest, GoldenSequenceIsPortable) {
  const LengthSampler sampler = Lengths({1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  absl::StatusOr<std::vector<int64_t>> lengths = SampleLengths(sampler, 40, 100, 42);
  ASSERT_TRUE(lengths.ok());
  EXPECT_THAT(*lengths, ElementsAre(7, 5, 1, 3, 2, 9, 7, 5, 1));
}

TEST(SampleLengthsTest, SameSeedSameBatchOtherSeedOtherBatch) {
  std::vector<int64_t> pool(1000);
  std::iota(pool.begin(), pool.end(), 1);
  const LengthSampler sampler = Lengths(pool);
  const auto a = SampleLengths(sampler, 100000, 1 << 17, 5);
  const auto b = SampleLengths(sampler, 100000, 1 << 17, 5);
  const auto c = SampleLengths(sampler, 100000, 1 << 17, 6);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
}

TEST(SampleLengthsTest, ExactTokenTotal) {
  const LengthSampler sampler = Lengths({3000, 17, 250, 9000});
  for (int64_t total : {1, 2, 63, 4096, 32768, 1000003}) {
    absl::StatusOr<std::vector<int64_t>> lengths = SampleLengths(sampler, total, 131072, 1);
    ASSERT_TRUE(lengths.ok());
    EXPECT_EQ(Sum(*lengths), total);
    for (int64_t l : *lengths) EXPECT_GE(l, 1);
  }
}

TEST(SampleLengthsTest, TruncatesToMaxDocLenThenTrimsTheLast) {
  absl::StatusOr<std::vector<int64_t>> lengths = SampleLengths(Lengths({1000}), 350, 100, 9);
  ASSERT_TRUE(lengths.ok());
  EXPECT_THAT(*lengths, ElementsAre(100, 100, 100, 50));
}

TEST(SampleLengthsTest, RejectsBadArguments) {
  const LengthSampler sampler = Lengths({10});
  EXPECT_THAT(SampleLengths(sampler, 0, 10, 1).status().message(), HasSubstr("total_tokens"));
  EXPECT_THAT(SampleLengths(sampler, 10, 0, 1).status().message(), HasSubstr("max_doc_len"));
  EXPECT_FALSE(LengthSampler::FromLengths({}).ok());
  EXPECT_THAT(LengthSampler::FromLengths({5, 0}).status().message(), HasSubstr("lengths[1]"));
}

TEST(SampleDocumentsTest, AllCausal) {
  absl::StatusOr<std::vector<Document>> docs = SampleDocuments(Lengths({7, 300}), 5000, 256, 3);
  ASSERT_TRUE(docs.ok());
  int64_t total = 0;
  for (const Document& d : *docs) {
    EXPECT_EQ(d.mask, Mask::Causal());
    EXPECT_LE(d.length, 256);
    total += d.length;
  }
  EXPECT_EQ(total, 5000);
}

TEST(ParseLengthsTest, SkipsBlankLinesAndComments) {
  absl::StatusOr<std::vector<int64_t>> lengths =
      ParseLengths("# lengths\n12\n\n  7  \r\n5 # trailing\n#\n", "f");
  ASSERT_TRUE(lengths.ok()) << lengths.status();
  EXPECT_THAT(*lengths, ElementsAre(12, 7, 5));
}

TEST(ParseLengthsTest, ErrorsNameTheFileAndLine) {
  EXPECT_EQ(ParseLengths("1\n2\nabc\n", "w.lengths").status().message(),
            "w.lengths:3: not an integer: 'abc'");
  EXPECT_EQ(ParseLengths("1\n1.5\n", "f").status().message(), "f:2: not an integer: '1.5'");
  EXPECT_EQ(ParseLengths("\n0\n", "f").status().message(), "f:2: length must be >= 1, got 0");
  EXPECT_EQ(ParseLengths("-4\n", "f").status().message(), "f:1: length must be >= 1, got -4");
  EXPECT_EQ(ParseLengths("", "f").status().message(), "f: no lengths (empty file)");
  EXPECT_EQ(ParseLengths("# nothing\n\n", "f").status().message(), "f: no lengths (empty file)");
  EXPECT_EQ(ParseLengths("99999999999999999999\n", "f").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ReadLengthsFileTest, MissingFileIsNotFoundNamingThePath) {
  absl::StatusOr<std::vector<int64_t>> lengths = ReadLengthsFile("/nonexistent/x.lengths");
  EXPECT_EQ(lengths.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(lengths.status().message(), HasSubstr("/nonexistent/x.lengths"));
}

TEST(ReadLengthsFileTest, ReadsWikipedia) {
  const std::string path = kSharedDir + "/workloads/wikipedia.lengths";
  if (!Exists(path)) GTEST_SKIP() << path << " not present";
  absl::StatusOr<std::vector<int64_t>> lengths = ReadLengthsFile(path);
  ASSERT_TRUE(lengths.ok()) << lengths.status();
  EXPECT_EQ(lengths->size(), 1000000u);
  EXPECT_EQ(*std::max_element(lengths->begin(), lengths->end()), 1823777);
}

TEST(HistogramTest, ParsesMagiHistogram) {
  const std::string path = kSharedDir + "/workloads/magi_histogram.csv";
  if (!Exists(path)) GTEST_SKIP() << path << " not present";
  absl::StatusOr<std::vector<HistogramBin>> bins = ReadHistogramFile(path);
  ASSERT_TRUE(bins.ok()) << bins.status();
  ASSERT_EQ(bins->size(), 14u);
  EXPECT_EQ(bins->front().lo, 0);
  EXPECT_EQ(bins->front().hi, 10);
  EXPECT_EQ(bins->front().count, 30254);
  EXPECT_EQ(bins->back().lo, 131073);
  EXPECT_EQ(bins->back().hi, 196608);
  EXPECT_EQ(bins->back().count, 18284);
  int64_t total = 0;
  for (const HistogramBin& b : *bins) total += b.count;
  EXPECT_NEAR(total, 13.46e6, 0.01e6);

  absl::StatusOr<LengthSampler> sampler = LengthSampler::FromHistogram(*bins);
  ASSERT_TRUE(sampler.ok());
  std::mt19937_64 rng(1);
  int in_501_1024 = 0;
  for (int i = 0; i < 20000; ++i) {
    const int64_t l = sampler->Sample(rng);
    ASSERT_GE(l, 1);
    ASSERT_LE(l, 196608);
    in_501_1024 += (l >= 501 && l <= 1024);
  }
  EXPECT_NEAR(in_501_1024 / 20000.0, 0.2464, 0.015);  // the bin's share
}

TEST(HistogramTest, SamplesWithinBinsAndNeverZero) {
  absl::StatusOr<LengthSampler> sampler =
      LengthSampler::FromHistogram({{0, 2, 5}, {100, 100, 0}, {50, 60, 5}});
  ASSERT_TRUE(sampler.ok());
  std::mt19937_64 rng(3);
  for (int i = 0; i < 1000; ++i) {
    const int64_t l = sampler->Sample(rng);
    EXPECT_TRUE((l >= 1 && l <= 2) || (l >= 50 && l <= 60)) << l;
  }
  EXPECT_FALSE(LengthSampler::FromHistogram({{1, 5, 0}}).ok());
  EXPECT_FALSE(LengthSampler::FromHistogram({{0, 0, 3}}).ok());
}

TEST(HistogramTest, ParseErrorsNameTheLine) {
  const std::string header = "range,number,percentage(%),cumulative-percentage(%)\n";
  EXPECT_TRUE(ParseHistogramCsv(header + "\"[1, 10]\",5,1,1\n", "h").ok());
  EXPECT_THAT(ParseHistogramCsv(header + "[1, 10],5,1,1\n", "h").status().message(),
              HasSubstr("h:2: expected"));
  EXPECT_THAT(ParseHistogramCsv(header + "\"[1, 10]\",5\n\"[a, 3]\",1\n", "h").status().message(),
              HasSubstr("h:3: bad range"));
  EXPECT_THAT(ParseHistogramCsv(header + "\"[1, 10]\",x,1,1\n", "h").status().message(),
              HasSubstr("h:2: bad count"));
  EXPECT_THAT(ParseHistogramCsv(header + "\"[1, 10]\",-1,1,1\n", "h").status().message(),
              HasSubstr("h:2: count must be >= 0"));
  EXPECT_THAT(ParseHistogramCsv(header + "\"[9, 3]\",1,1,1\n", "h").status().message(),
              HasSubstr("h:2: empty range"));
  EXPECT_THAT(ParseHistogramCsv(header, "h").status().message(), HasSubstr("no histogram rows"));
}

TEST(MaskMixTest, ParsesKindsParametersAndWeights) {
  absl::StatusOr<MaskMix> mix =
      ParseMaskMix("causal:0.5, sliding_window=1024:0.25,prefix_lm=0.25,full:2,sliding_window");
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->entries.size(), 5u);
  EXPECT_EQ(mix->entries[0].kind, MaskKind::kCausal);
  EXPECT_EQ(mix->entries[0].weight, 0.5);
  EXPECT_EQ(mix->entries[1].kind, MaskKind::kSlidingWindow);
  EXPECT_EQ(mix->entries[1].window, 1024);
  EXPECT_EQ(mix->entries[1].weight, 0.25);
  EXPECT_EQ(mix->entries[2].kind, MaskKind::kPrefixLm);
  EXPECT_EQ(mix->entries[2].prefix_fraction, 0.25);
  EXPECT_EQ(mix->entries[2].weight, 1);
  EXPECT_EQ(mix->entries[3].kind, MaskKind::kFull);
  EXPECT_EQ(mix->entries[3].weight, 2);
  EXPECT_EQ(mix->entries[4].window, 4096);  // the default window
  EXPECT_FALSE(mix->AllCausal());
  EXPECT_TRUE(ParseMaskMix("")->AllCausal());
  EXPECT_TRUE(ParseMaskMix("causal")->AllCausal());
  EXPECT_EQ(ParseMaskMix("prefix_lm")->entries[0].prefix_fraction, 0.5);
}

TEST(MaskMixTest, ErrorsNameTheEntry) {
  EXPECT_EQ(ParseMaskMix("causal,sliding_window=0").status().message(),
            "entry 2 ('sliding_window=0'): window must be an integer >= 1");
  EXPECT_EQ(ParseMaskMix("prefix_lm=1.5").status().message(),
            "entry 1 ('prefix_lm=1.5'): prefix fraction must be a number in [0, 1]");
  EXPECT_THAT(ParseMaskMix("causal:0").status().message(), HasSubstr("weight must be"));
  EXPECT_THAT(ParseMaskMix("causal:x").status().message(), HasSubstr("weight must be"));
  EXPECT_THAT(ParseMaskMix("causal=3").status().message(), HasSubstr("takes no parameter"));
  EXPECT_THAT(ParseMaskMix("bidirectional").status().message(), HasSubstr("unknown mask"));
  EXPECT_THAT(ParseMaskMix("causal,,full").status().message(), HasSubstr("entry 2"));
}

TEST(MaskMixTest, MaskOfScalesThePrefixWithTheDocument) {
  MaskMixEntry prefix{MaskKind::kPrefixLm, 0, 0.25, 1};
  EXPECT_EQ(MaskMix::MaskOf(prefix, 1000), Mask::PrefixLm(250));
  EXPECT_EQ(MaskMix::MaskOf(prefix, 3), Mask::PrefixLm(0));
  MaskMixEntry window{MaskKind::kSlidingWindow, 512, 0, 1};
  EXPECT_EQ(MaskMix::MaskOf(window, 100), Mask::SlidingWindow(512));
}

std::vector<Document> CausalDocuments(int n) {
  std::vector<Document> docs(n);
  for (int i = 0; i < n; ++i) docs[i].length = 100 + i;
  return docs;
}

TEST(AssignMasksTest, FollowsTheWeightsAndTheSeed) {
  const MaskMix mix = *ParseMaskMix("causal:0.5,sliding_window=64:0.25,prefix_lm:0.25");
  std::vector<Document> docs = CausalDocuments(20000);
  AssignMasks(mix, 7, &docs);
  std::map<MaskKind, int> counts;
  for (const Document& d : docs) {
    ++counts[d.mask.kind];
    if (d.mask.kind == MaskKind::kSlidingWindow) {
      EXPECT_EQ(d.mask.window, 64);
    } else if (d.mask.kind == MaskKind::kPrefixLm) {
      EXPECT_EQ(d.mask.prefix, d.length / 2);
    }
  }
  EXPECT_NEAR(counts[MaskKind::kCausal], 10000, 400);
  EXPECT_NEAR(counts[MaskKind::kSlidingWindow], 5000, 300);
  EXPECT_NEAR(counts[MaskKind::kPrefixLm], 5000, 300);
  EXPECT_EQ(counts.count(MaskKind::kFull), 0u);

  std::vector<Document> same = CausalDocuments(20000), other = CausalDocuments(20000);
  AssignMasks(mix, 7, &same);
  AssignMasks(mix, 8, &other);
  int differ_same = 0, differ_other = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    differ_same += !(docs[i].mask == same[i].mask);
    differ_other += !(docs[i].mask == other[i].mask);
  }
  EXPECT_EQ(differ_same, 0);
  EXPECT_GT(differ_other, 5000);  // another seed, another assignment (~62.5% differ)
}

// The masks come from their own stream: a mixed batch has the lengths of the causal batch of the
// same seed, so the grid compares masks on the same documents.
TEST(AssignMasksTest, KeepsTheLengthsAndLeavesAllCausalAlone) {
  std::vector<int64_t> pool(500);
  std::iota(pool.begin(), pool.end(), 1);
  absl::StatusOr<std::vector<Document>> docs = SampleDocuments(Lengths(pool), 50000, 400, 3);
  ASSERT_TRUE(docs.ok());
  std::vector<Document> mixed = *docs;
  AssignMasks(*ParseMaskMix("sliding_window=32"), 3, &mixed);
  ASSERT_EQ(mixed.size(), docs->size());
  for (size_t i = 0; i < mixed.size(); ++i) {
    EXPECT_EQ(mixed[i].length, (*docs)[i].length);
    EXPECT_EQ(mixed[i].mask, Mask::SlidingWindow(32));
  }
  std::vector<Document> causal = *docs;
  AssignMasks(*ParseMaskMix("causal:3"), 3, &causal);
  for (const Document& d : causal) EXPECT_EQ(d.mask, Mask::Causal());
}

// Portable like the lengths: a change here changes every mixed-mask benchmark batch.
TEST(AssignMasksTest, GoldenAssignmentIsPortable) {
  std::vector<Document> docs = CausalDocuments(8);
  AssignMasks(*ParseMaskMix("causal,full"), 1, &docs);
  std::string kinds;
  for (const Document& d : docs) kinds += d.mask.kind == MaskKind::kCausal ? 'c' : 'f';
  EXPECT_EQ(kinds, "cfffcfff");
}

}  // namespace
}  // namespace fcp
