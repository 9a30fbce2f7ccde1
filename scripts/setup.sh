#!/usr/bin/env bash
# Installs every Debian 12 package fcp needs to build, test and run. Idempotent: packages already
# present are left alone, and apt is not touched at all when nothing is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libabsl-dev libprotobuf-dev protobuf-compiler
  libgrpc++-dev protobuf-compiler-grpc prometheus-cpp-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libgloo-dev libmetis-dev
  python3 python3-matplotlib python3-grpcio python3-protobuf
  python3-torch python3-numpy  # fcp_torch (client/python) and its tests: torch >= 1.13, CPU
  prometheus  # promtool: metric-name checks on a live scrape
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer + ASan/UBSan runtimes
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  "$(dirname "$0")/setup_deploy_tools.sh"  # deploy/dashboard test tools (block at the end)
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

# --- deploy, Dockerfile and dashboard tests (tests/deploy): yamllint, node packages, kubectl -----
"$(dirname "$0")/setup_deploy_tools.sh"
