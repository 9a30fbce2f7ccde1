// The project's policy over a rendered set of Kubernetes objects: security settings, resources,
// image tags, probes, and the cross-references between objects (selectors, port names, the
// flagfile ConfigMap, the coordinator address in the training job, the job label the alert rules
// use). Every rule is a `report.check(ok, what)` so a test counts and names each one.
//
// checkPolicy(objects, report, expect) with expect = {
//   namespace: "fcp" | undefined   every namespaced object in it (undefined: none set)
//   replicas: 2                     coordinator replicas (when a coordinator is rendered)
//   coordinator: true|false         the render must (not) hold the coordinator
//   job: true|false                 the render must (not) hold the example training Job
//   version: "0.1.0"                tag every fcp image must carry (the CMake project version)
//   dashboard: "<json text>"        the dashboard the Grafana ConfigMap must carry
//   rules: {groups: [...]}          the rule groups the PrometheusRule must carry
// }
import { isDeepStrictEqual } from "node:util";
import { parseFlags } from "./report.mjs";
import { describe } from "./k8s.mjs";

const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
  "CustomResourceDefinition", "StorageClass", "PersistentVolume"]);
const COORDINATOR = "fcp-coordinator";
const RENDEZVOUS = "fcp-rendezvous";
const WORKER = "fcp-worker";

const byKind = (objects, kind) => objects.filter((o) => o.kind === kind);
const named = (objects, kind, name) => objects.find((o) => o.kind === kind && o.metadata?.name === name);

// Whether a matchLabels selector selects `labels`.
export function selects(matchLabels, labels) {
  if (!matchLabels || Object.keys(matchLabels).length === 0) return false;
  return Object.entries(matchLabels).every(([k, v]) => labels?.[k] === v);
}

function podLabels(workload) {
  return workload?.spec?.template?.metadata?.labels ?? {};
}

// Parses memory quantities ("512Mi", "2Gi", "1G", "1000") to bytes.
export function memoryBytes(quantity) {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|K|M|G|T|k)?$/.exec(String(quantity ?? ""));
  if (!m) return NaN;
  const scale = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? scale[m[2]] : 1);
}

// Parses CPU quantities ("500m", "2") to cores.
export function cpuCores(quantity) {
  const m = /^([0-9.]+)(m)?$/.exec(String(quantity ?? ""));
  if (!m) return NaN;
  return Number(m[1]) / (m[2] ? 1000 : 1);
}

// Flags of an Abseil flagfile's text: Map name -> value, plus the malformed lines.
export function parseFlagfile(text) {
  const flags = new Map();
  const bad = [];
  for (const raw of String(text).split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^--([a-z0-9_]+)=(.*)$/.exec(line);
    if (m) flags.set(m[1], m[2]);
    else bad.push(line);
  }
  return { flags, bad };
}

function checkCommon(objects, report, expect) {
  const seen = new Set();
  for (const o of objects) {
    const name = describe(o);
    const key = `${o.apiVersion} ${name}`;
    report.check(!seen.has(key), `${name}: rendered once`);
    seen.add(key);
    const labels = o.metadata?.labels ?? {};
    report.check(labels["app.kubernetes.io/part-of"] === "fcp" || o.kind === "Namespace",
      `${name}: label app.kubernetes.io/part-of=fcp`);
    report.check(typeof labels["app.kubernetes.io/name"] === "string",
      `${name}: label app.kubernetes.io/name`);
    if (!CLUSTER_SCOPED.has(o.kind)) {
      report.check(o.metadata?.namespace === expect.namespace,
        `${name}: namespace ${expect.namespace ?? "(unset: kubectl's current one)"}` +
        (o.metadata?.namespace !== expect.namespace ? `, got ${o.metadata?.namespace}` : ""));
    }
  }
  if (expect.namespace) {
    report.check(named(objects, "Namespace", expect.namespace) !== undefined,
      `Namespace/${expect.namespace} is rendered`);
  }
}

