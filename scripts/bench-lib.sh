# shellcheck shell=bash
# Helpers for scripts/bench.sh (sourced, not run): process bookkeeping and clean-up, the
# config files of the reference proxies and of etcd, wrk runs and their parsing, and the
# rows of the results table. Expects WORK (temp dir) and BIN (gatehouse binary) set.

PIDS=()          # every process started, stopped in reverse order on exit
ROWS=()          # table rows, in order

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

# spawn NAME CPU CMD...: starts CMD pinned to CPU in the background, logging to
# $WORK/NAME.log; the pid goes to PIDS and to $WORK/NAME.pid.
spawn() {
  local name=$1 cpu=$2; shift 2
  taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  echo "$!" >"$WORK/$name.pid"
}

pid_of() { cat "$WORK/$1.pid"; }

# stop_all: TERM to everything still alive (newest first), then KILL after 10 s.
stop_all() {
  local pid i deadline
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  deadline=$((SECONDS + 10))
  for pid in "${PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# stop NAME: stops one process started by spawn (TERM, then KILL after 10 s).
stop() {
  local pid deadline
  pid=$(pid_of "$1")
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_until() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what (logs in $WORK)"
    sleep 0.1
  done
}

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# peak_rss_mib PID: the most the process has had resident since it started.
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# ---------------------------------------------------------------------------------------
# Reference servers' configs.

# nginx_conf NAME SERVER_BLOCK_BODY LISTEN [HTTP_EXTRA]: one worker, no logs, keep-alive.
nginx_conf() {
  cat >"$WORK/$1.conf" <<EOF
worker_processes 1;
pid $WORK/$1.nginx.pid;
error_log $WORK/$1.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  ${4:-}
  server {
    listen $3;
    location / { $2 }
  }
}
EOF
}

haproxy_conf() { # LISTEN UPSTREAM
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind $1
  default_backend be
backend be
  http-reuse always
  server up $2
EOF
}

# etcd_args N: the flags of member N of a three-member cluster on 127.0.61.1-3.
etcd_args() {
  local n=$1 peers="e1=http://127.0.61.1:2380,e2=http://127.0.61.2:2380,e3=http://127.0.61.3:2380"
  echo --name "e$n" --data-dir "$WORK/etcd$n" \
    --listen-client-urls "http://127.0.61.$n:2379" --advertise-client-urls "http://127.0.61.$n:2379" \
    --listen-peer-urls "http://127.0.61.$n:2380" --initial-advertise-peer-urls "http://127.0.61.$n:2380" \
    --initial-cluster "$peers" --initial-cluster-state new --initial-cluster-token gatehouse-bench
}

# etcd_leader: the client address (host:port) of etcd's current leader.
etcd_leader() {
  local n st
  for n in 1 2 3; do
    st=$(curl -fsS -m 2 -X POST "http://127.0.61.$n:2379/v3/maintenance/status" -d '{}' 2>/dev/null) || continue
    if jq -e '.header.member_id == .leader' <<<"$st" >/dev/null; then echo "127.0.61.$n:2379"; return 0; fi
  done
  return 1
}

# ---------------------------------------------------------------------------------------
# wrk.

# to_ms VALUE: wrk's "1.23ms" / "456.00us" / "1.02s" in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else printf "nan" }'
}

# cpu_ns PID: nanoseconds PID's threads have run on a CPU so far (schedstat's first field).
# Finer than utime/stime's clock ticks, and it counts the thread's system calls too.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'; }

# us_per_request NS_BEFORE NS_AFTER REQUESTS: microseconds of CPU per request.
us_per_request() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.2f", (b - a) / n / 1000 }'; }

# children_cpu_ns VAR: sets VAR to the nanoseconds of CPU, user and system, that this
# shell's finished children have used so far (getrusage's, as `times` prints it). It must
# run in the shell that waited for them: in a command substitution, a subshell, `times`
# would report the subshell's children instead.
children_cpu_ns() {
  times >"$WORK/times.txt"
  printf -v "$1" '%s' "$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } } END { printf "%.0f", s * 1e9 }' "$WORK/times.txt")"
}

