#!/usr/bin/env bash
# Installs one gatehouse node on a Debian/Ubuntu machine with systemd: the binary, a
# dedicated user, the node's config and cluster secret, and the systemd unit; then starts
# (or restarts, when something changed) the service. Safe to run again: unchanged files
# are left alone and an unchanged node is not restarted. Vagrant runs it on every VM.
#
#   first machine:   sudo scripts/provision.sh --ip 10.0.0.11 --binary target/release/gatehouse
#   the others:      sudo GATEHOUSE_CLUSTER_SECRET=... scripts/provision.sh --ip 10.0.0.12 --join 10.0.0.11
#
# Options:
#   --ip ADDR                  address this node binds to and other nodes reach it at (required)
#   --join HOST[:PORT]         gossip address of a member to join (repeatable). Leave it out on
#                              the first machine only: a node without --join starts a new cluster.
#   --name NAME                node name, for messages and the config's header (default: hostname)
#   --binary PATH              gatehouse binary to install (default: target/release/gatehouse
#                              beside this script, else keep the installed one)
#   --cluster-secret-file PATH file holding the cluster secret. Or set GATEHOUSE_CLUSTER_SECRET.
#                              Without either, an installed secret is kept; the first machine
#                              (no --join) generates one, a joining machine stops with an error.
#   --admin-listen ADDR:PORT   Admin API listener (default: 127.0.0.1:8001, so `gatehouse
#                              status` works on the machine without a token). Off loopback it
#                              needs a token: --admin-token-file or GATEHOUSE_ADMIN_TOKEN.
#   --admin-token-file PATH    file holding the Admin API token
#   --cluster-name NAME        default: gatehouse
#   --voters N                 target number of voters, odd (default: 3)
#   --unit PATH                systemd unit to install (default: gatehouse.service beside this script)
#   --root DIR                 write every file under DIR instead of /, and run no system command
#                              (no useradd, chown or systemctl): for tests and image builds
#   --dry-run                  print the files and commands, change nothing
#   --no-start                 install and enable, but do not start or restart the service
#   -h, --help                 this text
set -euo pipefail

prog=provision.sh
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "$prog: $*" >&2; exit 1; }
say() { echo "$prog: $*"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

ip=""
name=""
binary=""
secret_file=""
admin_listen=""
admin_token_file=""
cluster_name="gatehouse"
voters="3"
unit_src="$here/gatehouse.service"
root="/"
dry_run=0
start=1
joins=()

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  arg=$1
  if [[ $arg == --*=* ]]; then
    set -- "${arg%%=*}" "${arg#*=}" "${@:2}"
    arg=$1
  fi
  case $arg in
    --ip) need_value "$@"; ip=$2; shift 2 ;;
    --join) need_value "$@"; joins+=("$2"); shift 2 ;;
    --name) need_value "$@"; name=$2; shift 2 ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --cluster-secret-file) need_value "$@"; secret_file=$2; shift 2 ;;
    --admin-listen) need_value "$@"; admin_listen=$2; shift 2 ;;
    --admin-token-file) need_value "$@"; admin_token_file=$2; shift 2 ;;
    --cluster-name) need_value "$@"; cluster_name=$2; shift 2 ;;
    --voters) need_value "$@"; voters=$2; shift 2 ;;
    --unit) need_value "$@"; unit_src=$2; shift 2 ;;
    --root) need_value "$@"; root=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --no-start) start=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $arg (see --help)" ;;
  esac
done

# --- check the inputs -----------------------------------------------------------------
[[ -n $ip ]] || die "--ip is required: the address other nodes reach this one at"
[[ $ip =~ ^[0-9A-Fa-f.:]+$ ]] || die "--ip $ip is not an IP address"
[[ $ip != 0.0.0.0 && $ip != :: ]] || die "--ip must be this machine's own address, not $ip"
if ! [[ $voters =~ ^[1-9][0-9]*$ ]] || (( voters % 2 == 0 )); then
  die "--voters must be odd (1, 3, 5, ...)"
fi
[[ $cluster_name =~ ^[A-Za-z0-9._-]+$ ]] || die "--cluster-name may hold letters, digits, '.', '_' and '-'"
host_port_re='^[][A-Za-z0-9._:-]+$'
for j in ${joins[@]+"${joins[@]}"}; do
  [[ $j =~ $host_port_re ]] || die "--join $j is not HOST[:PORT]"