function checkImage(name, container, report, expect) {
  const image = String(container.image ?? "");
  const digest = image.includes("@sha256:");
  const tag = /:([^/:@]+)$/.exec(image.split("@")[0])?.[1];
  report.check(digest || tag !== undefined, `${name}: image ${image} has an explicit tag or digest`);
  report.check(tag !== "latest", `${name}: image ${image} is not :latest`);
  report.check(container.imagePullPolicy === "IfNotPresent",
    `${name}: imagePullPolicy IfNotPresent (a pinned tag never changes)`);
  const repo = image.split("@")[0].replace(/:[^/:]+$/, "");
  if (/(^|\/)fcp-(coordinator|worker)$/.test(repo) && expect.version) {
    report.check(tag === expect.version || digest,
      `${name}: image ${image} is tagged with the project version ${expect.version}`);
  }
}

// Security, resources, images and volume references of every pod template.
function checkPods(objects, report, expect) {
  for (const w of objects.filter((o) => o.spec?.template?.spec?.containers)) {
    const pod = w.spec.template.spec;
    const wname = describe(w);
    const psc = pod.securityContext ?? {};
    report.check(psc.runAsNonRoot === true, `${wname}: pod securityContext.runAsNonRoot`);
    report.check(Number.isInteger(psc.runAsUser) && psc.runAsUser > 0,
      `${wname}: pod securityContext.runAsUser is a non-zero uid`);
    report.check(psc.seccompProfile?.type === "RuntimeDefault",
      `${wname}: pod seccompProfile RuntimeDefault`);
    report.check(pod.automountServiceAccountToken === false,
      `${wname}: automountServiceAccountToken false (fcp calls no Kubernetes API)`);
    report.check(pod.hostNetwork !== true && pod.hostPID !== true && pod.hostIPC !== true,
      `${wname}: no host namespaces`);
    if (pod.serviceAccountName) {
      report.check(named(objects, "ServiceAccount", pod.serviceAccountName) !== undefined,
        `${wname}: ServiceAccount/${pod.serviceAccountName} is rendered`);
    }
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const v of volumes.values()) {
      if (v.configMap) {
        report.check(named(objects, "ConfigMap", v.configMap.name) !== undefined,
          `${wname}: volume ${v.name} refers to ConfigMap/${v.configMap.name}, which is rendered`);
      }
      report.check(!v.hostPath, `${wname}: volume ${v.name} is not a hostPath`);
    }
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const name = `${wname} container ${c.name}`;
      checkImage(name, c, report, expect);
      const sc = c.securityContext ?? {};
      report.check(sc.readOnlyRootFilesystem === true, `${name}: readOnlyRootFilesystem`);
      report.check(sc.allowPrivilegeEscalation === false, `${name}: allowPrivilegeEscalation false`);
      report.check(sc.privileged !== true, `${name}: not privileged`);
      report.check((sc.capabilities?.drop ?? []).includes("ALL"), `${name}: capabilities drop ALL`);
      report.check(!(sc.capabilities?.add?.length > 0), `${name}: adds no capabilities`);
      report.check(sc.runAsUser === undefined || sc.runAsUser > 0, `${name}: runAsUser is not root`);
      const res = c.resources ?? {};
      for (const r of ["cpu", "memory"]) {
        report.check(res.requests?.[r] !== undefined, `${name}: resources.requests.${r}`);
      }
      report.check(res.limits?.memory !== undefined, `${name}: resources.limits.memory`);
      report.check(!(memoryBytes(res.requests?.memory) > memoryBytes(res.limits?.memory)),
        `${name}: memory request <= limit`);
      const mounts = c.volumeMounts ?? [];
      for (const m of mounts) {
        report.check(volumes.has(m.name), `${name}: volumeMount ${m.name} names a volume of the pod`);
      }
      report.check(mounts.some((m) => m.mountPath === "/tmp" && volumes.get(m.name)?.emptyDir),
        `${name}: /tmp is an emptyDir (the root filesystem is read-only)`);
      const portNames = (c.ports ?? []).map((p) => p.name);
      report.check((c.ports ?? []).every((p) => typeof p.name === "string" && p.name.length <= 15),
        `${name}: every container port is named (<= 15 characters)`);
      report.check(new Set(portNames).size === portNames.length, `${name}: port names are unique`);
      const env = new Set((c.env ?? []).map((e) => e.name));
      for (const a of [...(c.command ?? []), ...(c.args ?? [])]) {
        for (const m of String(a).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          report.check(env.has(m[1]), `${name}: $(${m[1]}) in its arguments is set in env`);
        }
      }
    }
  }
}

