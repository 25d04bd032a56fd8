#!/usr/bin/env bash
# What the container tests and `tritonkit image build` need, set up when running as root:
# - podman, runc and debootstrap from apt when missing (Debian/Ubuntu);
# - /etc/containers/containers.conf with `default_ulimits = []` under [containers] (sandboxes that refuse
#   setrlimit reject the limits podman adds by default) and, under [engine], runtime "runc" and the
#   cgroupfs manager (crun fails on a hybrid cgroup layout; no systemd to manage cgroups).
# An existing containers.conf is merged, never replaced: a key already set is left as the user set it
# (and named), a missing one is added (and named).
# Not root and something missing: one line saying what to install, exit 0 (the container tests then skip
# with that reason).
set -euo pipefail
CONF=${CONTAINERS_CONF_PATH:-/etc/containers/containers.conf}
need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)

if [ "$(id -u)" != "0" ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "note: the container tests and 'tritonkit image build' need root and ${need[*]}:" \
         "run 'sudo apt-get install ${need[*]}' then 'sudo bash scripts/setup-containers.sh'" >&2
  fi
  exit 0
fi

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: no apt-get here; install ${need[*]} with this system's package manager" >&2
    exit 0
  fi
  echo "installing ${need[*]} with apt-get"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
fi

# set_key SECTION KEY VALUE: add `KEY = VALUE` under [SECTION] unless KEY is already set (commented-out
# lines do not count). The file is rewritten through a temporary file and renamed, so a reader never sees
# half of it.
set_key() {
  local section=$1 key=$2 value=$3 tmp have
  if [ -f "$CONF" ] && have=$(awk -v s="[$section]" -v k="$key" '
      /^[[:space:]]*\[/ { h = $0; gsub(/[[:space:]]/, "", h); cur = h; next }
      cur == s && $0 ~ "^[[:space:]]*" k "[[:space:]]*=" { v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); found = 1 }
      END { if (found) print v; exit !found }' "$CONF"); then
    if [ "$have" != "$value" ]; then
      echo "$CONF: keeping its own $key = $have under [$section] (tritonkit's tests use $value)"
    fi
    return
  fi
  mkdir -p "$(dirname "$CONF")"
  tmp=$(mktemp "$CONF.XXXXXX")
  if [ -f "$CONF" ]; then
    awk -v s="[$section]" -v line="$key = $value" '
      { print }
      { h = $0; gsub(/[[:space:]]/, "", h) }
      h == s && !done { print line; done = 1 }
      END { if (!done) { print ""; print s; print line } }' "$CONF" >"$tmp"
    [ -n "${FRESH:-}" ] || echo "$CONF: added $key = $value under [$section]"
  else
    printf '[%s]\n%s = %s\n' "$section" "$key" "$value" >"$tmp"
  fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$CONF"
}

FRESH=
if [ ! -f "$CONF" ]; then
  echo "writing $CONF (no setrlimit defaults, runc, cgroupfs)"
  FRESH=1
fi
set_key containers default_ulimits "[]"
set_key engine runtime '"runc"'
set_key engine cgroup_manager '"cgroupfs"'
