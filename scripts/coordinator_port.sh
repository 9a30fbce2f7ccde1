#!/usr/bin/env bash
# Waits (up to 10 s) for an fcp-coordinator started with --port 0 to log its port, and prints it.
#   port=$(scripts/coordinator_port.sh LOG PID)   # LOG: the coordinator's stdout; PID: its process
# Exits 1 (the log on stderr) if the process ends first or logs no port in time.
set -euo pipefail
log=$1
pid=$2
for _ in $(seq 100); do
  port=$(sed -n 's/.*serving fcp.v1.Planner on port \([0-9]*\).*/\1/p' "$log")
  if [ -n "$port" ]; then
    echo "$port"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
echo "fcp-coordinator did not start:" >&2
cat "$log" >&2
exit 1