function containerPort(container, portName) {
  return (container?.ports ?? []).find((p) => p.name === portName)?.containerPort;
}

// The fcp-coordinator processes: the planning replicas (Deployment/fcp-coordinator) and the
// rendezvous (Deployment/fcp-rendezvous, same image and binary, exactly one pod).
const SERVERS = [
  { name: COORDINATOR, role: "coordinator", rendezvous: false },
  { name: RENDEZVOUS, role: "rendezvous", rendezvous: true },
];

// The workloads (Deployments, StatefulSets, ...) whose pods a Service's selector selects.
function workloadsBehind(objects, service) {
  return objects.filter((o) => o.spec?.template?.spec?.containers && o.kind !== "Job" &&
    selects(service?.spec?.selector, podLabels(o)));
}

// Whether a workload runs exactly one pod, also while it rolls out.
function singlePod(workload) {
  const replicas = workload.spec?.replicas ?? 1;
  if (workload.kind === "StatefulSet") return replicas === 1;
  return workload.kind === "Deployment" && replicas === 1 && workload.spec?.strategy?.type === "Recreate";
}

function checkServer(objects, report, expect, server) {
  const deployment = named(objects, "Deployment", server.name);
  if (!report.check((deployment !== undefined) === expect.coordinator,
    `Deployment/${server.name} is ${expect.coordinator ? "" : "not "}rendered`)) return;
  if (!deployment) return;
  const NAME = server.name;
  const pod = deployment.spec.template.spec;
  const labels = podLabels(deployment);
  const c = pod.containers[0];
  const name = `Deployment/${NAME}`;
  report.check(pod.containers.length === 1, `${name}: one container`);
  report.check(selects(deployment.spec.selector?.matchLabels, labels), `${name}: selector selects its pod template`);
  const image = String(c.image ?? "").split("@")[0].replace(/:[^/:]+$/, "");
  report.check(/(^|\/)fcp-coordinator$/.test(image), `${name}: runs the fcp-coordinator image (got ${c.image})`);
  if (server.rendezvous) {
    // Its store is this process's memory: one pod, also during a rollout, and nothing scaling it.
    report.check(deployment.spec.replicas === 1,
      `${name}: replicas 1 (the rendezvous store is one process's memory), got ${deployment.spec.replicas}`);
    report.check(deployment.spec.strategy?.type === "Recreate",
      `${name}: strategy Recreate (a rolling update would run two stores at once), got ${deployment.spec.strategy?.type}`);
    for (const hpa of byKind(objects, "HorizontalPodAutoscaler")) {
      report.check(hpa.spec?.scaleTargetRef?.name !== NAME, `${describe(hpa)}: does not scale ${name}`);
    }
  } else {
    report.check(deployment.spec.replicas === expect.replicas, `${name}: replicas ${expect.replicas}, got ${deployment.spec.replicas}`);
    report.check(deployment.spec.strategy?.rollingUpdate?.maxUnavailable === 0,
      `${name}: rolling updates keep every replica serving (maxUnavailable 0)`);
  }

  const flags = parseFlags(c.args ?? []);
  const grpcPort = containerPort(c, "grpc");
  const metricsPort = containerPort(c, "metrics");
  report.check(Number.isInteger(grpcPort), `${name}: container port "grpc"`);
  report.check(Number.isInteger(metricsPort), `${name}: container port "metrics"`);
  report.check(Number(flags.get("port")) === grpcPort, `${name}: --port equals the grpc container port`);
  report.check(Number(flags.get("metrics_port")) === metricsPort,
    `${name}: --metrics-port equals the metrics container port`);
  // Native gRPC probes cannot speak TLS: with --tls-cert they probe the plaintext --health-port
  // (grpc.health.v1 only), container port "health".
  const tls = flags.has("tls_cert");
  const healthPort = containerPort(c, "health");
  if (tls) {
    report.check(Number.isInteger(healthPort) && Number(flags.get("health_port")) === healthPort,
      `${name}: with --tls-cert, --health-port equals a container port "health" (probes cannot speak TLS)`);
  }
  const probePort = tls ? healthPort : grpcPort;
  for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const p = c[probe];
    report.check(p?.grpc !== undefined, `${name}: ${probe} is a native gRPC probe`);
    report.check(p?.grpc?.port === probePort,
      `${name}: ${probe} probes the ${tls ? "health" : "grpc"} port ${probePort} (an integer)`);
  }
  // Credential files (--tls-*, --job-tokens, --job-identities) come from mounted Secrets, never
  // from the image or a ConfigMap.
  for (const f of ["tls_cert", "tls_key", "tls_client_ca", "job_tokens", "job_identities"]) {
    const path = flags.get(f);
    if (typeof path !== "string") continue;
    const dir = path.replace(/\/[^/]*$/, "");
    const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === dir);
    const volume = (pod.volumes ?? []).find((v) => v.name === mount?.name);
    report.check(volume?.secret !== undefined, `${name}: --${f} ${path} lies in a mounted Secret`);
  }

  // The flagfile: mounted from a rendered ConfigMap that has the file.
  const flagfile = flags.get("flagfile");
  let fileFlags = new Map();
  if (report.check(typeof flagfile === "string", `${name}: --flagfile in args`)) {
    const dir = flagfile.replace(/\/[^/]*$/, "");
    const base = flagfile.replace(/^.*\//, "");
    const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === dir);
    const volume = (pod.volumes ?? []).find((v) => v.name === mount?.name);
    const cm = volume?.configMap && named(objects, "ConfigMap", volume.configMap.name);
    if (report.check(cm?.data?.[base] !== undefined,
      `${name}: --flagfile ${flagfile} is key ${base} of a ConfigMap mounted at ${dir}`)) {
      const parsed = parseFlagfile(cm.data[base]);
      fileFlags = parsed.flags;
      report.check(parsed.bad.length === 0,
        `${name}: every flagfile line is --name=value with an underscored name (got ${JSON.stringify(parsed.bad)})`);
      for (const f of ["port", "metrics_port", "host"]) {
        report.check(!fileFlags.has(f), `${name}: --${f} is set in args only, not in the flagfile`);
      }
    }
  }
  const drain = Number(fileFlags.get("drain_delay_seconds") ?? 0);
  const grace = Number(fileFlags.get("shutdown_grace_seconds") ?? 10);
  report.check(pod.terminationGracePeriodSeconds > drain + grace,
    `${name}: terminationGracePeriodSeconds (${pod.terminationGracePeriodSeconds}) exceeds ` +
    `drain delay + shutdown grace (${drain} + ${grace} s)`);
  // Memory: the plan cache and the rendezvous store (both bounded by flags; coordinator defaults
  // 1 GiB and 256 MiB) within 75% of the limit.
  const memLimit = memoryBytes(c.resources?.limits?.memory);
  const cache = Number(fileFlags.get("cache_bytes") ?? 2 ** 30);
  const store = Number(fileFlags.get("rendezvous_max_bytes") ?? 2 ** 28);
  report.check(cache + store <= 0.75 * memLimit,
    `${name}: --cache_bytes (${cache}) + --rendezvous_max_bytes (${store}) is at most 75% of the memory limit (${c.resources?.limits?.memory})`);
  const threads = Number(fileFlags.get("planning_threads") ?? 2);
  const cpuLimit = cpuCores(c.resources?.limits?.cpu ?? c.resources?.requests?.cpu);
  report.check(threads <= cpuLimit, `${name}: --planning_threads (${threads}) <= CPU limit (${cpuLimit})`);

  // Service, PDB, NetworkPolicy, ServiceMonitor point at these pods and ports.
  const service = named(objects, "Service", NAME);
  if (report.check(service !== undefined, `Service/${NAME} is rendered`)) {
    report.check(selects(service.spec.selector, labels), `Service/${NAME}: selector selects the ${server.role} pods`);
    const behind = workloadsBehind(objects, service);
    report.check(behind.length === 1 && behind[0] === deployment,
      `Service/${NAME}: selects the pods of ${name} only (got ${behind.map(describe).join(", ") || "none"})`);
    for (const p of service.spec.ports ?? []) {
      report.check(containerPort(c, p.targetPort) !== undefined,
        `Service/${NAME}: port ${p.name} targets container port name "${p.targetPort}" of the ${server.role}`);
    }
    report.check((service.spec.ports ?? []).some((p) => p.name === "grpc" && p.targetPort === "grpc"),
      `Service/${NAME}: has port "grpc"`);
  }
  const pdbs = byKind(objects, "PodDisruptionBudget").filter((b) => selects(b.spec?.selector?.matchLabels, labels));
  if (server.rendezvous) {
    // One replica: maxUnavailable 1 would permit every eviction, minAvailable 1 block every drain.
    report.check(pdbs.length === 0,
      `${name}: no PodDisruptionBudget selects its one pod (it would block node drains), got ${pdbs.map(describe).join(", ")}`);
  } else {
    const pdb = named(objects, "PodDisruptionBudget", NAME);
    if (report.check(pdb !== undefined, `PodDisruptionBudget/${NAME} is rendered`)) {
      report.check(pdb.spec.maxUnavailable === 1, `PodDisruptionBudget/${NAME}: maxUnavailable 1`);
      report.check(selects(pdb.spec.selector?.matchLabels, labels),
        `PodDisruptionBudget/${NAME}: selector selects the ${server.role} pods`);
    }
  }
  const netpol = named(objects, "NetworkPolicy", NAME);
  if (report.check(netpol !== undefined, `NetworkPolicy/${NAME} is rendered`)) {
    report.check(selects(netpol.spec.podSelector?.matchLabels, labels),
      `NetworkPolicy/${NAME}: podSelector selects the ${server.role} pods`);
    for (const rule of netpol.spec.ingress ?? []) {
      for (const p of rule.ports ?? []) {
        report.check(containerPort(c, p.port) !== undefined,
          `NetworkPolicy/${NAME}: ingress port "${p.port}" is a container port name`);
      }
    }
    const admits = (portName, podLabelsOfClient) => (netpol.spec.ingress ?? []).some((rule) =>
      (rule.ports ?? []).some((p) => p.port === portName) &&
      (rule.from ?? []).some((f) => f.podSelector && selects(f.podSelector.matchLabels, podLabelsOfClient)));
    report.check(admits("metrics", { "app.kubernetes.io/name": "prometheus" }),
      `NetworkPolicy/${NAME}: admits Prometheus pods to the metrics port`);
    report.check(admits("grpc", { "fcp-client": "true" }),
      `NetworkPolicy/${NAME}: admits pods labelled fcp-client=true to the grpc port`);
    const job = byKind(objects, "Job")[0];
    if (job) {
      report.check(admits("grpc", podLabels(job)),
        `NetworkPolicy/${NAME}: admits the training job's pods to the grpc port`);
    }
    report.check(netpol.spec.policyTypes?.includes("Egress") && (netpol.spec.egress ?? []).length === 0,
      `NetworkPolicy/${NAME}: denies all egress`);
  }
  const sm = named(objects, "ServiceMonitor", NAME);
  if (report.check(sm !== undefined, `ServiceMonitor/${NAME} is rendered`) && service) {
    report.check(selects(sm.spec.selector?.matchLabels, service.metadata.labels),
      `ServiceMonitor/${NAME}: selector selects Service/${NAME}`);
    for (const e of sm.spec.endpoints ?? []) {
      report.check((service.spec.ports ?? []).some((p) => p.name === e.port),
        `ServiceMonitor/${NAME}: endpoint port "${e.port}" is a Service port name`);
    }
    const job = service.metadata.labels?.[sm.spec.jobLabel];
    report.check(job === NAME,
      `ServiceMonitor/${NAME}: jobLabel gives job="${NAME}" (the alert rules' job), got ${job}`);
  }
}

