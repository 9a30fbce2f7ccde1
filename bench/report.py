#!/usr/bin/env python3
"""Turns benchmark results into the tables and plots of docs/benchmarks.md.

Inputs (written by bench/plan_quality.sh and bench/planner_latency.sh):
  docs/results/plan_quality.jsonl   one `fcp plan --json` object per (workload, max_doc, cap,
                                    batch, strategy)
  docs/results/planner_bench.json   Google Benchmark JSON of build/bench/planner_bench
  docs/results/whole_layer.jsonl    the whole-layer grid (bench/plan_quality.sh --whole-layer;
                                    rendered by bench/whole_layer.py)
  docs/results/seed_grid.jsonl      the seed grid: masks, both objectives, dynamic CP
                                    (bench/plan_quality.sh --grid; rendered by bench/seed_grid.py)
Outputs:
  the sections between `<!-- BEGIN name -->` and `<!-- END name -->` markers in docs/benchmarks.md
  (head_to_head, plan_quality, capped, planner_latency, whole_layer, seed_grid, headline,
  auto_check, seed_targets)
  docs/results/speedup_vs_ring.png, docs/results/planning_latency.png, docs/whole_layer_speedup.png,
  docs/seed_headline.png; and auto's check (auto <= the best single strategy in every cell of the
  seed grid) on stdout.
`bench/report.py --check FILE` runs only that check on a seed-grid jsonl: exit 0 if it holds.
Medians are over batches (plan quality) and over repetitions (latency). A "cell" of the grid is
one batch of one (workload, max document, W): fcp wins it against a strategy when its predicted
step time (forward + backward) is no higher.
"""
import collections
import json
import math
import os
import re
import statistics
import sys

import report_util
import seed_grid
import whole_layer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "docs", "results")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
ORDER = ["ring", "static_cp", "per_doc", "whole_doc", "flexdeg", "flashcp", "dcp", "fcp", "auto"]
RIVALS = ["flashcp", "flexdeg", "dcp", "per_doc", "whole_doc", "ring"]


def load_quality(path):
    """{cap: {(workload, max_doc, workers, strategy): [rows]}}"""
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    for row in report_util.read_jsonl(path):
        key = (row["workload"], row.get("max_doc", 131072), row["workers"], row["strategy"])
        groups[row.get("cap", 0)][key].append(row)
    return groups


def step_ms(row):
    if row.get("predicted_fwd_ms") is None:
        return None
    return row["predicted_fwd_ms"] + row["predicted_bwd_ms"]


def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def human_bytes(n):
    if n is None:
        return "-"
    for unit in ["B", "KB", "MB", "GB", "TB"]:
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000.0
    return str(n)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def validity(rows):
    values = [r.get("valid") for r in rows]
    if all(v is True for v in values):
        return "yes"
    if any(v is False for v in values):
        return "**NO**"
    return "skipped" if all(v is None for v in values) else "partly"


def doc_label(max_doc):
    return f"{max_doc // 1024}K"


def panels(groups):
    """(workload, max_doc) pairs present, wikipedia first."""
    return sorted({(k[0], k[1]) for k in groups}, key=lambda p: (p[0] != "wikipedia", p[0], p[1]))


def cells(groups):
    """{(workload, max_doc, workers, batch): {strategy: row}}"""
    out = collections.defaultdict(dict)
    for (workload, max_doc, workers, strategy), rows in groups.items():
        for r in rows:
            out[(workload, max_doc, workers, r["batch"])][strategy] = r
    return out


def head_to_head(groups):
    """Rows of fcp against each rival: cells won, geometric-mean and worst time ratio."""
    by_cell = cells(groups)
    out = []
    for rival in RIVALS:
        wins = total = 0
        ratios = []
        for strategies in by_cell.values():
            f = strategies.get("fcp")
            o = strategies.get(rival)
            if f is None or o is None or step_ms(f) is None:
                continue
            total += 1
            if step_ms(o) is None:  # the rival could not plan within the cap
                wins += 1
                continue
            wins += step_ms(f) <= step_ms(o) * (1 + 1e-12)
            ratios.append(step_ms(f) / step_ms(o))
        if total:
            geo = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
            out.append((rival, wins, total, geo, max(ratios) if ratios else None))
    return out


