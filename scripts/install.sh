#!/usr/bin/env bash
# Installs edgehaul on a Debian / Raspberry Pi OS gateway from a built checkout
# (npm ci && npm run build first). Idempotent: a second run changes nothing and says so.
#
#   sudo scripts/install.sh             install or upgrade, enable and (re)start the service
#   sudo scripts/install.sh --no-start  install and enable, but do not start or restart
#   scripts/install.sh --root DIR       install into a scratch root (tests, packaging): no user,
#                                       no chown, no systemctl; ownership is the packager's job
#
# What goes where:
#   /opt/edgehaul                        the application (dist/src, production node_modules), root-owned
#   /etc/edgehaul/edgehaul.yaml          the config, 0640 root:edgehaul; installed only if absent
#   /etc/edgehaul/credentials/           0700 root: files for LoadCredential= (secrets)
#   /etc/systemd/system/edgehaul.service the unit
#   /usr/local/bin/edgehaul              the edgehaul command (runs /opt/edgehaul with node)
#   /var/lib/edgehaul                    the buffer: created by systemd (StateDirectory=), never touched here
set -euo pipefail

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

ROOT=""
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT="${2%/}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; ROOT="${ROOT%/}"; shift ;;
    --no-start) START=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP="$ROOT/opt/edgehaul"
ETC="$ROOT/etc/edgehaul"
UNIT_DIR="$ROOT/etc/systemd/system"
USER_NAME=edgehaul
changed=0
start_failed=0

say() { printf 'install.sh: %s\n' "$*"; }
fail() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

if [ -z "$ROOT" ]; then
  [ "$(id -u)" -eq 0 ] || fail "run as root (sudo), or use --root DIR for a scratch install"
else
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  APP="$ROOT/opt/edgehaul"; ETC="$ROOT/etc/edgehaul"; UNIT_DIR="$ROOT/etc/systemd/system"
  say "scratch root $ROOT: skipping user creation, chown and systemctl"
fi

[ -f "$SRC/dist/src/cli/main.js" ] || fail "$SRC/dist is missing: run 'npm ci && npm run build' first"
[ -d "$SRC/node_modules" ] || fail "$SRC/node_modules is missing: run 'npm ci' first"
command -v node >/dev/null 2>&1 || fail "node is not installed (Node.js 20 or newer is needed)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || fail "node $(node --version) is too old: Node.js 20 or newer is needed"

# --- the service user ---------------------------------------------------------
if [ -z "$ROOT" ]; then
  if id "$USER_NAME" >/dev/null 2>&1; then
    say "user $USER_NAME: exists"
  else
    useradd --system --user-group --home-dir /var/lib/edgehaul --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
    say "user $USER_NAME: created"
    changed=1
  fi
fi

# owner and mode of a path; chown only on a real install
set_owner() { # set_owner OWNER:GROUP MODE PATH
  if [ -z "$ROOT" ] && [ "$(stat -c '%U:%G' "$3")" != "$1" ]; then chown "$1" "$3"; changed=1; fi
  if [ "$(stat -c '%a' "$3")" != "$2" ]; then chmod "$2" "$3"; changed=1; fi
}

