// Offline checks of the Dockerfile and .dockerignore (no Docker engine here: nothing is built).
//
//   node check_dockerfile.mjs --kubectl kubectl --version 0.1.0 --binary-dir build \
//     --target-file fcp-coordinator=build/service/fcp-coordinator --target-file fcp=... \
//     [--target-file fcp-worker=...] --coordinator-bin build/service/fcp-coordinator
//     [--sanitized]   the binaries are a -fsanitize build (scripts/test.sh --sanitize): their
//                     sanitizer runtimes (libasan, libubsan, libtsan, liblsan) are not asked of the
//                     image, whose build stages compile without sanitizers
//   node check_dockerfile.mjs --configure DIR     # the build stages' cmake configure, for real
//   (--dockerfile PATH / --dockerignore PATH check other files: dockerfile_selftest.mjs)
//
// Checks: dockerfile-utils' linter; stages and pinned base images (no :latest; Debian 12 build
// for the Debian 12 slim runtime, CUDA devel and runtime of one release); runtime stages run
// as a numeric non-root USER with an exec-form ENTRYPOINT and EXPOSE the ports the Kubernetes
// manifests use; apt hygiene; the binaries copied are the CMake targets' output paths; every
// Debian package named exists in Debian 12 and the build packages are setup.sh's; the
// coordinator image installs the packages owning every shared library `ldd` lists for the
// built fcp-coordinator; .dockerignore keeps build trees out and every CMake source in.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import dockerignore from "@balena/dockerignore";
import { DockerfileParser } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";
import { render } from "./lib/k8s.mjs";
import { Report, parseFlags } from "./lib/report.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const argv = process.argv.slice(2);
const args = parseFlags(argv);
const text = readFileSync(args.get("dockerfile") ?? join(root, "Dockerfile"), "utf8");
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();

const unquote = (s) => String(s ?? "").replace(/^"(.*)"$/s, "$1");
// Global ARG defaults (before the first FROM).
const firstFrom = dockerfile.getFROMs()[0]?.getRange().start.line ?? Infinity;
const globalArgs = new Map();
for (const i of instructions) {
  if (i.getKeyword() === "ARG" && i.getRange().start.line < firstFrom && i.getProperty()) {
    globalArgs.set(i.getProperty().getName(), unquote(i.getProperty().getValue()));
  }
}
const expand = (s) => String(s).replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (m, n) => globalArgs.get(n) ?? m);

// Stages: name, resolved base image, instructions.
const froms = dockerfile.getFROMs();
const stages = froms.map((f, k) => {
  const start = f.getRange().start.line;
  const end = k + 1 < froms.length ? froms[k + 1].getRange().start.line : Infinity;
  return {
    name: f.getBuildStage(),
    image: expand(f.getImage()),
    instructions: instructions.filter((i) => i.getRange().start.line > start && i.getRange().start.line < end),
  };
});
const stage = (name) => stages.find((s) => s.name === name);
const runText = (i) => i.getRawArgs ? i.getRawArgs() : i.getArguments().map((a) => a.getValue()).join(" ");

