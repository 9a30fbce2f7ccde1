// The Dockerfile checks must catch real mistakes: this runs check_dockerfile.mjs on the real
// Dockerfile and .dockerignore (which pass) and on copies with one mistake each, and requires a
// failure naming it.
//
//   node dockerfile_selftest.mjs -- <the arguments of check_dockerfile.mjs>
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Report } from "./lib/report.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const passArgs = process.argv.slice(process.argv.indexOf("--") + 1);
const report = new Report("dockerfile_selftest");
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
const dockerignore = readFileSync(join(root, ".dockerignore"), "utf8");
const dir = mkdtempSync(join(tmpdir(), "fcp-dockerfile-"));

function run(df, di) {
  writeFileSync(join(dir, "Dockerfile"), df);
  writeFileSync(join(dir, "dockerignore"), di);
  const r = spawnSync(process.execPath, [join(here, "check_dockerfile.mjs"), ...passArgs,
    "--dockerfile", join(dir, "Dockerfile"), "--dockerignore", join(dir, "dockerignore")], { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const replace = (from, to) => (df) => {
  if (!df.includes(from)) throw new Error(`mutation target not found: ${from}`);
  return df.replace(from, to);
};
// [mistake, change to the Dockerfile, change to .dockerignore, text the failure must contain]
const mistakes = [
  ["runs as root", replace("USER 65532:65532\nEXPOSE 50051", "USER root\nEXPOSE 50051"), null, "coordinator: USER is a numeric non-root uid:gid"],
  ["named user", replace("USER 65532:65532\nEXPOSE 9400", "USER fcp\nEXPOSE 9400"), null, "worker: USER is a numeric non-root uid:gid"],
  ["uid differs from the pods' runAsUser", replace("USER 65532:65532\nEXPOSE 9400", "USER 1000:1000\nEXPOSE 9400"), null, "worker: USER uid is the runAsUser of deploy/"],
  ["shell-form ENTRYPOINT", replace('ENTRYPOINT ["/usr/local/bin/fcp-coordinator"]', "ENTRYPOINT /usr/local/bin/fcp-coordinator"), null, "ENTRYPOINT is exec form"],
  ["base image :latest", replace("ARG DEBIAN_RUNTIME_IMAGE=debian:12.11-slim", "ARG DEBIAN_RUNTIME_IMAGE=debian:latest"), null, "is not :latest"],
  ["untagged base image", replace("ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04", "ARG CUDA_RUNTIME_IMAGE=nvidia/cuda"), null, "has a tag or digest"],
  ["runtime and devel CUDA differ", replace("nvidia/cuda:12.8.1-runtime-ubuntu24.04", "nvidia/cuda:12.6.3-runtime-ubuntu24.04"), null, "same CUDA release and OS"],
  ["CUDA in the coordinator image", replace("ARG DEBIAN_RUNTIME_IMAGE=debian:12.11-slim", "ARG DEBIAN_RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04"), null, "coordinator runs on Debian 12 slim"],
  ["Debian build and runtime differ", replace("ARG DEBIAN_BUILD_IMAGE=debian:12.11", "ARG DEBIAN_BUILD_IMAGE=debian:12.9"), null, "same Debian release"],
  ["recommends installed", replace("install -y --no-install-recommends \\\n       libabsl", "install -y \\\n       libabsl"), null, "--no-install-recommends"],
  ["apt lists kept", replace("libprotobuf32 libre2-9 libssl3 zlib1g \\\n    && rm -rf /var/lib/apt/lists/*", "libprotobuf32 libre2-9 libssl3 zlib1g"), null, "removes /var/lib/apt/lists"],
  ["a runtime library missing", replace(" libgrpc++1.51 ", " "), null, "(package libgrpc++1.51) is in the coordinator image"],
  ["a misspelt runtime package", replace("libprotobuf32", "libprotobuf23"), null, "runtime package libprotobuf23 is a Debian 12 package"],
  ["a build package CI does not install", replace("libmetis-dev\"", "libmetis-dev libboost-dev\""), null, "build package libboost-dev is one of scripts/setup.sh's"],
  ["EXPOSE differs from the manifests", replace("EXPOSE 50051 9464", "EXPOSE 50051 9090"), null, "coordinator: EXPOSE"],
  ["binary copied from the wrong path", replace("/build/service/fcp-coordinator /build/client/fcp", "/build/fcp-coordinator /build/client/fcp"), null, "installs target fcp-coordinator from /build/service/fcp-coordinator"],
  ["ADD instead of COPY", replace("COPY . .\nRUN cmake -S . -B /build ${CMAKE_FLAGS} \\\n    && cmake --build /build --target fcp-coordinator", "ADD . .\nRUN cmake -S . -B /build ${CMAKE_FLAGS} \\\n    && cmake --build /build --target fcp-coordinator"), null, "COPY instead of ADD"],
  ["COPY from a later stage", replace("COPY --from=build-cuda /out/lib/", "COPY --from=worker /out/lib/"), null, "COPY --from=worker names an earlier stage"],
  ["version label gone", replace('      org.opencontainers.image.version="${FCP_VERSION}"\n# The shared', "# The shared"), null, "coordinator: LABEL org.opencontainers.image.version"],
  ["image version not the project's", replace("ARG FCP_VERSION=0.1.0", "ARG FCP_VERSION=0.2.0"), null, "is the CMake project version"],
  ["a misspelt flag (lint)", replace("COPY --from=build-debian /out/bin/fcp-coordinator", "COPY --form=build-debian /out/bin/fcp-coordinator"), null, "dockerfile-utils finds no problem"],
  ["a source folder left out of the context", null, (di) => di.replace("!kernels/\n", ""), "is in the build context"],
  ["build trees sent", null, (di) => di + "!build*/\n", "no ^build[^/]*\\/ path reaches the build context"],
];

const baseline = run(dockerfile, dockerignore);
report.check(baseline.status === 0, `the real Dockerfile and .dockerignore pass (${baseline.out.split("\n").filter((l) => l.startsWith("FAIL")).join("; ")})`);
for (const [what, df, di, text] of mistakes) {
  const r = run(df ? df(dockerfile) : dockerfile, di ? di(dockerignore) : dockerignore);
  const failures = r.out.split("\n").filter((l) => l.startsWith("FAIL"));
  report.check(r.status !== 0 && failures.some((l) => l.includes(text)),
    `${what}: reported as "...${text}..." (got: ${failures.join("; ") || "nothing"})`);
}
rmSync(dir, { recursive: true, force: true });
report.finish();
