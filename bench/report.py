#!/usr/bin/env python3
"""Turns benchmark results into the tables and plots of docs/benchmarks.md.

Inputs (written by bench/plan_quality.sh and bench/planner_latency.sh):
  docs/results/plan_quality.jsonl   one `fcp plan --json` object per (workload, batch, strategy)
  docs/results/planner_bench.json   Google Benchmark JSON of build/bench/planner_bench
Outputs:
  the sections between `<!-- BEGIN name -->` and `<!-- END name -->` markers in docs/benchmarks.md
  docs/results/speedup_vs_ring.png, docs/results/planning_latency.png
Medians are over batches (plan quality) and over repetitions (latency).
"""
import collections
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "results")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
ORDER = ["ring", "per_doc", "whole_doc", "fcp", "auto"]


def load_quality(path):
    groups = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                groups[(row["workload"], row["workers"], row["strategy"])].append(row)
    return groups


def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def human_bytes(n):
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000.0
    return str(n)


def validity(rows):
    values = [r.get("valid") for r in rows]
    if all(v is True for v in values):
        return "yes"
    if any(v is False for v in values):
        return "**NO**"
    return "skipped" if all(v is None for v in values) else "partly"


def quality_tables(groups):
    out = []
    for workload in sorted({k[0] for k in groups}, reverse=True):
        out.append(f"\n#### {workload} (32K tokens/worker, max document 128K; medians of "
                   f"{len(next(v for k, v in groups.items() if k[0] == workload))} batches)\n")
        out.append("| W | strategy | compute imb. | token imb. | bytes | bytes / ring | max/worker "
                   "| inter-node | rounds | fwd ms | bwd ms | speed-up vs ring | planning ms "
                   "| valid |")
        out.append("|" + "---|" * 14)
        for w in sorted({k[1] for k in groups if k[0] == workload}):
            ring = groups.get((workload, w, "ring"))
            ring_bytes = median(ring, "comm_bytes") if ring else None
            for s in ORDER:
                rows = groups.get((workload, w, s))
                if not rows:
                    continue
                name = s if s != "auto" else f"auto → {rows[0].get('chosen', '?')}"
                b = median(rows, "comm_bytes")
                ratio = f"{b / ring_bytes:.3f}" if ring_bytes else "-"
                out.append(
                    f"| {w} | {name} | {median(rows, 'compute_imbalance'):.3f} "
                    f"| {median(rows, 'token_imbalance'):.3f} | {human_bytes(b)} | {ratio} "
                    f"| {human_bytes(median(rows, 'max_worker_comm_bytes'))} "
                    f"| {human_bytes(median(rows, 'inter_node_bytes'))} "
                    f"| {median(rows, 'rounds'):.0f} | {median(rows, 'predicted_fwd_ms'):.2f} "
                    f"| {median(rows, 'predicted_bwd_ms'):.2f} "
                    f"| {median(rows, 'speedup_vs_ring'):.2f}x | {median(rows, 'planning_ms'):.2f} "
                    f"| {validity(rows)} |")
    return "\n".join(out) + "\n"


def latency_table(bench):
    rows = collections.defaultdict(dict)
    for b in bench["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        m = re.match(r"(\w+)/W:(\d+)", b["name"])
        if m:
            rows[m.group(1)][int(m.group(2))] = b["real_time"]
    ws = sorted({w for r in rows.values() for w in r})
    out = ["| strategy | " + " | ".join(f"W={w}" for w in ws) + " |", "|---|" + "---|" * len(ws)]
    for s in ORDER:
        if s in rows:
            out.append(f"| {s} | " + " | ".join(
                f"{rows[s][w]:.3g} ms" if w in rows[s] else "-" for w in ws) + " |")
    return "\n".join(out) + "\n", rows


def plot(groups, latency_rows):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing (apt-get install python3-matplotlib); no plots",
              file=sys.stderr)
        return
    workloads = sorted({k[0] for k in groups}, reverse=True)
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        for s in ORDER:
            ws = sorted(w for (wl, w, st) in groups if wl == workload and st == s)
            ys = [median(groups[(workload, w, s)], "speedup_vs_ring") for w in ws]
            if ws:
                ax.plot(ws, ys, marker="o", label=s)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("workers W")
        ax.set_ylabel("predicted speed-up over ring (fwd+bwd)")
        ax.set_title(f"{workload}, 32K tokens/worker")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "speedup_vs_ring.png"), dpi=110)
    if latency_rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in ORDER:
            if s in latency_rows:
                ws = sorted(latency_rows[s])
                ax.plot(ws, [latency_rows[s][w] for w in ws], marker="o", label=s)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("workers W (32K tokens each, wikipedia)")
        ax.set_ylabel("planning latency, ms (median, one core)")
        ax.axhline(1, color="gray", ls="--", lw=0.8)
        ax.axhline(10, color="gray", ls=":", lw=0.8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "planning_latency.png"), dpi=110)


def replace_section(text, name, body):
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"report: docs/benchmarks.md has no {name} markers")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def main():
    quality_path = os.path.join(RESULTS, "plan_quality.jsonl")
    bench_path = os.path.join(RESULTS, "planner_bench.json")
    with open(DOC) as f:
        doc = f.read()
    groups = load_quality(quality_path) if os.path.exists(quality_path) else {}
    latency_rows = {}
    if groups:
        doc = replace_section(doc, "plan_quality", quality_tables(groups))
    if os.path.exists(bench_path):
        with open(bench_path) as f:
            table, latency_rows = latency_table(json.load(f))
        doc = replace_section(doc, "planner_latency", table)
    if groups:
        plot(groups, latency_rows)
    with open(DOC, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
