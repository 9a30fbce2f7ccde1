#!/usr/bin/env python3
"""The coordinator runs with the flags the manifests give it.

For each kustomization: render it with `kubectl kustomize`, take the fcp-coordinator
Deployment's container args and the flagfile from the ConfigMap it mounts, and start the real
binary with them (ports moved to free ones, the flagfile at a temporary path), as the pod runs
it: with a read-only root filesystem and only /tmp writable (a private mount namespace, made
with `unshare`, which needs root). It must start, report SERVING on grpc.health.v1 (what the
startup/readiness/liveness probes ask), serve /metrics, and on SIGTERM drain and exit 0 within
the pod's terminationGracePeriodSeconds.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs "$@" with / read-only and a fresh tmpfs on /tmp; exits 3 if / is still writable.
READ_ONLY_ROOT = [
    "unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
    'mount -o remount,bind,ro / && mount -t tmpfs -o size=16m tmpfs /tmp || exit 4; '
    'if touch /.fcp-read-only-probe 2>/dev/null; then rm -f /.fcp-read-only-probe; '
    'echo "root filesystem still writable"; exit 3; fi; exec "$@"', "read-only-root",
]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--coordinator", required=True)
    p.add_argument("--kubectl", required=True)
    p.add_argument("--workdir", required=True, help="outside /tmp (the coordinator gets a fresh /tmp)")
    p.add_argument("dirs", nargs="+", help="kustomization folders")
    a = p.parse_args()
    from fcp_client import PlannerClient

    os.makedirs(a.workdir, exist_ok=True)
    passed, failed = 0, []

    def check(ok, what):
        nonlocal passed
        if ok:
            passed += 1
        else:
            failed.append(what)
            print(f"FAIL {what}", flush=True)
        return ok

    for d in a.dirs:
        objects = [o for o in yaml.safe_load_all(subprocess.check_output([a.kubectl, "kustomize", d], text=True)) if o]
        deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "fcp-coordinator")
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        args = []
        grpc_port, metrics_port = free_port(), free_port()
        for arg in container["args"]:
            name = arg.split("=", 1)[0].replace("-", "_")
            if name == "__port":
                arg = f"--port={grpc_port}"
            elif name == "__metrics_port":
                arg = f"--metrics-port={metrics_port}"
            elif name == "__flagfile":
                path = arg.split("=", 1)[1]
                mount = next(m for m in container["volumeMounts"] if m["mountPath"] == os.path.dirname(path))
                cm_name = volumes[mount["name"]]["configMap"]["name"]
                cm = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == cm_name)
                local = os.path.join(a.workdir, f"{os.path.basename(d)}-{os.path.basename(path)}")
                with open(local, "w") as f:
                    f.write(cm["data"][os.path.basename(path)])
                arg = f"--flagfile={local}"
            args.append(arg)
        cmd = READ_ONLY_ROOT + [a.coordinator, "--host=127.0.0.1"] + args
        what = f"{d}: fcp-coordinator {' '.join(args)}"
        log_path = os.path.join(a.workdir, f"{os.path.basename(d)}.log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            serving = False
            deadline = time.time() + 30
            while time.time() < deadline and proc.poll() is None:  # listening (then no connect backoff)
                with open(log_path) as f:
                    if "serving fcp.v1.Planner" in f.read():
                        break
                time.sleep(0.1)
            with PlannerClient(f"127.0.0.1:{grpc_port}", deadline_s=2, max_attempts=1) as client:
                while time.time() < deadline and proc.poll() is None:
                    try:
                        if client.health() == "SERVING":
                            serving = True
                            break
                    except Exception:
                        pass
                    time.sleep(0.2)
            with open(log_path) as f:
                log_text = f.read()
            check(serving, f"{what}: reports SERVING on grpc.health.v1 with a read-only root "
                           f"(exit {proc.poll()}; 3: / stayed writable, 4: unshare/mount failed: root needed) "
                           f"({log_text[-400:]})")
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            except OSError as e:
                body = str(e)
            check("fcp_build_info" in body, f"{what}: serves /metrics on --metrics-port")
            grace = pod.get("terminationGracePeriodSeconds", 30)
            start = time.time()
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(grace)
            except subprocess.TimeoutExpired:
                rc = None
            if check(rc == 0, f"{what}: exits 0 within terminationGracePeriodSeconds={grace} after SIGTERM "
                              f"(rc {rc}, {time.time() - start:.1f} s)") and serving:
                print(f"{d}: started read-only, SERVING, drained in {time.time() - start:.1f} s", flush=True)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print(f"coordinator_deploy_flags: {passed} passed, {len(failed)} failed", flush=True)
    return 0 if not failed and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
