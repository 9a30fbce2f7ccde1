// Rendering kustomizations and validating Kubernetes objects against their OpenAPI schemas
// (npm kubernetes-models and @kubernetes-models/prometheus-operator, which compile the
// Kubernetes and prometheus-operator schemas to validators).
//
// The compiled validators accept fields they do not know (the Kubernetes schemas do not say
// additionalProperties: false), but a misspelt field (`readinesProbe`) is exactly the mistake
// to catch. So validation runs on a Proxy of the object that records which properties the
// validator reads: a validator reads every property its schema declares, and enumerates the keys
// of maps (labels, resources), so a key of a checked object that was never read is unknown to
// the schema. Objects the validator never looks into (free-form fields) are not judged.
import { execFileSync } from "node:child_process";
import { parseAllDocuments } from "yaml";

// Runs `kubectl kustomize dir` and returns the rendered objects.
export function render(kubectl, dir) {
  const out = execFileSync(kubectl, ["kustomize", dir], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 64 << 20,
  });
  return parseYamlStream(out, `kubectl kustomize ${dir}`);
}

export function parseYamlStream(text, where) {
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      throw new Error(`${where}: ${doc.errors[0].message}`);
    }
    const value = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value);
  }
  return objects;
}

export function describe(obj) {
  return `${obj?.kind ?? "?"}/${obj?.metadata?.name ?? "?"}`;
}

// The model class of an apiVersion + kind, or null if no package knows it.
async function modelClass(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const candidates = [];
  if (group === "monitoring.coreos.com") {
    candidates.push(`@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`);
  } else if (group === "") {
    candidates.push(`kubernetes-models/${version}/${kind}`);
  } else {
    candidates.push(`kubernetes-models/${group}/${version}/${kind}`);
  }
  for (const path of candidates) {
    try {
      const module = await import(path);
      if (module[kind]) return module[kind];
    } catch (e) {
      if (e.code !== "ERR_MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  return null;
}

function track(value, path, log) {
  if (Array.isArray(value)) return value.map((v, i) => track(v, `${path}[${i}]`, log));
  if (value === null || typeof value !== "object") return value;
  const record = { path, value, read: new Set(), enumerated: false };
  log.push(record);
  const copy = {};
  for (const key of Object.keys(value)) copy[key] = track(value[key], `${path}.${key}`, log);
  return new Proxy(copy, {
    get(target, key, receiver) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      if (typeof key === "string") record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

// Validates one object against its schema. Returns a list of error strings (empty = valid).
export async function validateSchema(obj) {
  const name = describe(obj);
  if (typeof obj?.apiVersion !== "string" || typeof obj?.kind !== "string") {
    return [`${name}: apiVersion and kind must be strings`];
  }
  const Model = await modelClass(obj.apiVersion, obj.kind);
  if (Model === null) return [`${name}: no schema for ${obj.apiVersion} ${obj.kind}`];
  const errors = [];
  const log = [];
  try {
    Model.prototype.validate.call(track(obj, "", log));
  } catch (e) {
    for (const line of String(e.message).split("\n")) {
      if (line.trim()) errors.push(`${name}: ${line.trim()}`);
    }
  }
  for (const record of log) {
    if (record.enumerated || record.read.size === 0) continue;
    for (const key of Object.keys(record.value)) {
      if (!record.read.has(key)) errors.push(`${name}: unknown field ${record.path}.${key}`.replace(": unknown field .", ": unknown field "));
    }
  }
  return errors;
}
