#!/bin/sh
# Memory of a long live capture over a fixed keyspace: does its RSS level off?
#
#   bench/soak/capture_soak.sh BUILD_DIR [SECONDS] [KEYS]
#   e.g. bench/soak/capture_soak.sh build/ci 1200 100000
#
# redis-server on 127.0.0.1:16890; `kvferryctl capture --backend pcap --iface lo --format json` on it;
# redis-benchmark in bursts (one a second, each -n 10000 per test, 4 clients, pipelines of 2) over
# KEYS random keys: SET, INCR, LPUSH, RPOP, SADD, SPOP, HSET, ZADD, and SET … EX 60 (expiries the
# capture keeps). Every 30 s: the capture's RSS and its totals so far. At the end: the requests it parsed
# against the server's own count (INFO commandstats), gaps and drops, and the verdict: "levels off" when
# the peak RSS of the last third is within 10 % (and 16 MB) of the peak of the middle third.
# Needs root (live capture), redis-server, redis-benchmark. Cleans up after itself.
set -eu
BUILD=${1:?build dir}
SECONDS_TOTAL=${2:-1200}
KEYS=${3:-100000}
PORT=16890
CTL="$BUILD/ctl/kvferryctl"
DIR=$(mktemp -d /tmp/kvft-soak.XXXXXX)
CAP_PID=
LOAD_PID=
cleanup() {
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$CAP_PID" ] && kill "$CAP_PID" 2>/dev/null || true
  [ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$DIR" \
  --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
sleep 0.5
redis-cli -p $PORT CONFIG RESETSTAT >/dev/null

"$CTL" capture --backend pcap --iface lo --server 127.0.0.1:$PORT --format json >"$DIR/cap.json" \
  2>"$DIR/cap.err" &
CAP_PID=$!
sleep 1

(
  while :; do
    redis-benchmark -p $PORT -r "$KEYS" -n 10000 -c 4 -P 2 -q \
      -t set,incr,lpush,rpop,sadd,spop,hset,zadd >/dev/null 2>&1
    redis-benchmark -p $PORT -r "$KEYS" -n 10000 -c 4 -P 2 -q \
      set "ex:__rand_int__" v ex 60 >/dev/null 2>&1
    sleep 1
  done
) &
LOAD_PID=$!

# The last per-second line's totals: requests, records, gaps, drops.
totals() {
  tail -n 1 "$DIR/cap.json" | python3 -c '
import json, sys
t = json.loads(sys.stdin.read())["totals"]
drops = t["nic_drops"] + t["ring_full_drops"] + t["worker_queue_full_drops"]
print(t["requests_parsed"], t["records"], t["gaps"], drops)'
}

echo "# t_s rss_mb requests records gaps drops dbsize"
START=$(date +%s)
: >"$DIR/rss"
while :; do
  sleep 30
  NOW=$(( $(date +%s) - START ))
  RSS_KB=$(ps -o rss= -p "$CAP_PID" | tr -d ' ')
  echo "$NOW $RSS_KB" >>"$DIR/rss"
  echo "$NOW $((RSS_KB / 1024)) $(totals) $(redis-cli -p $PORT DBSIZE)"
  [ "$NOW" -ge "$SECONDS_TOTAL" ] && break
done

kill "$LOAD_PID"
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=
sleep 2
kill -INT "$CAP_PID"
wait "$CAP_PID" || true
CAP_PID=
# Every request the server counted (INFO commandstats calls, CONFIG and INFO of this script aside).
SERVER_CALLS=$(redis-cli -p $PORT INFO commandstats | tr -d '\r' |
  awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /cmdstat_(config|info|dbsize)/ {s += $3} END {print s}')
set -- $(grep '"at":"total"' "$DIR/cap.json" | python3 -c '
import json, sys
t = json.loads(sys.stdin.read())["totals"]
byc = t["requests_parsed_by_command"]
other = sum(v for k, v in byc.items() if k.split("|")[0] not in ("config", "info", "dbsize"))
print(other, t["gaps"], t["nic_drops"] + t["ring_full_drops"] + t["worker_queue_full_drops"])')
echo "requests: capture $1, server $SERVER_CALLS; gaps $2; drops $3"
awk -v total="$SECONDS_TOTAL" '
  { t[NR] = $1; r[NR] = $2 }
  END {
    for (i = 1; i <= NR; i++) {
      if (t[i] > total / 3 && t[i] <= 2 * total / 3 && r[i] > mid) mid = r[i]
      if (t[i] > 2 * total / 3 && r[i] > last) last = r[i]
    }
    slack = mid * 0.10; if (slack < 16384) slack = 16384
    printf "peak RSS: middle third %d MB, last third %d MB: %s\n", mid / 1024, last / 1024,
           (last <= mid + slack) ? "levels off" : "still growing"
  }' "$DIR/rss"
