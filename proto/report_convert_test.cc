#include "proto/report_convert.h"

#include <cmath>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

v1::StepReport GoodReport() {
  v1::StepReport r;
  r.set_job_id("j");
  r.set_step(3);
  r.set_rank(1);
  r.set_num_workers(4);
  v1::TileShape* t = r.add_tile_shapes();
  t->set_q_len(128);
  t->set_kv_len(256);
  t->set_tiles(3);
  t->set_fwd_flops(1e9);
  r.set_forward_seconds(0.01);
  r.set_backward_seconds(0.02);
  r.set_comm_wait_seconds(0.001);
  r.set_transfers(4);
  r.set_intra_node_bytes(1 << 20);
  r.set_predicted_seconds(0.025);
  return r;
}

TEST(ReportConvertTest, RoundTrips) {
  absl::StatusOr<calibration::RankStepMeasurement> m = MeasurementFromProto(GoodReport());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->step, 3);
  EXPECT_EQ(m->rank, 1);
  ASSERT_EQ(m->tile_shapes.size(), 1u);
  EXPECT_EQ(m->tile_shapes[0].kv_len, 256);
  v1::StepReport back;
  MeasurementToProto(*m, &back);
  back.set_job_id("j");
  EXPECT_EQ(back.SerializeAsString(), GoodReport().SerializeAsString());
}

TEST(ReportConvertTest, ImpossibleValuesNameTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    void (*mutate)(v1::StepReport*);
    const char* message;
  };
  const Case cases[] = {
      {[](v1::StepReport* r) { r->set_rank(4); }, "rank: 4: must be in [0, 3]"},
      {[](v1::StepReport* r) { r->set_num_workers(0); }, "num_workers: 0"},
      {[](v1::StepReport* r) { r->set_step(-1); }, "step: -1"},
      {[](v1::StepReport* r) { r->set_forward_seconds(-1); }, "forward_seconds: -1"},
      {[](v1::StepReport* r) { r->set_backward_seconds(1e9); }, "backward_seconds: 1e+09"},
      {[](v1::StepReport* r) { r->set_linear_seconds(std::numeric_limits<double>::infinity()); },
       "linear_seconds: inf"},
      {[](v1::StepReport* r) { r->set_transfers(-2); }, "transfers: -2"},
      {[](v1::StepReport* r) { r->set_inter_node_bytes(-1); }, "inter_node_bytes: -1"},
      {[](v1::StepReport* r) { r->mutable_tile_shapes(0)->set_q_len(0); },
       "tile_shapes[0].q_len: 0"},
      {[](v1::StepReport* r) { r->mutable_tile_shapes(0)->set_tiles(0); },
       "tile_shapes[0].tiles: 0"},
      {[](v1::StepReport* r) { r->set_comm_wait_seconds(1); }, "comm_wait_seconds: 1: more than"},
  };
  for (const Case& c : cases) {
    v1::StepReport r = GoodReport();
    c.mutate(&r);
    absl::StatusOr<calibration::RankStepMeasurement> m = MeasurementFromProto(r);
    EXPECT_TRUE(absl::IsInvalidArgument(m.status())) << c.message;
    EXPECT_THAT(m.status().message(), HasSubstr(c.message));
  }
  v1::StepReport r = GoodReport();
  r.mutable_tile_shapes(0)->set_fwd_flops(nan);
  EXPECT_THAT(MeasurementFromProto(r).status().message(), HasSubstr("tile_shapes[0].fwd_flops"));
}

TEST(ReportConvertTest, TooManyTileShapesIsOverTheLimit) {
  v1::StepReport r = GoodReport();
  for (int i = 0; i < 4; ++i) *r.add_tile_shapes() = r.tile_shapes(0);
  ReportLimits limits;
  limits.max_tile_shapes = 4;
  absl::StatusOr<calibration::RankStepMeasurement> m = MeasurementFromProto(r, limits);
  EXPECT_TRUE(absl::IsResourceExhausted(m.status()));
  EXPECT_THAT(m.status().message(), HasSubstr("tile_shapes: 5 shapes"));
}

TEST(ReportConvertTest, CalibrationCarriesItsFile) {
  calibration::Calibration c;
  c.params.attention_tflops = 0.01;
  c.first_step = 2;
  c.last_step = 5;
  c.fitted = {"attention_tflops"};
  v1::JobCalibration p;
  CalibrationToProto("j", c, &p);
  EXPECT_EQ(p.job_id(), "j");
  EXPECT_EQ(p.attention_tflops(), 0.01);
  EXPECT_THAT(p.calibration_file(), HasSubstr("attention_tflops = 0.01"));
  EXPECT_THAT(p.fitted(), ::testing::ElementsAre("attention_tflops"));
}

}  // namespace
}  // namespace fcp