def head_to_head_section(by_cap):
    out = ["| memory cap | fcp vs | cells fcp wins | share | fcp / rival time (geo. mean) "
           "| worst fcp / rival |", "|---|---|---|---|---|---|"]
    for cap in sorted(by_cap):
        label = "none (as specified)" if cap == 0 else f"{cap} tokens/worker (all strategies)"
        for rival, wins, total, geo, worst in head_to_head(by_cap[cap]):
            out.append(f"| {label} | {rival} | {wins} / {total} | {wins / total:.0%} "
                       f"| {fmt(geo, '.3f')} | {fmt(worst, '.3f')} |")
    return "\n".join(out) + "\n"


def quality_tables(groups):
    out = []
    for workload, max_doc in panels(groups):
        batches = len(next(v for k, v in groups.items() if k[:2] == (workload, max_doc)))
        out.append(f"\n#### {workload}, max document {doc_label(max_doc)} (32K tokens/worker, "
                   f"8 workers/node; medians of {batches} batches)\n")
        out.append("| W | strategy | compute imb. | token imb. | bytes | max/worker | inter-node "
                   "| rounds | fwd ms | bwd ms | speed-up vs ring | planning ms | valid |")
        out.append("|" + "---|" * 13)
        for w in sorted({k[2] for k in groups if k[:2] == (workload, max_doc)}):
            ring = groups.get((workload, max_doc, w, "ring"))
            ring_ms = median([{"s": step_ms(r)} for r in ring], "s") if ring else None
            for s in ORDER:
                rows = groups.get((workload, max_doc, w, s))
                if not rows:
                    continue
                name = s if s != "auto" else f"auto → {rows[0].get('chosen', '?')}"
                ms = median([{"s": step_ms(r)} for r in rows], "s")
                speedup = f"{ring_ms / ms:.2f}x" if ring_ms and ms else "-"
                out.append(
                    f"| {w} | {name} | {fmt(median(rows, 'compute_imbalance'), '.3f')} "
                    f"| {fmt(median(rows, 'token_imbalance'), '.3f')} "
                    f"| {human_bytes(median(rows, 'comm_bytes'))} "
                    f"| {human_bytes(median(rows, 'max_worker_comm_bytes'))} "
                    f"| {human_bytes(median(rows, 'inter_node_bytes'))} "
                    f"| {fmt(median(rows, 'rounds'), '.0f')} "
                    f"| {fmt(median(rows, 'predicted_fwd_ms'), '.2f')} "
                    f"| {fmt(median(rows, 'predicted_bwd_ms'), '.2f')} | {speedup} "
                    f"| {fmt(median(rows, 'planning_ms'), '.2f')} | {validity(rows)} |")
    return "\n".join(out) + "\n"


def capped_table(groups, cap):
    """Step time per strategy per grid point, under the memory cap."""
    shown = [s for s in ORDER if s not in ("ring", "whole_doc")]
    out = [f"Memory cap {cap} tokens per worker for every strategy; predicted step time "
           "(forward + backward, ms), token imbalance in brackets, medians of the batches; "
           "`-`: the strategy could not plan within the cap.\n",
           "| workload | max doc | W | " + " | ".join(shown) + " |",
           "|---|---|---|" + "---|" * len(shown)]
    for workload, max_doc in panels(groups):
        for w in sorted({k[2] for k in groups if k[:2] == (workload, max_doc)}):
            row = [workload, doc_label(max_doc), str(w)]
            for s in shown:
                rows = groups.get((workload, max_doc, w, s), [])
                ms = median([{"s": step_ms(r)} for r in rows], "s")
                tok = median(rows, "token_imbalance")
                row.append("-" if ms is None else f"{ms:.2f} ({tok:.2f})")
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


