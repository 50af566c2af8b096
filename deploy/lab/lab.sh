#!/usr/bin/env bash
# The kvferry two-site lab on one machine, built from network namespaces.
#
#   site X (X = A, B)                                  WAN
#   kvfX-cli ──┐                                        │
#              ├─ kvfX-sw (bridge; SPAN of the Redis ─► │
#   kvfX-rds ──┘   port, both directions, tc mirred)    │
#                      │ lan        │ mirror            │
#                  kvfX-app (appliance) ── TUN kvfwan ══ kvf-wanem ══ kvfwan ── kvfB-app
#
# Usage: lab.sh up [options] | down | env | status | wan [wan options] | mirror --rate-mbit N
#   up options: --delay-ms N --jitter-ms N --loss PCT --rate-mbit N --queue-pkts N (WAN, each way)
#               --offloads on|off (TSO/GSO/GRO on the site LANs; default off = MTU-sized mirror frames)
#               --no-redis (do not start redis-server at the sites)
#               --mirror-rate-mbit N (an oversubscribed SPAN port: the mirror drops what exceeds N)
#   wan: restarts only the WAN emulator with new options (same flags as up).
#   mirror --rate-mbit N|0: makes site A's mirror port lossy above N Mbit/s (0: lossless again).
#   env: prints KVF_...=... shell assignments naming every namespace, interface and address.
# Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range) and exist only inside the lab.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
STATE="${KVF_LAB_STATE:-/run/kvferry-lab}"
REDIS_PORT=6379

SITES=(A B)
declare -A LAN=([A]=198.18.1 [B]=198.18.2)
WAN_A=198.18.100.1
WAN_B=198.18.100.2

ns() { echo "kvf$1-$2"; }  # ns SITE ROLE -> namespace name

print_env() {
  echo "KVF_LAB_STATE=$STATE"
  echo "KVF_REDIS_PORT=$REDIS_PORT"
  for s in "${SITES[@]}"; do
    local l=${LAN[$s]}
    echo "KVF_${s}_NS_CLIENT=$(ns "$s" cli)"
    echo "KVF_${s}_NS_REDIS=$(ns "$s" rds)"
    echo "KVF_${s}_NS_SWITCH=$(ns "$s" sw)"
    echo "KVF_${s}_NS_APPLIANCE=$(ns "$s" app)"
    echo "KVF_${s}_CLIENT_IP=$l.10"
    echo "KVF_${s}_REDIS_IP=$l.20"
    echo "KVF_${s}_APPLIANCE_IP=$l.30"
    echo "KVF_${s}_CLIENT_IF=lan0"
    echo "KVF_${s}_REDIS_IF=lan0"
    echo "KVF_${s}_APPLIANCE_LAN_IF=lan0"
    echo "KVF_${s}_MIRROR_IF=mirror0"
    echo "KVF_${s}_SWITCH_REDIS_PORT=p-rds"
    echo "KVF_${s}_WAN_IF=kvfwan"
  done
  echo "KVF_A_WAN_IP=$WAN_A"
  echo "KVF_B_WAN_IP=$WAN_B"
  echo "KVF_WANEM_STATS=$STATE/wanem.json"
}

log() { echo "lab: $*" >&2; }
die() { echo "lab: error: $*" >&2; exit 1; }

