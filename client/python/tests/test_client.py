"""The Python client against a running fcp-coordinator binary (FCP_COORDINATOR), over loopback."""

import ctypes
import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import grpc

from coordinator_process import CoordinatorProcess, CoordinatorTestCase
from fcp_capi import Batch as FcpBatch
from fcp_capi import ClientOptions as FcpClientOptions
from fcp_capi import Error as FcpError
from fcp_capi import ModelStruct as FcpModel
from fcp_client import Model, PlanError, PlannerClient, make_request

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def lengths(n=200, seed=7):
    out, x = [], seed
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(16 + (x >> 33) % 3000)
    return out


class PythonClientTest(CoordinatorTestCase):
    def test_every_rank_gets_its_slice_of_one_plan(self):
        workers = 8
        results = [None] * workers

        def rank(r):
            with PlannerClient(self.coordinator.target) as client:
                results[r] = client.plan(job_id="py", step=1, lengths=lengths(), workers=workers,
                                         ranks=[r], strategy="fcp")

        threads = [threading.Thread(target=rank, args=(r,)) for r in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = {r.plan.plan_id for r in results}
        self.assertEqual(len(ids), 1)
        self.assertEqual(sum(not r.cache_hit for r in results), 1)
        for r, result in enumerate(results):
            self.assertEqual([w.rank for w in result.plan.workers], [r])
            self.assertEqual(result.plan.strategy, "fcp")
            owned = {b for b in result.slice(r).blocks}
            self.assertTrue(all(result.plan.blocks[b].owner == r for b in owned))

    def test_bad_input_raises_with_code_and_field(self):
        with PlannerClient(self.coordinator.target) as client:
            with self.assertRaises(PlanError) as caught:
                client.plan(job_id="py", step=2, lengths=[100, 0, 5], workers=2)
            self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("documents[1].length: must be > 0", caught.exception.details)

    def test_model_preset_fields_and_objective_reach_the_plan(self):
        with PlannerClient(self.coordinator.target) as client:
            def summary(model, **kwargs):
                request = make_request(job_id="py-model", step=3, lengths=lengths(80), workers=4,
                                       model=model, **kwargs)
                return client.plan_batch(request).plan.summary

            self.assertEqual(summary(Model()).model, "llama3-8b")
            seventy = Model.preset("llama3-70b")
            self.assertEqual(seventy.hidden_size, 0)  # filled in by the planner
            s = summary(seventy)
            self.assertEqual(s.model, "llama3-70b")
            tokens = sum(lengths(80))
            self.assertAlmostEqual(s.token_budget, tokens / 4 * 1.05, delta=1)  # the 5% slack
            self.assertLessEqual(s.max_tokens_per_worker, s.token_budget)
            self.assertGreater(s.predicted_fwd_ms, s.attention_fwd_ms)  # linear layers count

            plain = dataclasses.replace(seventy, ffn_hidden_size=4096, mlp="PLAIN")
            self.assertEqual(summary(plain).model, "custom")
            attention = summary(seventy, objective="ATTENTION")
            self.assertEqual(attention.token_budget, 0)
            self.assertAlmostEqual(attention.predicted_fwd_ms, attention.attention_fwd_ms)
            self.assertAlmostEqual(summary(seventy, token_slack=0.5).token_budget,
                                   tokens / 4 * 1.5, delta=1)
            with self.assertRaises(PlanError) as caught:
                summary(Model.preset("llama9-1t"))
            self.assertIn("model.preset", caught.exception.details)

    def test_prefetch_health_and_strategies(self):
        with PlannerClient(self.coordinator.target) as client:
            request = make_request(job_id="py", step=9, lengths=lengths(50), workers=4)
            client.prefetch(request)
            self.assertEqual(len(client.get(9).plan.workers), 4)
            with self.assertRaises(KeyError):
                client.get(9)
            self.assertEqual(client.health(), "SERVING")
            self.assertEqual(client.health("fcp.v1.Planner"), "SERVING")
            strategies = client.list_strategies()
            self.assertEqual(strategies.strategies[0].name, "auto")

    def test_unreachable_coordinator_is_retried_then_raises(self):
        with PlannerClient("127.0.0.1:1", max_attempts=3, initial_backoff_s=0.001) as client:
            with self.assertRaises(PlanError) as caught:
                client.plan(job_id="py", step=1, lengths=[10], workers=1)
            self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(client.retries, 2)

    def test_example_trainer_loop_runs(self):
        out = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, "trainer_loop.py"), "--coordinator",
             self.coordinator.target, "--workers", "4", "--rank", "1", "--steps", "3",
             "--tokens-per-worker", "2048"],
            capture_output=True, text=True, timeout=60, env=os.environ)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout.splitlines()), 3, out.stdout)
        self.assertIn("step 2: plan ", out.stdout)


