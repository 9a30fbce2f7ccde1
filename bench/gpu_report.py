#!/usr/bin/env python3
"""Tables and plots of the GPU measurements (bench/gpu_suite.sh's JSON lines) for
docs/benchmarks.md.

  bench/gpu_report.py docs/results/gpu            # prints markdown, writes the PNGs there

Reads kernels*.jsonl (bench/kernel_bench; the "kernel" field names the kernel version, "v1"
where absent), sdpa.jsonl (bench/kernel_sdpa.py) and emulation.jsonl
(bench/distributed_emulation). Every ratio compares numbers of one run on one device.
"""

import collections
import glob
import json
import os
import sys


def load(pattern):
    rows = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def kernel_tables(directory):
    ours = [r for r in load(os.path.join(directory, "kernels*.jsonl"))]
    sdpa = load(os.path.join(directory, "sdpa.jsonl"))
    if not ours:
        return [], {}
    base = {(r["case"], r["head_dim"], r["backend"]): r for r in sdpa}
    versions = sorted({r.get("kernel", "v1") for r in ours})
    out, plot = [], collections.defaultdict(dict)
    for d in sorted({r["head_dim"] for r in ours}, reverse=True):
        device = next(r["device"] for r in ours if r["head_dim"] == d)
        out.append(f"\n#### Kernels vs torch SDPA, {device}, bf16, 16 heads, head dim {d} "
                   f"(TFLOP/s, medians; ratio = fcp / SDPA flash)\n")
        cols = [f"fcp {v} fwd" for v in versions] + ["flash fwd", "cuDNN fwd"]
        cols += [f"fcp {v} bwd" for v in versions] + ["flash bwd", "cuDNN bwd"]
        cols += [f"{v} fwd ratio" for v in versions] + [f"{v} bwd ratio" for v in versions]
        out.append("| case | " + " | ".join(cols) + " |")
        out.append("|---" * (len(cols) + 1) + "|")
        cases = []
        for r in ours:
            if r["head_dim"] == d and r["q_heads"] == 16 and r["case"] not in cases:
                cases.append(r["case"])
        for case in cases:
            mine = {v: next((r for r in ours if r["case"] == case and r["head_dim"] == d and
                             r["q_heads"] == 16 and r.get("kernel", "v1") == v), None)
                    for v in versions}
            flash = base.get((case, d, "flash"))
            cudnn = base.get((case, d, "cudnn"))

            def f(r, key):
                return f"{r[key]:.1f}" if r else "–"

            def ratio(r, key):
                return f"{r[key] / flash[key]:.2f}" if r and flash else "–"

            cells = [f(mine[v], "fwd_tflops") for v in versions]
            cells += [f(flash, "fwd_tflops"), f(cudnn, "fwd_tflops")]
            cells += [f(mine[v], "bwd_tflops") for v in versions]
            cells += [f(flash, "bwd_tflops"), f(cudnn, "bwd_tflops")]
            cells += [ratio(mine[v], "fwd_tflops") for v in versions]
            cells += [ratio(mine[v], "bwd_tflops") for v in versions]
            out.append(f"| {case} | " + " | ".join(cells) + " |")
            if d == 128:
                for v in versions:
                    if mine[v]:
                        plot[f"fcp {v}"][case] = mine[v]["fwd_tflops"]
                for name, r in (("SDPA flash", flash), ("SDPA cuDNN", cudnn)):
                    if r:
                        plot[name][case] = r["fwd_tflops"]
    return out, plot


def emulation_table(directory):
    rows = load(os.path.join(directory, "emulation.jsonl"))
    if not rows:
        return [], {}
    out = [f"\n#### Distributed attention emulated on one {rows[0]['device']} (wikipedia, 32K "
           "tokens/worker, max doc 128K, 8 q / 2 kv heads, d=128, bf16; step = slowest rank's "
           "fwd+bwd)\n",
           "| kernels | W | strategy | step ms (fwd + bwd) | compute ms | predicted ms | "
           "rank error | TFLOP/s/GPU | bytes GB | rounds | compute imbalance (measured) | "
           "speed-up vs ring |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    speedups = collections.defaultdict(dict)
    kernels = lambda r: r.get("kernels", "v1")  # noqa: E731
    for k, w in sorted({(kernels(r), r["workers"]) for r in rows}):
        same = [r for r in rows if r["workers"] == w and kernels(r) == k]
        ring = next((r for r in same if r["strategy"] == "ring"), None)
        for r in same:
            s = ring["step_ms"] / r["step_ms"] if ring else float("nan")
            imbalance = (f"{r['compute_imbalance']:.3f}" if "compute_imbalance" in r
                         else "–")
            speedups[r["strategy"] + ("" if k == "v1" else f" ({k})")][w] = s
            split = (f" ({r['fwd_ms']:.1f} + {r['bwd_ms']:.1f})" if "fwd_ms" in r else "")
            out.append(f"| {k} | {w} | {r['strategy']} | {r['step_ms']:.1f}{split} | "
                       f"{r['compute_ms']:.1f} | {r['predicted_ms']:.1f} | "
                       f"{100 * r['mean_abs_rank_error']:.0f}% | {r['tflops_per_gpu']:.1f} | "
                       f"{r['comm_bytes'] / 1e9:.2f} | {r.get('rounds', '–')} | "
                       f"{imbalance} | {s:.2f}x |")
    return out, speedups


def plots(directory, kernel_plot, speedups):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("gpu_report: matplotlib missing, no plots", file=sys.stderr)
        return
    if kernel_plot:
        cases = list(next(iter(kernel_plot.values())).keys())
        fig, ax = plt.subplots(figsize=(10, 4))
        width = 0.8 / len(kernel_plot)
        for i, (name, values) in enumerate(sorted(kernel_plot.items())):
            ax.bar([c + i * width for c in range(len(cases))],
                   [values.get(c, 0) for c in cases], width, label=name)
        ax.set_xticks([c + 0.4 - width / 2 for c in range(len(cases))])
        ax.set_xticklabels(cases, rotation=40, ha="right", fontsize=8)
        ax.set_ylabel("forward TFLOP/s")
        ax.set_title("Attention forward, bf16, d=128, H100: fcp kernels vs torch SDPA")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(directory, "kernels_fwd_tflops.png"), dpi=110)
    if speedups:
        fig, ax = plt.subplots(figsize=(7, 4))
        for name, values in sorted(speedups.items()):
            ws = sorted(values)
            ax.plot(ws, [values[w] for w in ws], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers (W)")
        ax.set_ylabel("speed-up over ring (emulated step)")
        ax.set_title("Distributed attention emulated on one H100 (wikipedia)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(directory, "emulation_speedup.png"), dpi=110)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "docs/results/gpu"
    kernels, kernel_plot = kernel_tables(directory)
    emulation, speedups = emulation_table(directory)
    print("\n".join(kernels + emulation))
    plots(directory, kernel_plot, speedups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
