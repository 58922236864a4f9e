#!/usr/bin/env bash
# The unit and the install scripts under a real, booted systemd: Debian 12 (bookworm, systemd 252,
# what a Raspberry Pi OS gateway runs) in systemd-nspawn. Installs this built checkout with
# scripts/install.sh inside and checks start and readiness, a QoS 1 publish, reloads, an invalid
# config and a missing secret (failed, no restart loop), the watchdog, an upgrade, uninstall, --purge.
#
#   test/systemd/run.sh        as root, after npm ci && npm run build; needs debootstrap and
#                              systemd-nspawn (Debian packages debootstrap, systemd-container)
#
# The rootfs is debootstrapped once from Debian's packages (about 2 minutes) and cached in
# ${EDGEHAUL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgehaul}/debian; each run boots it under a
# throw-away overlay, so the cache stays pristine. After the first run nothing is downloaded: node
# (and npm) come from this machine and the checkout is bound in read-only. The container has its
# own network namespace (loopback only): Kafka is unreachable there, so events stay buffered.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${EDGEHAUL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgehaul}/debian"
# bump the suffix when the package list changes: the cached rootfs is then rebuilt
# libsasl2-2 libssl3 libzstd1 liblz4-1: what librdkafka, compiled against Debian's libraries, loads
PACKAGES=systemd,systemd-sysv,dbus,iproute2,libsasl2-2,libssl3,libzstd1,liblz4-1
ROOTFS="$CACHE/rootfs-bookworm-2"
T0=$(date +%s)

