// The manifest checks must catch real mistakes: this applies one mistake at a time to the
// rendered dev overlay (which passes) and requires the schema or policy check to name it.
//
//   node policy_selftest.mjs --kubectl kubectl --version 0.1.0
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { render, validateSchema } from "./lib/k8s.mjs";
import { checkPolicy } from "./lib/policy.mjs";
import { Report, parseFlags } from "./lib/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = parseFlags(process.argv.slice(2));
const report = new Report("deploy_policy_selftest");
const rendered = render(args.get("kubectl") ?? "kubectl", join(root, "deploy/overlays/dev"));
const expect = {
  namespace: "fcp-dev", replicas: 1, coordinator: true, job: true, version: args.get("version"),
  dashboard: readFileSync(join(root, "dashboards/fcp-balance.json"), "utf8"),
  rules: parse(readFileSync(join(root, "dashboards/rules/fcp.rules.yaml"), "utf8")),
};

async function failures(objects) {
  const found = [];
  const collector = { check: (ok, what) => { if (!ok) found.push(what); return Boolean(ok); } };
  checkPolicy(objects, collector, expect);
  for (const o of objects) found.push(...await validateSchema(o));
  return found;
}

const find = (objs, kind, name) => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const coordinator = (objs) => find(objs, "Deployment", "fcp-coordinator").spec.template.spec;
const rendezvous = (objs) => find(objs, "Deployment", "fcp-rendezvous").spec.template.spec;
const worker = (objs) => find(objs, "Job").spec.template.spec;
const workerArgs = (objs) => worker(objs).containers[0].args;
const setArg = (objs, name, value) => {  // replaces (or with value undefined removes) --name=...
  const args = workerArgs(objs).filter((a) => !a.startsWith(`--${name}=`));
  if (value !== undefined) args.push(`--${name}=${value}`);
  worker(objs).containers[0].args = args;
};
const workerEnv = (objs, name) => worker(objs).containers[0].env.find((e) => e.name === name);
const flagsMap = (objs) => find(objs, "ConfigMap", coordinator(objs).volumes.find((v) => v.name === "flags").configMap.name);