function checkMonitoring(objects, report, expect) {
  const rule = byKind(objects, "PrometheusRule")[0];
  if (report.check(rule !== undefined, "a PrometheusRule is rendered") && expect.rules) {
    report.check(isDeepStrictEqual(rule.spec.groups, expect.rules.groups),
      `${describe(rule)}: carries dashboards/rules/fcp.rules.yaml's groups`);
    const text = JSON.stringify(rule.spec.groups);
    for (const m of text.matchAll(/job=\\"([^\\"]+)\\"/g)) {
      report.check(m[1] === COORDINATOR || m[1] === RENDEZVOUS,
        `${describe(rule)}: job="${m[1]}" is a ServiceMonitor's job label (${COORDINATOR}, ${RENDEZVOUS})`);
    }
    for (const r of rule.spec.groups.flatMap((g) => g.rules).filter((r) => r.alert)) {
      report.check(["warning", "critical"].includes(r.labels?.severity), `alert ${r.alert}: severity label`);
      report.check(r.annotations?.summary && r.annotations?.description, `alert ${r.alert}: summary and description`);
      report.check(typeof r.for === "string", `alert ${r.alert}: a 'for' duration`);
    }
  }
  const pm = named(objects, "PodMonitor", WORKER);
  if (report.check(pm !== undefined, `PodMonitor/${WORKER} is rendered`)) {
    report.check(pm.spec.jobLabel === "app.kubernetes.io/name", `PodMonitor/${WORKER}: jobLabel app.kubernetes.io/name`);
    const job = byKind(objects, "Job")[0];
    if (job) {
      report.check(selects(pm.spec.selector?.matchLabels, podLabels(job)),
        `PodMonitor/${WORKER}: selector selects ${describe(job)}'s pods`);
      for (const e of pm.spec.podMetricsEndpoints ?? []) {
        report.check(job.spec.template.spec.containers.some((c) => containerPort(c, e.port) !== undefined),
          `PodMonitor/${WORKER}: endpoint port "${e.port}" is a container port name of ${describe(job)}`);
      }
    }
  }
  const dash = named(objects, "ConfigMap", "fcp-grafana-dashboards");
  if (report.check(dash !== undefined, "ConfigMap/fcp-grafana-dashboards is rendered")) {
    report.check(dash.metadata.labels?.grafana_dashboard === "1",
      "ConfigMap/fcp-grafana-dashboards: label grafana_dashboard=1 (Grafana's sidecar)");
    if (expect.dashboard) {
      report.check(dash.data?.["fcp-balance.json"] === expect.dashboard,
        "ConfigMap/fcp-grafana-dashboards: carries dashboards/fcp-balance.json");
    }
  }
}

