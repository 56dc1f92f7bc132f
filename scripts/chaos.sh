#!/usr/bin/env bash
# A long randomized chaos run against real gatehouse processes on 127.0.49.1-5: random
# kills, pauses and iptables partitions under admin writes, proxied traffic and a cluster
# rate limit, then every invariant checked and a summary printed.
#
#   scripts/chaos.sh --minutes N [--seed S] [--without deletes|ratelimit]...
#
# --without leaves a workload (and its checks) out, e.g. while a bug it finds is open.
# Needs root (iptables). Builds the debug binaries into ${CARGO_TARGET_DIR:-target} and
# runs a copy of gatehouse, so a rebuild cannot replace it mid-run. Exits non-zero if
# any invariant was violated; the failure names a folder with the history and node logs.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "chaos: $*" >&2; exit 2; }

minutes=""
seed=""
without=()
while (($#)); do
  case "$1" in
    --minutes) minutes=${2:-}; shift 2 || die "--minutes needs a value" ;;
    --seed) seed=${2:-}; shift 2 || die "--seed needs a value" ;;
    --without) without+=(--without "${2:-}"); shift 2 || die "--without needs a value" ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (usage: scripts/chaos.sh --minutes N [--seed S])" ;;
  esac
done
[[ -n "$minutes" ]] || die "usage: scripts/chaos.sh --minutes N [--seed S]"
((EUID == 0)) || die "needs root: partitions are iptables rules"

if [[ ! -x /usr/sbin/iptables ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iptables >/dev/null
fi

target=${CARGO_TARGET_DIR:-target}
cargo build -q -p gatehouse --bin gatehouse
cargo build -q -p cluster-tests --bin chaos
bin=$(mktemp -d)/gatehouse
cp "$target/debug/gatehouse" "$bin"
trap 'rm -rf "$(dirname "$bin")"' EXIT

args=(--minutes "$minutes")
[[ -n "$seed" ]] && args+=(--seed "$seed")
args+=("${without[@]}")
GATEHOUSE_TEST_BIN=$bin "$target/debug/chaos" "${args[@]}"
