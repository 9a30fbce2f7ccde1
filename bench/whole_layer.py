"""The whole-layer grid of docs/benchmarks.md (issue 23), for bench/report.py.

Input: docs/results/whole_layer.jsonl (bench/plan_quality.sh --whole-layer): one `fcp plan --json`
object per (workload, model, W, batch, strategy), planned under the default objective (the whole
layer: linear layers by tokens + the attention pipeline) and the default token budget (1.05x the
mean tokens per worker).
Outputs: the `whole_layer` section (a table per workload and model) and docs/whole_layer_speedup.png
(auto's speed-up over static_cp and ring against W).
Per batch, a strategy's step is predicted_step_fwd_ms + predicted_step_bwd_ms and the bound is
balanced_fwd_ms + balanced_bwd_ms (the mean worker's linear + attention compute, nothing exposed);
speed-ups are per-batch ratios, then medians over batches.
"""
import collections
import statistics

import report_util

STRATEGIES = ["auto", "fcp", "static_cp", "ring", "per_doc", "whole_doc", "flashcp", "flexdeg"]


def load(path):
    """{(workload, model): {W: {strategy: {batch: row}}}}"""
    grid = collections.defaultdict(
        lambda: collections.defaultdict(lambda: collections.defaultdict(dict)))
    for row in report_util.read_jsonl(path):
        if row.get("predicted_step_fwd_ms") is None:
            continue  # planning failed (e.g. a document over the budget): no figures
        grid[(row["workload"], row["model"])][row["workers"]][row["strategy"]][row["batch"]] = row
    return grid


def step(row):
    return row["predicted_step_fwd_ms"] + row["predicted_step_bwd_ms"]


def bound(row):
    return row["balanced_fwd_ms"] + row["balanced_bwd_ms"]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def speedup(by_strategy, base, strategy="auto"):
    """Median over batches of base's step / strategy's step (same batch)."""
    mine, theirs = by_strategy.get(strategy, {}), by_strategy.get(base, {})
    return med([step(theirs[b]) / step(mine[b]) for b in mine if b in theirs])


def fmt(v, spec=".2f", suffix=""):
    return "-" if v is None else f"{v:{spec}}{suffix}"


def table(cells):
    present = [s for s in STRATEGIES if any(s in cells[w] for w in cells)]
    out = ["| W | auto step (ms) | auto ÷ bound | auto tok imb | auto chose | " +
           " | ".join(f"{s} ÷ bound" for s in present[1:]) +
           " | auto vs static_cp | auto vs ring |",
           "|---:" * (6 + len(present)) + "|"]
    for w in sorted(cells):
        by = cells[w]
        auto = list(by.get("auto", {}).values())
        chose = sorted({r["chosen"] for r in auto})
        ratios = [fmt(med([step(r) / bound(r) for r in by[s].values()]), ".3f")
                  if s in by else "-" for s in present[1:]]
        out.append(
            f"| {w} | {fmt(med([step(r) for r in auto]), '.2f')} | "
            f"{fmt(med([step(r) / bound(r) for r in auto]), '.3f')} | "
            f"{fmt(med([r['token_imbalance'] for r in auto]), '.3f')} | {', '.join(chose)} | " +
            " | ".join(ratios) +
            f" | {fmt(speedup(by, 'static_cp'), '.2f', 'x')} | {fmt(speedup(by, 'ring'), '.2f', 'x')} |")
    return "\n".join(out) + "\n"


def section(grid):
    parts = []
    # wikipedia first, the default model (llama3-8b) first.
    for (workload, model) in sorted(grid, key=lambda k: (k[0] != "wikipedia", k[0],
                                                         k[1] != "llama3-8b", k[1])):
        cells = grid[(workload, model)]
        batches = {w: len(cells[w].get("auto", {})) for w in cells}
        parts.append(f"#### {workload}, {model} (32K tokens/worker, max document 128K, 8 workers/"
                     f"node; medians of {max(batches.values())} batches, "
                     f"{min(batches.values())} at W >= 256)\n\n{table(cells)}")
    return "\n".join(parts)


def plot(grid, path):
    plt = report_util.pyplot("whole-layer plot")
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, base in zip(axes, ["static_cp", "ring"]):
        for (workload, model), cells in sorted(grid.items()):
            ws = [w for w in sorted(cells) if speedup(cells[w], base)]
            ax.plot(ws, [speedup(cells[w], base) for w in ws], marker="o",
                    label=f"{workload}, {model}", ls="-" if workload == "wikipedia" else "--")
        report_util.speedup_axes(ax, "workers W (32K tokens each, 8 per node)",
                               f"auto's predicted whole-layer speed-up over {base}")
    report_util.save(fig, path)
