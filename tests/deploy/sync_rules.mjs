// The PrometheusRule in deploy/ carries the rule groups of dashboards/rules/fcp.rules.yaml
// verbatim (that file is the one promtool checks and unit-tests). This script writes it, or with
// --check fails when the two differ.
//
//   node tests/deploy/sync_rules.mjs          # rewrite deploy/base/monitoring/prometheusrule.yaml
//   node tests/deploy/sync_rules.mjs --check  # the test
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { parse, stringify } from "yaml";
import { Report } from "./lib/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const rulesPath = join(root, "dashboards/rules/fcp.rules.yaml");
const crPath = join(root, "deploy/base/monitoring/prometheusrule.yaml");

const rules = parse(readFileSync(rulesPath, "utf8"));
const header = `# GENERATED from dashboards/rules/fcp.rules.yaml by tests/deploy/sync_rules.mjs: edit that
# file (promtool tests it), then run \`node tests/deploy/sync_rules.mjs\`. The deploy_rules_in_sync
# test fails while the two differ.
`;
const resource = {
  apiVersion: "monitoring.coreos.com/v1",
  kind: "PrometheusRule",
  metadata: {
    name: "fcp",
    labels: { "app.kubernetes.io/name": "fcp-rules", "app.kubernetes.io/component": "monitoring" },
  },
  spec: { groups: rules.groups },
};
const text = header + stringify(resource, { lineWidth: 100 });

if (process.argv.includes("--check")) {
  const report = new Report("deploy_rules_in_sync");
  let current = null;
  try {
    current = parse(readFileSync(crPath, "utf8"));
  } catch (e) {
    report.fail(`${crPath} cannot be read: ${e.message}`);
  }
  if (current !== null) {
    report.check(isDeepStrictEqual(current.spec?.groups, rules.groups),
      "deploy/base/monitoring/prometheusrule.yaml spec.groups equals dashboards/rules/fcp.rules.yaml " +
      "groups (run `node tests/deploy/sync_rules.mjs`)");
    report.check(isDeepStrictEqual(current, resource),
      "prometheusrule.yaml is exactly what sync_rules.mjs writes (metadata included)");
  }
  report.finish();
} else {
  writeFileSync(crPath, text);
  console.log(`wrote ${crPath}`);
}
