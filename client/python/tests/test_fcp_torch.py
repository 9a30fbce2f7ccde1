"""fcp_torch (the PyTorch binding over libfcp.so, FCP_LIBRARY) with ranks as processes, on CPU.

The correctness runs start W processes of fcp_torch_worker.py per world size; each checks every
mask x strategy against a float64 per-document reference. Bad input is checked in this process.
"""

import json
import os
import subprocess
import sys
import tempfile
import socket
import threading
import unittest
import urllib.request

import torch

import fcp_torch
from coordinator_process import CoordinatorProcess, CoordinatorTestCase
from fcp_torch.reference import document_attention

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "fcp_torch_worker.py")
TOLERANCE = 1e-5  # fp32 against float64, relative to the largest reference value
# bf16/fp16: the inputs are rounded before the reference too, so what remains is the rounding of
# o, dq, dk, dv (half an ulp: 2^-9 for bf16, 2^-12 for fp16, relative) and of o inside backward's
# rowsum(dO * o) term, which enters dq/dk with a few values of that size: 4x the output ulp.
HALF_TOLERANCE = {"BF16": 4 * 2.0**-8, "FP16": 4 * 2.0**-11}
TIMEOUT_S = 240


def run_ranks(scenario: str, world: int, rendezvous: str, directory: str):
    """Starts `world` worker processes; returns (their exit codes, outputs, JSON results)."""
    processes, outs = [], []
    for rank in range(world):
        out = os.path.join(directory, f"rank{rank}.json")
        outs.append(out)
        processes.append(subprocess.Popen(
            [sys.executable, WORKER, scenario, str(rank), str(world), rendezvous, out],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    codes, logs = [], []
    for process in processes:
        try:
            logs.append(process.communicate(timeout=TIMEOUT_S)[0])
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            raise AssertionError(f"{scenario} W={world}: a rank did not finish in {TIMEOUT_S}s")
        codes.append(process.returncode)
    results = []
    for out in outs:
        if os.path.exists(out):
            with open(out) as f:
                results.append(json.load(f))
        else:
            results.append(None)
    return codes, logs, results


class ReferenceTest(unittest.TestCase):
    """Outputs and q/k/v gradients within 1e-5 of float64 for every mask x strategy x W."""

    def check_world(self, world: int, store: bool = False):
        with tempfile.TemporaryDirectory() as directory:
            rendezvous = (f"store:{directory}/torch_store" if store
                          else f"file:{directory}/rendezvous")
            if not store:
                os.makedirs(f"{directory}/rendezvous")
            codes, logs, results = run_ranks("reference", world, rendezvous, directory)
        # Every rank's log on a failure: the first rank to fail is not always the first listed
        # (a peer that fails makes the others' connections close).
        every_log = "\n".join(f"--- rank {rank} of {world} (exit {code}):\n{log}"
                               for rank, (code, log) in enumerate(zip(codes, logs)))
        for rank, code in enumerate(codes):
            self.assertEqual(code, 0, f"rank {rank} of {world} failed; every rank's log:\n{every_log}")
        for result in results:
            self.assertEqual(len(result["checks"]), 15)  # 3 strategies x (4 masks + mixed)
            for check in result["checks"]:
                for name, error in check["errors"].items():
                    self.assertLess(error, TOLERANCE, f"W={world} rank {result['rank']} "
                                    f"{check['strategy']}/{check['mask']}: {name}")
            for check in result["half"]:
                for name, error in check["errors"].items():
                    self.assertLess(error, HALF_TOLERANCE[check["dtype"]],
                                    f"W={world} rank {result['rank']} {check['dtype']}: {name}")
            self.assertLess(result["undispatch"], TOLERANCE)
            self.assertLess(result["undispatch_grad"], TOLERANCE)
        # The ranks' rows of one plan add up to the batch: nothing padded, nothing lost.
        for i in range(15):
            tokens = sum(result["checks"][i]["local_tokens"] for result in results)
            self.assertEqual(tokens, 263)

    def test_world_1(self):
        self.check_world(1)

    def test_world_2_over_the_trainers_torch_store(self):
        self.check_world(2, store=True)

    def test_world_3(self):
        self.check_world(3)

    def test_world_4(self):
        self.check_world(4)


class KilledRankTest(unittest.TestCase):
    def test_a_killed_rank_fails_the_others_with_an_error(self):
        with tempfile.TemporaryDirectory() as directory:
            os.makedirs(f"{directory}/rendezvous")
            codes, logs, results = run_ranks("killed", 3, f"file:{directory}/rendezvous",
                                             directory)
        self.assertEqual(codes[2], -9)
        for rank in (0, 1):
            self.assertEqual(codes[rank], 0, logs[rank])
            error = results[rank]["error"]
            self.assertIsNotNone(error, f"rank {rank} finished attention without its peer")
            self.assertIn(error["status"], ("DEADLINE_EXCEEDED", "UNAVAILABLE"), error)
            self.assertIn("fcp_forward", error["message"])
            self.assertIn("rank 2", error["message"])  # names the peer that is gone


class ModelLayersTest(unittest.TestCase):
    """hidden_size, ffn_hidden_size and mlp reach the planner (fcp_model): another model around
    the same attention is another plan (its id covers the model's shape)."""

    def plan_id(self, **layers):
        model = fcp_torch.Model(num_q_heads=4, num_kv_heads=2, head_dim=8, dtype="FP32", **layers)
        cp = fcp_torch.ContextParallel(0, 1, model=model, strategy="fcp", threads=1)
        try:
            return cp.plan([5, 3], step=0).id
        finally:
            cp.close()

    def test_layers_change_the_plan_id(self):
        default = self.plan_id()
        self.assertEqual(default, self.plan_id(hidden_size=4096, ffn_hidden_size=14336))
        self.assertNotEqual(default, self.plan_id(hidden_size=1024, ffn_hidden_size=4096))
        self.assertNotEqual(default, self.plan_id(mlp="plain"))


class BadInputTest(unittest.TestCase):
    """Every bad argument raises, naming it, before anything reaches the library or a peer."""

    MODEL = fcp_torch.Model(num_q_heads=4, num_kv_heads=2, head_dim=8, dtype="FP32")

    def setUp(self):
        self.cp = fcp_torch.ContextParallel(0, 1, model=self.MODEL, strategy="fcp", threads=1)
        self.plan = self.cp.plan([5, 3], step=0)
        self.q, self.kv = torch.randn(8, 4, 8), torch.randn(8, 2, 8)

    def tearDown(self):
        self.cp.close()

    def raises(self, exception, name, function, *args, **kwargs):
        with self.assertRaises(exception) as caught:
            function(*args, **kwargs)
        self.assertTrue(str(caught.exception).startswith(name), str(caught.exception))

    def test_constructor(self):
        new = fcp_torch.ContextParallel
        self.raises(ValueError, "rank", new, 2, 2, rendezvous="file:/tmp")
        self.raises(ValueError, "world_size", new, 0, 0)
        self.raises(TypeError, "model", new, 0, 1, model=object())
        self.raises(ValueError, "device", new, 0, 1, device="tpu")
        if not torch.cuda.is_available():
            self.raises(ValueError, "device", new, 0, 1, device="cuda")
        self.raises(ValueError, "job_id", new, 0, 1, job_id="")
        self.raises(ValueError, "transport", new, 0, 1, transport="mpi")
        self.raises(ValueError, "transport", new, 0, 1, transport="nccl")  # needs cuda
        self.raises(ValueError, "rendezvous", new, 0, 2)
        self.raises(ValueError, "rendezvous", new, 0, 2, rendezvous="tcp://x:1")
        self.raises(TypeError, "rendezvous", new, 0, 2, rendezvous=42)
        self.raises(ValueError, "coordinator", new, 0, 1, coordinator="nohostport")
        self.raises(ValueError, "metrics_port", new, 0, 1, metrics_port=0)
        self.raises(ValueError, "timeout_s", new, 0, 1, timeout_s=0)

    def test_model_and_masks(self):
        self.raises(ValueError, "Model.num_kv_heads", fcp_torch.Model, num_q_heads=4,
                    num_kv_heads=3)
        self.raises(ValueError, "Model.head_dim", fcp_torch.Model, head_dim=0)
        self.raises(TypeError, "Model.dtype", fcp_torch.Model, dtype=torch.int32)
        self.raises(TypeError, "Model.dtype", fcp_torch.Model, dtype="FP8")
        self.raises(ValueError, "Model.mlp", fcp_torch.Model, mlp="moe")
        self.raises(ValueError, "window", fcp_torch.Mask.sliding_window, 0)
        self.raises(ValueError, "prefix", fcp_torch.Mask.prefix_lm, -1)

    def test_plan(self):
        self.raises(ValueError, "lengths", self.cp.plan, [])
        self.raises(ValueError, "lengths[1]", self.cp.plan, [4, 0])
        self.raises(ValueError, "lengths[0]", self.cp.plan, [2.5])
        self.raises(ValueError, "masks", self.cp.plan, [4, 4], masks=[fcp_torch.Mask.full()])
        self.raises(TypeError, "masks[1]", self.cp.plan, [4, 4],
                    masks=[fcp_torch.Mask.full(), "causal"])
        self.raises(ValueError, "step", self.cp.plan, [4], step=-1)
        cp = fcp_torch.ContextParallel(0, 1, model=self.MODEL, strategy="no_such_strategy")
        self.raises(fcp_torch.FcpError, "fcp_client_plan_masked", cp.plan, [4])
        cp.close()

    def test_attention(self):
        q, kv, plan, attention = self.q, self.kv, self.plan, self.cp.attention
        self.raises(TypeError, "q", attention, q.numpy(), kv, kv, plan)
        self.raises(TypeError, "q", attention, q.double(), kv, kv, plan)
        self.raises(TypeError, "k", attention, q, kv.half(), kv, plan)
        self.raises(ValueError, "v", attention, q, kv, torch.empty(8, 2, 8, device="meta"), plan)
        self.raises(ValueError, "q", attention, q[:7], kv, kv, plan)
        self.raises(ValueError, "k", attention, q, torch.randn(8, 4, 8), kv, plan)
        self.raises(ValueError, "v", attention, q, kv, torch.randn(8, 2, 4), plan)
        self.raises(ValueError, "q", attention, torch.randn(4, 8, 8).transpose(0, 1), kv, kv,
                    plan)
        self.raises(TypeError, "plan", attention, q, kv, kv, "plan")
        # The executor is untouched by all of that: a good call still works.
        self.assertEqual(attention(q, kv, kv, plan).shape, q.shape)

    def test_stale_plan_and_another_contexts_plan(self):
        old = self.plan
        new = self.cp.plan([5, 3], step=1)
        self.raises(ValueError, "plan", self.cp.attention, self.q, self.kv, self.kv, old)
        self.raises(ValueError, "plan", self.cp.dispatch, torch.zeros(8), old)
        other = fcp_torch.ContextParallel(0, 1, model=self.MODEL, strategy="fcp")
        other.plan([5, 3], step=1)  # the same step, but `new` is self.cp's
        self.raises(ValueError, "plan: made by another", other.attention, self.q, self.kv,
                    self.kv, new)
        other.close()
        self.raises(RuntimeError, "ContextParallel", other.plan, [8])

    def test_plan_for_another_world_size(self):
        plans = [None, None]
        with tempfile.TemporaryDirectory() as directory:
            def rank(r):
                with fcp_torch.ContextParallel(r, 2, rendezvous=f"file:{directory}",
                                               model=self.MODEL, timeout_s=60) as cp:
                    plans[r] = cp.plan([5, 3], step=0)
            threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.raises(ValueError, "plan: made for world_size 2", self.cp.attention, self.q,
                    self.kv, self.kv, plans[0])

    def test_dispatch_and_undispatch(self):
        cp, plan = self.cp, self.plan
        self.raises(TypeError, "x", cp.dispatch, [1, 2], plan)
        self.raises(ValueError, "x", cp.dispatch, torch.zeros(7, 2), plan)
        self.raises(ValueError, "x", cp.undispatch, torch.zeros(9, 2), plan)
        self.raises(ValueError, "x", cp.undispatch, torch.zeros(8, 2, device="meta"), plan)
        self.raises(ValueError, "x", cp.undispatch, torch.zeros(2, 8).t(), plan)
        self.raises(TypeError, "x", cp.undispatch,
                    torch.zeros(8, 2, dtype=torch.float64, requires_grad=True), plan)
        self.assertTrue(torch.equal(cp.positions(plan).sort().values,
                                    torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])))


