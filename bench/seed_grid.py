"""The seed grid of docs/benchmarks.md (issue 26), for bench/report.py.

Input: docs/results/seed_grid.jsonl (bench/plan_quality.sh --grid): one `fcp plan --json` object
per (objective, workload, mask, W, batch, strategy), tagged with objective (whole_step or
attention), workload and mask (causal, sliding_window, prefix_lm, mixed), plus one `dynamic_cp`
row per batch from build/bench/dynamic_cp (Megatron-style dynamic CP: the best uniform CP degree c
dividing W for the batch; its `chosen` is "uniform_cp/<c>").
Outputs:
  the `seed_grid` section: every strategy's step over the best single strategy's, per cell;
  the `headline` section and docs/seed_headline.png: each seed strategy's, auto's and dynamic
    CP's speed-up over static_cp (whole step, causal, W >= 16), and per_doc against dynamic CP;
  the `auto_check` section: auto <= the best single strategy in every cell (CheckAuto, also run by
    `bench/report.py --check FILE` and its ctest on a synthetic grid);
  the `seed_measured` section: per seed strategy, the ranges the per-seed prose quotes.
A strategy's step is predicted_step_fwd_ms + predicted_step_bwd_ms (the objective's step: the whole
layer, or attention alone under --objective attention). Ratios are per batch, then medians over
batches (geometric means across cells in the summaries).
"""
import collections
import math
import statistics

import report_util

# auto's rivals: the strategies auto may draw from (dynamic_cp is a comparison point, not one).
SINGLE = ["fcp", "dcp", "flashcp", "flexdeg", "per_doc", "whole_doc", "static_cp", "ring"]
SEEDS = ["fcp", "dcp", "flashcp", "flexdeg", "per_doc"]
MASKS = ["causal", "sliding_window", "prefix_lm", "mixed"]
OBJECTIVES = ["whole_step", "attention"]
# Relative slack of the auto check: the plans are the same objects, so only float noise.
CHECK_TOLERANCE = 1e-9


def load(path):
    """{(objective, workload, mask, W): {strategy: {batch: row}}}"""
    grid = collections.defaultdict(lambda: collections.defaultdict(dict))
    for row in report_util.read_jsonl(path):
        key = (row.get("objective", "whole_step"), row["workload"], row.get("mask", "causal"),
               row["workers"])
        grid[key][row["strategy"]][row["batch"]] = row
    return grid


def step(row):
    if row is None or row.get("predicted_step_fwd_ms") is None:
        return None
    return row["predicted_step_fwd_ms"] + row["predicted_step_bwd_ms"]


def times(v):
    return "-" if v is None else f"{v:.2f}x"


def geomean(values):
    values = [v for v in values if v]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def best_single(strategies, batch):
    """(strategy, step) of the fastest single strategy that planned `batch`, or None."""
    steps = [(step(strategies[s].get(batch)), s) for s in SINGLE if s in strategies]
    steps = [(ms, s) for ms, s in steps if ms is not None]
    return (min(steps)[1], min(steps)[0]) if steps else None


def batches(strategies):
    return sorted({b for rows in strategies.values() for b in rows})


def check_auto(grid):
    """(cells checked, [violations]): a cell is one batch of one grid point where some single
    strategy planned; a violation is auto missing, failing or slower than the best of them."""
    cells, violations = 0, []
    for key in sorted(grid):
        strategies = grid[key]
        for b in batches(strategies):
            best = best_single(strategies, b)
            if best is None:
                continue
            cells += 1
            auto = step(strategies.get("auto", {}).get(b))
            if auto is None or auto > best[1] * (1 + CHECK_TOLERANCE):
                violations.append((key, b, auto, best[0], best[1]))
    return cells, violations


def check_text(grid):
    cells, violations = check_auto(grid)
    lines = [f"auto <= the best single strategy ({', '.join(SINGLE)}) in "
             f"{cells - len(violations)} / {cells} cells (batches x grid points)"]
    for (objective, workload, mask, w), b, auto, rival, ms in violations:
        lines.append(f"  VIOLATION {objective} {workload} {mask} W={w} batch {b}: auto "
                     f"{fmt(auto, '.3f')} ms > {rival} {ms:.3f} ms")
    return "\n".join(lines), not violations and cells > 0


def ratio_to_best(strategies, name):
    """Median over batches of the strategy's step / the best single strategy's."""
    ratios = []
    for b in batches(strategies):
        best = best_single(strategies, b)
        ms = step(strategies.get(name, {}).get(b))
        if best and ms:
            ratios.append(ms / best[1])
    return statistics.median(ratios) if ratios else None


def chosen(strategies):
    names = {r.get("chosen") for r in strategies.get("auto", {}).values() if r.get("chosen")}
    return ", ".join(sorted(names)) or "-"