function checkJob(objects, report, expect) {
  const jobs = byKind(objects, "Job");
  if (!report.check((jobs.length > 0) === expect.job, `the example Job is ${expect.job ? "" : "not "}rendered`)) return;
  for (const job of jobs) {
    const name = describe(job);
    const spec = job.spec;
    const pod = spec.template.spec;
    const c = pod.containers[0];
    const flags = parseFlags(c.args ?? []);
    const env = new Map((c.env ?? []).map((e) => [e.name, e]));
    report.check(spec.completionMode === "Indexed", `${name}: completionMode Indexed (index = rank)`);
    report.check(spec.completions === spec.parallelism, `${name}: completions == parallelism (all ranks at once)`);
    report.check(Number(flags.get("world")) === spec.completions, `${name}: --world equals completions`);
    report.check(pod.restartPolicy === "Never", `${name}: restartPolicy Never`);
    report.check(Number.isInteger(spec.backoffLimit), `${name}: backoffLimit set`);
    report.check(flags.get("rank") === "$(RANK)" &&
      env.get("RANK")?.valueFrom?.fieldRef?.fieldPath ===
        "metadata.annotations['batch.kubernetes.io/job-completion-index']",
      `${name}: --rank comes from the job completion index`);
    report.check(Number(c.resources?.limits?.["nvidia.com/gpu"]) >= 1, `${name}: one GPU per rank (limits nvidia.com/gpu)`);
    report.check(Number(flags.get("metrics_port")) === containerPort(c, "metrics"),
      `${name}: --metrics-port equals the metrics container port`);
    report.check(podLabels(job)["fcp-client"] === "true", `${name}: pods labelled fcp-client=true (NetworkPolicy)`);
    report.check(podLabels(job)["app.kubernetes.io/name"] === WORKER, `${name}: pods labelled app.kubernetes.io/name=${WORKER} (PodMonitor)`);
    // One rank per pod: a transport between processes, so each pod's metrics endpoint is one
    // rank's (fcp-worker serves on exactly --metrics-port, the port the PodMonitor scrapes).
    const transport = flags.get("transport") ?? "loopback";
    report.check(["gloo", "nccl"].includes(transport),
      `${name}: one rank per pod: --transport between processes (gloo; nccl with the GPU kernels), got ${transport}`);
    // Plans: any coordinator replica.
    report.check(flags.get("coordinator") === "$(FCP_COORDINATOR)", `${name}: --coordinator=$(FCP_COORDINATOR)`);
    checkAddress(objects, report, expect, name, "FCP_COORDINATOR", env.get("FCP_COORDINATOR")?.value, COORDINATOR);
    // Meeting: every rank must reach the same store, i.e. one pod.
    const rendezvous = expandEnv(flags.get("rendezvous") ?? "", env);
    const coordinator = expandEnv(flags.get("coordinator") ?? "", env);
    const target = rendezvous === "" || rendezvous === "coordinator" ? coordinator
      : rendezvous.startsWith("coordinator:") ? rendezvous.slice("coordinator:".length) : "";
    if (report.check(target !== "",
      `${name}: ranks in different pods meet through a Service: --rendezvous=coordinator:HOST:PORT ` +
      `(got ${flags.get("rendezvous") ?? "(unset)"}: a directory no two pods share)`)) {
      const service = checkAddress(objects, report, expect, name, "the --rendezvous target", target, RENDEZVOUS);
      if (service && expect.coordinator) {
        const behind = workloadsBehind(objects, service);
        report.check(behind.length === 1 && singlePod(behind[0]),
          `${name}: the --rendezvous target ${target} is Service/${service.metadata.name}, which has exactly one pod ` +
          "behind it (its store is one process's memory: 1 replica, and Recreate or a StatefulSet), got " +
          (behind.map((w) => `${describe(w)} replicas ${w.spec.replicas ?? 1}` +
            (w.kind === "Deployment" ? ` strategy ${w.spec.strategy?.type ?? "RollingUpdate"}` : "")).join(", ") || "no pods"));
      }
    }
  }
}