class MetricsTest(unittest.TestCase):
    def test_metrics_port_serves_the_executors_metrics(self):
        with socket.socket() as s:  # a free port (the library binds it right after)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        model = fcp_torch.Model(num_q_heads=2, num_kv_heads=1, head_dim=8, dtype="FP32")
        with fcp_torch.ContextParallel(0, 1, model=model, metrics_port=port, job_id="metrics",
                                       threads=1) as cp:
            plan = cp.plan([6, 2], step=0)
            q, kv = torch.randn(8, 2, 8, requires_grad=True), torch.randn(8, 1, 8)
            cp.attention(q, kv, kv, plan).sum().backward()
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        text = text.decode()
        self.assertRegex(text, r'fcp_worker_attention_seconds_total\{[^}]*training_job="metrics"')
        self.assertGreater(cp.stats["forward_seconds"] + cp.stats["backward_seconds"], 0)


class PrefetchTest(CoordinatorTestCase):
    """prefetch() of a later step's batch, masks included, from a real coordinator: plan() with the
    same batch collects it (no second request); another batch is planned again, never served the
    prefetched plan."""

    MODEL = fcp_torch.Model(num_q_heads=2, num_kv_heads=1, head_dim=8, dtype="FP32")
    MASKS = [fcp_torch.Mask.sliding_window(3), fcp_torch.Mask.prefix_lm(2)]

    def context(self):
        return fcp_torch.ContextParallel(0, 1, coordinator=self.coordinator.target,
                                         job_id="prefetch", model=self.MODEL, strategy="fcp",
                                         threads=1, timeout_s=60)

    def test_a_prefetched_masked_batch_is_collected_by_plan(self):
        with self.context() as cp:
            cp.prefetch([6, 2], step=1, masks=self.MASKS)
            plan = cp.plan([6, 2], masks=self.MASKS, step=1)
            self.assertEqual(plan.source, "coordinator")
            stats = cp.planner_stats()
            # One planning request in all, the prefetch's: plan() collected it, no second RPC.
            self.assertEqual((stats["prefetches"], stats["requests"], stats["rpcs"]), (1, 1, 1),
                             stats)
            q, kv = torch.randn(8, 2, 8), torch.randn(8, 1, 8)
            local = [cp.dispatch(x, plan) for x in (q, kv)]
            out = cp.undispatch(cp.attention(local[0], local[1], local[1], plan), plan)
            want = document_attention(q, kv, kv, [6, 2], self.MASKS)
            self.assertLess((out - want).abs().max().item(), 1e-4)

    def test_other_masks_than_the_prefetched_ones_are_planned_again(self):
        with self.context() as cp:
            cp.prefetch([6, 2], step=1, masks=self.MASKS)
            causal = cp.plan([6, 2], step=1)
            causal_id = causal.id
            masked = cp.plan([6, 2], masks=self.MASKS, step=2)
            self.assertNotEqual(causal_id, masked.id)
            stats = cp.planner_stats()  # the prefetch, step 1 planned again, step 2
            self.assertEqual((stats["prefetches"], stats["requests"]), (1, 3), stats)

    def test_a_prefetch_with_a_bad_mask_list_raises_naming_it(self):
        with self.context() as cp:
            with self.assertRaisesRegex(ValueError, "masks: 1 masks for 2 documents"):
                cp.prefetch([6, 2], step=1, masks=self.MASKS[:1])


