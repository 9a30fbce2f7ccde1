// Structural lint of the Grafana dashboard (dashboards/fcp-balance.json) and the provisioning
// files. No Grafana runs here; the PromQL itself is evaluated against a real Prometheus by
// prometheus_e2e.py.
//
//   node check_dashboard.mjs
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { Report } from "./lib/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const report = new Report("dashboard_lint");
const path = join(root, "dashboards/fcp-balance.json");
let dash;
try {
  dash = JSON.parse(readFileSync(path, "utf8"));
} catch (e) {
  report.fail(`dashboards/fcp-balance.json parses as JSON: ${e.message}`);
  report.finish();
}

report.check(typeof dash.uid === "string" && /^[a-zA-Z0-9_-]{1,40}$/.test(dash.uid), "uid set (<= 40 characters)");
report.check(typeof dash.title === "string" && dash.title.length > 0, "title set");
report.check(Number.isInteger(dash.schemaVersion) && dash.schemaVersion >= 36, `recent schemaVersion (>= 36, got ${dash.schemaVersion})`);
report.check(dash.id === undefined || dash.id === null, "no instance-specific id (Grafana assigns it)");

// Variables.
const vars = new Map((dash.templating?.list ?? []).map((v) => [v.name, v]));
const DS = "${datasource}";
const ds = vars.get("datasource");
report.check(ds?.type === "datasource" && ds?.query === "prometheus", "variable $datasource: a Prometheus data source picker");
for (const name of ["namespace", "training_job"]) {
  const v = vars.get(name);
  report.check(v?.type === "query", `variable $${name}: a query variable`);
  report.check(v?.datasource?.uid === DS, `variable $${name}: queries \${datasource}`);
  const q = typeof v?.query === "string" ? v.query : v?.query?.query;
  report.check(new RegExp(`^label_values\\(.*, ${name}\\)$`).test(q ?? ""), `variable $${name}: label_values(..., ${name})`);
  report.check(v?.includeAll === true && v?.allValue === ".*" && v?.multi === true,
    `variable $${name}: multi-value with All = .* (matches series without the label too)`);
}
report.check(/namespace=~"\$namespace"/.test(vars.get("training_job")?.definition ?? ""), "variable $training_job is filtered by $namespace");

// Panels (rows' collapsed panels included).
const all = [];
for (const p of dash.panels ?? []) {
  all.push(p);
  for (const q of p.panels ?? []) all.push(q);
}
const panels = all.filter((p) => p.type !== "row");
report.check(panels.length >= 10, `at least 10 panels (got ${panels.length})`);
const ids = all.map((p) => p.id);
report.check(ids.every(Number.isInteger) && new Set(ids).size === ids.length, "panel ids are unique integers");
const boxes = [];
for (const p of all) {
  const g = p.gridPos ?? {};
  const name = `panel ${p.id} "${p.title}"`;
  report.check([g.x, g.y, g.w, g.h].every(Number.isInteger) && g.w > 0 && g.h > 0 && g.x >= 0 && g.x + g.w <= 24,
    `${name}: gridPos inside the 24-column grid`);
  for (const b of boxes) {
    const overlap = g.x < b.x + b.w && b.x < g.x + g.w && g.y < b.y + b.h && b.y < g.y + g.h;
    report.check(!overlap, `${name}: does not overlap panel ${b.id}`);
  }
  boxes.push({ ...g, id: p.id });
}

