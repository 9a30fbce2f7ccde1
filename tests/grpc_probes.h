// Probes of the standard gRPC services a coordinator offers, for tests, written against the wire
// format with a generic stub (Debian ships no C++ stubs for them):
//   grpc.health.v1.Health/Check                          -> the serving status
//   grpc.reflection.v1alpha.ServerReflection (list_services) -> the service names
//
//   EXPECT_EQ(*fcp::HealthStatus(channel, ""), fcp::kServing);
#ifndef FCP_TESTS_GRPC_PROBES_H_
#define FCP_TESTS_GRPC_PROBES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"

namespace fcp {

// grpc.health.v1.HealthCheckResponse.ServingStatus values.
inline constexpr int kUnknown = 0;
inline constexpr int kServing = 1;
inline constexpr int kNotServing = 2;
inline constexpr int kServiceUnknown = 3;

// The status Health/Check reports for `service` ("" = the whole server).
absl::StatusOr<int> HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& service);

// The services server reflection lists.
absl::StatusOr<std::vector<std::string>> ReflectedServices(
    const std::shared_ptr<grpc::Channel>& channel);

}  // namespace fcp

#endif  // FCP_TESTS_GRPC_PROBES_H_
