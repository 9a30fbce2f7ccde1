#include "worker/transport/transport_factory.h"

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/transport/loopback_transport.h"

namespace fcp {
namespace {

using ::testing::HasSubstr;

TEST(TransportFactoryTest, EveryKindParsesFromItsName) {
  for (TransportKind kind :
       {TransportKind::kLoopback, TransportKind::kGloo, TransportKind::kNccl}) {
    absl::StatusOr<TransportKind> parsed = ParseTransportKind(TransportKindName(kind));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(TransportKindName(TransportKind::kGloo), "gloo");
}

TEST(TransportFactoryTest, AnUnknownNameIsRefusedNamingTheFlagAndTheKnownKinds) {
  absl::StatusOr<TransportKind> parsed = ParseTransportKind("udp");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), "--transport: expected loopback, gloo or nccl, got 'udp'");
  EXPECT_FALSE(ParseTransportKind("Gloo").ok());  // names are exact
}

TEST(TransportFactoryTest, LoopbackMakesTheRankOnTheHubWithTheTimeout) {
  LoopbackHub hub(3);
  TransportOptions options;
  options.rank = 2;
  options.world_size = 3;
  options.timeout = absl::Milliseconds(250);
  options.hub = &hub;
  absl::StatusOr<std::unique_ptr<Transport>> transport =
      NewTransport(TransportKind::kLoopback, options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_EQ((*transport)->name(), "loopback");
  EXPECT_EQ((*transport)->rank(), 2);
  EXPECT_EQ((*transport)->world_size(), 3);
  EXPECT_EQ((*transport)->timeout(), absl::Milliseconds(250));
}

TEST(TransportFactoryTest, MissingOptionsAreRefusedNamingTheField) {
  TransportOptions options;
  absl::StatusOr<std::unique_ptr<Transport>> loopback =
      NewTransport(TransportKind::kLoopback, options);
  EXPECT_EQ(loopback.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loopback.status().message(), HasSubstr("TransportOptions.hub"));

  for (TransportKind kind : {TransportKind::kGloo, TransportKind::kNccl}) {
    absl::StatusOr<std::unique_ptr<Transport>> t = NewTransport(kind, options);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << TransportKindName(kind);
    EXPECT_THAT(t.status().message(), HasSubstr("TransportOptions.key_prefix"));
    options.key_prefix = "job/attempt-0";
    t = NewTransport(kind, options);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << TransportKindName(kind);
    EXPECT_THAT(t.status().message(), HasSubstr("TransportOptions.store or rendezvous_dir"));
    options.key_prefix.clear();
  }
}

}  // namespace
}  // namespace fcp