// [what the mistake is, how to make it, text the check must report]
const mistakes = [
  ["misspelt field", (o) => { coordinator(o).containers[0].readinesProbe = {}; }, "unknown field spec.template.spec.containers[0].readinesProbe"],
  ["string where an integer goes", (o) => { coordinator(o).containers[0].ports[0].containerPort = "50051"; }, "containerPort must be integer"],
  ["image :latest", (o) => { coordinator(o).containers[0].image = "fcp-coordinator:latest"; }, "is not :latest"],
  ["untagged image", (o) => { worker(o).containers[0].image = "fcp-worker"; }, "has an explicit tag or digest"],
  ["image of another version", (o) => { coordinator(o).containers[0].image = "fcp-coordinator:0.0.9"; }, "tagged with the project version"],
  ["root user", (o) => { coordinator(o).securityContext.runAsUser = 0; }, "runAsUser is a non-zero uid"],
  ["runAsNonRoot missing", (o) => { delete worker(o).securityContext.runAsNonRoot; }, "pod securityContext.runAsNonRoot"],
  ["writable root filesystem", (o) => { coordinator(o).containers[0].securityContext.readOnlyRootFilesystem = false; }, "readOnlyRootFilesystem"],
  ["capabilities kept", (o) => { worker(o).containers[0].securityContext.capabilities.drop = ["NET_RAW"]; }, "capabilities drop ALL"],
  ["no seccomp profile", (o) => { delete coordinator(o).securityContext.seccompProfile; }, "seccompProfile RuntimeDefault"],
  ["privilege escalation", (o) => { coordinator(o).containers[0].securityContext.allowPrivilegeEscalation = true; }, "allowPrivilegeEscalation false"],
  ["no memory limit", (o) => { delete coordinator(o).containers[0].resources.limits.memory; }, "resources.limits.memory"],
  ["no readiness probe", (o) => { delete coordinator(o).containers[0].readinessProbe; }, "readinessProbe is a native gRPC probe"],
  ["probe on the metrics port", (o) => { coordinator(o).containers[0].livenessProbe.grpc.port = 9464; }, "livenessProbe probes the grpc port"],
  ["--port differs from the container port", (o) => { coordinator(o).containers[0].args[0] = "--port=50052"; }, "--port equals the grpc container port"],
  ["Service selects nothing", (o) => { find(o, "Service", "fcp-coordinator").spec.selector["app.kubernetes.io/component"] = "coord"; }, "Service/fcp-coordinator: selector selects the coordinator pods"],
  ["Service targets an unknown port name", (o) => { find(o, "Service", "fcp-coordinator").spec.ports[1].targetPort = "metric"; }, "targets container port name \"metric\""],
  ["ServiceMonitor on a missing port", (o) => { find(o, "ServiceMonitor", "fcp-coordinator").spec.endpoints[0].port = "http-metrics"; }, "endpoint port \"http-metrics\" is a Service port name"],
  ["ServiceMonitor job label not the rules'", (o) => { find(o, "ServiceMonitor", "fcp-coordinator").spec.jobLabel = "app.kubernetes.io/component"; }, "jobLabel gives job=\"fcp-coordinator\""],
  ["PodMonitor selects no worker", (o) => { find(o, "PodMonitor").spec.selector.matchLabels["app.kubernetes.io/name"] = "worker"; }, "PodMonitor/fcp-worker: selector selects"],
  ["PDB allows two down", (o) => { find(o, "PodDisruptionBudget").spec.maxUnavailable = 2; }, "maxUnavailable 1"],
  ["PDB selects nothing", (o) => { find(o, "PodDisruptionBudget").spec.selector.matchLabels.x = "y"; }, "PodDisruptionBudget/fcp-coordinator: selector selects"],
  ["NetworkPolicy keeps trainers out", (o) => { worker(o); find(o, "Job").spec.template.metadata.labels["fcp-client"] = "false"; }, "admits the training job's pods to the grpc port"],
  ["NetworkPolicy allows egress", (o) => { find(o, "NetworkPolicy", "fcp-coordinator").spec.egress = [{}]; }, "denies all egress"],
  ["flagfile not mounted", (o) => { coordinator(o).containers[0].volumeMounts[0].mountPath = "/etc/fcp-flags"; }, "--flagfile /etc/fcp/coordinator.flags is key"],
  ["dashed flag name in the flagfile", (o) => { const m = flagsMap(o); m.data["coordinator.flags"] += "--planning-threads=1\n"; }, "every flagfile line is --name=value"],
  ["grace shorter than the drain", (o) => { coordinator(o).terminationGracePeriodSeconds = 10; }, "terminationGracePeriodSeconds (10) exceeds"],
  ["cache larger than memory", (o) => { const m = flagsMap(o); m.data["coordinator.flags"] = m.data["coordinator.flags"].replace(/--cache_bytes=\d+/, "--cache_bytes=1073741824"); }, "--cache_bytes (1073741824) + --rendezvous_max_bytes"],
  ["replicas differ", (o) => { find(o, "Deployment", "fcp-coordinator").spec.replicas = 2; }, "replicas 1, got 2"],
  ["object outside the namespace", (o) => { find(o, "Service", "fcp-coordinator").metadata.namespace = "default"; }, "Service/fcp-coordinator: namespace fcp-dev"],
  ["--world differs from completions", (o) => { find(o, "Job").spec.completions = 8; }, "--world equals completions"],
  ["rank not from the completion index", (o) => { worker(o).containers[0].env.find((e) => e.name === "RANK").valueFrom.fieldRef.fieldPath = "metadata.name"; }, "--rank comes from the job completion index"],
  ["coordinator address to a missing Service", (o) => { worker(o).containers[0].env.find((e) => e.name === "FCP_COORDINATOR").value = "fcp-planner:50051"; }, "FCP_COORDINATOR names Service/fcp-planner"],
  ["coordinator address on the metrics port", (o) => { worker(o).containers[0].env.find((e) => e.name === "FCP_COORDINATOR").value = "fcp-coordinator:9464"; }, "FCP_COORDINATOR's port is the Service's grpc port"],
  ["Job on the loopback transport (every pod all ranks)", (o) => { setArg(o, "transport", "loopback"); }, "one rank per pod"],
  // The rendezvous: one store, so one pod behind the Service the ranks meet at.
  ["ranks meet at the planning replicas (no --rendezvous)", (o) => { setArg(o, "rendezvous", undefined); }, "has exactly one pod behind it"],
  ["ranks meet at the coordinator Service", (o) => { setArg(o, "rendezvous", "coordinator:$(FCP_COORDINATOR)"); }, "Service/fcp-coordinator, which has exactly one pod behind it"],
  ["ranks meet in a directory", (o) => { setArg(o, "rendezvous", "/tmp/fcp-rendezvous"); }, "ranks in different pods meet through a Service"],
  ["rendezvous address to a missing Service", (o) => { workerEnv(o, "FCP_RENDEZVOUS").value = "fcp-meet:50051"; }, "the --rendezvous target names Service/fcp-meet"],
  ["rendezvous address on the metrics port", (o) => { workerEnv(o, "FCP_RENDEZVOUS").value = "fcp-rendezvous:9464"; }, "the --rendezvous target's port is the Service's grpc port"],
  ["rendezvous scaled to two", (o) => { find(o, "Deployment", "fcp-rendezvous").spec.replicas = 2; }, "replicas 1 (the rendezvous store is one process's memory)"],
  ["rendezvous rolled with a surge", (o) => { find(o, "Deployment", "fcp-rendezvous").spec.strategy = { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } }; }, "strategy Recreate"],
  ["rendezvous Service selecting the coordinator", (o) => { find(o, "Service", "fcp-rendezvous").spec.selector = { ...find(o, "Service", "fcp-coordinator").spec.selector }; }, "Service/fcp-rendezvous: selector selects the rendezvous pods"],
  ["a PDB on the one rendezvous pod", (o) => { o.push({ apiVersion: "policy/v1", kind: "PodDisruptionBudget", metadata: { name: "fcp-rendezvous", namespace: "fcp-dev", labels: { "app.kubernetes.io/name": "fcp-rendezvous", "app.kubernetes.io/part-of": "fcp" } }, spec: { minAvailable: 1, selector: { matchLabels: { "app.kubernetes.io/name": "fcp-rendezvous" } } } }); }, "no PodDisruptionBudget selects its one pod"],
  ["an autoscaler on the rendezvous", (o) => { o.push({ apiVersion: "autoscaling/v2", kind: "HorizontalPodAutoscaler", metadata: { name: "fcp-rendezvous", namespace: "fcp-dev", labels: { "app.kubernetes.io/name": "fcp-rendezvous", "app.kubernetes.io/part-of": "fcp" } }, spec: { scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "fcp-rendezvous" }, minReplicas: 1, maxReplicas: 3 } }); }, "does not scale Deployment/fcp-rendezvous"],
  ["rendezvous keeps trainers out", (o) => { find(o, "NetworkPolicy", "fcp-rendezvous").spec.ingress[0].from[0].podSelector.matchLabels = { "fcp-client": "yes" }; }, "NetworkPolicy/fcp-rendezvous: admits the training job's pods to the grpc port"],
  ["rendezvous store over its memory", (o) => { rendezvous(o).containers[0].resources.limits.memory = "256Mi"; rendezvous(o).containers[0].resources.requests.memory = "256Mi"; }, "Deployment/fcp-rendezvous: --cache_bytes"],
  ["no GPU for a rank", (o) => { delete worker(o).containers[0].resources.limits["nvidia.com/gpu"]; }, "one GPU per rank"],
  ["undefined $(VAR) in args", (o) => { worker(o).containers[0].args.push("--node=$(NODE_NAME)"); }, "$(NODE_NAME) in its arguments is set in env"],
  ["ConfigMap volume to a missing ConfigMap", (o) => { worker(o).volumes.find((v) => v.configMap).configMap.name = "fcp-workloads"; }, "refers to ConfigMap/fcp-workloads, which is rendered"],
  ["no /tmp for a read-only root", (o) => { worker(o).containers[0].volumeMounts = worker(o).containers[0].volumeMounts.filter((m) => m.mountPath !== "/tmp"); }, "/tmp is an emptyDir"],
  ["rules out of sync", (o) => { find(o, "PrometheusRule").spec.groups[1].rules[0].for = "1m"; }, "carries dashboards/rules/fcp.rules.yaml's groups"],
  ["dashboard out of sync", (o) => { find(o, "ConfigMap", "fcp-grafana-dashboards").data["fcp-balance.json"] += " "; }, "carries dashboards/fcp-balance.json"],
];

const baseline = await failures(structuredClone(rendered));
report.check(baseline.length === 0, `the unmodified dev overlay passes (got: ${baseline.join("; ")})`);
for (const [what, mutate, text] of mistakes) {
  const objects = structuredClone(rendered);
  mutate(objects);
  const found = await failures(objects);
  report.check(found.some((f) => f.includes(text)),
    `${what}: reported as "...${text}..." (got: ${found.length ? found.join("; ") : "nothing"})`);
}
report.finish();
