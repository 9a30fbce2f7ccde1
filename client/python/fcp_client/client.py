"""PlannerClient: fcp.v1.Planner over grpcio, with deadlines, retries and prefetch.

Behaviour matches the C++ client (fcp/client.h) except local fallback planning, which needs the
C++ planner: a Python trainer that must survive a coordinator outage calls the C API
(fcp/c_api.h, build/client/libfcp.so) through ctypes instead, as tests/test_client.py shows.

  * Each call gets `deadline_s` for all its attempts together.
  * Only UNAVAILABLE is retried, with jittered exponential backoff, up to `max_attempts`.
  * Errors raise PlanError, carrying the gRPC status code and the coordinator's message, which
    names the offending field ("documents[17].length: must be > 0").
  * prefetch(request) starts planning request.step in the background; get(step) returns it.
  * TLS: plaintext unless one of tls_ca, tls_cert, tls_key is given (PEM file paths, as the C++
    client's and the CLI's --tls-ca, --tls-cert, --tls-key); tls_cert and tls_key give a client
    certificate for a coordinator that requires one (mutual TLS).
  * Job token: `job_token=` (else the environment variable FCP_JOB_TOKEN, if set) is sent as
    `authorization: Bearer TOKEN` metadata with every call, for a coordinator started with
    --job-tokens; without one a token-checking coordinator answers UNAUTHENTICATED.

Thread-safe: one client may serve every thread of a process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import random
import threading
import time
from typing import Dict, Iterable, Sequence

import grpc

from fcp.v1 import plan_pb2, planner_pb2, planner_pb2_grpc

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class PlanError(Exception):
    """A coordinator call that failed: `code` (grpc.StatusCode) and `details` (its message)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


@dataclasses.dataclass(frozen=True)
class Model:
    """The shape of the model being trained (fcp.v1.ModelShape): its attention and the layers
    around it, from which the planner derives the linear FLOPs and activation bytes per token.

    The defaults are Llama-3-8B's. `Model.preset("llama3-70b")` names a published model whose
    shape the planner fills in (`fcp plan --help` lists the presets); fields left 0 (or mlp "")
    take the preset's, fields set override it: `dataclasses.replace(Model.preset(...), ...)`.
    """

    num_q_heads: int = 32
    num_kv_heads: int = 8
    head_dim: int = 128
    dtype: str = "BF16"  # BF16, FP16 or FP32
    hidden_size: int = 4096
    ffn_hidden_size: int = 14336
    mlp: str = "GATED"  # GATED (SwiGLU), PLAIN (GPT), or "" = the preset's
    num_layers: int = 32  # scales the activation memory only
    name: str = ""  # a preset's name; "" = none (every field above as given)
    linear_flops_per_token: float = 0.0  # > 0 overrides the derivation from the shape

    @classmethod
    def preset(cls, name: str) -> "Model":
        """The published model `name`, its shape filled in by the planner (fields left 0)."""
        return cls(num_q_heads=0, num_kv_heads=0, head_dim=0, hidden_size=0, ffn_hidden_size=0,
                   mlp="", num_layers=0, name=name)

    def to_proto(self, proto: plan_pb2.ModelShape) -> None:
        """Fills `proto` (fcp.v1.ModelShape)."""
        proto.preset = self.name
        proto.num_q_heads = self.num_q_heads
        proto.num_kv_heads = self.num_kv_heads
        proto.head_dim = self.head_dim
        proto.dtype = plan_pb2.ModelShape.DType.Value(self.dtype)
        proto.hidden_size = self.hidden_size
        proto.ffn_hidden_size = self.ffn_hidden_size
        proto.mlp = plan_pb2.ModelShape.MlpKind.Value(self.mlp or "MLP_UNSPECIFIED")
        proto.num_layers = self.num_layers
        proto.linear_flops_per_token = self.linear_flops_per_token


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """A plan (fcp.v1.Plan, with the requested ranks' slices) and whether it was cached."""

    plan: plan_pb2.Plan
    cache_hit: bool

    def slice(self, rank: int) -> plan_pb2.WorkerPlan:
        """The slice of `rank`; KeyError if the plan does not hold it."""
        for worker in self.plan.workers:
            if worker.rank == rank:
                return worker
        raise KeyError(f"rank {rank} is not in this plan")


def make_request(
    *,
    job_id: str,
    step: int,
    lengths: Iterable[int],
    workers: int,
    ranks: Sequence[int] = (),
    model: Model = Model(),
    workers_per_node: int = 0,
    strategy: str = "",
    block_size: int = 0,
    objective: str = "",
    token_slack: float | None = None,
    activation_memory_bytes: int = 0,
) -> plan_pb2.PlanRequest:
    """A PlanRequest for causal documents of `lengths` over `workers` ranks.

    Zero / empty values take the coordinator's defaults (workers_per_node 0 = 8, strategy "" =
    its --default-strategy, block_size 0 = automatic, objective "" = WHOLE_STEP (the other:
    ATTENTION), token_slack None = 0.05, activation_memory_bytes 0 = no memory budget).
    """
    request = plan_pb2.PlanRequest(job_id=job_id, step=step, ranks=list(ranks))
    request.documents.extend(plan_pb2.Document(length=int(n)) for n in lengths)
    model.to_proto(request.model)
    request.topology.num_workers = workers
    request.topology.workers_per_node = workers_per_node
    if token_slack is not None:
        request.topology.token_slack = token_slack
    request.topology.activation_memory_bytes = activation_memory_bytes
    request.options.strategy = strategy
    request.options.block_size = block_size
    request.options.objective = plan_pb2.PlanOptions.Objective.Value(
        objective or "OBJECTIVE_UNSPECIFIED")
    return request


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def _channel(target: str, options, tls_ca, tls_cert, tls_key) -> grpc.Channel:
    if tls_ca is None and tls_cert is None and tls_key is None:
        return grpc.insecure_channel(target, options=options)
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("tls_cert and tls_key go together (a client certificate and its key)")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls_ca),
        private_key=_read(tls_key),
        certificate_chain=_read(tls_cert),
    )
    return grpc.secure_channel(target, credentials, options=options)


