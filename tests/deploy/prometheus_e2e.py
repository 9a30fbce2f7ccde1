#!/usr/bin/env python3
"""Real-Prometheus end-to-end test of the dashboard and the rules.

Starts fcp-coordinator twice, as the coordinator and as the rendezvous of deploy/ (scrape jobs
fcp-coordinator and fcp-rendezvous), and, with --worker, fcp-worker ranks over loopback that plan
through the coordinator (one process, one metrics port), Debian's `prometheus` on 127.0.0.1
scraping them every second with the rules of dashboards/rules/fcp.rules.yaml, and drives
PlanBatch traffic (good requests from 4 ranks and some invalid ones) with the Python client, and
ReportStep calls for every step planned (the Cost model row). Then, through Prometheus's HTTP API:

  * the dashboard's variable queries return the namespace and training job;
  * every panel query, variables substituted, returns a non-empty result of finite values
    (with the chosen namespace/job, and with "All");
  * every recording rule has a value and every rule evaluates without error;
  * with the coordinator and the rendezvous up none of their alerts is active; after they stop,
    FcpCoordinatorDown, FcpCoordinatorAbsent and FcpRendezvousDown become pending.

Without --worker the panels and rules that read fcp_worker_* metrics cannot have data; they are
listed as NOT EVALUATED, and --require-worker turns a missing worker into a failure.
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import yaml

NAMESPACE = "fcp-e2e"
JOB = "e2e-job"
RATE_INTERVAL = "15s"  # Grafana would use 4 scrape intervals (4 s); wider tolerates a loaded CI machine


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed.append(what)
            print(f"FAIL {what}", flush=True)
        return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Prometheus:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path, **params):
        query = urllib.parse.urlencode(params, doseq=True)
        return json.loads(http_get(f"{self.base}/api/v1/{path}?{query}"))

    def query(self, expr):
        return self.api("query", query=expr, time=f"{time.time():.3f}")


def start(cmd, log_path, **kwargs):
    log = open(log_path, "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def wait_for(predicate, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if predicate():
                return True
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    print(f"timed out after {timeout_s} s waiting for {what}", flush=True)
    return False


def read_log(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def stop(proc, timeout_s=20):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def report_step(stub, step):
    """ReportStep of JOB's `step` from 4 ranks (the closed loop's input): rank r did r + 2 units
    of work at 10 ms forward / 25 ms backward each; its plan predicted 30 ms per unit."""
    from fcp.v1 import calibration_pb2

    for rank in range(4):
        units = rank + 2
        stub.ReportStep(calibration_pb2.StepReport(
            job_id=JOB, step=step, rank=rank, num_workers=4,
            tile_shapes=[calibration_pb2.TileShape(q_len=512, kv_len=512, tiles=units,
                                                   fwd_flops=1e9 * units)],
            forward_seconds=0.010 * units, backward_seconds=0.025 * units,
            predicted_seconds=0.030 * units), timeout=10)


def drive_traffic(address, stop_event, counts):
    """PlanBatch traffic of training job JOB: each step asked by 4 ranks, plus invalid requests;
    each step then reported by the 4 ranks (ReportStep)."""
    import grpc
    from fcp.v1 import planner_pb2_grpc
    from fcp_client import PlanError, PlannerClient

    stub = planner_pb2_grpc.PlannerStub(grpc.insecure_channel(address))

    rng = random.Random(7)
    strategies = ["auto", "fcp", "ring", "per_doc", "whole_doc"]
    with PlannerClient(address, deadline_s=10) as client:
        step = 1_000_000  # far from the worker's steps
        while not stop_event.is_set():
            lengths = []
            while sum(lengths) < 4 * 2048:
                lengths.append(rng.choice([64, 300, 900, 2000, 5000]))
            lengths[-1] -= sum(lengths) - 4 * 2048
            lengths = [n for n in lengths if n > 0]
            strategy = strategies[step % len(strategies)]
            for rank in range(4):
                client.plan(job_id=JOB, step=step, lengths=lengths, workers=4, ranks=[rank],
                            strategy=strategy)
                counts["ok"] += 1
            try:
                client.plan(job_id=JOB, step=step, lengths=[0, 10], workers=4)
            except PlanError:
                counts["invalid"] += 1
            report_step(stub, step)
            counts["reports"] = counts.get("reports", 0) + 4
            step += 1
            stop_event.wait(0.1)


def substitute(expr, namespace, job):
    return (expr.replace("$__rate_interval", RATE_INTERVAL)
            .replace("$namespace", namespace).replace("${namespace}", namespace)
            .replace("$training_job", job).replace("${training_job}", job))


def result_ok(checks, answer, what):
    if not checks.check(answer.get("status") == "success", f"{what}: query succeeds ({answer.get('error')})"):
        return
    data = answer["data"]
    if data["resultType"] == "scalar":
        values = [data["result"][1]]
    else:
        values = [r["value"][1] for r in data["result"]]
    checks.check(len(values) > 0, f"{what}: non-empty result")
    bad = [v for v in values if not math.isfinite(float(v))]
    checks.check(not bad, f"{what}: finite values (got {bad[:3]})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coordinator", required=True)
    p.add_argument("--prometheus", required=True)
    p.add_argument("--promtool", required=True)
    p.add_argument("--worker", default="")
    p.add_argument("--worker-args", default="")
    p.add_argument("--require-worker", action="store_true")
    p.add_argument("--shared-dir", default="")
    p.add_argument("--workdir", required=True)
    p.add_argument("--root", required=True, help="the repository root")
    p.add_argument("--traffic-seconds", type=float, default=8)
    a = p.parse_args()
    a.root = os.path.abspath(a.root)

    checks = Checks()
    shutil.rmtree(a.workdir, ignore_errors=True)  # no series of an earlier run
    os.makedirs(a.workdir)
    with open(os.path.join(a.root, "dashboards/fcp-balance.json")) as f:
        dashboard = json.load(f)
    rules_path = os.path.join(a.root, "dashboards/rules/fcp.rules.yaml")
    with open(rules_path) as f:
        rules = yaml.safe_load(f)

    with_worker = bool(a.worker)
    if not with_worker:
        print("NOTE: no fcp-worker binary given: the panels and rules on fcp_worker_* metrics are "
              "NOT EVALUATED" + (" and that is a failure (--require-worker)" if a.require_worker else ""),
              flush=True)
        checks.check(not a.require_worker, "fcp-worker is part of the run (--require-worker)")

    procs = {}
    traffic_stop = threading.Event()
    traffic = None
    try:
        # The coordinator and the rendezvous (the same binary, as in deploy/), on any free ports.
        ports = {}
        for name in ["coordinator", "rendezvous"]:
            log = os.path.join(a.workdir, f"{name}.log")
            procs[name] = start([a.coordinator, "--host=127.0.0.1", "--port=0", "--metrics-port=0"], log)

        def server_ports(name):
            m = re.search(r"on port (\d+), metrics on port (\d+)", read_log(os.path.join(a.workdir, f"{name}.log")))
            if m:
                ports[name] = {"grpc": int(m.group(1)), "metrics": int(m.group(2))}
            return bool(m)

        for name in ["coordinator", "rendezvous"]:
            if not checks.check(wait_for(lambda: server_ports(name), 30, f"fcp-coordinator ({name}) to serve"),
                                f"fcp-coordinator ({name}) starts ({read_log(os.path.join(a.workdir, f'{name}.log'))[-500:]})"):
                return finish(checks)
        address = f"127.0.0.1:{ports['coordinator']['grpc']}"

        targets = {"fcp-coordinator": f"127.0.0.1:{ports['coordinator']['metrics']}",
                   "fcp-rendezvous": f"127.0.0.1:{ports['rendezvous']['metrics']}"}
        if with_worker:
            worker_port = free_port()
            cmd = [a.worker, "--world=4", "--transport=loopback", "--steps=1000000",
                   f"--metrics-port={worker_port}", f"--training-job={JOB}",
                   f"--coordinator={address}"] + a.worker_args.split()
            print("worker:", " ".join(cmd), flush=True)
            procs["worker"] = start(cmd, os.path.join(a.workdir, "worker.log"))
            targets["fcp-worker"] = f"127.0.0.1:{worker_port}"

        # Prometheus, scraping every second, with the project's rules.
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [rules_path],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [t], "labels": {"namespace": NAMESPACE}}]}
                for job, t in targets.items()
            ],
        }
        config_path = os.path.join(a.workdir, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        check = subprocess.run([a.promtool, "check", "config", config_path], capture_output=True, text=True)
        checks.check(check.returncode == 0, f"promtool check config (with the rules) passes: {check.stdout}{check.stderr}")
        prom_port = free_port()
        procs["prometheus"] = start([a.prometheus, f"--config.file={config_path}",
                                     f"--storage.tsdb.path={os.path.join(a.workdir, 'data')}",
                                     f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                                    os.path.join(a.workdir, "prometheus.log"))
        prom = Prometheus(prom_port)
        if not checks.check(wait_for(lambda: "Ready" in http_get(f"{prom.base}/-/ready"), 60, "prometheus to be ready"),
                            f"prometheus starts ({read_log(os.path.join(a.workdir, 'prometheus.log'))[-500:]})"):
            return finish(checks)

        counts = {"ok": 0, "invalid": 0}
        traffic = threading.Thread(target=drive_traffic, args=(address, traffic_stop, counts), daemon=True)
        traffic.start()

        def all_up():
            active = prom.api("targets")["data"]["activeTargets"]
            return len(active) == len(targets) and all(t["health"] == "up" for t in active)

        up = wait_for(all_up, 30, "every target to be up")
        checks.check(up, f"Prometheus scrapes {', '.join(targets)} ({json.dumps(prom.api('targets')['data']['activeTargets'])[:800]})")
        time.sleep(a.traffic_seconds)
        checks.check(traffic.is_alive() and counts["ok"] > 0 and counts["invalid"] > 0,
                     f"traffic flows ({counts})")
        for name, proc in procs.items():
            checks.check(proc.poll() is None, f"{name} is still running")

        # Variables.
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", q)
            selector = substitute(m.group(1), ".*", ".*")
            values = prom.api(f"label/{m.group(2)}/values", **{"match[]": selector})["data"]
            expected = {"namespace": NAMESPACE, "training_job": JOB}[var["name"]]
            checks.check(expected in values, f"variable ${var['name']}: {q} lists {expected} (got {values})")

        # Panels.
        evaluated = skipped = 0
        for panel in (p for p in dashboard["panels"] if p["type"] != "row"):
            for target in panel["targets"]:
                expr = target["expr"]
                what = f'panel "{panel["title"]}" query {target["refId"]}'
                if "fcp_worker_" in expr and not with_worker:
                    print(f"NOT EVALUATED (no fcp-worker): {what}", flush=True)
                    skipped += 1
                    continue
                evaluated += 1
                for ns, job, label in [(NAMESPACE, JOB, "selected"), (".*", ".*", "All")]:
                    concrete = substitute(expr, ns, job)
                    checks.check("$" not in concrete, f"{what}: every variable substituted")
                    result_ok(checks, prom.query(concrete), f"{what} ({label})")
        print(f"panel queries: {evaluated} evaluated, {skipped} not evaluated", flush=True)

        # Rules.
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "record" in rule and ("fcp_worker_" in rule["expr"] and not with_worker):
                    print(f"NOT EVALUATED (no fcp-worker): recording rule {rule['record']}", flush=True)
                elif "record" in rule:
                    result_ok(checks, prom.query(rule["record"]), f"recording rule {rule['record']}")
        loaded = [r for g in prom.api("rules")["data"]["groups"] for r in g["rules"]]
        expected_rules = sum(len(g["rules"]) for g in rules["groups"])
        checks.check(len(loaded) == expected_rules, f"Prometheus loaded all {expected_rules} rules (got {len(loaded)})")
        for r in loaded:
            checks.check(r.get("health") == "ok", f"rule {r.get('name')} evaluates without error ({r.get('lastError')})")

        def alert_states():
            return {al["labels"]["alertname"]: al["state"] for al in prom.api("alerts")["data"]["alerts"]}

        states = alert_states()
        server_alerts = ["FcpCoordinatorDown", "FcpCoordinatorAbsent", "FcpRendezvousDown"]
        for name in server_alerts:
            checks.check(name not in states, f"{name} is inactive while the coordinator and the rendezvous are up "
                                             f"(got {states.get(name)})")

        # The coordinator and the rendezvous go away: their alerts must notice (they wait for
        # `for` before firing).
        traffic_stop.set()
        traffic.join(15)
        if "worker" in procs:
            stop(procs.pop("worker"))
        for name in ["coordinator", "rendezvous"]:
            rc = stop(procs.pop(name))
            checks.check(rc == 0, f"fcp-coordinator ({name}) drains and exits 0 on SIGTERM (got {rc})")
        pending = wait_for(lambda: all(alert_states().get(n) == "pending" for n in server_alerts),
                           20, "the coordinator and rendezvous alerts to be pending")
        checks.check(pending, f"{', '.join(server_alerts)} are pending once the coordinator and the rendezvous "
                              f"are gone (got {alert_states()})")
    finally:
        traffic_stop.set()
        for name, proc in procs.items():
            stop(proc)
    return finish(checks)


def finish(checks):
    print(f"prometheus_e2e: {checks.passed} passed, {len(checks.failed)} failed", flush=True)
    return 0 if not checks.failed and checks.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
