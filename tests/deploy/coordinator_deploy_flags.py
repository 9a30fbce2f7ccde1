#!/usr/bin/env python3
"""The coordinator, the rendezvous and the example training Job run with the flags the manifests
give them.

For each kustomization: render it with `kubectl kustomize` and start the real binary for every
Deployment of the fcp-coordinator image (Deployment/fcp-coordinator, the planning replicas, and
Deployment/fcp-rendezvous, where workers meet) with its container args and the flagfile from the
ConfigMap it mounts (ports moved to free ones, the flagfile at a temporary path), as the pod runs
it: with a read-only root filesystem and only /tmp writable (a private mount namespace, made with
`unshare`, which needs root). Files of Secret volumes (TLS certificates, --job-tokens; created out
of band, never rendered) get stand-ins: certificates made with openssl, a tokens file of one job. Each Deployment gets as many processes as it can have pods at once
(replicas, plus maxSurge during a rolling update). Every process must start, report SERVING on
grpc.health.v1 on the port its probes ask (the plaintext --health-port where the gRPC port speaks
TLS), serve /metrics, and on SIGTERM
drain and exit 0 within the pod's terminationGracePeriodSeconds.

With --worker, a render holding the example Job also runs it: one fcp-worker process per rank
(read-only root too) with the Job's args, $(VAR)s from its env, the completion index as RANK,
files of ConfigMap volumes at local paths, and each Service address (FCP_COORDINATOR,
FCP_RENDEZVOUS) resolved to the processes of the Deployment behind that Service, rank r to
process r mod n, as a ClusterIP spreads the ranks' connections over the pods. So ranks that meet
at a Service with more than one pod behind it never meet, and the test fails. Only the step size
is made CPU-sized (--steps, --tokens-per-worker, heads); every rank must exit 0, and serve its own
rank's metrics on its --metrics-port while it runs.
"""

import argparse
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml


