#!/usr/bin/env bash
# A three-node gatehouse cluster on 127.0.0.1-3 (ports 8000 proxy, 8001 admin, 8005
# cluster, 7946 gossip), an echo upstream on 127.0.0.1:9000 and a demo route /demo.
#
#   scripts/local-cluster.sh up       build, start, configure, check a request end to end
#   scripts/local-cluster.sh status   the cluster as node 2 sees it
#   scripts/local-cluster.sh down     stop everything and delete the cluster's data
#
# State, logs and data live in ${GATEHOUSE_LOCAL_DIR:-.local-cluster}.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${GATEHOUSE_LOCAL_DIR:-.local-cluster}
BIN=${GATEHOUSE_BIN:-${CARGO_TARGET_DIR:-target}/release/gatehouse}

die() { echo "local-cluster: $*" >&2; exit 1; }

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || die "timed out after ${secs}s waiting for $what (logs in $STATE/)"
    sleep 0.1
  done
}

running() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

spawn() { # NAME ARGS...: starts the binary in the background, logging to $STATE/NAME.log
  local name=$1; shift
  "$BIN" "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
}

three_voters_and_a_leader() {
  "$BIN" status --admin "127.0.0.$1:8001" --json |
    jq -e '(.leader_id != null) and ([.nodes[] | select(.voter and .alive)] | length == 3)'
}

up() {
  command -v jq >/dev/null || die "jq is required (apt-get install jq)"
  if [[ -z ${GATEHOUSE_BIN:-} ]]; then
    echo "building gatehouse (release)..."
    cargo build --release --locked --bin gatehouse
  fi
  mkdir -p "$STATE"
  for n in echo n1 n2 n3; do running "$n" && die "already running ($n); run '$0 down' first"; done

  spawn echo echo --listen 127.0.0.1:9000 --name demo-upstream
  spawn n1 start --bind-addr 127.0.0.1 --data-dir "$STATE/n1"
  wait_until "node 1's Admin API" 15 curl -fsS http://127.0.0.1:8001/status
  spawn n2 start --bind-addr 127.0.0.2 --data-dir "$STATE/n2" --join 127.0.0.1
  spawn n3 start --bind-addr 127.0.0.3 --data-dir "$STATE/n3" --join 127.0.0.1
  wait_until "three voters and a leader" 30 three_voters_and_a_leader 3

  # The demo route is configured through node 1 and used through node 3.
  curl -fsS -X PUT http://127.0.0.1:8001/services/demo --data url=http://127.0.0.1:9000 >/dev/null
  curl -fsS -X PUT http://127.0.0.1:8001/services/demo/routes/demo --data 'paths[]=/demo' >/dev/null
  wait_until "the demo route on node 3" 10 curl -fsS http://127.0.0.3:8000/demo/anything
  "$BIN" status --admin 127.0.0.2:8001
  cat <<MSG

Cluster up. Try:
  curl -i http://127.0.0.3:8000/demo/anything      # through any node: 127.0.0.1-3
  curl -s http://127.0.0.2:8001/services | jq      # Admin API on any node
  $BIN status --admin 127.0.0.3:8001
  $0 down
MSG
}

down() {
  local pids=()
  for n in n1 n2 n3 echo; do
    running "$n" && { kill -TERM "$(cat "$STATE/$n.pid")"; pids+=("$(cat "$STATE/$n.pid")"); }
  done
  for pid in "${pids[@]}"; do
    wait_until "process $pid to exit" 20 bash -c "! kill -0 $pid"
  done
  rm -rf "$STATE"
  echo "local cluster stopped"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  status) "$BIN" status --admin 127.0.0.2:8001 ;;
  *) die "usage: $0 up|down|status" ;;
esac