class CApiFromPythonTest(unittest.TestCase):
    """libfcp.so (fcp/c_api.h) through ctypes: the coordinator, then local fallback planning."""

    def setUp(self):
        self.lib = ctypes.CDLL(os.environ["FCP_C_LIBRARY"])
        self.lib.fcp_plan_id.restype = ctypes.c_char_p
        self.lib.fcp_plan_strategy.restype = ctypes.c_char_p

    def plan(self, target, preset=None):
        options = FcpClientOptions()
        self.lib.fcp_client_options_init(ctypes.byref(options))
        options.target = target.encode()
        options.max_attempts = 1
        client, error = ctypes.c_void_p(), FcpError()
        self.assertEqual(self.lib.fcp_client_new(ctypes.byref(options), ctypes.byref(client),
                                                 ctypes.byref(error)), 0, error.message)
        values = lengths(100)
        docs = (ctypes.c_int64 * len(values))(*values)
        rank = ctypes.c_int32(2)
        batch = FcpBatch()
        self.lib.fcp_batch_init(ctypes.byref(batch))
        batch.job_id, batch.step, batch.strategy = b"ctypes", 3, b"fcp"
        batch.document_lengths, batch.num_documents = docs, len(values)
        batch.num_workers, batch.ranks, batch.num_ranks = 4, ctypes.pointer(rank), 1
        plan = ctypes.c_void_p()
        if preset is None:
            code = self.lib.fcp_client_plan(client, ctypes.byref(batch), ctypes.byref(plan),
                                            ctypes.byref(error))
        else:
            model = FcpModel()
            self.lib.fcp_model_init(ctypes.byref(model))
            model.preset = preset.encode()
            code = self.lib.fcp_client_plan_model(client, ctypes.byref(batch),
                                                  ctypes.byref(model), ctypes.byref(plan),
                                                  ctypes.byref(error))
        self.assertEqual(code, 0, error.message)
        result = (self.lib.fcp_plan_id(plan).decode(), self.lib.fcp_plan_source_of(plan))
        self.lib.fcp_plan_free(plan)
        self.lib.fcp_client_free(client)
        return result

    def test_same_plan_from_the_coordinator_and_from_local_fallback(self):
        coordinator = CoordinatorProcess()
        remote_id, remote_source = self.plan(coordinator.target)
        self.assertEqual(coordinator.stop(), 0)
        fallback_id, fallback_source = self.plan(coordinator.target)  # nobody listens now
        self.assertEqual((remote_source, fallback_source), (0, 1))  # coordinator, local fallback
        self.assertEqual(remote_id, fallback_id)

    def test_model_preset_through_the_c_api(self):
        coordinator = CoordinatorProcess()
        remote_id, _ = self.plan(coordinator.target, preset="llama3-70b")
        default_id, _ = self.plan(coordinator.target)
        self.assertEqual(coordinator.stop(), 0)
        fallback_id, fallback_source = self.plan(coordinator.target, preset="llama3-70b")
        self.assertEqual(fallback_source, 1)  # local fallback: the same model, the same plan
        self.assertEqual(remote_id, fallback_id)
        self.assertNotEqual(remote_id, default_id)


def make_certificates(directory):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate (openssl)."""

    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=ca")
    for name, san in (("server", "DNS:localhost,IP:127.0.0.1"), ("client", "DNS:client")):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    return lambda name: os.path.join(directory, name)


class MutualTlsTest(unittest.TestCase):
    def test_client_certificate_required_and_accepted(self):
        with tempfile.TemporaryDirectory() as directory:
            path = make_certificates(directory)
            coordinator = CoordinatorProcess("--tls-cert", path("server.pem"), "--tls-key",
                                             path("server.key"), "--tls-client-ca", path("ca.pem"))
            target = coordinator.target.replace("127.0.0.1", "localhost")
            try:
                with PlannerClient(target, tls_ca=path("ca.pem"), tls_cert=path("client.pem"),
                                   tls_key=path("client.key")) as client:
                    result = client.plan(job_id="tls", step=1, lengths=lengths(), workers=4)
                    self.assertEqual(len(result.plan.workers), 4)
                for refused in (PlannerClient(target, max_attempts=1),  # plaintext
                                PlannerClient(target, max_attempts=1, tls_ca=path("ca.pem"))):
                    with refused, self.assertRaises(PlanError) as raised:
                        refused.plan(job_id="tls", step=1, lengths=lengths(), workers=4)
                    self.assertEqual(raised.exception.code, grpc.StatusCode.UNAVAILABLE)
            finally:
                self.assertEqual(coordinator.stop(), 0)


class JobTokenTest(unittest.TestCase):
    """A coordinator with --job-tokens: job_token= (or FCP_JOB_TOKEN) is sent as a bearer token."""

    def test_job_token_is_sent_and_checked(self):
        with tempfile.TemporaryDirectory() as directory:
            tokens = os.path.join(directory, "tokens")
            with open(tokens, "w") as f:
                f.write("# test\njob-a python-token-a-0123456789\njob-b python-token-b-0123456789\n")
            coordinator = CoordinatorProcess("--job-tokens", tokens)
            try:
                with PlannerClient(coordinator.target, job_token="python-token-a-0123456789") as a:
                    result = a.plan(job_id="job-a", step=1, lengths=lengths(), workers=4)
                    self.assertEqual(len(result.plan.workers), 4)
                    with self.assertRaises(PlanError) as other:
                        a.plan(job_id="job-b", step=1, lengths=lengths(), workers=4)
                    self.assertEqual(other.exception.code, grpc.StatusCode.PERMISSION_DENIED)
                    self.assertIn("job 'job-b'", other.exception.details)
                    self.assertNotIn("python-token", other.exception.details)
                with PlannerClient(coordinator.target, max_attempts=1) as anonymous, \
                        self.assertRaises(PlanError) as none:
                    anonymous.plan(job_id="job-a", step=1, lengths=lengths(), workers=4)
                self.assertEqual(none.exception.code, grpc.StatusCode.UNAUTHENTICATED)
                os.environ["FCP_JOB_TOKEN"] = "python-token-b-0123456789"
                try:
                    with PlannerClient(coordinator.target) as from_env:
                        from_env.plan(job_id="job-b", step=1, lengths=lengths(), workers=4)
                finally:
                    del os.environ["FCP_JOB_TOKEN"]
                with self.assertRaises(ValueError):
                    PlannerClient(coordinator.target, job_token="has space")
            finally:
                self.assertEqual(coordinator.stop(), 0)


if __name__ == "__main__":
    unittest.main()
