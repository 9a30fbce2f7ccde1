# syntax=docker/dockerfile:1
# fcp container images (README "Deploy"):
#
#   docker build --target coordinator -t fcp-coordinator:0.1.0 .   # Debian 12 slim, no CUDA
#   docker build --target worker      -t fcp-worker:0.1.0 .        # CUDA runtime + NCCL
#
# Two build stages, because a binary runs only on the C library and shared libraries it was
# built against: the coordinator is built on Debian 12 (the same packages as CI, see
# scripts/setup.sh) for the Debian 12 slim runtime; the worker on the CUDA devel image for the
# CUDA runtime image of the same release. Both runtimes run as uid 65532 and write nothing
# outside /tmp, so they work with a read-only root filesystem. Health: the coordinator serves
# grpc.health.v1, which Kubernetes probes natively (deploy/base), so there is no HEALTHCHECK.

ARG FCP_VERSION=0.1.0
ARG DEBIAN_BUILD_IMAGE=debian:12.11
ARG DEBIAN_RUNTIME_IMAGE=debian:12.11-slim
ARG CUDA_BUILD_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
# What CMake needs (scripts/setup.sh installs the same, plus test tools); tests and benchmarks
# are not built into images.
ARG BUILD_PACKAGES="build-essential cmake ninja-build pkg-config python3 libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc prometheus-cpp-dev libgloo-dev libmetis-dev"
ARG CMAKE_FLAGS="-G Ninja -DCMAKE_BUILD_TYPE=Release -DFCP_BUILD_TESTS=OFF -DFCP_BUILD_BENCH=OFF"

# --- build-debian: fcp-coordinator and the fcp CLI, for the Debian runtime -------------------
FROM ${DEBIAN_BUILD_IMAGE} AS build-debian
ARG BUILD_PACKAGES
ARG CMAKE_FLAGS
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${BUILD_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build ${CMAKE_FLAGS} \
    && cmake --build /build --target fcp-coordinator fcp \
    && install -D -m 0755 -t /out/bin /build/service/fcp-coordinator /build/client/fcp

# --- build-cuda: fcp-worker with the CUDA kernels and NCCL, for the CUDA runtime --------------
FROM ${CUDA_BUILD_IMAGE} AS build-cuda
ARG BUILD_PACKAGES
ARG CMAKE_FLAGS
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${BUILD_PACKAGES} \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# sm_80 (A100) and sm_90 (H100/H200).
RUN cmake -S . -B /build ${CMAKE_FLAGS} -DCMAKE_CUDA_ARCHITECTURES="80;90" \
    && cmake --build /build --target fcp-worker \
    && install -D -m 0755 -t /out/bin /build/worker/fcp-worker
# The shared libraries fcp-worker needs beyond glibc and what the CUDA runtime image and the
# NVIDIA driver provide (CUDA runtime, NCCL, libcuda): gRPC, protobuf, Abseil, Gloo, ...
RUN mkdir -p /out/lib \
    && ldd /out/bin/fcp-worker | awk '$3 ~ /^\// { print $3 }' \
       | grep -Ev '/(ld-linux|libc|libm|libdl|libpthread|librt|libcuda|libcudart|libnccl|libnvidia)[.-]' \
       | xargs -r cp -L -t /out/lib

# --- coordinator: the planning service ----------------------------------------------------------
FROM ${DEBIAN_RUNTIME_IMAGE} AS coordinator
ARG FCP_VERSION
LABEL org.opencontainers.image.title="fcp-coordinator" \
      org.opencontainers.image.description="fcp context-parallel planning service (gRPC fcp.v1.Planner)" \
      org.opencontainers.image.version="${FCP_VERSION}"
# The shared libraries of fcp-coordinator (tests/deploy checks this list against its ldd).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libabsl20220623 libc-ares2 libcivetweb1 libgrpc++1.51 libgrpc29 libmetis5 libprometheus-cpp-core1.0 \
       libprometheus-cpp-pull1.0 libprotobuf32 libre2-9 libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build-debian /out/bin/fcp-coordinator /out/bin/fcp /usr/local/bin/
USER 65532:65532
EXPOSE 50051 9464
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/fcp-coordinator"]
CMD ["--port=50051", "--metrics-port=9464"]

# --- worker: executes plans on a GPU, one process per rank ------------------------------------
FROM ${CUDA_RUNTIME_IMAGE} AS worker
ARG FCP_VERSION
LABEL org.opencontainers.image.title="fcp-worker" \
      org.opencontainers.image.description="fcp worker: context-parallel attention on plans from fcp-coordinator" \
      org.opencontainers.image.version="${FCP_VERSION}"
COPY --from=build-cuda /out/lib/ /usr/local/lib/fcp/
RUN echo /usr/local/lib/fcp > /etc/ld.so.conf.d/fcp.conf && ldconfig
COPY --from=build-cuda /out/bin/fcp-worker /usr/local/bin/
USER 65532:65532
EXPOSE 9400
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/fcp-worker"]
