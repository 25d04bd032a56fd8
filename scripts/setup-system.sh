#!/usr/bin/env bash
# System packages tritonkit needs, from Debian/Ubuntu's apt when running as root; otherwise one
# line saying what to install:
# - python3-venv, when the Python that makes .venv lacks ensurepip (Debian splits it out);
# - libb64-0d, which the perf_analyzer binary in the tritonclient wheel links;
# - gcc, which builds the small library that hands tritonserver its admin key off the command line.
set -euo pipefail
PYTHON=${PYTHON:-python3}
need=()
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
if ! { ldconfig -p 2>/dev/null | grep -q 'libb64\.so\.0d'; } && [ ! -e /lib/x86_64-linux-gnu/libb64.so.0d ] \
   && [ ! -e /usr/lib/x86_64-linux-gnu/libb64.so.0d ]; then
  need+=(libb64-0d)
fi
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
  need+=(gcc)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${need[*]} with apt-get"
  apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
else
  echo "note: tritonkit needs the system packages ${need[*]}: run 'sudo apt-get install ${need[*]}' (Debian/Ubuntu)" >&2
  case " ${need[*]} " in *" python3-venv "*) exit 1 ;; esac  # no .venv can be made without it
fi
