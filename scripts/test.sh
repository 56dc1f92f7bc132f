#!/usr/bin/env bash
# The test command from README.md: every unit, property, multi-node and chaos test.
# As root on Debian it first installs what the tests use and a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

# ruby checks the Vagrantfile, shellcheck the scripts, iptables cuts links in the chaos
# tests, jq and curl are what the local-cluster script uses.
missing=()
for tool in ruby shellcheck jq curl iptables; do
  command -v "$tool" >/dev/null || [[ -x "/usr/sbin/$tool" ]] || missing+=("$tool")
done
if ((${#missing[@]})); then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${missing[*]}; install them (or run as root on Debian)" >&2
    exit 1
  fi
fi

exec cargo test --workspace --locked "$@"
