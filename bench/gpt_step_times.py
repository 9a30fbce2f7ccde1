#!/usr/bin/env python3
"""Seconds per step of train_gpt.py runs (their --json-log files), against the reference run.

    python3 bench/gpt_step_times.py OUT_DIR reference w1 w2   # reads OUT_DIR/gpt_<run>.jsonl

A step's seconds are its tokens / tokens_per_s (train_gpt's record). The first step carries the
warm-up (CUDA context, kernels loaded, plans fetched), so runs are compared on the median of the
later steps (all steps when there is only one). Appends one JSON line per run to OUT_DIR/gpt.jsonl:
{"check": "train_gpt", "run", "steps", "seconds_per_step", "median_s", "vs_reference", "losses",
"max_loss_rel_diff"} (the last against the reference's losses, step by step). Exit 1 if a run's log
is missing or empty.
"""

import json
import os
import statistics
import sys


def steps(path):
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if "step" in r]


def main(argv) -> int:
    out, runs = argv[0], argv[1:]
    results, missing = {}, []
    for run in runs:
        path = os.path.join(out, f"gpt_{run}.jsonl")
        records = steps(path) if os.path.exists(path) else []
        if not records:
            missing.append(run)
            continue
        seconds = [r["tokens"] / r["tokens_per_s"] for r in records]
        later = seconds[1:] or seconds
        results[run] = {"check": "train_gpt", "run": run, "steps": len(records),
                        "seconds_per_step": seconds, "median_s": statistics.median(later),
                        "losses": [r["loss"] for r in records]}
    reference = results.get(runs[0])
    with open(os.path.join(out, "gpt.jsonl"), "a") as f:
        for run, result in results.items():
            if reference is not None:
                result["vs_reference"] = result["median_s"] / reference["median_s"]
                pairs = list(zip(result["losses"], reference["losses"]))
                result["max_loss_rel_diff"] = max(abs(a - b) / abs(b) for a, b in pairs)
            f.write(json.dumps(result) + "\n")
            print(f"{run:10s} {result['steps']} steps, median {result['median_s'] * 1e3:9.2f} ms"
                  f"/step" + (f", {result['vs_reference']:.2f}x the reference, losses within "
                              f"{result['max_loss_rel_diff']:.2g}" if reference else ""))
    if missing:
        print(f"gpt_step_times: no steps logged for {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
