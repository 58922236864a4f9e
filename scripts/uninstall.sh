#!/usr/bin/env bash
# Removes edgehaul's service, application and command. Keeps the config (/etc/edgehaul, with the
# unit's drop-ins such as the credentials one) and the buffered events (/var/lib/edgehaul) unless
# --purge: a reinstall picks up where it stopped.
#
#   sudo scripts/uninstall.sh           stop, disable, remove the unit, /opt/edgehaul, /usr/local/bin/edgehaul
#   sudo scripts/uninstall.sh --purge   also delete the config, the drop-ins (edgehaul.service.d), the
#                                       buffer (unsent events!) and the user
#   scripts/uninstall.sh --root DIR     the same inside a scratch root (no systemctl, no userdel)
set -euo pipefail

ROOT=""
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "uninstall.sh: --root needs a directory" >&2; exit 2; }; ROOT="${2%/}"; shift 2 ;;
    --root=*) ROOT="${1#--root=}"; ROOT="${ROOT%/}"; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'uninstall.sh: %s\n' "$*"; }

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: error: run as root (sudo), or use --root DIR" >&2
  exit 1
fi

UNIT="$ROOT/etc/systemd/system/edgehaul.service"
DROPINS="$ROOT/etc/systemd/system/edgehaul.service.d"
BIN="$ROOT/usr/local/bin/edgehaul"
changed=0
systemd_here=0
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then systemd_here=1; fi

if [ "$systemd_here" -eq 1 ]; then
  if systemctl is-active --quiet edgehaul; then
    # SIGTERM: what was read is committed and as much as Kafka takes is sent; the rest stays in the buffer
    systemctl stop edgehaul
    say "service: stopped"
    changed=1
  fi
  if systemctl is-enabled --quiet edgehaul 2>/dev/null; then
    systemctl disable --quiet edgehaul
    say "service: disabled"
    changed=1
  fi
  # a failed unit (and its restart counter) stays in systemd's memory until reset
  systemctl reset-failed edgehaul >/dev/null 2>&1 || true
fi

if [ -e "$UNIT" ]; then
  rm -f "$UNIT"
  say "unit $UNIT: removed"
  changed=1
  if [ "$systemd_here" -eq 1 ]; then systemctl daemon-reload; fi
fi

# only the file install.sh wrote: another edgehaul command is not ours to remove
if [ -f "$BIN" ] && grep -q "installed by edgehaul's scripts/install.sh" "$BIN"; then
  rm -f "$BIN"
  say "command $BIN: removed"
  changed=1
fi

if [ -e "$ROOT/opt/edgehaul" ]; then
  rm -rf "$ROOT/opt/edgehaul"
  say "application $ROOT/opt/edgehaul: removed"
  changed=1
fi

if [ "$PURGE" -eq 1 ]; then
  # the drop-ins (systemctl edit: LoadCredential= lines naming files under /etc/edgehaul): left behind,
  # they would make the next install fail with 243/CREDENTIALS
  if [ -e "$DROPINS" ]; then
    rm -rf "$DROPINS"
    say "$DROPINS: deleted"
    changed=1
    if [ "$systemd_here" -eq 1 ]; then systemctl daemon-reload; fi
  fi
  for dir in "$ROOT/etc/edgehaul" "$ROOT/var/lib/edgehaul" "$ROOT/var/lib/private/edgehaul"; do
    if [ -e "$dir" ]; then
      rm -rf "$dir"
      say "$dir: deleted"
      changed=1
    fi
  done
  if [ -z "$ROOT" ] && id edgehaul >/dev/null 2>&1; then
    userdel edgehaul
    say "user edgehaul: deleted"
    changed=1
  fi
else
  for dir in "$ROOT/etc/edgehaul" "$DROPINS" "$ROOT/var/lib/edgehaul"; do
    if [ -e "$dir" ]; then say "$dir: kept (--purge deletes it)"; fi
  done
fi

if [ "$changed" -eq 0 ]; then say "nothing to remove"; else say "done"; fi
