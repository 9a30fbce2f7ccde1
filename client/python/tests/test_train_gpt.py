"""examples/train_gpt.py at W=4 (ranks as processes, plans from a real fcp-coordinator) against
its single-process reference: every step's loss and the final weights must agree."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_GPT = os.path.join(os.path.dirname(HERE), "examples", "train_gpt.py")
STEPS = 20


def train(directory: str, name: str, *flags):
    log, weights = os.path.join(directory, f"{name}.jsonl"), os.path.join(directory, f"{name}.pt")
    result = subprocess.run(
        [sys.executable, TRAIN_GPT, "--steps", str(STEPS), "--json-log", log,
         "--save-weights", weights, "--timeout-s", "60", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"train_gpt {' '.join(flags)} failed:\n{result.stdout}")
    with open(log) as f:
        records = [json.loads(line) for line in f]
    planner = records.pop()["planner"] if records and "planner" in records[-1] else None
    return records, planner, torch.load(weights), result.stdout


class TrainGptTest(unittest.TestCase):
    def test_four_ranks_match_the_single_process_reference(self):
        with tempfile.TemporaryDirectory() as directory:
            cp, planner, cp_weights, output = train(directory, "cp", "--world", "4")
            ref, _, ref_weights, _ = train(directory, "ref", "--reference")
        self.assertEqual(len(cp), STEPS)
        self.assertEqual(len(ref), STEPS)
        worst_loss = max(abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(cp, ref))
        worst_weight = max((cp_weights[n] - w).abs().max().item() for n, w in ref_weights.items())
        print(f"\nW=4 vs reference: loss within {worst_loss:.2e} relative, weights within "
              f"{worst_weight:.2e}")
        for a, b in zip(cp, ref):
            self.assertEqual(a["tokens"], b["tokens"])
            self.assertLess(abs(a["loss"] - b["loss"]), 1e-4 * abs(b["loss"]),
                            f"step {a['step']}: {a['loss']} vs {b['loss']}")
            self.assertEqual(a["plan_source"], "coordinator")
        self.assertLess(cp[-1]["loss"], cp[0]["loss"])  # it learns
        # Every step after the first was prefetched from the coordinator during the one before.
        self.assertEqual(planner["prefetches"], STEPS - 1, planner)
        self.assertEqual(planner["fallbacks"], 0, planner)
        self.assertEqual(cp_weights.keys(), ref_weights.keys())
        for name, weight in ref_weights.items():
            difference = (cp_weights[name] - weight).abs().max().item()
            self.assertLess(difference, 1e-4 * max(weight.abs().max().item(), 1.0), name)
        print(output)  # the per-step loss, tokens/s, predicted vs measured attention time


if __name__ == "__main__":
    unittest.main()
