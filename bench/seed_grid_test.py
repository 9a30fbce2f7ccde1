#!/usr/bin/env python3
"""Tests of the seed grid's report (bench/seed_grid.py, `bench/report.py --check`) on synthetic
grids, and, given the binaries, that dynamic CP (build/bench/dynamic_cp) is never slower than
static_cp on the same batches.

  python3 bench/seed_grid_test.py [FCP_BINARY DYNAMIC_CP_BINARY SHARED_DIR]
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import seed_grid  # noqa: E402

BINARIES = sys.argv[1:4] if len(sys.argv) == 4 else None
del sys.argv[1:]


def row(strategy, ms, batch=0, w=8, mask="causal", objective="whole_step", chosen=None):
    return {"objective": objective, "workload": "wikipedia", "mask": mask, "workers": w,
            "batch": batch, "strategy": strategy, "chosen": chosen or strategy,
            "predicted_step_fwd_ms": None if ms is None else ms / 2,
            "predicted_step_bwd_ms": None if ms is None else ms / 2}


def clean_grid():
    rows = []
    for w in (16, 32):
        for b in (0, 1):
            rows += [row("fcp", 10.0, b, w), row("flashcp", 10.5, b, w), row("dcp", 14.0, b, w),
                     row("per_doc", 12.0, b, w), row("static_cp", 20.0, b, w),
                     row("auto", 10.0, b, w, chosen="fcp"),
                     row("dynamic_cp", 16.0, b, w, chosen="uniform_cp/4")]
    return rows


def run_check(rows):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    try:
        return subprocess.run([sys.executable, os.path.join(HERE, "report.py"), "--check", f.name],
                              capture_output=True, text=True)
    finally:
        os.unlink(f.name)


class AutoCheckTest(unittest.TestCase):
    def test_holds_when_auto_matches_the_best(self):
        result = run_check(clean_grid())
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("in 4 / 4 cells", result.stdout)

    def test_auto_slower_than_a_single_strategy_fails_and_names_the_cell(self):
        rows = clean_grid() + [row("flexdeg", 9.5, batch=1, w=32)]
        result = run_check(rows)
        self.assertEqual(result.returncode, 1)
        self.assertIn("in 3 / 4 cells", result.stdout)
        self.assertIn("VIOLATION whole_step wikipedia causal W=32 batch 1: auto 10.000 ms > "
                      "flexdeg 9.500 ms", result.stdout)

    def test_auto_failing_where_a_strategy_planned_is_a_violation(self):
        rows = [r for r in clean_grid() if not (r["strategy"] == "auto" and r["workers"] == 16
                                                and r["batch"] == 0)]
        rows.append(row("auto", None, batch=0, w=16))
        _, violations = seed_grid.check_auto(seed_grid_from(rows))
        self.assertEqual([(v[0][3], v[1], v[2]) for v in violations], [(16, 0, None)])

    def test_dynamic_cp_is_not_a_rival_and_float_noise_is_not_a_loss(self):
        rows = clean_grid() + [row("dynamic_cp", 5.0, batch=0, w=16),
                               row("ring", 10.0 * (1 - 1e-12), batch=1, w=16)]
        self.assertEqual(run_check(rows).returncode, 0)

    def test_a_grid_without_cells_does_not_pass(self):
        self.assertEqual(run_check([row("auto", 10.0)]).returncode, 1)


def seed_grid_from(rows):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    try:
        return seed_grid.load(f.name)
    finally:
        os.unlink(f.name)


class SectionsTest(unittest.TestCase):
    def test_headline_speedups_over_static_cp_and_per_doc_against_dynamic_cp(self):
        text = seed_grid.headline_section(seed_grid_from(clean_grid()))
        # static_cp 20 ms: auto 2x, dcp 20/14, per_doc 20/12, dynamic CP 20/16 with c = 4.
        self.assertIn("| 16 | 20.00 | 2.00x | 2.00x | 1.43x | 1.90x | - | 1.67x | 1.25x | 4 "
                      "| 0.750 |", text)
        self.assertIn("geometric mean 0.750", text)

    def test_grid_ratios_to_the_best_single_strategy(self):
        text = seed_grid.grid_section(seed_grid_from(clean_grid()))
        self.assertIn("| causal | 16 | 10.00 | fcp | 1.000 | 1.400 | 1.050 | - | 1.200 | - | "
                      "2.000 | - | 1.600 |", text)

    def test_dcp_bytes_against_the_least_of_the_balanced_others(self):
        def with_bytes(strategy, ms, comm, imbalance):
            r = row(strategy, ms, w=32)
            r.update(comm_bytes=comm, compute_imbalance=imbalance)
            return r
        rows = [with_bytes("fcp", 10.0, 100, 1.05), with_bytes("flashcp", 10.5, 50, 1.20),
                with_bytes("per_doc", 12.0, 80, 1.08), with_bytes("dcp", 14.0, 120, 1.04),
                with_bytes("flexdeg", 11.0, 90, 1.3), row("auto", 10.0, w=32)]
        text = seed_grid.targets_section(seed_grid_from(rows))
        # flashcp's 50 bytes do not count (imbalance 1.20 > 1.10): 120 / 80.
        self.assertIn("| whole_step | wikipedia | 32 | 1.500 | 1 / 1 | 1.100 | 1.000 |", text)


@unittest.skipUnless(BINARIES, "needs the fcp and dynamic_cp binaries")
class DynamicCpTest(unittest.TestCase):
    """Dynamic CP tries every c dividing W, static_cp's among them: never slower, always valid."""

    def plan(self, binary, extra, mask):
        fcp, _, shared = BINARIES
        args = [binary] + (["plan"] if binary == fcp else []) + [
            "--lengths", os.path.join(shared, "workloads", "wikipedia.lengths"), "--workers", "8",
            "--tokens-per-worker", "8192", "--batches", "3", "--json", "--mask-mix", mask] + extra
        result = subprocess.run(args, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def test_never_slower_than_static_cp(self):
        fcp, dynamic_cp, _ = BINARIES
        for mask in ("causal", "causal,sliding_window=512,prefix_lm"):
            static = self.plan(fcp, ["--strategy", "static_cp"], mask)
            dynamic = self.plan(dynamic_cp, [], mask)
            self.assertEqual(len(static), 3)
            self.assertEqual(len(dynamic), 3)
            for s, d in zip(static, dynamic):
                self.assertEqual(d["strategy"], "dynamic_cp")
                self.assertTrue(d["chosen"].startswith("uniform_cp/"), d["chosen"])
                self.assertIs(d["valid"], True)
                self.assertLessEqual(seed_grid.step(d), seed_grid.step(s) * (1 + 1e-9))


if __name__ == "__main__":
    unittest.main()
