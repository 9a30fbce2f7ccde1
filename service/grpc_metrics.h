// gRPC server metrics under the names of go-grpc-prometheus, so existing dashboards and alerts
// work unchanged:
//
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}    histogram, from 50 µs
//   grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}
//
// grpc_type is unary / client_stream / server_stream / bidi_stream; grpc_code is the status name
// ("OK", "InvalidArgument", ...). Recorded by a server interceptor, so every service on the server
// (health and reflection included) is measured.
//
//   builder.experimental().SetInterceptorCreators(fcp::NewGrpcMetricsInterceptors(registry));
//
// Thread-safe; the registry must outlive the server.
#ifndef FCP_SERVICE_GRPC_METRICS_H_
#define FCP_SERVICE_GRPC_METRICS_H_

#include <memory>
#include <vector>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/registry.h"

namespace fcp {

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
NewGrpcMetricsInterceptors(prometheus::Registry& registry);

}  // namespace fcp

#endif  // FCP_SERVICE_GRPC_METRICS_H_