# --- the application ----------------------------------------------------------
# built in a staging directory beside the target, compared, and swapped in only if different
mkdir -p "$ROOT/opt"
STAGE="$(mktemp -d "$ROOT/opt/.edgehaul.new.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/dist"
cp -a "$SRC/dist/src" "$STAGE/dist/src"
cp -a "$SRC/package.json" "$SRC/package-lock.json" "$SRC/README.md" "$STAGE/"
# the manual README links to (the unit's Documentation= names docs/install.md)
cp -a "$SRC/docs" "$STAGE/docs"
if [ -f "$SRC/LICENSE" ]; then cp -a "$SRC/LICENSE" "$STAGE/"; fi
cp -a "$SRC/node_modules" "$STAGE/node_modules"
if command -v npm >/dev/null 2>&1; then
  # removes the build-only packages (TypeScript, type definitions); offline, no rebuild
  (cd "$STAGE" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
else
  say "npm not found: node_modules copied as it is, build-only packages included"
fi
find "$STAGE/dist" -name '*.map' -type f -delete
# librdkafka's sources and build intermediates (about 270 MB where it compiled): the binding needs only
# its .node file and, when built here, the shared libraries next to it
rdk="$STAGE/node_modules/@confluentinc/kafka-javascript"
if [ -d "$rdk" ]; then
  rm -rf "$rdk/deps" "$rdk/build/Release/obj.target" "$rdk/build/Release/.deps" "$rdk/src"
  if [ -d "$rdk/build/deps" ]; then
    find "$rdk/build/deps" -mindepth 1 -maxdepth 1 ! -name 'librdkafka.so*' ! -name 'librdkafka++.so*' -exec rm -rf {} +
  fi
fi
# the native modules must load on this machine before anything is replaced: librdkafka, where it was
# compiled here, links Debian's libsasl2, libssl, libzstd and liblz4
if ! load_err="$(cd "$STAGE" && node -e 'require("better-sqlite3"); require("@confluentinc/kafka-javascript")' 2>&1)"; then
  fail "the native modules do not load here: $(printf '%s\n' "$load_err" | grep -m1 -E 'cannot open|Error') (on Debian: apt-get install libsasl2-2 libssl3 libzstd1 liblz4-1)"
fi
app_changed=0
if [ -d "$APP" ] && diff -rq --no-dereference "$STAGE" "$APP" >/dev/null 2>&1; then
  say "application $APP: unchanged"
else
  if [ -d "$APP" ]; then
    OLD="$ROOT/opt/.edgehaul.old.$$"
    mv "$APP" "$OLD"
    mv "$STAGE" "$APP"
    rm -rf "$OLD"
    say "application $APP: updated"
  else
    mv "$STAGE" "$APP"
    say "application $APP: installed"
  fi
  chmod 0755 "$APP"
  if [ -z "$ROOT" ]; then chown -R root:root "$APP"; fi
  app_changed=1
  changed=1
fi

# --- config -------------------------------------------------------------------
[ -d "$ETC" ] || { mkdir -p "$ETC"; changed=1; }
set_owner "root:$USER_NAME" 750 "$ETC"
if [ -e "$ETC/edgehaul.yaml" ]; then
  say "config $ETC/edgehaul.yaml: exists, left as it is"
else
  install -m 0640 "$SRC/config/edgehaul.yaml" "$ETC/edgehaul.yaml"
  say "config $ETC/edgehaul.yaml: installed (edit it, then: systemctl reload edgehaul)"
  changed=1
fi
set_owner "root:$USER_NAME" 640 "$ETC/edgehaul.yaml"
[ -d "$ETC/credentials" ] || { mkdir -p "$ETC/credentials"; changed=1; }
set_owner "root:root" 700 "$ETC/credentials"
# as the service will see it: its state directory, and secret files where its LoadCredential= lines point
config_ok=1
if ! check_out="$(node "$APP/dist/src/cli/main.js" check-config --state-dir "$ROOT/var/lib/edgehaul" --credentials-dir "$ETC/credentials" "$ETC/edgehaul.yaml" 2>&1)"; then
  config_ok=0
  say "warning: $ETC/edgehaul.yaml does not validate; the service will not start until it does:"
  printf '%s\n' "$check_out" | sed 's/^/  /'
fi

# --- the edgehaul command -----------------------------------------------------
BIN="$ROOT/usr/local/bin/edgehaul"
mkdir -p "$ROOT/usr/local/bin"
wrapper='#!/bin/sh
# edgehaul command, installed by edgehaul'"'"'s scripts/install.sh (removed by uninstall.sh)
exec node /opt/edgehaul/dist/src/cli/main.js "$@"'
if [ -f "$BIN" ] && [ "$(cat "$BIN")" = "$wrapper" ]; then
  say "command $BIN: unchanged"
else
  printf '%s\n' "$wrapper" >"$BIN"
  say "command $BIN: installed"
  changed=1
fi
set_owner "root:root" 755 "$BIN"

# --- the unit -----------------------------------------------------------------
mkdir -p "$UNIT_DIR"
unit_changed=0
if cmp -s "$SRC/systemd/edgehaul.service" "$UNIT_DIR/edgehaul.service"; then
  say "unit $UNIT_DIR/edgehaul.service: unchanged"
else
  install -m 0644 "$SRC/systemd/edgehaul.service" "$UNIT_DIR/edgehaul.service"
  say "unit $UNIT_DIR/edgehaul.service: installed"
  unit_changed=1
  changed=1
fi
set_owner "root:root" 644 "$UNIT_DIR/edgehaul.service"

# --- systemd ------------------------------------------------------------------
if [ -n "$ROOT" ]; then
  :
elif [ ! -d /run/systemd/system ]; then
  say "systemd is not running here (not PID 1): enable the unit on the target with 'systemctl enable --now edgehaul'"
else
  if [ "$unit_changed" -eq 1 ]; then systemctl daemon-reload; fi
  if ! systemctl is-enabled --quiet edgehaul; then
    systemctl enable --quiet edgehaul
    say "service: enabled (starts at boot)"
    changed=1
  fi
  if [ "$START" -eq 1 ]; then
    if [ "$config_ok" -eq 0 ]; then
      # starting would only fail (exit 78); a running daemon keeps the config it has
      if systemctl is-active --quiet edgehaul; then
        say "warning: service left running as it was, not restarted: fix $ETC/edgehaul.yaml, then: systemctl restart edgehaul"
      else
        say "warning: service not started: fix $ETC/edgehaul.yaml, then: systemctl start edgehaul"
      fi
      start_failed=1
    elif ! systemctl is-active --quiet edgehaul; then
      if systemctl start edgehaul; then
        say "service: started"
        changed=1
      else
        start_failed=1
      fi
    elif [ "$app_changed" -eq 1 ] || [ "$unit_changed" -eq 1 ]; then
      # SIGTERM: commit, flush to Kafka, stop; the buffer on disk carries everything else across
      if systemctl restart edgehaul; then
        say "service: restarted on the new version"
      else
        start_failed=1
      fi
    fi
    if [ "$config_ok" -eq 1 ] && ! systemctl is-active --quiet edgehaul; then
      say "warning: the service is not running: journalctl -u edgehaul -n 50"
      start_failed=1
    fi
  fi
fi

if [ "$changed" -eq 0 ]; then
  say "nothing changed: already installed and up to date"
else
  say "done"
fi
# installed, but the service asked for is not running: say so in the exit code too
if [ "$start_failed" -eq 1 ]; then exit 1; fi