require_root() { [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TUN, tc)"; }

find_wanem() {
  if [ -n "${KVF_WANEM:-}" ] && [ -x "$KVF_WANEM" ]; then echo "$KVF_WANEM"; return; fi
  for p in build/ci build/release build/debug build/asan; do
    if [ -x "$ROOT/$p/deploy/lab/kvf-wanem" ]; then echo "$ROOT/$p/deploy/lab/kvf-wanem"; return; fi
  done
  log "kvf-wanem not built yet: building it (preset ci)"
  (cd "$ROOT" && cmake --preset ci >/dev/null && cmake --build --preset ci --target kvf-wanem >/dev/null)
  echo "$ROOT/build/ci/deploy/lab/kvf-wanem"
}

# veth PAIR: creates a veth with end $2 in namespace $1 and end $4 in namespace $3.
veth() {
  local tmp_a="kvft$$a" tmp_b="kvft$$b"
  ip link add "$tmp_a" type veth peer name "$tmp_b"
  ip link set "$tmp_a" netns "$1"
  ip link set "$tmp_b" netns "$3"
  ip -n "$1" link set "$tmp_a" name "$2"
  ip -n "$3" link set "$tmp_b" name "$4"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

set_offloads() {  # NS IF on|off
  ip netns exec "$1" ethtool -K "$2" tso "$3" gso "$3" gro "$3" >/dev/null 2>&1 || true
}

site_up() {
  local s=$1 offloads=$2 l=${LAN[$1]}
  local cli rds sw app
  cli=$(ns "$s" cli); rds=$(ns "$s" rds); sw=$(ns "$s" sw); app=$(ns "$s" app)
  for n in "$cli" "$rds" "$sw" "$app"; do
    ip netns add "$n"
    ip -n "$n" link set lo up
  done
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  veth "$cli" lan0 "$sw" p-cli
  veth "$rds" lan0 "$sw" p-rds
  veth "$app" lan0 "$sw" p-app
  veth "$app" mirror0 "$sw" p-mir
  for p in p-cli p-rds p-app; do ip -n "$sw" link set "$p" master br0; done
  ip -n "$cli" addr add "$l.10/24" dev lan0
  ip -n "$rds" addr add "$l.20/24" dev lan0
  ip -n "$app" addr add "$l.30/24" dev lan0
  # SPAN: every frame through the Redis port, both directions, copied to the
  # appliance's mirror port (u32 match-all, since this kernel has no matchall).
  ip netns exec "$sw" tc qdisc add dev p-rds clsact
  for dir in ingress egress; do
    ip netns exec "$sw" tc filter add dev p-rds "$dir" protocol all prio 1 u32 match u32 0 0 \
      action mirred egress mirror dev p-mir
  done
  # The mirror port only listens: no address, promiscuous, nothing answers.
  ip -n "$app" link set mirror0 promisc on
  ip netns exec "$app" sysctl -qw net.ipv6.conf.mirror0.disable_ipv6=1
  for pair in "$cli lan0" "$rds lan0" "$sw p-cli" "$sw p-rds" "$sw p-mir" "$app mirror0"; do
    # shellcheck disable=SC2086
    set_offloads $pair "$offloads"
  done
  # WAN side: a persistent TUN that kvf-wanem attaches to.
  ip -n "$app" tuntap add dev kvfwan mode tun
  ip -n "$app" link set kvfwan mtu 1500 up
  ip netns exec "$app" sysctl -qw net.ipv6.conf.kvfwan.disable_ipv6=1
}

wan_addresses() {
  ip -n "$(ns A app)" addr add "$WAN_A" peer "$WAN_B" dev kvfwan
  ip -n "$(ns B app)" addr add "$WAN_B" peer "$WAN_A" dev kvfwan
  # Route each site's LAN over the WAN so appliances can reach the far Redis
  # only through their peer (they never do in normal operation; it helps tests).
  ip -n "$(ns A app)" route add "${LAN[B]}.0/24" via "$WAN_B" dev kvfwan
  ip -n "$(ns B app)" route add "${LAN[A]}.0/24" via "$WAN_A" dev kvfwan
}

start_redis() {
  local s=$1 rds
  rds=$(ns "$s" rds)
  ip netns exec "$rds" redis-server --port "$REDIS_PORT" --bind 0.0.0.0 --protected-mode no --enable-debug-command local \
    --save '' --appendonly no --daemonize yes --dir "$STATE" \
    --pidfile "$STATE/redis-$s.pid" --logfile "$STATE/redis-$s.log" >/dev/null
  for _ in $(seq 1 50); do
    ip netns exec "$rds" redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "redis-server at site $s did not start (see $STATE/redis-$s.log)"
}

start_wan() {  # wanem options...
  local wanem
  wanem=$(find_wanem)
  stop_pid "$STATE/wanem.pid"
  nohup "$wanem" --netns-a "$(ns A app)" --netns-b "$(ns B app)" --tun-a kvfwan --tun-b kvfwan \
    --stats-file "$STATE/wanem.json" "$@" >"$STATE/wanem.log" 2>&1 &
  echo $! >"$STATE/wanem.pid"
  for _ in $(seq 1 50); do
    [ -s "$STATE/wanem.json" ] && return 0
    kill -0 "$(cat "$STATE/wanem.pid")" 2>/dev/null || die "kvf-wanem exited: $(cat "$STATE/wanem.log")"
    sleep 0.1
  done
  die "kvf-wanem did not start (see $STATE/wanem.log)"
}

stop_pid() {  # pidfile
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

down() {
  stop_pid "$STATE/wanem.pid"
  for s in "${SITES[@]}"; do stop_pid "$STATE/redis-$s.pid"; done
  # Anything else still running inside a lab namespace (daemons, tests).
  for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^kvf[AB]-' || true); do
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$n" 2>/dev/null || true
  done
  rm -f "$STATE"/wanem.json "$STATE"/wanem.json.tmp
}

# mirror_rate SITE MBIT: a TBF with a small buffer on the switch's mirror port,
# so the mirror drops frames beyond MBIT as an oversubscribed SPAN port does.
mirror_rate() {
  local sw
  sw=$(ns "$1" sw)
  ip netns exec "$sw" tc qdisc del dev p-mir root 2>/dev/null || true
  if [ "$2" != 0 ]; then
    ip netns exec "$sw" tc qdisc add dev p-mir root tbf rate "${2}mbit" burst 32kb limit 64kb
  fi
}

parse_wan_opts() {  # sets WAN_OPTS, OFFLOADS, WITH_REDIS, MIRROR_RATE
  WAN_OPTS=(); OFFLOADS=off; WITH_REDIS=1; MIRROR_RATE=0
  while [ $# -gt 0 ]; do
    case "$1" in
      --delay-ms|--jitter-ms|--loss|--rate-mbit|--queue-pkts|--burst-bytes|--seed)
        [ $# -ge 2 ] || die "$1 needs a value"; WAN_OPTS+=("$1" "$2"); shift 2 ;;
      --offloads) [ $# -ge 2 ] || die "--offloads needs on|off"; OFFLOADS=$2; shift 2 ;;
      --no-redis) WITH_REDIS=0; shift ;;
      --mirror-rate-mbit) [ $# -ge 2 ] || die "$1 needs a value"; MIRROR_RATE=$2; shift 2 ;;
      *) die "unknown option $1" ;;
    esac
  done
  case "$OFFLOADS" in on|off) ;; *) die "--offloads takes on or off" ;; esac
}