# run_wrk NAME PID URL [wrk args...]: appends this window's figures to RPS[NAME],
# P50[NAME], P99[NAME], CPU[NAME] (microseconds PID ran per request; PID "-": not
# measured) and ERRS[NAME], space-separated, one per round (see take_medians). Also the
# load generator's core's share: WRK_CPU_US[NAME], wrk's own CPU per request, and, when
# UPSTREAM_PID is set, UPSTREAM_US[NAME], the upstream worker's (both on $WRK_CPU), and
# LOADGEN_US[NAME], their sum.
declare -A RPS P50 P99 CPU ERRS ROUNDS_RPS ROUNDS_P99 ROUNDS_CPU WRK_CPU_US UPSTREAM_US LOADGEN_US ROUNDS_LOADGEN
run_wrk() {
  local name=$1 pid=$2 url=$3 out rps p50 p99 errs reqs cpu=nan before=0 wrk_before wrk_after up_before=0 wrk_us up_us; shift 3
  out="$WORK/wrk-$name.txt"
  # Same headers for curl and wrk (-H only): the setup must answer 2xx before it is timed.
  curl -fsS -o /dev/null "$@" "$url" || die "$url does not answer 2xx; not timing it"
  # A one-second warm-up first (connections, allocator, caches), thrown away.
  taskset -c "$WRK_CPU" wrk -t1 -c32 -d1s "$@" "$url" >/dev/null
  [[ $pid == - ]] || before=$(cpu_ns "$pid")
  [[ -z ${UPSTREAM_PID:-} ]] || up_before=$(cpu_ns "$UPSTREAM_PID")
  children_cpu_ns wrk_before
  taskset -c "$WRK_CPU" wrk -t1 -c32 -d"${WRK_SECONDS}s" --latency "$@" "$url" >"$out"
  reqs=$(awk '/ requests in / { print $1 }' "$out")
  if [[ -n $reqs ]]; then
    children_cpu_ns wrk_after
    wrk_us=$(us_per_request "$wrk_before" "$wrk_after" "$reqs") up_us=0
    [[ -z ${UPSTREAM_PID:-} ]] || up_us=$(us_per_request "$up_before" "$(cpu_ns "$UPSTREAM_PID")" "$reqs")
    WRK_CPU_US[$name]+="$wrk_us " UPSTREAM_US[$name]+="$up_us " LOADGEN_US[$name]+="$(awk -v a="$wrk_us" -v b="$up_us" 'BEGIN { printf "%.2f", a + b }') "
  fi
  [[ $pid == - || -z $reqs ]] || cpu=$(us_per_request "$before" "$(cpu_ns "$pid")" "$reqs")
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  errs=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
  [[ -n $rps ]] || die "wrk against $url printed no result (see $out)"
  RPS[$name]+="$rps " P50[$name]+="$p50 " P99[$name]+="$p99 " CPU[$name]+="$cpu " ERRS[$name]+="$errs "
  log "$(printf '%-10s %8s req/s  p50 %s ms  p99 %s ms  cpu %s us/req  errors %s' "$name" "$rps" "$p50" "$p99" "$cpu" "$errs")"
}

# run_pair NAME_A PID_A URL_A NAME_B PID_B URL_B: one window of wrk against A and B at
# the same time, both from CPU $WRK_CPU; appends each one's CPU per request (µs, PID's
# run time over its requests) to CPU[NAME] and its req/s to RPS[NAME]. Two proxies on
# one core under load at once share whatever else the machine does, so the ratio of
# their CPU per request holds steady where back-to-back windows swing by 30 %.
run_pair() {
  local a0 b0 a1 b1 wa wb ra rb ca cb
  a0=$(cpu_ns "$2") b0=$(cpu_ns "$5")
  taskset -c "$WRK_CPU" wrk -t1 -c32 -d"${WRK_SECONDS}s" "$3" >"$WORK/pair-a.txt" & wa=$!
  taskset -c "$WRK_CPU" wrk -t1 -c32 -d"${WRK_SECONDS}s" "$6" >"$WORK/pair-b.txt" & wb=$!
  wait "$wa" "$wb"
  a1=$(cpu_ns "$2") b1=$(cpu_ns "$5")
  ra=$(awk '/ requests in / { print $1 }' "$WORK/pair-a.txt") rb=$(awk '/ requests in / { print $1 }' "$WORK/pair-b.txt")
  [[ -n $ra && -n $rb ]] || die "wrk printed no result in a paired window (see $WORK/pair-*.txt)"
  ca=$(us_per_request "$a0" "$a1" "$ra") cb=$(us_per_request "$b0" "$b1" "$rb")
  CPU[$1]+="$ca " CPU[$4]+="$cb " RPS[$1]+="$((ra / WRK_SECONDS)) " RPS[$4]+="$((rb / WRK_SECONDS)) "
  log "$(printf 'at once: %s %s requests, %s us/req; %s %s requests, %s us/req' "$1" "$ra" "$ca" "$4" "$rb" "$cb")"
}

