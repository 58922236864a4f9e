#!/usr/bin/env bash
# Stop the Kafka broker that scripts/kafka/start.sh started in DIR.
#
# Usage: scripts/kafka/stop.sh DIR
#   SIGTERM (controlled shutdown), wait up to EDGEHAUL_KAFKA_STOP_TIMEOUT
#   seconds (default 30), then SIGKILL. Idempotent: exits 0 if nothing runs.
#   DIR and its data are kept (delete it yourself if it was a temp dir).
set -euo pipefail

DIR="${1:?usage: stop.sh DIR}"
TIMEOUT="${EDGEHAUL_KAFKA_STOP_TIMEOUT:-30}"
PIDFILE="$DIR/kafka.pid"

[[ -f "$PIDFILE" ]] || exit 0
PID="$(cat "$PIDFILE" 2>/dev/null || true)"

is_our_broker() { # still alive and really the Kafka broker (not a recycled pid)
  kill -0 "$PID" 2>/dev/null || return 1
  [[ -r "/proc/$PID/cmdline" ]] || return 0   # no procfs: trust the pid file
  tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

if [[ "$PID" =~ ^[0-9]+$ ]] && is_our_broker; then
  kill -TERM "$PID" 2>/dev/null || true
  deadline=$(( $(date +%s) + TIMEOUT ))
  while is_our_broker && (( $(date +%s) < deadline )); do sleep 0.1; done
  if is_our_broker; then
    echo "stop.sh: broker $PID did not stop in ${TIMEOUT}s, sending SIGKILL" >&2
    kill -KILL "$PID" 2>/dev/null || true
    for _ in $(seq 1 50); do is_our_broker || break; sleep 0.1; done
  fi
fi
rm -f "$PIDFILE"