done
[[ -f $unit_src ]] || die "no systemd unit at $unit_src (pass --unit)"
[[ -z $secret_file || -r $secret_file ]] || die "cannot read the cluster secret file $secret_file"
[[ -z $admin_token_file || -r $admin_token_file ]] || die "cannot read the admin token file $admin_token_file"
name=${name:-$(hostname 2>/dev/null || echo node)}

root=${root%/}
system=1 # run system commands (useradd, chown, systemctl) only when installing into /
if [[ -n $root ]]; then
  system=0
  [[ -d $root ]] || die "--root $root is not a directory"
fi
if (( system && !dry_run && EUID != 0 )); then
  die "run as root (sudo), or pass --root DIR / --dry-run"
fi

admin_listen=${admin_listen:-127.0.0.1:8001}
admin_host=${admin_listen%:*}
admin_host=${admin_host#[}
admin_host=${admin_host%]}
admin_on_loopback=0
[[ $admin_host == 127.* || $admin_host == ::1 || $admin_host == localhost ]] && admin_on_loopback=1

# Installed paths (on the target machine; written under $root).
bin_path=/usr/local/bin/gatehouse
conf_dir=/etc/gatehouse
conf_path=$conf_dir/gatehouse.toml
secret_path=$conf_dir/cluster-secret
unit_path=/etc/systemd/system/gatehouse.service
data_dir=/var/lib/gatehouse

# --- helpers --------------------------------------------------------------------------
changed=0
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# run CMD...: runs a system command, or shows it when it must not run.
run() {
  if (( dry_run || !system )); then
    echo "would run: $*"
  else
    "$@"
  fi
}

# put SRC DEST MODE [GROUP]: installs SRC at DEST (under $root) unless DEST already holds
# the same bytes. --dry-run prints text files (SHOW=text, the admin token masked) and
# only the size of the others (SHOW=secret, SHOW=binary).
put() {
  local src=$1 dest=$2 mode=$3 group=${4:-root} show=${SHOW:-text}
  local target=$root$dest
  if [[ -f $target ]] && cmp -s "$src" "$target"; then
    say "unchanged $dest"
    return 0
  fi
  changed=1
  if (( dry_run )); then
    echo "would write $dest (mode $mode, owner root:$group):"
    if [[ $show == text ]]; then
      sed -e 's/^\(admin-token = \).*/\1"(hidden)"/' -e 's/^/    /' "$src"
    else
      echo "    ($show, $(wc -c <"$src") bytes)"
    fi
    return 0
  fi
  mkdir -p "$(dirname "$target")"
  local tmp
  tmp=$(mktemp "$(dirname "$target")/.provision.XXXXXX")
  cat "$src" >"$tmp"
  chmod "$mode" "$tmp"
  if (( system )); then chown "root:$group" "$tmp"; fi
  mv -f "$tmp" "$target"
  say "wrote $dest"
}

