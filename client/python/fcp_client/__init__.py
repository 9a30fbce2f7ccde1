"""Python client of fcp-coordinator, the context-parallel planning service.

    from fcp_client import PlannerClient, Model

    with PlannerClient("fcp-coordinator:50051") as client:
        result = client.plan(job_id="llama-8b-run3", step=41, lengths=[4096, 900, 77],
                             workers=8, ranks=[my_rank])
        print(result.plan.plan_id, result.plan.strategy, result.cache_hit)

The messages are fcp.v1 protobufs (fcp/v1/plan.proto, planner.proto), generated at build time
into the build tree's python/ folder: put it and this folder on PYTHONPATH.
"""

from fcp_client.client import (
    Model,
    PlanError,
    PlannerClient,
    PlanResult,
    make_request,
)

__all__ = ["Model", "PlanError", "PlannerClient", "PlanResult", "make_request"]