def grid_section(grid):
    shown = SINGLE + ["dynamic_cp"]
    out = ["Each strategy's step over the best single strategy's on the same batch (1.000: it is "
           "the best; medians over batches), by objective and mask, geometric mean over both "
           "workloads and every W:\n",
           "| objective | mask | " + " | ".join(["auto"] + shown) + " |",
           "|---|---|" + "---:|" * (len(shown) + 1)]
    for objective in OBJECTIVES:
        for mask in MASKS:
            keys = [k for k in grid if k[0] == objective and k[2] == mask]
            if not keys:
                continue
            cols = [geomean([ratio_to_best(grid[k], s) for k in keys]) for s in ["auto"] + shown]
            out.append(f"| {objective} | {mask} | " + " | ".join(fmt(c) for c in cols) + " |")
    for objective in OBJECTIVES:
        for workload in sorted({k[1] for k in grid}, key=lambda w: (w != "wikipedia", w)):
            keys = sorted(k for k in grid if k[0] == objective and k[1] == workload)
            if not keys:
                continue
            n = max(len(batches(grid[k])) for k in keys)
            out.append(f"\n#### {objective}, {workload} (32K tokens/worker, max document 128K, "
                       f"llama3-8b; step ÷ best single strategy, medians of up to {n} batches)\n")
            out.append("| mask | W | auto step (ms) | auto chose | " + " | ".join(shown) + " |")
            out.append("|---|---:|---:|---|" + "---:|" * len(shown))
            for key in sorted(keys, key=lambda k: (MASKS.index(k[2]) if k[2] in MASKS else 9,
                                                   k[3])):
                s = grid[key]
                auto_ms = [step(r) for r in s.get("auto", {}).values() if step(r)]
                out.append(f"| {key[2]} | {key[3]} "
                           f"| {fmt(statistics.median(auto_ms) if auto_ms else None, '.2f')} "
                           f"| {chosen(s)} | "
                           + " | ".join(fmt(ratio_to_best(s, x)) for x in shown) + " |")
    return "\n".join(out) + "\n"


def speedup(strategies, name, base="static_cp"):
    """Median over batches of base's step / the strategy's."""
    ratios = []
    for b in batches(strategies):
        ms, base_ms = step(strategies.get(name, {}).get(b)), step(strategies.get(base, {}).get(b))
        if ms and base_ms:
            ratios.append(base_ms / ms)
    return statistics.median(ratios) if ratios else None


HEADLINE = ["auto", "fcp", "dcp", "flashcp", "flexdeg", "per_doc", "dynamic_cp"]


def headline_keys(grid, workload, mask="causal"):
    return sorted(k for k in grid
                  if k[0] == "whole_step" and k[1] == workload and k[2] == mask and k[3] >= 16)


def headline_section(grid):
    out = []
    closeness = []
    for workload in sorted({k[1] for k in grid}, key=lambda w: (w != "wikipedia", w)):
        keys = headline_keys(grid, workload)
        if not keys:
            continue
        out.append(f"\n#### {workload}: speed-up over static_cp (whole step, causal, 32K "
                   "tokens/worker, max document 128K, llama3-8b)\n")
        out.append("| W | static_cp step (ms) | " + " | ".join(HEADLINE)
                   + " | dynamic CP's c | per_doc ÷ dynamic_cp |")
        out.append("|---:|---:|" + "---:|" * (len(HEADLINE) + 2))
        for key in keys:
            s = grid[key]
            base = [step(r) for r in s.get("static_cp", {}).values() if step(r)]
            degrees = sorted({r["chosen"].split("/")[-1] for r in s.get("dynamic_cp", {}).values()
                              if r.get("chosen")}, key=int)
            close = speedup(s, "per_doc", base="dynamic_cp")
            if close:
                closeness.append(1 / close)
            out.append(f"| {key[3]} | {fmt(statistics.median(base) if base else None, '.2f')} | "
                       + " | ".join(times(speedup(s, x)) for x in HEADLINE)
                       + f" | {', '.join(degrees) or '-'} | {fmt(1 / close if close else None)} |")
    if closeness:
        out.insert(0, f"per_doc's step ÷ dynamic CP's (per batch, medians per W): "
                      f"{min(closeness):.3f}–{max(closeness):.3f}, geometric mean "
                      f"{geomean(closeness):.3f} over both workloads, W = 16–512 "
                      "(< 1: per_doc is faster).\n")
    return "\n".join(out) + "\n"


def headline_plot(grid, path):
    plt = report_util.pyplot("headline plot")
    if plt is None:
        return
    workloads = sorted({k[1] for k in grid}, key=lambda w: (w != "wikipedia", w))
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 4.2), squeeze=False)
    for ax, workload in zip(axes.flat, workloads):
        keys = headline_keys(grid, workload)
        for name in HEADLINE:
            points = [(k[3], speedup(grid[k], name)) for k in keys]
            points = [(w, v) for w, v in points if v]
            if points:
                style = {"auto": dict(color="black", lw=2.4, zorder=3),
                         "dynamic_cp": dict(color="gray", ls="--", lw=1.6)}.get(name, dict(lw=1.2))
                ax.plot(*zip(*points), marker="o", label=name, **style)
        ax.set_title(f"{workload}, causal, 32K tokens/worker, llama3-8b")
        report_util.speedup_axes(ax, "workers W (8 per node)",
                               "predicted speed-up over static_cp (whole step)")
    report_util.save(fig, path)


