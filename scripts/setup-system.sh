#!/usr/bin/env bash
# System libraries perf_analyzer needs (the tritonclient wheel's binary links libb64.so.0d).
# Installs them with apt-get when running as root; otherwise says in one line what to install.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d' || [ -e /lib/x86_64-linux-gnu/libb64.so.0d ] \
   || [ -e /usr/lib/x86_64-linux-gnu/libb64.so.0d ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing libb64-0d (needed by perf_analyzer) with apt-get"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d >/dev/null
else
  echo "note: perf_analyzer needs libb64.so.0d: run 'sudo apt-get install libb64-0d' (Debian/Ubuntu); profiling is unavailable until then" >&2
fi
