// Renders one kustomization with `kubectl kustomize`, validates every object against the
// Kubernetes / prometheus-operator schemas (unknown fields are errors), and applies the
// project's policy (lib/policy.mjs).
//
//   node check_manifests.mjs --kubectl kubectl --dir deploy/overlays/dev --namespace fcp-dev \
//     --replicas 1 --coordinator yes --job yes --version 0.1.0 [--worker-bin build/worker/fcp-worker]
//
// With --worker-bin, every flag the training Job passes to fcp-worker must be one the binary
// lists in --help, and the --transport and --rendezvous values must be forms its help names.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { render, validateSchema, describe } from "./lib/k8s.mjs";
import { checkPolicy } from "./lib/policy.mjs";
import { Report, parseFlags } from "./lib/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = parseFlags(process.argv.slice(2));
const dir = args.get("dir");
const report = new Report(`deploy manifests ${dir}`);

let objects = [];
try {
  objects = render(args.get("kubectl") ?? "kubectl", join(root, dir));
  report.check(objects.length > 0, `kubectl kustomize ${dir} renders objects`);
} catch (e) {
  report.fail(`kubectl kustomize ${dir} fails: ${e.stderr || e.message}`);
  report.finish();
}
console.log(`${dir}: ${objects.map(describe).join(", ")}`);

for (const o of objects) {
  const errors = await validateSchema(o);
  report.check(errors.length === 0, `${describe(o)} matches its schema${errors.length ? ":\n  " + errors.join("\n  ") : ""}`);
}

const expect = {
  namespace: args.get("namespace") || undefined,
  replicas: Number(args.get("replicas") ?? 0),
  coordinator: args.get("coordinator") === "yes",
  job: args.get("job") === "yes",
  version: args.get("version"),
  dashboard: readFileSync(join(root, "dashboards/fcp-balance.json"), "utf8"),
  rules: parse(readFileSync(join(root, "dashboards/rules/fcp.rules.yaml"), "utf8")),
};
checkPolicy(objects, report, expect);

const workerBin = args.get("worker_bin");
if (workerBin) {
  const run = spawnSync(workerBin, ["--help"], { encoding: "utf8" });
  const help = `${run.stdout}\n${run.stderr}`;
  report.check(/--world\b/.test(help), `${workerBin} --help lists its flags`);
  for (const job of objects.filter((o) => o.kind === "Job")) {
    for (const c of job.spec.template.spec.containers) {
      const flags = parseFlags(c.args ?? []);
      for (const flag of flags.keys()) {
        const dashed = flag.replaceAll("_", "-");
        report.check(new RegExp(`--(${flag}|${dashed})\\b`).test(help),
          `${describe(job)}: fcp-worker --help lists --${dashed}`);
      }
      // The help line of a flag ("  --transport   loopback: ...; gloo: ... (default: ...)").
      const helpLine = (flag) => new RegExp(`^  --${flag}\\s+(.*)$`, "m").exec(help)?.[1] ?? "";
      if (flags.has("transport")) {
        const t = flags.get("transport");
        report.check(new RegExp(`(^|[\\s;])${t}:`).test(helpLine("transport")),
          `${describe(job)}: --transport=${t} is a transport fcp-worker --help names (${helpLine("transport")})`);
      }
      if (flags.get("rendezvous")?.startsWith("coordinator:")) {
        report.check(helpLine("rendezvous").includes("'coordinator:HOST:PORT'"),
          `${describe(job)}: fcp-worker --help names the --rendezvous form coordinator:HOST:PORT (${helpLine("rendezvous")})`);
      }
    }
  }
}
report.finish();
