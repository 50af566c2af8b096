#!/usr/bin/env bash
# Live capture on loopback, side by side in one run: kvferryctl capture
# (pcap backend, or xdp with BACKEND=xdp) and `tcpdump -w /dev/null`, each
# capturing redis-benchmark SET traffic (pipelined) against a private
# redis-server. Prints the server's SET rate, each capturer's drops and the
# CPU seconds it used. Needs root. Usage: live_capture.sh BUILD_DIR [N]
set -euo pipefail
build=${1:?build dir}
n=${2:-1000000}
backend=${BACKEND:-pcap}
port=27313
ctl=$build/ctl/kvferryctl
workdir=$(mktemp -d /tmp/kvf_live_capture.XXXXXX)
redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$workdir/redis.pid" --logfile /dev/null
cleanup() {
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT
sleep 0.5
cpu_seconds() {  # utime + stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' /proc/"$1"/stat
}
run_one() {  # $1 = label, rest = capture command
  local label=$1
  shift
  "$@" >"$workdir/$label.out" 2>&1 &
  local pid=$!
  sleep 1.5
  local sets_before
  sets_before=$(redis-cli -p $port info commandstats | sed -n 's/^cmdstat_set:calls=\([0-9]*\),.*/\1/p')
  local t0 t1
  t0=$(date +%s.%N)
  redis-benchmark -p $port -t set -n "$n" -P 32 -c 4 -r 100000 -q >/dev/null 2>&1
  t1=$(date +%s.%N)
  local sets_after
  sets_after=$(redis-cli -p $port info commandstats | sed -n 's/^cmdstat_set:calls=\([0-9]*\),.*/\1/p')
  sleep 1
  local cpu
  cpu=$(cpu_seconds $pid)
  kill -TERM $pid  # background jobs of a script ignore SIGINT
  wait $pid || true
  echo "== $label: $(( ${sets_after:-0} - ${sets_before:-0} )) SETs in $(echo "$t1 - $t0" | bc) s," \
       "$(echo "(${sets_after:-0} - ${sets_before:-0}) / ($t1 - $t0)" | bc) SET/s; capturer CPU ${cpu}s"
  grep -E "^total|dropped|captured|received" "$workdir/$label.out" || true
}
run_one baseline_no_capture sleep 1000
# (xdp would drop lo's frames after inspection without --pass.)
pass=(); [ "$backend" = xdp ] && pass=(--pass)
run_one kvferryctl_$backend "$ctl" capture --backend "$backend" --iface lo --server 127.0.0.1:$port --workers 1 "${pass[@]}"
run_one tcpdump tcpdump -i lo -w /dev/null -s 0 -B 65536 tcp port $port