// "$(VAR)"s of a container argument replaced by the literal values of the container's env.
function expandEnv(text, env) {
  return String(text).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, v) => env.get(v)?.value ?? all);
}

// A gRPC address `what` of the Job (service[.namespace[.svc]]:port) names a rendered Service's
// grpc port (or, without the coordinator in the render, the base Service `base`:50051). Returns
// the Service, if rendered.
function checkAddress(objects, report, expect, name, what, address, base) {
  const m = /^([a-z0-9-]+)(?:\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?)?:([0-9]+)$/.exec(address ?? "");
  if (!report.check(m !== null, `${name}: ${what} is service[.namespace[.svc]]:port, got ${address}`)) return undefined;
  const service = named(objects, "Service", m[1]);
  if (!expect.coordinator) {
    report.check(m[1] === base && Number(m[3]) === 50051, `${name}: ${what} is ${base}:50051 (the base Service), got ${address}`);
    return undefined;
  }
  if (!report.check(service !== undefined, `${name}: ${what} names Service/${m[1]}, which is rendered`)) return undefined;
  report.check(m[2] === undefined || m[2] === service.metadata.namespace, `${name}: ${what}'s namespace is the Service's`);
  report.check(service.spec.ports.some((p) => p.name === "grpc" && p.port === Number(m[3])),
    `${name}: ${what}'s port is the Service's grpc port`);
  return service;
}

export function checkPolicy(objects, report, expect) {
  checkCommon(objects, report, expect);
  checkPods(objects, report, expect);
  for (const server of SERVERS) checkServer(objects, report, expect, server);
  if (expect.coordinator) checkMonitoring(objects, report, expect);
  checkJob(objects, report, expect);
}