class PlannerClient:
    """A connection to fcp-coordinator at `target` ("host:port")."""

    def __init__(
        self,
        target: str,
        *,
        deadline_s: float = 5.0,
        max_attempts: int = 3,
        initial_backoff_s: float = 0.05,
        max_backoff_s: float = 1.0,
        max_prefetches: int = 8,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        job_token: str | None = None,
    ):
        token = (job_token or os.environ.get("FCP_JOB_TOKEN", "")).strip()
        if any(c <= " " or c > "~" for c in token):
            raise ValueError("job_token: has characters other than printable ASCII")
        self._metadata = (("authorization", "Bearer " + token),) if token else None
        if max_attempts < 1:
            raise ValueError("max_attempts: must be >= 1")
        if deadline_s <= 0:
            raise ValueError("deadline_s: must be > 0")
        self._channel = _channel(
            target, [("grpc.max_receive_message_length", -1)], tls_ca, tls_cert, tls_key
        )
        self._stub = planner_pb2_grpc.PlannerStub(self._channel)
        self._health = self._channel.unary_unary(
            _HEALTH_CHECK, request_serializer=None, response_deserializer=None
        )
        self._deadline_s = deadline_s
        self._max_attempts = max_attempts
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_prefetches = max_prefetches
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=max_prefetches)
        self._lock = threading.Lock()
        self._prefetches: Dict[int, concurrent.futures.Future] = {}
        self.retries = 0  # attempts made after an UNAVAILABLE

    def __enter__(self) -> "PlannerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Waits for prefetches in progress, then closes the connection."""
        self._executor.shutdown(wait=True)
        self._channel.close()

    def plan_batch(self, request: plan_pb2.PlanRequest) -> PlanResult:
        """The plan of `request`; raises PlanError."""
        deadline = time.monotonic() + self._deadline_s
        backoff = self._initial_backoff_s
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = self._stub.PlanBatch(
                    request,
                    timeout=max(deadline - time.monotonic(), 0.0),
                    metadata=self._metadata,
                )
                return PlanResult(plan=response.plan, cache_hit=response.cache_hit)
            except grpc.RpcError as error:
                code = error.code()
                sleep = backoff * random.uniform(0.5, 1.0)
                retry = (
                    code == grpc.StatusCode.UNAVAILABLE
                    and attempt < self._max_attempts
                    and time.monotonic() + sleep < deadline
                )
                if not retry:
                    raise PlanError(code, error.details() or "") from None
                time.sleep(sleep)
                backoff = min(backoff * 2, self._max_backoff_s)
                with self._lock:
                    self.retries += 1
        raise AssertionError("unreachable")

    def plan(self, **kwargs) -> PlanResult:
        """plan_batch(make_request(**kwargs))."""
        return self.plan_batch(make_request(**kwargs))

    def prefetch(self, request: plan_pb2.PlanRequest) -> None:
        """Starts planning request.step in the background (collect it with get)."""
        with self._lock:
            if request.step in self._prefetches:
                raise ValueError(f"step {request.step} is already prefetched")
            if len(self._prefetches) >= self._max_prefetches:
                raise RuntimeError(f"{len(self._prefetches)} prefetches not collected by get()")
            self._prefetches[request.step] = self._executor.submit(self.plan_batch, request)

    def get(self, step: int) -> PlanResult:
        """The prefetched plan of `step`, waiting for it; KeyError if it was not prefetched."""
        with self._lock:
            future = self._prefetches.pop(step, None)
        if future is None:
            raise KeyError(f"step {step} was not prefetched")
        return future.result()

    def list_strategies(self) -> planner_pb2.ListStrategiesResponse:
        try:
            return self._stub.ListStrategies(
                planner_pb2.ListStrategiesRequest(), timeout=self._deadline_s
            )
        except grpc.RpcError as error:
            raise PlanError(error.code(), error.details() or "") from None

    def health(self, service: str = "") -> str:
        """grpc.health.v1 status of `service` ("" = the server): "SERVING", "NOT_SERVING", ..."""
        encoded = service.encode()
        request = (b"\x0a" + bytes([len(encoded)]) + encoded) if encoded else b""
        try:
            response = self._health(request, timeout=self._deadline_s)
        except grpc.RpcError as error:
            raise PlanError(error.code(), error.details() or "") from None
        # HealthCheckResponse: field 1 (varint) = status; absent = UNKNOWN.
        status = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
        return _SERVING_STATUS.get(status, str(status))
