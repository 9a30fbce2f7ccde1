#!/usr/bin/env bash
# Prints the folder holding workloads/ (the repo's shared/ if present, else ../shared beside it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
for d in "${FCP_SHARED_DIR:-}" "$root/shared" "$root/../shared"; do
  if [ -n "$d" ] && [ -f "$d/workloads/wikipedia.lengths" ]; then
    cd "$d" && pwd
    exit 0
  fi
done
echo "fcp: cannot find workloads/wikipedia.lengths (set FCP_SHARED_DIR)" >&2
exit 2