# median "X Y Z ...": the middle value (the lower middle for an even count).
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# paired_ratio "A1 A2 ..." "B1 B2 ...": the median of the per-round ratios Ai / Bi (the
# mean of the middle two for an even count). The setups of a round ran seconds apart, so
# a ratio within a round leaves out most of this machine's drift from round to round
# (the same setup's req/s moves by 30 % or more).
paired_ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) if (x[i] != "nan" && y[i] + 0 > 0) printf "%.4f\n", x[i] / y[i] }' | sort -g |
    awk '{ r[NR] = $1 } END { if (NR == 0) print "n/a"; else printf "%.2f", (r[int((NR + 1) / 2)] + r[int(NR / 2) + 1]) / 2 }'
}

# take_medians NAME...: replaces each setup's per-round lists by their medians (errors:
# the sum); the per-round lists stay in ROUNDS_* for paired ratios and the notes.
take_medians() {
  local n
  for n in "$@"; do
    # shellcheck disable=SC2034 # read by bench.sh
    # A paired window (run_pair) records no latency or errors: those lists may be unset.
    ROUNDS_RPS[$n]=${RPS[$n]% } ROUNDS_P99[$n]=${P99[$n]:-} ROUNDS_CPU[$n]=${CPU[$n]% }
    RPS[$n]=$(median "${RPS[$n]}") P50[$n]=$(median "${P50[$n]:-}") P99[$n]=$(median "${P99[$n]:-}") CPU[$n]=$(median "${CPU[$n]}")
    ERRS[$n]=$(tr ' ' '\n' <<<"${ERRS[$n]:-}" | awk '{ n += $1 } END { print n + 0 }')
    # shellcheck disable=SC2034 # read by bench.sh
    ROUNDS_LOADGEN[$n]=${LOADGEN_US[$n]:-}
    WRK_CPU_US[$n]=$(median "${WRK_CPU_US[$n]:-}") UPSTREAM_US[$n]=$(median "${UPSTREAM_US[$n]:-}") LOADGEN_US[$n]=$(median "${LOADGEN_US[$n]:-}")
  done
}

# ---------------------------------------------------------------------------------------
# The table.

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# check X OP BOUND: "met" or "**not met**".
check() {
  awk -v x="$1" -v op="$2" -v b="$3" 'BEGIN {
    ok = (op == "<=") ? (x + 0 <= b + 0) : (op == ">=") ? (x + 0 >= b + 0) : (op == "<") ? (x + 0 < b + 0) : (x + 0 == b + 0)
    print (ok && x != "n/a") ? "met" : "**not met**" }'
}

row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

# vs_row FIGURE VALUE UNIT ANCHOR_NAME ANCHOR_VALUE OP BOUND: target on value/anchor.
vs_row() {
  local r; r=$(ratio "$2" "$5")
  row "$1" "$2 $3" "$4: $5 $3" "$r" "ratio $6 $7" "$(check "$r" "$6" "$7")"
}

# pair_row FIGURE VALUE UNIT ANCHOR_NAME ANCHOR_VALUE RATIO OP BOUND: as vs_row, with the
# ratio given (a paired one) instead of VALUE / ANCHOR_VALUE.
pair_row() { row "$1" "$2 $3" "$4: $5 $3" "$6" "ratio $7 $8" "$(check "$6" "$7" "$8")"; }

# abs_row FIGURE VALUE UNIT ANCHOR_TEXT RATIO OP BOUND: target on the value itself.
abs_row() { row "$1" "$2${3:+ $3}" "$4" "$5" "$6 $7${3:+ $3}" "$(check "$2" "$6" "$7")"; }

# fmt X DECIMALS: X rounded for the table.
fmt() { awk -v x="$1" -v d="$2" 'BEGIN { printf "%.*f", d, x }'; }

# info_row FIGURE VALUE ANCHOR_TEXT RATIO: no target, context only.
info_row() { row "$1" "$2" "$3" "$4" "—" "—"; }

print_table() {
  echo "| figure | measured | anchor (same run) | ratio | target | met |"
  echo "| --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${ROWS[@]}"
}