class JobTokenTest(unittest.TestCase):
    """A coordinator with --job-tokens (issue 28): job_token= reaches the planner client and the
    coordinator rendezvous; a refused token raises from cp.plan, never a local plan instead."""

    MODEL = fcp_torch.Model(num_q_heads=2, num_kv_heads=1, head_dim=8, dtype="FP32")
    TOKEN_A, TOKEN_B = "torch-token-a-0123456789", "torch-token-b-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.TemporaryDirectory()
        tokens = os.path.join(cls.directory.name, "tokens")
        with open(tokens, "w") as f:
            f.write(f"# job token\njob-a {cls.TOKEN_A}\njob-b {cls.TOKEN_B}\n")
        cls.coordinator = CoordinatorProcess("--job-tokens", tokens)

    @classmethod
    def tearDownClass(cls):
        code = cls.coordinator.stop()
        cls.directory.cleanup()
        assert code == 0, code

    def context(self, rank=0, world=1, **kwargs):
        return fcp_torch.ContextParallel(rank, world, coordinator=self.coordinator.target,
                                         job_id="job-a", model=self.MODEL, strategy="fcp",
                                         threads=1, timeout_s=60, **kwargs)

    def test_the_jobs_token_gets_the_coordinators_plan(self):
        with self.context(job_token=self.TOKEN_A) as cp:
            plan = cp.plan([6, 2], step=0)
            self.assertEqual(plan.source, "coordinator")
            self.assertEqual(cp.planner_stats()["fallbacks"], 0)

    def test_fcp_job_token_from_the_environment(self):
        os.environ["FCP_JOB_TOKEN"] = self.TOKEN_A
        try:
            with self.context() as cp:
                self.assertEqual(cp.plan([6, 2], step=0).source, "coordinator")
        finally:
            del os.environ["FCP_JOB_TOKEN"]

    def test_a_refused_token_raises_naming_the_job_and_never_plans_locally(self):
        for token, status in ((self.TOKEN_B, "PERMISSION_DENIED"),  # job-b's
                              ("not-a-known-token-42", "UNAUTHENTICATED")):
            with self.context(job_token=token) as cp:
                with self.assertRaises(fcp_torch.FcpError) as refused:
                    cp.plan([6, 2], step=0)
                self.assertEqual(refused.exception.status, status)
                self.assertIn("job-a", refused.exception.message)
                self.assertNotIn(token, str(refused.exception))
                self.assertEqual(cp.planner_stats()["fallbacks"], 0)

    def meet(self, token):
        """Two ranks meeting through the coordinator's rendezvous; each rank's plan or error."""
        results = [None, None]

        def rank(r):
            try:
                with self.context(r, 2, job_token=token) as cp:
                    results[r] = cp.plan([6, 2], step=0).source
            except fcp_torch.FcpError as error:
                results[r] = error
        threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def test_the_coordinator_rendezvous_carries_the_token(self):
        self.assertEqual(self.meet(self.TOKEN_A), ["coordinator", "coordinator"])
        for error in self.meet(self.TOKEN_B):
            self.assertIsInstance(error, fcp_torch.FcpError)
            self.assertEqual(error.function, "fcp_executor_new")
            self.assertIn("PERMISSION_DENIED", error.message)

    def test_a_bad_token_is_refused_before_anything_is_sent(self):
        with self.assertRaises(ValueError) as caught:
            self.context(job_token="has space")
        self.assertTrue(str(caught.exception).startswith("job_token"))


if __name__ == "__main__":
    unittest.main()