const builtins = new Set(["__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"]);
const noJobLabel = /^(grpc_server_|fcp_plan_cache_(bytes|entries|evictions_total)$|fcp_build_info$|fcp_plannings_in_progress$)/;
const exprs = [];
for (const p of panels) {
  const name = `panel ${p.id} "${p.title}"`;
  report.check(typeof p.title === "string" && p.title.length > 0, `${name}: title`);
  report.check(typeof p.description === "string" && p.description.length >= 20, `${name}: description`);
  report.check(p.datasource?.type === "prometheus" && p.datasource?.uid === DS, `${name}: datasource is \${datasource}`);
  const unit = p.fieldConfig?.defaults?.unit;
  report.check(typeof unit === "string" && unit.length > 0, `${name}: unit set`);
  const targets = p.targets ?? [];
  report.check(targets.length > 0, `${name}: has queries`);
  report.check(new Set(targets.map((t) => t.refId)).size === targets.length, `${name}: refIds unique`);
  for (const t of targets) {
    const e = String(t.expr ?? "");
    const q = `${name} query ${t.refId}`;
    exprs.push(e);
    report.check(e.trim().length > 0, `${q}: expr`);
    report.check(t.datasource?.uid === DS, `${q}: datasource \${datasource}`);
    report.check(typeof t.legendFormat === "string" && t.legendFormat.length > 0, `${q}: legend`);
    for (const m of e.matchAll(/\b(rate|irate|increase)\(([^()]|\([^()]*\))*?\[([^\]]+)\]/g)) {
      report.check(m[3] === "$__rate_interval", `${q}: ${m[1]}() over [$__rate_interval] (got [${m[3]}])`);
    }
    report.check(!/\b(job|instance)\s*=~?\s*"/.test(e), `${q}: no job/instance matcher (no hard-coded job names)`);
    for (const m of e.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)) {
      report.check(vars.has(m[1]) || builtins.has(m[1]), `${q}: $${m[1]} is a dashboard variable`);
    }
    const bare = [...e.matchAll(/\b((?:fcp|grpc_server)_[a-z_]+)\b(?!\s*\{)/g)].map((m) => m[1]);
    report.check(bare.length === 0, `${q}: every metric selector has label matchers (bare: ${bare.join(", ")})`);
    for (const m of e.matchAll(/\b((?:fcp|grpc_server)_[a-z_]+)\s*\{([^}]*)\}/g)) {
      report.check(/namespace=~"\$namespace"/.test(m[2]), `${q}: ${m[1]} filtered by namespace=~"$namespace"`);
      if (!noJobLabel.test(m[1])) {
        report.check(/training_job=~"\$training_job"/.test(m[2]), `${q}: ${m[1]} filtered by training_job=~"$training_job"`);
      }
    }
  }
}

// What the dashboard must show (issue: deploy, Dockerfile and Grafana).
const titles = panels.map((p) => p.title.toLowerCase());
for (const [what, re] of [
  ["per-rank attention time", /attention time per rank/],
  ["the balance panel (max / mean)", /balance.*max \/ mean/],
  ["predicted vs measured step time", /step time: predicted vs measured/],
  ["bytes per rank and direction", /bytes per rank and direction/],
  ["communication wait share", /wait share/],
  ["planning latency p50 / p99", /planning latency p50 \/ p99/],
  ["cache hit rate", /cache hit rate/],
  ["fallbacks", /fallback/],
  ["errors by code", /errors by code/],
]) {
  report.check(titles.some((t) => re.test(t)), `a panel shows ${what}`);
}
const text = exprs.join("\n");
for (const metric of ["fcp_worker_attention_seconds_total", "fcp_worker_attention_flops_total", "fcp_worker_comm_bytes_total",
  "fcp_worker_comm_wait_seconds_total", "fcp_worker_step_seconds_bucket", "fcp_worker_tokens", "fcp_worker_predicted_step_seconds",
  "fcp_worker_plan_fallbacks_total", "fcp_plan_requests_total", "fcp_plan_duration_seconds_bucket", "fcp_plan_cache_hits_total",
  "fcp_plan_cache_misses_total", "fcp_plan_predicted_compute_imbalance_sum", "fcp_plan_comm_bytes_sum", "fcp_plan_rounds_sum",
  "grpc_server_handling_seconds_bucket"]) {
  report.check(new RegExp(`\\b${metric}\\b`).test(text), `some panel queries ${metric}`);
}

// Provisioning.
const dsProv = parse(readFileSync(join(root, "dashboards/provisioning/datasources/fcp-prometheus.yaml"), "utf8"));
report.check(dsProv.apiVersion === 1, "datasource provisioning: apiVersion 1");
const known = new Set(["name", "type", "uid", "access", "url", "isDefault", "editable", "jsonData", "orgId", "version", "basicAuth", "secureJsonData"]);
for (const d of dsProv.datasources ?? []) {
  report.check(d.type === "prometheus" && d.access === "proxy" && typeof d.url === "string", `datasource ${d.name}: a Prometheus proxied data source with a url`);
  for (const k of Object.keys(d)) report.check(known.has(k), `datasource ${d.name}: field ${k} is a Grafana provisioning field`);
}
const dbProv = parse(readFileSync(join(root, "dashboards/provisioning/dashboards/fcp.yaml"), "utf8"));
report.check(dbProv.apiVersion === 1, "dashboard provisioning: apiVersion 1");
const knownProvider = new Set(["name", "orgId", "folder", "folderUid", "type", "disableDeletion", "allowUiUpdates", "updateIntervalSeconds", "options"]);
for (const p of dbProv.providers ?? []) {
  report.check(p.type === "file" && typeof p.options?.path === "string" && p.options.path.startsWith("/"), `provider ${p.name}: a file provider with an absolute path`);
  for (const k of Object.keys(p)) report.check(knownProvider.has(k), `provider ${p.name}: field ${k} is a Grafana provisioning field`);
}
report.finish();