if (args.has("configure")) {
  // The build stages' cmake configure, run here: CMAKE_FLAGS are accepted and every target the
  // Dockerfile builds exists in this project.
  const report = new Report("dockerfile_cmake_configure");
  const dir = args.get("configure");
  mkdirSync(dir, { recursive: true });
  const flags = globalArgs.get("CMAKE_FLAGS").split(/\s+/).filter(Boolean);
  let ok = true;
  try {
    execFileSync("cmake", ["-S", root, "-B", dir, ...flags], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  } catch (e) {
    ok = false;
    report.fail(`cmake -S . -B ${dir} ${flags.join(" ")} fails:\n${e.stdout}\n${e.stderr}`);
  }
  report.check(ok, `cmake configures with the Dockerfile's CMAKE_FLAGS (${flags.join(" ")})`);
  if (ok) {
    const help = execFileSync("cmake", ["--build", dir, "--target", "help"], { encoding: "utf8" });
    const targets = new Set(help.split("\n").map((l) => l.replace(/^\.\.\.\s*/, "").replace(/:.*$/, "").trim()));
    for (const s of stages) {
      for (const i of s.instructions.filter((x) => x.getKeyword() === "RUN")) {
        for (const m of runText(i).matchAll(/--target((?:\s+[A-Za-z0-9_.+-]+)+)/g)) {
          for (const t of m[1].trim().split(/\s+/)) {
            if (!targets.has(t) && t === "fcp-worker" && args.get("require_worker") !== "yes") {
              console.log(`NOT CHECKED: stage ${s.name} builds ${t}, which this project does not define yet ` +
                "(-DFCP_REQUIRE_WORKER=ON makes that a failure)");
              continue;
            }
            report.check(targets.has(t), `stage ${s.name}: target ${t} exists with the image's CMAKE_FLAGS`);
          }
        }
      }
    }
  }
  report.finish();
}

const report = new Report("dockerfile_policy");

// 1. The linter.
const diagnostics = lintDockerfile(text);
report.check(diagnostics.length === 0, "dockerfile-utils finds no problem" +
  diagnostics.map((d) => `\n  line ${d.range.start.line + 1}: ${d.message}`).join(""));

// 2. Stages and base images.
report.check(JSON.stringify(stages.map((s) => s.name)) ===
  JSON.stringify(["build-debian", "build-cuda", "coordinator", "worker"]),
  `stages build-debian, build-cuda, coordinator, worker (got ${stages.map((s) => s.name).join(", ")})`);
for (const s of stages) {
  const m = /^([a-z0-9./_-]+)(?::([A-Za-z0-9._-]+))?(?:@(sha256:[0-9a-f]{64}))?$/.exec(s.image);
  report.check(m && (m[2] || m[3]), `stage ${s.name}: base image ${s.image} has a tag or digest`);
  report.check(m && m[2] !== "latest", `stage ${s.name}: base image ${s.image} is not :latest`);
  report.check(!/\$/.test(s.image), `stage ${s.name}: base image ${s.image} is fully resolved by global ARGs`);
}
const img = (name) => stage(name)?.image ?? "";
const debBuild = /^debian:(12(?:\.\d+)?)$/.exec(img("build-debian"));
const debRun = /^debian:(12(?:\.\d+)?)-slim$/.exec(img("coordinator"));
report.check(debBuild, `build-debian builds on Debian 12 (got ${img("build-debian")})`);
report.check(debRun, `coordinator runs on Debian 12 slim (got ${img("coordinator")})`);
report.check(debBuild && debRun && debBuild[1] === debRun[1], "build-debian and coordinator use the same Debian release");
const cudaDevel = /^nvidia\/cuda:(\d+\.\d+\.\d+)-devel-(ubuntu\d+\.\d+)$/.exec(img("build-cuda"));
const cudaRun = /^nvidia\/cuda:(\d+\.\d+\.\d+)-runtime-(ubuntu\d+\.\d+)$/.exec(img("worker"));
report.check(cudaDevel, `build-cuda builds on a CUDA devel image (got ${img("build-cuda")})`);
report.check(cudaRun, `worker runs on a CUDA runtime image (got ${img("worker")})`);
report.check(cudaDevel && cudaRun && cudaDevel[1] === cudaRun[1] && cudaDevel[2] === cudaRun[2],
  "build-cuda and worker use the same CUDA release and OS");
report.check(!/cuda/i.test(img("coordinator")), "the coordinator image has no CUDA");

// 3. Instructions everywhere: apt hygiene, no ADD, COPY --from earlier stages.
const stageNames = stages.map((s) => s.name);
for (const [k, s] of stages.entries()) {
  for (const i of s.instructions) {
    const line = i.getRange().start.line + 1;
    report.check(i.getKeyword() !== "ADD", `line ${line}: COPY instead of ADD`);
    if (i.getKeyword() === "RUN") {
      const run = runText(i);
      report.check(!/\bsudo\b/.test(run), `line ${line}: no sudo`);
      if (/apt-get install/.test(run)) {
        report.check(/apt-get update/.test(run), `line ${line}: apt-get update in the same RUN as install`);
        report.check(/--no-install-recommends/.test(run), `line ${line}: apt-get install --no-install-recommends`);
        report.check(/-y\b/.test(run), `line ${line}: apt-get install -y`);
        report.check(/rm -rf \/var\/lib\/apt\/lists\/\*/.test(run), `line ${line}: removes /var/lib/apt/lists`);
      }
      report.check(!/apt-get upgrade|dist-upgrade/.test(run), `line ${line}: no apt-get upgrade (pin the base image)`);
    }
    if (i.getKeyword() === "COPY" && i.getFromFlag?.()) {
      const from = i.getFromFlag().getValue();
      report.check(stageNames.indexOf(from) >= 0 && stageNames.indexOf(from) < k,
        `line ${line}: COPY --from=${from} names an earlier stage`);
    }
  }
}

// 4. Runtime stages.
const project = readFileSync(join(root, "CMakeLists.txt"), "utf8");
const cmakeVersion = /project\(\s*fcp\s+VERSION\s+([0-9.]+)/.exec(project)?.[1];
report.check(globalArgs.get("FCP_VERSION") === cmakeVersion,
  `ARG FCP_VERSION (${globalArgs.get("FCP_VERSION")}) is the CMake project version (${cmakeVersion})`);
const k8s = render(args.get("kubectl") ?? "kubectl", join(root, "deploy/overlays/dev"));
// The pods of each image: the coordinator image runs Deployment/fcp-coordinator and
// Deployment/fcp-rendezvous; the worker image the example Job.
const imageOf = (o) => String(o.spec?.template?.spec?.containers?.[0]?.image ?? "").split("@")[0].replace(/:[^/:]+$/, "");
const podsOf = {
  coordinator: k8s.filter((o) => o.kind === "Deployment" && /(^|\/)fcp-coordinator$/.test(imageOf(o))),
  worker: k8s.filter((o) => o.kind === "Job"),
};
report.check(podsOf.coordinator.length === 2, `deploy/ runs the coordinator image in 2 Deployments (got ${podsOf.coordinator.length})`);
report.check(podsOf.worker.length === 1, `deploy/ runs the worker image in the example Job (got ${podsOf.worker.length})`);
const ports = (o) => o.spec.template.spec.containers[0].ports.map((p) => p.containerPort).sort();
for (const list of Object.values(podsOf)) {
  for (const o of list.slice(1)) {
    report.check(JSON.stringify(ports(o)) === JSON.stringify(ports(list[0])),
      `${o.kind}/${o.metadata.name} has the container ports of ${list[0].kind}/${list[0].metadata.name} (same image)`);
    report.check(o.spec.template.spec.securityContext?.runAsUser === list[0].spec.template.spec.securityContext?.runAsUser,
      `${o.kind}/${o.metadata.name} has the runAsUser of ${list[0].kind}/${list[0].metadata.name} (same image)`);
  }
}
const k8sPorts = {
  coordinator: podsOf.coordinator[0] ? ports(podsOf.coordinator[0]) : [],
  worker: podsOf.worker[0] ? ports(podsOf.worker[0]) : [],
};
const k8sUser = {
  coordinator: podsOf.coordinator[0]?.spec.template.spec.securityContext?.runAsUser,
  worker: podsOf.worker[0]?.spec.template.spec.securityContext?.runAsUser,
};
const expectedFrom = { coordinator: "build-debian", worker: "build-cuda" };
for (const name of ["coordinator", "worker"]) {
  const s = stage(name);
  if (!s) continue;
  const of = (kw) => s.instructions.filter((i) => i.getKeyword() === kw);
  const entry = of("ENTRYPOINT");
  report.check(entry.length === 1, `${name}: one ENTRYPOINT`);
  const entryText = entry[0] ? runText(entry[0]).trim() : "";
  let entryJson = null;
  try { entryJson = JSON.parse(entryText); } catch { /* shell form */ }
  report.check(Array.isArray(entryJson) && entryJson.length > 0 && entryJson[0] === `/usr/local/bin/fcp-${name}`,
    `${name}: ENTRYPOINT is exec form ["/usr/local/bin/fcp-${name}", ...] (got ${entryText})`);
  for (const c of of("CMD")) {
    let cmd = null;
    try { cmd = JSON.parse(runText(c).trim()); } catch { /* shell form */ }
    report.check(Array.isArray(cmd), `${name}: CMD is exec form`);
  }
  const users = of("USER");
  const user = users.length ? runText(users[users.length - 1]).trim() : "";
  const u = /^(\d+)(?::(\d+))?$/.exec(user);
  report.check(u && Number(u[1]) > 0 && (u[2] === undefined || Number(u[2]) > 0), `${name}: USER is a numeric non-root uid:gid (got "${user}")`);
  report.check(u && Number(u[1]) === k8sUser[name], `${name}: USER uid is the runAsUser of deploy/ (${k8sUser[name]})`);
  const lastUser = users.length ? users[users.length - 1].getRange().start.line : Infinity;
  report.check(of("RUN").every((i) => i.getRange().start.line < lastUser), `${name}: nothing RUNs after USER`);
  const exposed = of("EXPOSE").flatMap((i) => i.getArguments().map((a) => Number(a.getValue().replace(/\/tcp$/, ""))));
  report.check(JSON.stringify([...exposed].sort()) === JSON.stringify([...k8sPorts[name]].sort()),
    `${name}: EXPOSE ${exposed.join(" ")} = the container ports in deploy/ (${k8sPorts[name].join(" ")})`);
  report.check(of("HEALTHCHECK").length === 1, `${name}: HEALTHCHECK stated (NONE: Kubernetes probes gRPC health)`);
  report.check(of("LABEL").some((i) => /org\.opencontainers\.image\.version="\$\{FCP_VERSION\}"/.test(runText(i))),
    `${name}: LABEL org.opencontainers.image.version="\${FCP_VERSION}"`);
  for (const c of of("COPY")) {
    report.check(c.getFromFlag?.()?.getValue() === expectedFrom[name],
      `${name}: copies only from ${expectedFrom[name]} (line ${c.getRange().start.line + 1})`);
  }
}

// 5. The binaries: `--target X` builds X, whose output is where the stage copies it from.
const binaryDir = args.get("binary_dir");
const targetFiles = new Map(argv.flatMap((a, k) => (a === "--target-file" ? [argv[k + 1].split("=")] : [])));
for (const s of stages.filter((x) => x.name.startsWith("build-"))) {
  for (const i of s.instructions.filter((x) => x.getKeyword() === "RUN")) {
    const run = runText(i);
    for (const m of run.matchAll(/--target((?:\s+[A-Za-z0-9_.+-]+)+)/g)) {
      for (const t of m[1].trim().split(/\s+/)) {
        if (!targetFiles.has(t)) {
          if (t === "fcp-worker" && args.get("require_worker") !== "yes") {
            console.log(`NOT CHECKED: stage ${s.name} builds ${t}, which is not a target of this build ` +
              "(-DFCP_REQUIRE_WORKER=ON makes that a failure)");
          } else {
            report.fail(`stage ${s.name}: target ${t} exists in this build`);
          }
          continue;
        }
        const rel = relative(binaryDir, targetFiles.get(t));
        report.check(run.includes(`/build/${rel}`), `stage ${s.name}: installs target ${t} from /build/${rel} (its CMake output path)`);
      }
    }
  }
}

// 6. Debian packages: real bookworm names; the build stages install setup.sh's packages.
const installed = new Set(execFileSync("dpkg-query", ["-W", "-f=${Package}\t${Status}\n"], { encoding: "utf8" })
  .split("\n").filter((l) => l.endsWith("install ok installed")).map((l) => l.split("\t")[0]));
const dpkgInstalled = (p) => installed.has(p);
const setupPackages = new Set((/PACKAGES=\(([\s\S]*?)\)/.exec(readFileSync(join(root, "scripts/setup.sh"), "utf8"))?.[1] ?? "")
  .split("\n").map((l) => l.replace(/#.*/, "")).join(" ").split(/\s+/).filter(Boolean));
const buildPackages = (globalArgs.get("BUILD_PACKAGES") ?? "").split(/\s+/).filter(Boolean);
report.check(buildPackages.length > 0, "ARG BUILD_PACKAGES lists the build packages");
for (const p of buildPackages) {
  report.check(setupPackages.has(p), `build package ${p} is one of scripts/setup.sh's (what CI builds with)`);
  report.check(dpkgInstalled(p), `build package ${p} is a Debian 12 package (installed here)`);
}
const coordinatorRun = stage("coordinator").instructions.filter((i) => i.getKeyword() === "RUN").map(runText).join(" ");
const runtimePackages = (/apt-get install -y --no-install-recommends\s+([\s\S]*?)\s*&&/.exec(coordinatorRun)?.[1] ?? "")
  .split(/\s+/).filter(Boolean);
report.check(runtimePackages.length > 0, "the coordinator stage installs its runtime packages");
for (const p of runtimePackages) report.check(dpkgInstalled(p), `runtime package ${p} is a Debian 12 package (installed here)`);

// The coordinator's shared libraries all come from packages the image installs (or their
// dependencies, or the packages of priority "required" that every Debian image has).
const coordinatorBin = args.get("coordinator_bin");
if (report.check(coordinatorBin, "--coordinator-bin given")) {
  const ldd = execFileSync("ldd", [coordinatorBin], { encoding: "utf8" });
  report.check(!/not found/.test(ldd), "ldd finds every library of fcp-coordinator");
  const sanitizerRuntime = /\/lib(asan|ubsan|tsan|lsan)\.so[.\d]*$/;
  const linked = [...ldd.matchAll(/=>\s+(\/\S+)/g)].map((m) => m[1]);
  const sanitized = args.get("sanitized") === "true";
  report.check(sanitized || !linked.some((l) => sanitizerRuntime.test(l)),
    "fcp-coordinator links no sanitizer runtime (or --sanitized says it is an instrumented build)");
  const libs = linked.filter((l) => !(sanitized && sanitizerRuntime.test(l)));
  // One dpkg-query for every path (usrmerge: a library may be registered under /lib or /usr/lib).
  const candidates = (file) => {
    let real = file;
    try { real = realpathSync(file); } catch { /* keep the path */ }
    return [...new Set([file, real].flatMap((f) => [f, f.replace(/^\/usr\/lib\//, "/lib/"), f.replace(/^\/lib\//, "/usr/lib/")]))];
  };
  const paths = libs.flatMap(candidates);
  const search = spawnSync("dpkg-query", ["-S", ...paths], { encoding: "utf8" }).stdout;
  const ownerOf = new Map();
  for (const line of search.split("\n")) {
    const m = /^([^:,\s]+)(?::[a-z0-9]+)?: (\/.*)$/.exec(line);
    if (m) ownerOf.set(m[2], m[1]);
  }
  const owner = (file) => candidates(file).map((f) => ownerOf.get(f)).find(Boolean) ?? null;
  const dependsOf = new Map();
  const priorityOf = new Map();
  for (const line of execFileSync("dpkg-query", ["-W", "-f=${Package}\t${Priority}\t${Depends}, ${Pre-Depends}\n"], { encoding: "utf8" }).split("\n")) {
    const [name, priority, deps] = line.split("\t");
    if (!name) continue;
    priorityOf.set(name, priority);
    dependsOf.set(name, (deps ?? "").split(",").map((d) => d.split("|")[0].trim().split(/[\s:(]/)[0]).filter(Boolean));
  }
  const depends = (p) => dependsOf.get(p) ?? [];
  const required = [...priorityOf].filter(([, prio]) => prio === "required").map(([name]) => name);
  const present = new Set();
  const queue = [...runtimePackages, ...required];
  while (queue.length) {
    const p = queue.pop();
    if (present.has(p)) continue;
    present.add(p);
    queue.push(...depends(p));
  }
  report.check(libs.length > 0, `ldd lists fcp-coordinator's libraries (${libs.length})`);
  const owners = new Map();
  for (const lib of libs) owners.set(lib, owner(lib));
  for (const [lib, p] of owners) {
    report.check(p !== null && present.has(p), `${lib} (package ${p}) is in the coordinator image`);
  }
}

// 7. .dockerignore.
const ignore = dockerignore({ ignorecase: false }).add(readFileSync(args.get("dockerignore") ?? join(root, ".dockerignore"), "utf8"));
const sent = (path) => !ignore.ignores(path);
const git = (cmdArgs) => execFileSync("git", ["-C", root, ...cmdArgs], { encoding: "utf8" }).split("\n").filter(Boolean);
const subdirs = [...project.matchAll(/^\s*add_subdirectory\((\w+)\)/gm)].map((m) => m[1])
  .filter((d) => !["tests", "bench"].includes(d));  // FCP_BUILD_TESTS / FCP_BUILD_BENCH are OFF
report.check(subdirs.length > 0, `CMakeLists.txt adds source folders (${subdirs.join(", ")})`);
const needed = git(["ls-files", "--", "CMakeLists.txt", "cmake", ...subdirs]);
const missing = needed.filter((f) => !sent(f));
report.check(missing.length === 0, `every tracked file of CMakeLists.txt, cmake/, ${subdirs.join("/, ")}/ is in the build context` +
  (missing.length ? ` (left out: ${missing.slice(0, 5).join(", ")})` : ""));
for (const i of instructions.filter((x) => x.getKeyword() === "COPY" && !x.getFromFlag?.())) {
  const src = i.getArguments()[0]?.getValue();
  report.check(src === "." || sent(src), `COPY ${src}: in the build context`);
}
const walk = (dir, depth) => {
  if (depth > 3) return [];
  let entries = [];
  try { entries = readdirSync(join(root, dir)); } catch { return []; }
  return entries.flatMap((e) => {
    const p = dir ? `${dir}/${e}` : e;
    try { return statSync(join(root, p)).isDirectory() ? [p + "/", ...walk(p, depth + 1)] : [p]; } catch { return []; }
  });
};
const everything = walk("", 0);
for (const pattern of [/^build[^/]*\//, /^\.git\//, /node_modules\//, /^deploy\//, /^dashboards\//, /^docs\//, /^tests\//, /^\.cache\//]) {
  const leaked = everything.filter((p) => pattern.test(p) && sent(p.replace(/\/$/, "")));
  report.check(leaked.length === 0, `no ${pattern.source} path reaches the build context` + (leaked.length ? ` (${leaked.slice(0, 3).join(", ")})` : ""));
}
report.finish();