def latency_table(bench):
    """Table of median wall time (and process CPU time, less disturbed by other jobs) per strategy
    and W; returns it with the CPU times, which the plot shows."""
    rows = collections.defaultdict(dict)
    cpu = collections.defaultdict(dict)
    for b in bench["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        m = re.match(r"(\w+)/W:(\d+)", b["name"])
        if m:
            rows[m.group(1)][int(m.group(2))] = b["real_time"]
            cpu[m.group(1)][int(m.group(2))] = b["cpu_time"]
    ws = sorted({w for r in rows.values() for w in r})
    out = ["| strategy | " + " | ".join(f"W={w}" for w in ws) + " |", "|---|" + "---|" * len(ws)]
    # The strategies of ORDER (static_cp, today's practice, among them), then the grouped shape
    # (an auto candidate since issue 26), then auto.
    for s in [s for s in ORDER if s != "auto"] + ["grouped", "auto"]:
        if s in rows:
            out.append(f"| {s} | " + " | ".join(
                f"{rows[s][w]:.3g} ms ({cpu[s][w]:.3g})" if w in rows[s] else "-"
                for w in ws) + " |")
    return "\n".join(out) + "\n", cpu


def plot(groups, latency_rows):
    plt = report_util.pyplot("plots")
    if plt is None:
        return
    pairs = panels(groups)
    cols = 2
    rows_n = (len(pairs) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6 * cols, 4 * rows_n), squeeze=False)
    for ax in axes.flat[len(pairs):]:
        ax.set_visible(False)
    for ax, (workload, max_doc) in zip(axes.flat, pairs):
        ws = sorted({k[2] for k in groups if k[:2] == (workload, max_doc)})
        ring = {w: median([{"s": step_ms(r)} for r in groups[(workload, max_doc, w, "ring")]], "s")
                for w in ws if (workload, max_doc, w, "ring") in groups}
        for s in ORDER:
            if s == "auto":
                continue
            xs, ys = [], []
            for w in ws:
                rows = groups.get((workload, max_doc, w, s))
                ms = median([{"s": step_ms(r)} for r in rows], "s") if rows else None
                if ms and ring.get(w):
                    xs.append(w)
                    ys.append(ring[w] / ms)
            if xs:
                ax.plot(xs, ys, marker="o", label=s, lw=2.2 if s == "fcp" else 1.2,
                        ls="--" if s == "flashcp" else "-")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("workers W (8 per node)")
        ax.set_ylabel("predicted speed-up over ring (fwd+bwd)")
        ax.set_title(f"{workload}, max document {doc_label(max_doc)}, 32K tokens/worker")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "speedup_vs_ring.png"), dpi=100)
    if latency_rows:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for s in ORDER:
            if s in latency_rows:
                ws = sorted(latency_rows[s])
                ax.plot(ws, [latency_rows[s][w] for w in ws], marker="o", label=s,
                        lw=2.2 if s == "fcp" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("workers W (32K tokens each, wikipedia, max document 128K)")
        ax.set_ylabel("planning latency, ms (median process CPU time)")
        ax.axhline(5, color="gray", ls="--", lw=0.8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, "planning_latency.png"), dpi=100)


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
    by_cap = load_quality(quality_path) if os.path.exists(quality_path) else {}
    uncapped = by_cap.get(0, {})
    latency_rows = {}
    if by_cap:
        doc = replace_section(doc, "head_to_head", head_to_head_section(by_cap))
    if uncapped:
        doc = replace_section(doc, "plan_quality", quality_tables(uncapped))
    capped = sorted(c for c in by_cap if c)
    if capped:
        doc = replace_section(doc, "capped", capped_table(by_cap[capped[0]], capped[0]))
    if os.path.exists(bench_path):
        with open(bench_path) as f:
            table, latency_rows = latency_table(json.load(f))
        doc = replace_section(doc, "planner_latency", table)
    if uncapped:
        plot(uncapped, latency_rows)
    whole_path = os.path.join(RESULTS, "whole_layer.jsonl")
    if os.path.exists(whole_path):
        grid = whole_layer.load(whole_path)
        doc = replace_section(doc, "whole_layer", whole_layer.section(grid))
        whole_layer.plot(grid, os.path.join(ROOT, "docs", "whole_layer_speedup.png"))
    grid_path = os.path.join(RESULTS, "seed_grid.jsonl")
    if os.path.exists(grid_path):
        grid = seed_grid.load(grid_path)
        check, _ = seed_grid.check_text(grid)
        print(check)
        doc = replace_section(doc, "seed_grid", seed_grid.grid_section(grid))
        doc = replace_section(doc, "headline", seed_grid.headline_section(grid))
        doc = replace_section(doc, "auto_check", "```\n" + check + "\n```\n")
        doc = replace_section(doc, "seed_targets", seed_grid.targets_section(grid))
        doc = replace_section(doc, "seed_measured", seed_grid.seed_measured_section(grid))
        seed_grid.headline_plot(grid, os.path.join(ROOT, "docs", "seed_headline.png"))
    with open(DOC, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(seed_grid.check_main(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit("usage: bench/report.py [--check SEED_GRID.jsonl]")
    main()
