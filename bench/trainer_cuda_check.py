#!/usr/bin/env python3
"""fcp_torch's attention on a GPU against torch SDPA per document (issue 24, the GPU check).

    FCP_LIBRARY=.../libfcp.so python3 bench/trainer_cuda_check.py --world 2 --json out.jsonl

W ranks as processes (all on GPU 0 when there is one), meeting over fcp's gloo transport (device
buffers staged through the host), run ContextParallel.attention forward + backward on one batch of
uneven causal documents; rank 0 also runs torch's scaled_dot_product_attention one document at a
time on the whole batch. Both are compared with SDPA in fp32 on the same (rounded) inputs: the
largest |error| of o, dq, dk, dv relative to the largest |fp32 value|, for fcp in --dtype and for
SDPA in --dtype (what the kernels' rounding costs either way). Times: median milliseconds of
forward + backward over --reps after --warmup (CUDA synchronized), fcp per rank, SDPA for the whole
batch in one process. One JSON line per rank to --json.

--device cpu runs the same on the CPU (a dry run of everything but the GPU; SDPA is replaced by
fcp_torch.reference.document_attention where torch has no SDPA).
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "client", "python"))
import fcp_torch  # noqa: E402
from fcp_torch.reference import document_attention  # noqa: E402

DTYPES = {"BF16": torch.bfloat16, "FP16": torch.float16, "FP32": torch.float32}


def sdpa_per_document(q, k, v, lengths):
    """Causal attention of each document on its own, GQA by repeating kv heads."""
    if not hasattr(F, "scaled_dot_product_attention"):  # torch < 2.0 (the CPU dry run)
        return document_attention(q, k, v, lengths)
    group = q.shape[1] // k.shape[1]
    outputs, begin = [], 0
    for n in lengths:
        def head_major(t, repeat=1):
            return t[begin:begin + n].repeat_interleave(repeat, dim=1).transpose(0, 1)[None]
        o = F.scaled_dot_product_attention(head_major(q), head_major(k, group),
                                           head_major(v, group), is_causal=True)
        outputs.append(o[0].transpose(0, 1))
        begin += n
    return torch.cat(outputs)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(step, device, reps, warmup):
    times = []
    for i in range(warmup + reps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def relative_errors(got, want):
    """{name: max |got - want| / max |want|} over matching tensors (compared in fp32)."""
    return {name: ((g.float() - w.float()).abs().max() / w.float().abs().max().clamp_min(1e-30))
            .item() for name, (g, w) in zip(("o", "dq", "dk", "dv"), zip(got, want))}


def forward_backward(attention, q, k, v, grad):
    """(o, dq, dk, dv) of attention(q, k, v) with upstream gradient `grad`."""
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    o = attention(q, k, v)
    o.backward(grad)
    return o.detach(), q.grad, k.grad, v.grad


def rank_main(args) -> int:
    device = torch.device(args.device if args.device == "cpu" else "cuda:0")
    dtype = DTYPES[args.dtype]
    lengths = [int(n) for n in args.lengths.split(",")]
    total = sum(lengths)
    generator = torch.Generator().manual_seed(args.seed)  # the same inputs on every rank

    def draw(heads):
        return torch.rand(total, heads, args.head_dim, generator=generator) * 2 - 1
    q, k, v, grad = draw(args.heads), draw(args.kv_heads), draw(args.kv_heads), draw(args.heads)
    q, k, v, grad = (t.to(dtype).to(device) for t in (q, k, v, grad))  # rounded once

    model = fcp_torch.Model(num_q_heads=args.heads, num_kv_heads=args.kv_heads,
                            head_dim=args.head_dim, dtype=args.dtype)
    cp = fcp_torch.ContextParallel(args.rank, args.world, rendezvous=args.rendezvous,
                                   strategy=args.strategy, model=model, device=device,
                                   transport="gloo" if args.world > 1 else None,
                                   job_id="gpu_trainer_check", timeout_s=args.timeout_s,
                                   threads=args.threads)
    plan = cp.plan(lengths, step=0)
    local = [cp.dispatch(t, plan).contiguous() for t in (q, k, v, grad)]

    def fcp_attention(ql, kl, vl):
        return cp.attention(ql, kl, vl, plan)
    ours = forward_backward(fcp_attention, *local)
    fcp_ms = median_ms(lambda: forward_backward(fcp_attention, *local), device, args.reps,
                       args.warmup)

    exact = forward_backward(lambda a, b, c: sdpa_per_document(a, b, c, lengths),
                             *(t.float() for t in (q, k, v, grad)))
    # fcp's dk/dv rows are this rank's keys' gradients from every rank's queries.
    exact_local = [cp.dispatch(t, plan) for t in exact]
    record = {"check": "binding_vs_sdpa", "device": str(device), "rank": args.rank,
              "world": args.world, "dtype": args.dtype, "strategy": plan.strategy,
              "tokens": total, "local_tokens": plan.num_tokens, "documents": len(lengths),
              "heads": args.heads, "kv_heads": args.kv_heads, "head_dim": args.head_dim,
              "fcp_errors": relative_errors(ours, exact_local), "fcp_ms": fcp_ms,
              "stats": cp.reset_stats()}
    if args.rank == 0:
        def sdpa(a, b, c):
            return sdpa_per_document(a, b, c, lengths)
        theirs = forward_backward(sdpa, q, k, v, grad)
        record["sdpa_errors"] = relative_errors(theirs, exact)
        record["sdpa_ms"] = median_ms(lambda: forward_backward(sdpa, q, k, v, grad), device,
                                      args.reps, args.warmup)
    cp.close()
    with open(args.out, "w") as f:
        f.write(json.dumps(record) + "\n")
    worst = max(record["fcp_errors"].values())
    print(f"rank {args.rank}/{args.world} {args.dtype} {plan.strategy}: fcp {fcp_ms:.3f} ms, "
          f"worst error vs fp32 SDPA {worst:.3g}"
          + (f"; SDPA {record['sdpa_ms']:.3f} ms, its error "
             f"{max(record['sdpa_errors'].values()):.3g}" if args.rank == 0 else ""))
    tolerance = args.tolerance
    if not math.isfinite(worst) or worst > tolerance:
        print(f"rank {args.rank}: error {worst:.3g} above --tolerance {tolerance}", file=sys.stderr)
        return 1
    return 0


def launch(args, argv) -> int:
    """W processes of this script; their records appended to --json; the first failure fails."""
    with tempfile.TemporaryDirectory() as directory:
        rendezvous = f"file:{directory}"
        outs = [os.path.join(directory, f"rank{r}.json") for r in range(args.world)]
        ranks = [subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--rank",
                                   str(r), "--rendezvous", rendezvous, "--out", outs[r]])
                 for r in range(args.world)]
        codes = []
        for p in ranks:
            try:
                codes.append(p.wait(timeout=args.timeout_s + 60))
            except subprocess.TimeoutExpired:
                for other in ranks:
                    other.kill()
                codes.append(-9)
        with open(args.json, "a") as out:
            for path in outs:
                if os.path.exists(path):
                    with open(path) as f:
                        out.write(f.read())
    failed = [r for r, code in enumerate(codes) if code]
    if failed:
        print(f"trainer_cuda_check: ranks {failed} failed ({codes})", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--dtype", default="BF16", choices=sorted(DTYPES))
    parser.add_argument("--strategy", default="fcp")
    parser.add_argument("--lengths", default="4096,517,8191,1200,2000,3000,365",
                        help="the batch's document lengths, comma-separated")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="fcp CPU kernel threads")
    parser.add_argument("--timeout-s", type=float, default=240)
    parser.add_argument("--tolerance", type=float, default=5e-2,
                        help="largest relative error vs fp32 SDPA a rank accepts")
    parser.add_argument("--json", required=True, help="JSON lines, appended")
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rendezvous", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU (--device cpu for a dry run)")
    return rank_main(args) if args.rank is not None else launch(args, argv)


if __name__ == "__main__":
    sys.exit(main())
