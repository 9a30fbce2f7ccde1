#!/usr/bin/python3
# dcp's KV bytes vs the least of every other strategy that meets compute_imbalance <= 1.10
# (docs/benchmarks.md, "dcp: hypergraph partitioning"): wikipedia and the magi histogram, 32K
# tokens/worker, max document 128K, 8 workers/node, batches seeded 1, 2, ... as bench/plan_quality.sh
# draws them. One line per batch (forward KV bytes = comm_bytes / 2; the predicted step of dcp and
# of the best strategy), then the median ratio per cell. Run from the repository root:
#   /usr/bin/python3 bench/dcp_kv_grid.py build "32 64 128" 3 [whole_step|attention]
import json, subprocess, sys, statistics, collections
build, workers, batches = sys.argv[1], [int(w) for w in sys.argv[2].split()], int(sys.argv[3])
objective = sys.argv[4] if len(sys.argv) > 4 else "whole_step"
shared = subprocess.run(["scripts/shared_dir.sh"], capture_output=True, text=True).stdout.strip()
for wl, src in (("wikipedia", ["--lengths", f"{shared}/workloads/wikipedia.lengths"]),
                ("magi", ["--histogram", f"{shared}/workloads/magi_histogram.csv"])):
    for w in workers:
        out = subprocess.run([f"{build}/client/fcp", "plan", *src, "--workers", str(w),
                              "--tokens-per-worker", "32768", "--workers-per-node", "8",
                              "--max-doc-len", "131072", "--batches", str(batches),
                              "--objective", objective,
                              "--strategy", "all", "--json", "--validate-max-tiles", "0"],
                             capture_output=True, text=True).stdout
        by = collections.defaultdict(dict)
        for line in out.splitlines():
            r = json.loads(line)
            by[r["batch"]][r["strategy"]] = r
        ratios, rows = [], []
        for b, s in sorted(by.items()):
            ok = {k: v for k, v in s.items() if v.get("compute_imbalance") and
                  v["compute_imbalance"] <= 1.10 and k not in ("dcp", "auto")}
            best = min(ok.items(), key=lambda kv: kv[1]["comm_bytes"])
            d = s["dcp"]
            ratios.append(d["comm_bytes"] / best[1]["comm_bytes"])
            rows.append((d["comm_bytes"], d["compute_imbalance"], d["token_imbalance"],
                         best[0], best[1]["comm_bytes"], best[1]["compute_imbalance"],
                         d["predicted_fwd_ms"] + d["predicted_bwd_ms"],
                         min(v["predicted_fwd_ms"] + v["predicted_bwd_ms"] for k, v in s.items()
                             if k != "auto" and v.get("predicted_fwd_ms"))))
        for r, ratio in zip(rows, ratios):
            print(f"{wl} W={w} dcp={r[0]/2e9:.2f}GB imb={r[1]:.3f} tok={r[2]:.3f} "
                  f"least={r[3]} {r[4]/2e9:.2f}GB imb={r[5]:.3f} ratio={ratio:.3f} "
                  f"step_dcp={r[6]:.1f} step_best={r[7]:.1f}", flush=True)
        print(f"MEDIAN {wl} W={w} ratio={statistics.median(ratios):.3f} max={max(ratios):.3f}",
              flush=True)
