#!/usr/bin/env python3
"""Torch SDPA on the shapes bench/kernel_bench times: the GPU kernels' baseline.

Same FLOP count as kernel_bench (DESIGN section 1): forward 4 * head_dim * q_heads * allowed
pairs, backward 2.5x forward. Times are CUDA events around the calls, median of --reps after
--warmup, fresh random inputs per case (uniform [-1, 1), as kernel_bench draws them).

Cases (the names match kernel_bench's):
  varlen_causal       the documents of --lengths-file (kernel_bench --write-lengths), causal.
                      SDPA has no ragged batch, so each backend runs one call per document, and
                      `varlen` (torch.nn.attention.varlen, FlashAttention's varlen kernel) runs
                      the packed batch in one call where this torch has it.
  square_{full,causal}_S   tokens/S documents of S tokens as one (B, H, S, D) batch.

Backends: flash and cudnn (torch.nn.attention.sdpa_kernel); a backend that refuses a shape is
reported as such, never silently replaced. One JSON line per (case, backend) goes to --json.
"""

import argparse
import json
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def causal_pairs(n):
    return n * (n + 1) // 2


def timed(fn, reps, warmup):
    """Median milliseconds of fn() between CUDA events."""
    times = []
    for i in range(warmup + reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(stop))
    return statistics.median(times)


def rand(shape, dtype):
    return (torch.rand(shape, device="cuda", dtype=torch.float32) * 2 - 1).to(dtype)


def measure(make_inputs, forward, reps, warmup):
    """(forward ms, backward ms) of forward(*inputs) and its backward from a random dO."""
    inputs = make_inputs()
    out = forward(*inputs)
    d_out = [rand(o.shape, o.dtype) for o in out]
    fwd_ms = timed(lambda: forward(*inputs), reps, warmup)

    def backward():
        outs = forward(*inputs)
        torch.autograd.backward(outs, d_out)

    fwd_bwd_ms = timed(backward, reps, warmup)
    return fwd_ms, max(fwd_bwd_ms - fwd_ms, 1e-9)


def per_document_sdpa(backend, causal):
    def forward(*qkv):
        outs = []
        with sdpa_kernel([BACKENDS[backend]]):
            for i in range(0, len(qkv), 3):
                outs.append(F.scaled_dot_product_attention(*qkv[i:i + 3], is_causal=causal,
                                                           enable_gqa=True))
        return outs
    return forward


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths-file", help="varlen batch (kernel_bench --write-lengths)")
    p.add_argument("--tokens", type=int, default=32768)
    p.add_argument("--square", default="512,1024,2048,4096,8192,16384")
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--kv-heads", type=int, default=16)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16"])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", help="append one JSON line per case and backend here")
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("kernel_sdpa: no CUDA device", file=sys.stderr)
        return 2
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float16
    h, hk, d = a.heads, a.kv_heads, a.head_dim
    device = torch.cuda.get_device_name()
    print(f"kernel_sdpa: {device}, torch {torch.__version__}, {a.dtype}, q_heads {h}, "
          f"kv_heads {hk}, head_dim {d}")
    print(f"{'case':24s} {'backend':8s} {'fwd_ms':>10s} {'bwd_ms':>10s} {'fwd_TFLOPs':>11s} "
          f"{'bwd_TFLOPs':>11s}")
    out = open(a.json, "a") if a.json else None

    def report(case, backend, pairs, fn):
        try:
            fwd_ms, bwd_ms = fn()
        except (RuntimeError, TypeError, ValueError) as e:  # a refusal is reported as such
            print(f"{case:24s} {backend:8s} refused: {str(e).splitlines()[0][:80]}")
            return
        flops = 4.0 * d * h * pairs
        fwd_tf, bwd_tf = flops / fwd_ms / 1e9, 2.5 * flops / bwd_ms / 1e9
        print(f"{case:24s} {backend:8s} {fwd_ms:10.3f} {bwd_ms:10.3f} {fwd_tf:11.1f} "
              f"{bwd_tf:11.1f}", flush=True)
        if out:
            out.write(json.dumps({"bench": "torch_sdpa", "device": device, "case": case,
                                  "backend": backend, "dtype": a.dtype, "q_heads": h,
                                  "kv_heads": hk, "head_dim": d, "pairs": pairs,
                                  "fwd_ms": fwd_ms, "bwd_ms": bwd_ms, "fwd_tflops": fwd_tf,
                                  "bwd_tflops": bwd_tf, "torch": torch.__version__}) + "\n")

    if a.lengths_file:
        lengths = [int(x) for x in open(a.lengths_file).read().split()]
        pairs = sum(causal_pairs(n) for n in lengths)

        def docs():
            inputs = []
            for n in lengths:
                inputs += [rand((1, h, n, d), dtype).requires_grad_(),
                           rand((1, hk, n, d), dtype).requires_grad_(),
                           rand((1, hk, n, d), dtype).requires_grad_()]
            return inputs

        for backend in BACKENDS:
            report("varlen_causal", backend, pairs,
                   lambda: measure(docs, per_document_sdpa(backend, True), a.reps, a.warmup))
        try:
            from torch.nn.attention.varlen import varlen_attn
        except ImportError:
            varlen_attn = None
            print("varlen_causal            varlen   not in this torch")
        if varlen_attn is not None:
            total = sum(lengths)
            cu = torch.tensor([0] + list(torch.tensor(lengths).cumsum(0)), device="cuda",
                              dtype=torch.int32)
            longest = max(lengths)

            def packed():
                return [rand((total, h, d), dtype).requires_grad_(),
                        rand((total, hk, d), dtype).requires_grad_(),
                        rand((total, hk, d), dtype).requires_grad_()]

            # Causal is `is_causal=True` in torch 2.9, `window_size=(-1, 0)` from 2.10 on.
            import inspect
            causal = ({"is_causal": True} if "is_causal" in
                      inspect.signature(varlen_attn).parameters else {"window_size": (-1, 0)})
            if hk != h and "enable_gqa" in inspect.signature(varlen_attn).parameters:
                causal["enable_gqa"] = True

            def run(q, k, v):
                return [varlen_attn(q, k, v, cu, cu, longest, longest, **causal)]

            report("varlen_causal", "varlen", pairs, lambda: measure(packed, run, a.reps,
                                                                     a.warmup))

    for s in (int(x) for x in a.square.split(",") if x):
        if s > a.tokens:
            continue
        b = a.tokens // s
        for causal in (False, True):
            case = f"square_{'causal' if causal else 'full'}_{s}"
            pairs = b * (causal_pairs(s) if causal else s * s)

            def batch():
                return [rand((b, h, s, d), dtype).requires_grad_(),
                        rand((b, hk, s, d), dtype).requires_grad_(),
                        rand((b, hk, s, d), dtype).requires_grad_()]

            for backend in BACKENDS:
                report(case, backend, pairs,
                       lambda: measure(batch, per_document_sdpa(backend, causal), a.reps,
                                       a.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
