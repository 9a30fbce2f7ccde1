#!/usr/bin/env python3
"""Medians of bench/seed_decisions.sh's rows: predicted step (fwd + bwd, ms) per workload, regime,
W and strategy, and each strategy's ratio to fcp's. Failed plans (no prediction) show as '-'.
Usage: seed_decisions.py ROWS.jsonl [BEFORE.jsonl]  (with BEFORE: before -> after per cell)."""
import json
import statistics
import sys


def load(path):
    cells = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            key = (r["workload"], r["regime"], r["workers"], r["strategy"])
            step = r.get("predicted_fwd_ms")
            step = None if step is None else step + r["predicted_bwd_ms"]
            cells.setdefault(key, []).append((step, r.get("planning_ms")))
    out = {}
    for key, rows in cells.items():
        steps = [s for s, _ in rows if s is not None]
        out[key] = (statistics.median(steps) if len(steps) == len(rows) else None,
                    statistics.median(p for _, p in rows if p is not None))
    return out


def fmt(x):
    return "-" if x is None else f"{x:.2f}"


def main():
    after = load(sys.argv[1])
    before = load(sys.argv[2]) if len(sys.argv) > 2 else None
    strategies = sorted({k[3] for k in after}, key=["fcp", "flashcp", "flexdeg"].index)
    for workload in ("wikipedia", "magi"):
        for regime in ("whole_step", "attn_cap"):
            print(f"\n{workload}, {regime}: step ms (÷ fcp)" + (" before -> after" if before else ""))
            for w in sorted({k[2] for k in after if k[:2] == (workload, regime)}):
                cols = []
                fcp = after.get((workload, regime, w, "fcp"), (None,))[0]
                for s in strategies:
                    step = after.get((workload, regime, w, s), (None,))[0]
                    ratio = f" ({step / fcp:.3f})" if step and fcp else ""
                    prev = ""
                    if before and s != "fcp":
                        old = before.get((workload, regime, w, s), (None,))[0]
                        prev = fmt(old) + " -> "
                    cols.append(f"{s} {prev}{fmt(step)}{ratio}")
                print(f"  W={w}: " + "; ".join(cols))


if __name__ == "__main__":
    main()
