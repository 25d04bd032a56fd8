#!/usr/bin/env bash
# Programs the scale-out tests drive for real, from Debian's packages when running as root and missing:
# - nginx and haproxy: the load balancers in front of Triton replicas (tests/s3, benchmarks/bench_replicas.py);
# - promtool (package prometheus): checks and unit-tests the alert and autoscaling rules `deploy k8s` writes.
# Not root: one line saying what to install; those tests then skip with the reason.
set -euo pipefail
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} with apt-get (test tools)"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  # policy-rc.d 101: the packages' services are not started; tests start their own on loopback ports.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT  # removed however the script ends: left behind it would stop every service start
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
else
  echo "note: the scale-out tests use ${need[*]}: run 'sudo apt-get install ${need[*]}' (Debian/Ubuntu); until then they skip" >&2
fi
exit 0
