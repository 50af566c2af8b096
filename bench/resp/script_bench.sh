#!/bin/sh
# End-to-end decode of script-heavy traffic (BullMQ-style: one large Lua body, `local rcall = redis.call`,
# run by EVALSHA thousands of times) against the time redis-server took to run it.
#
#   bench/resp/script_bench.sh BUILD_DIR [CALLS] [LINES]
#   e.g. bench/resp/script_bench.sh build/ci 20000 1500
#
# A body of LINES table assignments (about 35 bytes each) and one SET; SCRIPT LOAD, then redis-benchmark
# `EVALSHA sha 1 key:__rand_int__ 7` CALLS times (4 clients) while tcpdump captures; then
# `kvferryctl decode --format stats` of the capture. Prints both times and their ratio. Needs root
# (tcpdump on lo), redis-server, redis-benchmark, tcpdump. Port 16467 and /tmp/kvft-script-bench.*.
set -eu
BUILD=${1:?build dir}
CALLS=${2:-20000}
LINES=${3:-1500}
PORT=16467
CTL="$BUILD/ctl/kvferryctl"
DIR=$(mktemp -d /tmp/kvft-script-bench.XXXXXX)
TCPDUMP_PID=
cleanup() {
  [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
  if [ -f "$DIR/redis.pid" ]; then
    PID=$(cat "$DIR/redis.pid")
    kill "$PID" 2>/dev/null || true
    i=0
    while kill -0 "$PID" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
{
  echo "local rcall = redis.call"
  echo "local t = {}"
  i=0
  while [ "$i" -lt "$LINES" ]; do
    echo "t[$i] = tonumber(ARGV[1]) or $i"
    i=$((i + 1))
  done
  echo "rcall('SET', KEYS[1], ARGV[1])"
  echo "return 1"
} >"$DIR/body.lua"
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$DIR" \
  --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
i=0
until [ "$(redis-cli -p $PORT PING 2>/dev/null)" = PONG ]; do
  i=$((i + 1))
  [ "$i" -lt 50 ] || { echo "redis-server on $PORT did not start" >&2; exit 1; }
  sleep 0.1
done
tcpdump -i lo -U -s 0 -w "$DIR/cap.pcap" "tcp port $PORT" 2>/dev/null &
TCPDUMP_PID=$!
sleep 1
SHA=$(redis-cli -p $PORT SCRIPT LOAD "$(cat "$DIR/body.lua")")
now() { date +%s.%N; }
T0=$(now)
redis-benchmark -p $PORT -n "$CALLS" -c 4 -r 1000 -q evalsha "$SHA" 1 "key:__rand_int__" 7 >/dev/null 2>&1
T1=$(now)
sleep 0.5
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" 2>/dev/null || true
TCPDUMP_PID=
T2=$(now)
"$CTL" decode --pcap "$DIR/cap.pcap" --server 127.0.0.1:$PORT --format stats >"$DIR/stats" 2>&1
T3=$(now)
awk -v bytes="$(wc -c <"$DIR/body.lua")" -v calls="$CALLS" -v s="$(echo "$T1 - $T0" | awk '{print $1 - $3}')" \
  -v d="$(echo "$T3 - $T2" | awk '{print $1 - $3}')" 'BEGIN {
    printf "body %d bytes; %d EVALSHA: server %.2f s, decode %.2f s: decode at %.2fx the server'"'"'s rate\n",
           bytes, calls, s, d, s / d }'
grep -E '^command evalsha ' "$DIR/stats" | cut -c1-160