def dcp_bytes_ratio(strategies, tolerance=1.10):
    """Median over batches of dcp's KV bytes / the least of every other strategy whose compute
    imbalance is within `tolerance` (None where no other strategy is), and how many of dcp's own
    plans meet the tolerance."""
    ratios, within, total = [], 0, 0
    for b in batches(strategies):
        dcp = strategies.get("dcp", {}).get(b)
        if dcp is None or dcp.get("comm_bytes") is None:
            continue
        total += 1
        within += (dcp.get("compute_imbalance") or math.inf) <= tolerance
        rivals = [strategies[s][b]["comm_bytes"] for s in SINGLE if s != "dcp" and s in strategies
                  and b in strategies[s] and strategies[s][b].get("comm_bytes") is not None
                  and (strategies[s][b].get("compute_imbalance") or math.inf) <= tolerance]
        if rivals:
            ratios.append(dcp["comm_bytes"] / max(min(rivals), 1))
    return (statistics.median(ratios) if ratios else None), within, total


def targets_section(grid):
    """The issue's per-strategy targets that the grid measures (causal, W = 32..128)."""
    out = ["| objective | workload | W | dcp KV bytes ÷ least of the others within compute "
           "imbalance 1.10 | dcp plans within 1.10 | flexdeg ÷ fcp step | auto ÷ best single |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for key in sorted(grid, key=lambda k: (OBJECTIVES.index(k[0]) if k[0] in OBJECTIVES else 9,
                                           k[1] != "wikipedia", k[1], k[3])):
        if key[2] != "causal" or not 32 <= key[3] <= 128:
            continue
        s = grid[key]
        ratio, within, total = dcp_bytes_ratio(s)
        flex = [step(s.get("flexdeg", {}).get(b)) and step(s.get("fcp", {}).get(b)) and
                step(s["flexdeg"][b]) / step(s["fcp"][b]) for b in batches(s)]
        flex = [f for f in flex if f]
        out.append(f"| {key[0]} | {key[1]} | {key[3]} | {fmt(ratio)} | {within} / {total} "
                   f"| {fmt(statistics.median(flex) if flex else None)} "
                   f"| {fmt(ratio_to_best(s, 'auto'))} |")
    return "\n".join(out) + "\n"


def _range_geomean(values):
    values = [v for v in values if v]
    if not values:
        return "-"
    return f"{min(values):.2f}–{max(values):.2f}x ({geomean(values):.2f})"


def _token_imbalance(strategies, name):
    values = [r.get("token_imbalance") for r in strategies.get(name, {}).values()
              if r.get("token_imbalance")]
    return statistics.median(values) if values else None


def seed_measured_section(grid):
    """Per seed strategy, what the per-seed prose quotes: per cell (workload x W >= 16, medians
    over batches) ranges and geometric means of its speed-up over per_doc under the attention
    objective (the papers' metric) by mask, over static_cp under the whole step (causal), its
    step over the best single strategy (causal, both objectives), and its token imbalance."""
    out = ["| strategy | attention vs per_doc: causal | sliding window | prefix-LM | mixed "
           "| whole step vs static_cp (causal) | ÷ best single, whole step (causal) "
           "| ÷ best single, attention (causal) | token max/mean, attention (causal, worst cell) |",
           "|---|---|---|---|---|---|---:|---:|---:|"]
    for name in SEEDS + ["auto"]:
        cols = []
        for mask in MASKS:
            keys = [k for k in grid if k[0] == "attention" and k[2] == mask and k[3] >= 16]
            cols.append(_range_geomean([speedup(grid[k], name, base="per_doc") for k in keys]))
        keys = [k for k in grid if k[0] == "whole_step" and k[2] == "causal" and k[3] >= 16]
        cols.append(_range_geomean([speedup(grid[k], name) for k in keys]))
        for objective in OBJECTIVES:
            keys = [k for k in grid if k[0] == objective and k[2] == "causal" and k[3] >= 16]
            cols.append(fmt(geomean([ratio_to_best(grid[k], name) for k in keys])))
        keys = [k for k in grid if k[0] == "attention" and k[2] == "causal" and k[3] >= 16]
        worst = [_token_imbalance(grid[k], name) for k in keys]
        worst = [w for w in worst if w]
        cols.append(fmt(max(worst) if worst else None, ".2f"))
        out.append(f"| {name} | " + " | ".join(cols) + " |")
    return "\n".join(out) + "\n"


def check_main(path):
    """`bench/report.py --check FILE`: prints the auto check; 0 if it holds on >= 1 cell, else 1."""
    text, ok = check_text(load(path))
    print(text)
    return 0 if ok else 1
