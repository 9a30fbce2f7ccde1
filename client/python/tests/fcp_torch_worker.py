"""One rank of a multi-process fcp_torch test (test_fcp_torch.py starts W of these).

    fcp_torch_worker.py SCENARIO RANK WORLD RENDEZVOUS OUT_JSON

RENDEZVOUS: "file:DIR" (fcp's own) or "store:PATH" (a torch.distributed FileStore at PATH,
passed to fcp as the trainer's store). Scenarios:
  reference  every mask x strategy (ring, fcp, auto): fp32 attention through the binding vs a
             float64 per-document reference (outputs, q/k/v gradients), undispatch with its
             gradient, and bf16/fp16 attention (mixed masks); writes the relative errors.
  killed     rank WORLD-1 kills itself before the first attention; the others write the error
             the binding raised.
"""

import dataclasses
import json
import os
import signal
import sys

import torch

import fcp_torch
from fcp_torch.reference import document_attention

LENGTHS = [37, 5, 64, 1, 23, 90, 2, 41]  # 263 tokens: no multiple of anything, a 1-token document
MODEL = fcp_torch.Model(num_q_heads=4, num_kv_heads=2, head_dim=16, dtype="FP32")
MASKS = {
    "causal": lambda n: fcp_torch.Mask.causal(),
    "full": lambda n: fcp_torch.Mask.full(),
    "sliding_window": lambda n: fcp_torch.Mask.sliding_window(7),
    "prefix_lm": lambda n: fcp_torch.Mask.prefix_lm(n // 3),
}
STRATEGIES = ["ring", "fcp", "auto"]


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want).abs().max() / want.abs().max().clamp_min(1e-30))


def masks_of(kind: str):
    if kind == "mixed":  # one of each, in turn
        kinds = list(MASKS)
        return [MASKS[kinds[i % len(kinds)]](n) for i, n in enumerate(LENGTHS)]
    return [MASKS[kind](n) for n in LENGTHS]


def check_attention(cp, step, strategy, kind):
    """The binding in cp's dtype against float64 attention of the same (rounded) inputs."""
    masks = masks_of(kind)
    plan = cp.plan(LENGTHS, masks=masks, step=step)
    total, dtype = sum(LENGTHS), cp.model.torch_dtype
    generator = torch.Generator().manual_seed(1000 + step)  # the same global tensors everywhere
    q, k, v, d_o = (torch.randn(total, h, MODEL.head_dim, generator=generator).to(dtype).double()
                    for h in (4, 2, 2, 4))
    # float64 reference over whole documents.
    qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
    o_ref = document_attention(qr, kr, vr, LENGTHS, masks)
    (o_ref * d_o).sum().backward()
    # The binding on this rank's rows.
    ql, kl, vl = (cp.dispatch(t.to(dtype), plan).requires_grad_() for t in (q, k, v))
    o = cp.attention(ql, kl, vl, plan)
    (o * cp.dispatch(d_o.to(dtype), plan)).sum().backward()
    with torch.no_grad():  # the forward-only path (the library keeps no context)
        o_no_grad = cp.attention(ql, kl, vl, plan)
    errors = {
        "o": relative_error(o.detach(), cp.dispatch(o_ref.detach(), plan)),
        "o_no_grad": relative_error(o_no_grad, cp.dispatch(o_ref.detach(), plan)),
        "dq": relative_error(ql.grad, cp.dispatch(qr.grad, plan)),
        "dk": relative_error(kl.grad, cp.dispatch(kr.grad, plan)),
        "dv": relative_error(vl.grad, cp.dispatch(vr.grad, plan)),
    }
    return {"step": step, "strategy": strategy, "mask": kind, "plan_strategy": plan.strategy,
            "local_tokens": plan.num_tokens, "errors": errors}


def check_undispatch(cp, step):
    """undispatch = every rank's rows in global order; its gradient sums every rank's."""
    plan = cp.plan(LENGTHS, step=step)
    total, world = sum(LENGTHS), cp.world_size
    x = torch.arange(total * 3, dtype=torch.float32).reshape(total, 3)
    local = cp.dispatch(x, plan).requires_grad_()
    y = cp.undispatch(local, plan)
    weights = [torch.randn(total, 3, generator=torch.Generator().manual_seed(r)) for r in
               range(world)]
    (y * weights[cp.rank]).sum().backward()
    return {"undispatch": relative_error(y.detach(), x.double()),
            "undispatch_grad": relative_error(local.grad,
                                              cp.dispatch(sum(weights).double(), plan))}


def main(scenario, rank, world, rendezvous, out):
    torch.set_num_threads(1)
    if rendezvous.startswith("store:"):
        import torch.distributed as dist
        rendezvous = dist.FileStore(rendezvous[len("store:"):], world)
    result = {"rank": rank}
    if scenario == "reference":
        checks = []
        step = 0
        for strategy in STRATEGIES:
            cp = fcp_torch.ContextParallel(rank, world, rendezvous=rendezvous, model=MODEL,
                                           strategy=strategy, job_id=f"ref-{strategy}",
                                           threads=1, timeout_s=60)
            for kind in [*MASKS, "mixed"]:
                checks.append(check_attention(cp, step, strategy, kind))
                step += 1
            if strategy == "fcp":
                result.update(check_undispatch(cp, step))
                step += 1
            cp.close()
        result["checks"] = checks
        result["half"] = []  # bf16 and fp16 (computed in fp32, rounded once on output)
        for dtype in ("BF16", "FP16"):
            model = dataclasses.replace(MODEL, dtype=dtype)
            with fcp_torch.ContextParallel(rank, world, rendezvous=rendezvous, model=model,
                                           strategy="fcp", job_id=f"ref-{dtype}", threads=1,
                                           timeout_s=60) as cp:
                result["half"].append({"dtype": dtype,
                                       **check_attention(cp, step, "fcp", "mixed")})
            step += 1
    elif scenario == "killed":
        cp = fcp_torch.ContextParallel(rank, world, rendezvous=rendezvous, model=MODEL,
                                       strategy="ring", threads=1, timeout_s=5)
        plan = cp.plan(LENGTHS, step=0)
        if rank == world - 1:
            os.kill(os.getpid(), signal.SIGKILL)
        q = torch.randn(plan.num_tokens, 4, 16)
        kv = torch.randn(plan.num_tokens, 2, 16)
        try:
            cp.attention(q, kv, kv, plan)
            result["error"] = None
        except fcp_torch.FcpError as error:
            result["error"] = {"status": error.status, "message": str(error)}
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