def _keep_under_tmp():
    """The project's top folder when it lies under /tmp (bound back into the private /tmp)."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return top if top.startswith("/tmp/") else ""


os.environ["FCP_KEEP_UNDER_TMP"] = _keep_under_tmp()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs "$@" with / read-only and a fresh tmpfs on /tmp; exits 3 if / is still writable. A checkout
# under /tmp (CI clones may live there) stays visible: the old /tmp is kept at /mnt and the
# checkout is bound back into the fresh tmpfs, read-only like the rest of the root.
READ_ONLY_ROOT = [
    "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
    'keep="$FCP_KEEP_UNDER_TMP"; '
    'mount --bind /tmp /mnt && mount -o remount,bind,ro / && mount -t tmpfs -o size=16m tmpfs /tmp '
    '|| exit 4; if [ -n "$keep" ]; then mkdir -p "$keep" && '
    'mount --bind -o ro "/mnt${keep#/tmp}" "$keep" || exit 4; fi; '
    'if touch /.fcp-read-only-probe 2>/dev/null; then rm -f /.fcp-read-only-probe; '
    'echo "root filesystem still writable"; exit 3; fi; exec "$@"', "read-only-root",
]

# The example Job's step, made small enough for 2 CPU cores (the other flags are the Job's).
WORKER_SIZE = {"--steps": "2", "--tokens-per-worker": "1024", "--max-doc-len": "4096", "--heads": "4",
               "--kv-heads": "2", "--head-dim": "32", "--linger-s": "5"}

ADDRESS = re.compile(r"^([a-z0-9-]+)(?:\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?)?:([0-9]+)$")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def make_certificates(d):
    """A CA, and a server certificate it signs for 127.0.0.1 and localhost, in folder `d`."""
    os.makedirs(d, exist_ok=True)
    run = lambda *args: subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=fcp-test-ca")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=fcp-coordinator")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "server.ext")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pods_at_once(deployment):
    """Most pods a Deployment runs at once: replicas, plus maxSurge while a rolling update runs."""
    spec = deployment["spec"]
    replicas = spec.get("replicas", 1)
    strategy = spec.get("strategy", {})
    if strategy.get("type") == "Recreate":
        return replicas
    surge = str(strategy.get("rollingUpdate", {}).get("maxSurge", "25%"))
    surge = math.ceil(replicas * float(surge[:-1]) / 100) if surge.endswith("%") else int(surge)
    return replicas + surge


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


class Render:
    def __init__(self, kubectl, d, workdir):
        self.dir = d
        self.name = os.path.basename(d)
        self.workdir = workdir
        out = subprocess.check_output([kubectl, "kustomize", d], text=True)
        self.objects = [o for o in yaml.safe_load_all(out) if o]

    def find(self, kind, name=None):
        return next((o for o in self.objects if o["kind"] == kind and name in (None, o["metadata"]["name"])), None)

    def secret_file(self, pod, container, path):
        """A stand-in for a file of a Secret volume the container mounts, under workdir; or None."""
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == os.path.dirname(path)), None)
        secret = volumes.get(mount["name"], {}).get("secret") if mount else None
        if not secret:
            return None
        certs = os.path.join(self.workdir, "secrets")
        if not os.path.exists(os.path.join(certs, "ca.crt")):
            make_certificates(certs)
        stand_in = {"tls.crt": "server.crt", "tls.key": "server.key", "ca.crt": "ca.crt"}.get(os.path.basename(path))
        if stand_in:
            return os.path.join(certs, stand_in)
        local = os.path.join(certs, f"{secret['secretName']}-{os.path.basename(path)}")
        with open(local, "w") as f:
            f.write("# stand-in for a Secret of job tokens\nexample-job stand-in-token-0123456789abcdef\n")
        return local

    def local_file(self, pod, container, path):
        """A file of a ConfigMap volume the container mounts, written under workdir; or None."""
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == os.path.dirname(path)), None)
        cm_ref = volumes.get(mount["name"], {}).get("configMap") if mount else None
        cm = cm_ref and self.find("ConfigMap", cm_ref["name"])
        if not cm or os.path.basename(path) not in cm.get("data", {}):
            return None
        local = os.path.join(self.workdir, f"{self.name}-{cm['metadata']['name']}-{os.path.basename(path)}")
        with open(local, "w") as f:
            f.write(cm["data"][os.path.basename(path)])
        return local


class Server:
    """One process of a Deployment of the fcp-coordinator image."""

    def __init__(self, render, deployment, index, coordinator_bin):
        self.deployment = deployment
        self.pod = deployment["spec"]["template"]["spec"]
        container = self.pod["containers"][0]
        self.ports = {"grpc": free_port(), "metrics": free_port(), "health": free_port()}
        name = deployment["metadata"]["name"]
        self.what_name = f"{render.dir}: {name} #{index}"
        args = []
        for arg in container["args"]:
            flag = arg.split("=", 1)[0].replace("-", "_")
            if flag == "__port":
                arg = f"--port={self.ports['grpc']}"
            elif flag == "__metrics_port":
                arg = f"--metrics-port={self.ports['metrics']}"
            elif flag == "__health_port":
                arg = f"--health-port={self.ports['health']}"
            elif flag == "__flagfile":
                arg = f"--flagfile={render.local_file(self.pod, container, arg.split('=', 1)[1])}"
            elif "=" in arg and arg.split("=", 1)[1].startswith("/"):
                flag, path = arg.split("=", 1)
                arg = f"{flag}={render.secret_file(self.pod, container, path) or path}"
            args.append(arg)
        # Container port name -> the local port standing in for it.
        self.by_port_name = {p["name"]: self.ports[p["name"]] for p in container["ports"] if p["name"] in self.ports}
        # The local port the readiness probe asks (the health port where grpc speaks TLS).
        probe = container.get("readinessProbe", {}).get("grpc", {}).get("port")
        self.probe_port = next((self.ports[p["name"]] for p in container["ports"]
                                if p["containerPort"] == probe and p["name"] in self.ports), self.ports["grpc"])
        self.what = f"{self.what_name}: fcp-coordinator {' '.join(args)}"
        self.log = os.path.join(render.workdir, f"{render.name}-{name}-{index}.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(READ_ONLY_ROOT + [coordinator_bin, "--host=127.0.0.1"] + args,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_serving(self, deadline):
        from fcp_client import PlannerClient

        while time.time() < deadline and self.proc.poll() is None:  # listening (then no connect backoff)
            if "serving fcp.v1.Planner" in read(self.log):
                break
            time.sleep(0.1)
        with PlannerClient(f"127.0.0.1:{self.probe_port}", deadline_s=2, max_attempts=1) as client:
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if client.health() == "SERVING":
                        return True
                except Exception:
                    pass
                time.sleep(0.2)
        return False

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_servers(render, servers, checks):
    deadline = time.time() + 30
    for s in servers:
        serving = s.wait_serving(deadline)
        s.serving = serving
        checks.check(serving, f"{s.what}: reports SERVING on grpc.health.v1 with a read-only root "
                              f"(exit {s.proc.poll()}; 3: / stayed writable, 4: unshare/mount failed: root needed) "
                              f"({read(s.log)[-400:]})")
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{s.ports['metrics']}/metrics", timeout=5).read().decode()
        except OSError as e:
            body = str(e)
        checks.check("fcp_build_info" in body, f"{s.what}: serves /metrics on --metrics-port")


def drain_servers(servers, checks):
    start = time.time()
    for s in servers:
        s.proc.send_signal(signal.SIGTERM)
    for s in servers:
        grace = s.pod.get("terminationGracePeriodSeconds", 30)
        try:
            rc = s.proc.wait(max(0.1, start + grace - time.time()))
        except subprocess.TimeoutExpired:
            rc = None
        if checks.check(rc == 0, f"{s.what}: exits 0 within terminationGracePeriodSeconds={grace} after SIGTERM "
                                 f"(rc {rc}, {time.time() - start:.1f} s)") and s.serving:
            print(f"{s.what_name}: started read-only, SERVING, drained in {time.time() - start:.1f} s", flush=True)


def resolve_address(render, servers, value, rank):
    """A Service address of the render -> 127.0.0.1:<port> of the process serving rank `rank`."""
    m = ADDRESS.match(value or "")
    service = m and render.find("Service", m.group(1))
    if not service:
        return None, None
    port = next((p for p in service["spec"]["ports"] if p["port"] == int(m.group(3))), None)
    behind = [s for s in servers
              if selects(service["spec"].get("selector"), s.deployment["spec"]["template"]["metadata"]["labels"])]
    if port is None or not behind:
        return None, service
    pick = behind[rank % len(behind)]
    local = pick.by_port_name.get(port.get("targetPort"))
    return (f"127.0.0.1:{local}" if local else None), service


def run_job(render, job, servers, worker_bin, checks):
    """The example Job's ranks as processes, against the render's servers."""
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    world = job["spec"]["completions"]
    ranks = []
    for rank in range(world):
        env = {}
        for e in container.get("env", []):
            if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == \
                    "metadata.annotations['batch.kubernetes.io/job-completion-index']":
                env[e["name"]] = str(rank)
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
                env[e["name"]] = "127.0.0.1"  # every "pod" of this run lives on this host
            elif "value" in e:
                address, service = resolve_address(render, servers, e["value"], rank)
                if service is not None:
                    checks.check(address is not None, f"{render.dir}: {e['name']}={e['value']} reaches a process "
                                                      f"of a Deployment behind Service/{service['metadata']['name']}")
                env[e["name"]] = address or e["value"]
        metrics_port = free_port()
        args = []
        for arg in container["args"]:
            arg = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)
            flag, _, value = arg.partition("=")
            if flag in WORKER_SIZE:
                continue
            if flag == "--metrics-port":
                value = str(metrics_port)  # in the pod: the same port in every pod
            elif value.startswith("/"):
                value = render.local_file(pod, container, value) or value
            args.append(f"{flag}={value}" if value else flag)
        args += [f"{k}={v}" for k, v in WORKER_SIZE.items()]
        log = os.path.join(render.workdir, f"{render.name}-worker-{rank}.log")
        with open(log, "w") as f:
            proc = subprocess.Popen(READ_ONLY_ROOT + [worker_bin] + args, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        ranks.append({"rank": rank, "proc": proc, "log": log, "port": metrics_port, "args": args, "seen": ""})
    print(f"{render.dir}: fcp-worker {' '.join(ranks[0]['args'])}", flush=True)

    # Each rank's own endpoint: its rank's series, no other rank's.
    deadline = time.time() + 120
    while time.time() < deadline and any(r["proc"].poll() is None for r in ranks):
        for r in ranks:
            if f'rank="{r["rank"]}"' in r["seen"] or r["proc"].poll() is not None:
                continue
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{r['port']}/metrics", timeout=2).read().decode()
                if "fcp_worker_steps_total{" in body:
                    r["seen"] = body
            except OSError:
                pass
        time.sleep(0.2)
    for r in ranks:
        try:
            rc = r["proc"].wait(max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            r["proc"].kill()
            rc = r["proc"].wait()
        checks.check(rc == 0, f"{render.dir}: example Job rank {r['rank']} (fcp-worker {' '.join(r['args'])}) "
                              f"exits 0, got {rc}: {read(r['log'])[-600:]}")
        labels = set(re.findall(r'fcp_worker_steps_total\{[^}]*rank="(\d+)"', r["seen"]))
        checks.check(labels == {str(r["rank"])},
                     f"{render.dir}: rank {r['rank']} serves its own rank's metrics (only) on its --metrics-port "
                     f"(ranks seen: {sorted(labels)})")
    if all(r["proc"].returncode == 0 for r in ranks):
        print(f"{render.dir}: the example Job's {world} ranks ran; rank 0:\n{read(ranks[0]['log'])[-1500:]}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--coordinator", required=True)
    p.add_argument("--worker", default="", help="fcp-worker: run the example Job of renders that have one")
    p.add_argument("--require-worker", action="store_true")
    p.add_argument("--kubectl", required=True)
    p.add_argument("--workdir", required=True, help="outside /tmp (the processes get a fresh /tmp)")
    p.add_argument("dirs", nargs="+", help="kustomization folders")
    a = p.parse_args()

    os.makedirs(a.workdir, exist_ok=True)
    checks = Checks()
    if not a.worker:
        print("NOTE: no fcp-worker binary: the example Job is NOT RUN", flush=True)
        checks.check(not a.require_worker, "fcp-worker is part of the run (--require-worker)")
    jobs_run = 0
    for d in a.dirs:
        render = Render(a.kubectl, d, a.workdir)
        deployments = [o for o in render.objects if o["kind"] == "Deployment" and
                       re.search(r"(^|/)fcp-coordinator(:|@|$)", o["spec"]["template"]["spec"]["containers"][0]["image"])]
        checks.check({o["metadata"]["name"] for o in deployments} >= {"fcp-coordinator", "fcp-rendezvous"},
                     f"{d}: renders Deployments fcp-coordinator and fcp-rendezvous "
                     f"(got {[o['metadata']['name'] for o in deployments]})")
        servers = []
        try:
            for dep in deployments:
                servers += [Server(render, dep, i, a.coordinator) for i in range(pods_at_once(dep))]
            check_servers(render, servers, checks)
            job = render.find("Job")
            if job and a.worker and all(s.serving for s in servers):
                run_job(render, job, servers, a.worker, checks)
                jobs_run += 1
            drain_servers(servers, checks)
        finally:
            for s in servers:
                s.kill()
    if a.worker:
        checks.check(jobs_run > 0, "the example Job ran (a render with a Job was given)")
    print(f"coordinator_deploy_flags: {checks.passed} passed, {len(checks.failed)} failed", flush=True)
    return 0 if not checks.failed and checks.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