# toml_str VALUE: a TOML basic string.
toml_str() {
  local v=${1//\\/\\\\}
  v=${v//\"/\\\"}
  printf '"%s"' "$v"
}

random_secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# --- the binary -----------------------------------------------------------------------
if [[ -z $binary ]]; then
  if [[ -x $here/../target/release/gatehouse ]]; then
    binary=$here/../target/release/gatehouse
  elif [[ -x $root$bin_path ]]; then
    binary=$root$bin_path
  else
    die "no gatehouse binary: build one (cargo build --release) or pass --binary PATH"
  fi
fi
[[ -f $binary ]] || die "--binary $binary does not exist"

# --- the cluster secret ---------------------------------------------------------------
secret_src=$workdir/cluster-secret
secret_generated=0
if [[ -n ${GATEHOUSE_CLUSTER_SECRET:-} ]]; then
  printf '%s\n' "$GATEHOUSE_CLUSTER_SECRET" >"$secret_src"
elif [[ -n $secret_file ]]; then
  cat "$secret_file" >"$secret_src"
elif [[ -s $root$secret_path ]]; then
  cat "$root$secret_path" >"$secret_src"
elif (( ${#joins[@]} == 0 )); then
  random_secret >"$secret_src"
  echo >>"$secret_src"
  secret_generated=1
else
  die "a joining node needs the cluster's secret: --cluster-secret-file PATH or GATEHOUSE_CLUSTER_SECRET"
fi
[[ -n $(tr -d '[:space:]' <"$secret_src") ]] || die "the cluster secret is empty"

# --- the admin token (only when the Admin API is off loopback) -------------------------
token=""
if [[ -n ${GATEHOUSE_ADMIN_TOKEN:-} ]]; then
  token=$GATEHOUSE_ADMIN_TOKEN
elif [[ -n $admin_token_file ]]; then
  token=$(tr -d '[:space:]' <"$admin_token_file")
elif (( !admin_on_loopback )); then
  die "the Admin API on $admin_listen is off loopback: give --admin-token-file or GATEHOUSE_ADMIN_TOKEN"
fi
[[ $token != *[[:space:]\"\\]* ]] || die "the admin token must not hold spaces, quotes or backslashes"

# --- the config -----------------------------------------------------------------------
# Keys are `gatehouse start` flags (see `gatehouse start --help`); the unit adds
# --config and --leave-on-terminate.
conf_src=$workdir/gatehouse.toml
{
  echo "# gatehouse node $name, written by scripts/provision.sh: run it again to change this file."
  echo "# Keys are the flags of 'gatehouse start'."
  echo "bind-addr = $(toml_str "$ip")"
  echo "admin-listen = $(toml_str "$admin_listen")"
  echo "data-dir = $(toml_str "$data_dir")"
  echo "cluster-name = $(toml_str "$cluster_name")"
  echo "cluster-secret-file = $(toml_str "$secret_path")"
  echo "voters = $voters"
  if [[ -n $token ]]; then
    echo "admin-token = $(toml_str "$token")"
  fi
  if (( ${#joins[@]} == 0 )); then
    echo "# No join: this node starts a new cluster the first time it runs."
    echo "join = []"
  else
    printf 'join = ['
    sep=""
    for j in "${joins[@]}"; do printf '%s%s' "$sep" "$(toml_str "$j")"; sep=", "; done
    printf ']\n'
  fi
} >"$conf_src"

# --- install --------------------------------------------------------------------------
mode_note=""
if (( dry_run )); then mode_note=" (dry run: nothing is changed)"; fi
say "provisioning node $name ($ip) into ${root:-/}$mode_note"

if (( system )); then
  if ! getent passwd gatehouse >/dev/null; then
    run useradd --system --user-group --home-dir "$data_dir" --no-create-home \
      --shell /usr/sbin/nologin --comment "gatehouse API gateway" gatehouse
  fi
else
  echo "would run: useradd --system --user-group --home-dir $data_dir --shell /usr/sbin/nologin gatehouse"
fi

bin_changed=0
before=$changed
SHOW=binary put "$binary" "$bin_path" 0755
(( changed == before )) || bin_changed=1

if (( !dry_run )); then
  mkdir -p "$root$conf_dir" "$root$data_dir"
  chmod 0750 "$root$conf_dir" "$root$data_dir"
fi
run chown root:gatehouse "$conf_dir"
run chown gatehouse:gatehouse "$data_dir"

before=$changed
put "$conf_src" "$conf_path" 0640 gatehouse
SHOW=secret put "$secret_src" "$secret_path" 0640 gatehouse
if (( secret_generated )); then
  say "a new cluster secret goes to $secret_path: the other machines need it (--cluster-secret-file)"
fi
conf_changed=$(( changed != before ))

before=$changed
put "$unit_src" "$unit_path" 0644
unit_changed=$(( changed != before ))

# --- the service ----------------------------------------------------------------------
if (( system && !dry_run )) && [[ ! -d /run/systemd/system ]]; then
  say "systemd is not running here: start the node with"
  say "  sudo -u gatehouse $bin_path start --config $conf_path --leave-on-terminate"
  exit 0
fi
if (( unit_changed )); then run systemctl daemon-reload; fi
run systemctl enable gatehouse.service
if (( !start )); then
  say "installed; start it with: systemctl start gatehouse"
  exit 0
fi
if (( bin_changed || conf_changed || unit_changed )); then
  run systemctl restart gatehouse.service
else
  run systemctl start gatehouse.service
fi

if (( system && !dry_run )); then
  # Wait for the Admin API, then show the cluster as this node sees it.
  export GATEHOUSE_ADMIN=$admin_listen
  if [[ -n $token ]]; then export GATEHOUSE_ADMIN_TOKEN=$token; fi
  for _ in $(seq 1 60); do
    if "$bin_path" status >/dev/null 2>&1; then
      "$bin_path" status
      exit 0
    fi
    sleep 1
  done
  die "the node did not answer on $admin_listen within 60s: journalctl -u gatehouse"
fi