status() {
  local up=0
  for s in "${SITES[@]}"; do
    for r in cli rds sw app; do
      if ip netns list | awk '{print $1}' | grep -qx "$(ns "$s" "$r")"; then up=$((up + 1)); fi
    done
  done
  echo "namespaces up: $up of 8"
  for s in "${SITES[@]}"; do
    if [ -f "$STATE/redis-$s.pid" ] && kill -0 "$(cat "$STATE/redis-$s.pid")" 2>/dev/null; then
      echo "redis site $s: running (pid $(cat "$STATE/redis-$s.pid"))"
    else
      echo "redis site $s: not running"
    fi
  done
  if [ -f "$STATE/wanem.pid" ] && kill -0 "$(cat "$STATE/wanem.pid")" 2>/dev/null; then
    echo "wan emulator: running (pid $(cat "$STATE/wanem.pid")): $(head -1 "$STATE/wanem.log")"
    echo "wan counters: $(cat "$STATE/wanem.json" 2>/dev/null)"
  else
    echo "wan emulator: not running"
  fi
  [ "$up" -eq 8 ]
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  up)
    require_root
    parse_wan_opts "$@"
    down
    mkdir -p "$STATE"
    for s in "${SITES[@]}"; do site_up "$s" "$OFFLOADS"; done
    wan_addresses
    start_wan "${WAN_OPTS[@]}"
    if [ "$WITH_REDIS" = 1 ]; then for s in "${SITES[@]}"; do start_redis "$s"; done; fi
    mirror_rate A "$MIRROR_RATE"
    log "up (offloads $OFFLOADS, wan: ${WAN_OPTS[*]:-no impairment})"
    ;;
  wan)
    require_root
    parse_wan_opts "$@"
    start_wan "${WAN_OPTS[@]}"
    log "wan restarted: ${WAN_OPTS[*]:-no impairment}"
    ;;
  mirror)
    require_root
    [ "${1:-}" = --rate-mbit ] && [ $# -ge 2 ] || die "usage: lab.sh mirror --rate-mbit N"
    mirror_rate A "$2"
    log "site A mirror: ${2} Mbit/s (0 = lossless)"
    ;;
  down) require_root; down; log "down" ;;
  env) print_env ;;
  status) status ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
