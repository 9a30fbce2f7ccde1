#!/usr/bin/env bash
# Installs what the deploy/dashboard tests (tests/deploy) need, and checks what cannot be
# installed from Debian. Called by scripts/setup.sh; idempotent, and quick when all is present.
#   - yamllint, python3-yaml (Debian); node + npm (Debian's nodejs/npm when there is no node)
#   - the Node packages pinned in tests/deploy/package-lock.json: `npm ci` into
#     tests/deploy/node_modules (git-ignored), redone only when the lock file changes
#   - kubectl (for `kubectl kustomize`): Debian 12 has no package for it, so it must already be
#     installed (the project's machine image has /usr/bin/kubectl); its absence is an error
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

fail() {
  echo "setup (deploy tools): $*" >&2
  exit 1
}

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup (deploy tools): installing $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq ||
    fail "apt-get update failed; cannot install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" ||
    fail "apt-get install $* failed"
}

missing=()
command -v yamllint >/dev/null || missing+=(yamllint)
dpkg-query -W -f='${Status}' python3-yaml 2>/dev/null | grep -q "install ok installed" ||
  missing+=(python3-yaml)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi

command -v npm >/dev/null ||
  fail "node is installed but npm is not: install npm from the same source as node ($(command -v node))"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "node $(node --version) is too old: tests/deploy needs node >= 18"

command -v kubectl >/dev/null ||
  fail "kubectl not found: the manifest tests render deploy/ with 'kubectl kustomize'. Debian 12 has no kubectl package: install it from the Kubernetes apt repository (the project's machine image ships /usr/bin/kubectl)"
kubectl kustomize --help >/dev/null 2>&1 ||
  fail "'kubectl kustomize' does not work with $(command -v kubectl) (kubectl >= 1.14 needed)"

deploy_tests="$root/tests/deploy"
want=$(sha256sum "$deploy_tests/package-lock.json" | cut -d' ' -f1)
stamp="$deploy_tests/node_modules/.fcp-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup (deploy tools): npm ci in tests/deploy"
  (cd "$deploy_tests" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
    fail "npm ci in tests/deploy failed (is the npm registry reachable?)"
  echo "$want" >"$stamp"
fi
echo "setup (deploy tools): yamllint, node $(node --version), kubectl, tests/deploy/node_modules present"