say() { printf '[systemd-test %3ds] %s\n' "$(($(date +%s) - T0))" "$*"; }
die() { say "FAIL: $*" >&2; dump; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (debootstrap, mount, systemd-nspawn)" >&2; exit 1; }
for tool in debootstrap systemd-nspawn nsenter node; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: $tool is missing (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done
{ [ -f "$SRC/dist/src/cli/main.js" ] && [ -d "$SRC/node_modules/mqtt" ]; } || { echo "run.sh: build first: npm ci && npm run build" >&2; exit 1; }

# --- the cached rootfs --------------------------------------------------------------------
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
if [ ! -x "$ROOTFS/lib/systemd/systemd" ]; then
  say "debootstrap bookworm into $ROOTFS (first run only)"
  rm -rf "$ROOTFS.new"
  # DEBIAN_MIRROR: a local mirror; by default debootstrap's own
  if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$ROOTFS.new" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$CACHE/debootstrap.log" 2>&1; then
    tail -n 20 "$CACHE/debootstrap.log" >&2
    echo "run.sh: debootstrap failed (log: $CACHE/debootstrap.log)" >&2
    exit 1
  fi
  # the container's journal stays in memory; nothing to clean between runs
  rm -rf "$ROOTFS.new/var/cache/apt/archives/"*.deb
  mv "$ROOTFS.new" "$ROOTFS"
  say "rootfs ready"
fi
flock -u 9

# --- boot it under an overlay -------------------------------------------------------------
WORK="$(mktemp -d "$CACHE/run.XXXXXX")"
NSPAWN_PID=""
LEADER=""
cleanup() {
  local rc=$?
  # nothing in the container is kept: its PID 1 killed takes everything in it along, and nspawn exits
  if [ -n "$NSPAWN_PID" ] && [ -z "$LEADER" ]; then leader || true; fi
  if [ -n "$LEADER" ]; then kill -KILL "$LEADER" 2>/dev/null || true; fi
  if [ -n "$NSPAWN_PID" ]; then
    local deadline=$(($(date +%s) + 20))
    while kill -0 "$NSPAWN_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
  fi
  local t=$SECONDS
  if mountpoint -q "$WORK/root"; then umount "$WORK/root" || umount -l "$WORK/root"; fi
  rm -rf "$WORK"
  say "cleanup took $((SECONDS - t))s"
  say "done, exit $rc"
}
trap cleanup EXIT

mkdir -p "$WORK/upper" "$WORK/work" "$WORK/root"
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$WORK/upper,workdir=$WORK/work" "$WORK/root"
NODE_BIN="$(readlink -f "$(command -v node)")"
binds=(--bind-ro="$NODE_BIN:/usr/local/bin/node" --bind-ro="$SRC:/mnt/edgehaul")
if command -v npm >/dev/null 2>&1; then
  # install.sh prunes the build-only packages with npm when there is one, as on a gateway
  NPM_DIR="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
  binds+=(--bind-ro="$NPM_DIR:/usr/local/lib/node_modules/npm")
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$WORK/root/usr/local/bin/npm"
fi
# --register=no: no machined here; --keep-unit: no transient scope (systemd is not PID 1 outside)
systemd-nspawn --quiet --register=no --keep-unit --private-network --boot --directory="$WORK/root" \
  --machine="edgehaul-ci-$$" --console=pipe "${binds[@]}" >"$WORK/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!

# poll COUNT-OF-SECONDS DESCRIPTION COMMAND...: run COMMAND until it succeeds, fail at the deadline
poll() {
  local secs=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$what: not within ${secs}s"
    sleep 0.2
  done
}
# the container's PID 1: the child of nspawn that became systemd (before that, it is nspawn's own fork)
leader() {
  local p
  for p in $(ps -o pid= --ppid "$NSPAWN_PID"); do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then LEADER=$p; return 0; fi
  done
  return 1
}
poll 20 "container started" leader
# a command inside the container (all its namespaces), with a clean environment
ct() { nsenter -t "$LEADER" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
dump() {
  [ -n "$LEADER" ] || return 0
  echo "--- systemctl status edgehaul" >&2
  ct systemctl status edgehaul --no-pager -n 0 >&2 || true
  echo "--- journal (last 40)" >&2
  ct journalctl -u edgehaul -o cat --no-pager -n 40 >&2 || true
}
booted() { local s; s="$(ct systemctl is-system-running 2>/dev/null)" || true; [ "$s" = running ] || [ "$s" = degraded ]; }
poll 60 "system booted" booted
say "booted $(ct systemctl --version | head -n1) in the container"
# a default route (on loopback: this namespace has nothing else) so the network figures have an interface
ct ip route add default dev lo

prop() { ct systemctl show -p "$1" --value edgehaul; }
is_state() { [ "$(prop ActiveState)" = "$1" ]; }
journal_count() { ct journalctl -u edgehaul -o cat --no-pager | grep -c -- "$1" || true; }
buffered() { # events in the buffer file, read by the service user as docs/operations.md says
  ct runuser -u edgehaul -- env STATE_DIRECTORY=/var/lib/edgehaul edgehaul inspect --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).total.events))'
}
indent() { sed 's/^/    /'; }
publish() { ct node /mnt/edgehaul/test/systemd/publish.mjs mqtt://127.0.0.1:1883 "$1" "$2"; }
CONF=/etc/edgehaul/edgehaul.yaml

# --- install, start, readiness ------------------------------------------------------------
say "install.sh"
out="$(ct bash /mnt/edgehaul/scripts/install.sh 2>&1)" || { echo "$out" >&2; die "install.sh failed"; }
indent <<<"$out"
grep -q 'service: started' <<<"$out" || die "install.sh did not start the service"
# Type=notify: systemctl start returned, so READY=1 arrived; the status line comes with it
is_state active || die "not active after install"
[ "$(prop SubState)" = running ] || die "SubState $(prop SubState)"
[[ "$(prop StatusText)" == "ingest mqtt://"* ]] || die "no READY status text: '$(prop StatusText)'"
[ "$(ct sh -c "command -v edgehaul")" = /usr/local/bin/edgehaul ] || die "no edgehaul command on PATH"
say "active (running), READY status '$(prop StatusText)'"

acked="$(publish ci/readiness 50)" || die "QoS 1 publish failed"
[ "$acked" = 50 ] || die "acknowledged $acked of 50"
[ "$(buffered)" = 50 ] || die "buffer holds $(buffered) events, expected 50"
say "50 QoS 1 publishes acknowledged and buffered (Kafka unreachable)"

# a user outside group edgehaul cannot read the config: status asks the default address
status="$(ct runuser -u nobody -- edgehaul status --json)" || die "edgehaul status as nobody failed"
iface="$(node -e 'const s=JSON.parse(process.argv[1]); console.log(s.system?.network?.iface ?? "null")' "$status")"
[ "$iface" = lo ] || die "network figures under the sandbox: iface '$iface' (status: $status)"
check="$(ct edgehaul check-config)" || die "check-config failed: $check"
grep -q 'buffer /var/lib/edgehaul/buffer.db' <<<"$check" || die "check-config reports another buffer: $check"
say "status as nobody ok (network iface lo), check-config: $check"

# --- reload -------------------------------------------------------------------------------
pid="$(prop MainPID)"
before="$(journal_count '"msg":"config reloaded')"
# (a shorter stop with Kafka out of reach also keeps the restarts below quick)
ct sed -i 's/^  timeout_secs: 15$/  timeout_secs: 3/' "$CONF"
ct systemctl reload edgehaul
reloaded() { [ "$(journal_count '"msg":"config reloaded')" -gt "$before" ]; }
poll 15 "valid reload applied" reloaded
ct journalctl -u edgehaul -o cat --no-pager | grep '"msg":"config reloaded' | tail -n1 | grep -q '"shutdown.timeout_secs"' || die "reload did not apply shutdown.timeout_secs"
[ "$(prop MainPID)" = "$pid" ] || die "reload restarted the process"
say "valid reload applied (same PID $pid)"

before="$(journal_count 'config reload rejected')"
ct sed -i '1i no_such_key: 1' "$CONF"
ct systemctl reload edgehaul
rejected() { [ "$(journal_count 'config reload rejected')" -gt "$before" ]; }
poll 15 "invalid reload rejected" rejected
is_state active || die "not active after an invalid reload"
[ "$(prop MainPID)" = "$pid" ] || die "an invalid reload restarted the process"
say "invalid reload rejected, still running (PID $pid)"

# --- invalid config: failed, no restart loop ----------------------------------------------
# watch_no_restart SECS: NRestarts must stay put and the unit failed (RestartSec=2: a loop shows at once)
watch_no_restart() {
  local n0 deadline
  n0="$(prop NRestarts)"
  deadline=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(prop NRestarts)" = "$n0" ] || die "restart loop: NRestarts $n0 -> $(prop NRestarts)"
    is_state failed || die "ActiveState $(prop ActiveState), expected failed"
    sleep 0.5
  done
}
code=0; out="$(ct edgehaul check-config 2>&1)" || code=$?
{ [ "$code" = 78 ] && grep -q 'no_such_key' <<<"$out"; } || die "check-config on an invalid config: exit $code, $out"
if ct systemctl restart edgehaul 2>/dev/null; then die "restart with an invalid config succeeded"; fi
poll 10 "unit failed" is_state failed
[ "$(prop ExecMainStatus)" = 78 ] || die "main process exit status $(prop ExecMainStatus), expected 78"
watch_no_restart 6
say "invalid config: failed, exit 78, NRestarts stays $(prop NRestarts)"

code=0; out="$(ct bash /mnt/edgehaul/scripts/install.sh 2>&1)" || code=$?
grep -q 'warning: /etc/edgehaul/edgehaul.yaml does not validate' <<<"$out" || { echo "$out" >&2; die "install.sh printed no config warning"; }
grep -q 'service: started\|service: restarted' <<<"$out" && { echo "$out" >&2; die "install.sh started the service with an invalid config"; }
is_state failed || die "install.sh with an invalid config: ActiveState $(prop ActiveState)"
say "install.sh with an invalid config: warned (exit $code), service not started"

# --- secrets: missing, then given with LoadCredential= (docs/install.md's "Secrets" step) -----------
ct sed -i '/^no_such_key: 1$/d' "$CONF"
ct sed -i 's/^  brokers: \["127.0.0.1:9092"\]$/  brokers: ["127.0.0.1:9092"]\n  sasl: { mechanism: plain, username: ci, password: { file: kafka-password } }/' "$CONF"
code=0; out="$(ct edgehaul check-config 2>&1)" || code=$?
{ [ "$code" = 78 ] && grep -q 'EH_ERR_CONFIG_SECRET' <<<"$out"; } || die "check-config with a missing secret: exit $code, $out"
ct systemctl reset-failed edgehaul
if ct systemctl start edgehaul 2>/dev/null; then die "start with a missing secret succeeded"; fi
poll 10 "unit failed" is_state failed
[ "$(prop ExecMainStatus)" = 78 ] || die "missing secret: exit status $(prop ExecMainStatus), expected 78"
watch_no_restart 5
say "missing secret: failed, exit 78, no restart loop"

ct mkdir -p /etc/systemd/system/edgehaul.service.d
printf '[Service]\nLoadCredential=kafka-password:/etc/edgehaul/credentials/kafka-password\n' | ct tee /etc/systemd/system/edgehaul.service.d/override.conf >/dev/null
ct systemctl daemon-reload
ct systemctl reset-failed edgehaul
if ct systemctl start edgehaul 2>/dev/null; then die "start with a missing credential file succeeded"; fi
poll 10 "unit failed" is_state failed
[ "$(prop ExecMainStatus)" = 243 ] || die "missing credential file: exit status $(prop ExecMainStatus), expected 243/CREDENTIALS"
watch_no_restart 5
say "credential file missing: failed, 243/CREDENTIALS, no restart loop"

printf 'not-a-real-password\n' | ct install -m 0600 /dev/stdin /etc/edgehaul/credentials/kafka-password
ct edgehaul check-config >/dev/null || die "check-config with the credential in place: $(ct edgehaul check-config 2>&1)"
ct systemctl reset-failed edgehaul
ct systemctl start edgehaul || die "start with the credential failed"
is_state active || die "not active with the credential"
say "credential given: active"

# --- watchdog -----------------------------------------------------------------------------
printf '[Service]\nWatchdogSec=3\nLimitCORE=0\n' | ct tee /etc/systemd/system/edgehaul.service.d/ci-watchdog.conf >/dev/null
ct systemctl daemon-reload
ct systemctl restart edgehaul
pid="$(prop MainPID)"
n0="$(prop NRestarts)"
ct sh -c "kill -STOP $pid"  # the shell's kill: no procps in the rootfs
restarted() { [ "$(prop NRestarts)" -gt "$n0" ] && is_state active && [ "$(prop MainPID)" != "$pid" ] && [ "$(prop MainPID)" != 0 ]; }
poll 30 "watchdog restart after SIGSTOP" restarted
# journald may write the line a moment after the restart: wait for it
watchdog_logged() { ct journalctl -u edgehaul --no-pager | grep -q 'Watchdog timeout'; }
poll 15 "the watchdog timeout in the journal" watchdog_logged
acked="$(publish ci/after-watchdog 10)" || die "publish after the watchdog restart failed"
[ "$acked" = 10 ] || die "acknowledged $acked of 10 after the watchdog restart"
say "watchdog: SIGSTOPped PID $pid killed and restarted as $(prop MainPID), publishes acknowledged"
ct rm /etc/systemd/system/edgehaul.service.d/ci-watchdog.conf
ct systemctl daemon-reload

# --- upgrade keeps the buffer -------------------------------------------------------------
held="$(buffered)"
[ "$held" -ge 60 ] || die "buffer holds $held events before the upgrade, expected at least 60"
# the installed copy differs from the checkout: install.sh sees a new version
ct touch /opt/edgehaul/installed-by-an-older-release
pid="$(prop MainPID)"
out="$(ct bash /mnt/edgehaul/scripts/install.sh 2>&1)" || { echo "$out" >&2; die "upgrade install.sh failed"; }
{ grep -q 'application /opt/edgehaul: updated' <<<"$out" && grep -q 'service: restarted on the new version' <<<"$out"; } || { echo "$out" >&2; die "upgrade did not replace and restart"; }
is_state active || die "not active after the upgrade"
[ "$(prop MainPID)" != "$pid" ] || die "upgrade did not restart the process"
[ "$(buffered)" = "$held" ] || die "buffer after the upgrade: $(buffered) events, before: $held"
# (that a second run changes nothing is test/integration/install.test.ts's, in a scratch root)
say "upgrade: replaced, restarted, buffer kept ($held events)"

# --- uninstall, --purge, reinstall --------------------------------------------------------
ct bash /mnt/edgehaul/scripts/uninstall.sh | indent
[ "$(prop LoadState)" = not-found ] || die "unit still loaded after uninstall: $(prop LoadState)"
ct test ! -e /opt/edgehaul || die "/opt/edgehaul left"
ct test ! -e /usr/local/bin/edgehaul || die "/usr/local/bin/edgehaul left"
ct test -f "$CONF" || die "uninstall removed the config"
ct test -f /var/lib/edgehaul/buffer.db || die "uninstall removed the buffer"
ct test -f /etc/systemd/system/edgehaul.service.d/override.conf || die "uninstall removed the credentials drop-in"
ct bash /mnt/edgehaul/scripts/uninstall.sh --purge | indent
for p in /etc/edgehaul /var/lib/edgehaul /etc/systemd/system/edgehaul.service.d; do
  ct test ! -e "$p" || die "--purge left $p"
done
if ct id edgehaul >/dev/null 2>&1; then die "--purge left the user"; fi
say "uninstall kept config, buffer and drop-in; --purge removed them and the user"

out="$(ct bash /mnt/edgehaul/scripts/install.sh 2>&1)" || { echo "$out" >&2; die "install.sh after --purge failed"; }
is_state active || die "not active after a reinstall"
watch_active() { [ "$(prop NRestarts)" = 0 ] && is_state active; }
watch_active || die "reinstall: NRestarts $(prop NRestarts)"
ct bash /mnt/edgehaul/scripts/uninstall.sh --purge >/dev/null
say "reinstall after --purge starts cleanly; all checks passed"
