#!/usr/bin/env bash
# Round trip of real clients' traffic: redis-benchmark's whole default suite
# (SET, GET, INCR, LPUSH/RPUSH/LPOP/RPOP, SADD, HSET, SPOP, ZADD, ZPOPMIN,
# LRANGE, MSET, XADD…), pipelined 4 deep over 4 connections on random keys,
# plus a 5 MB value from redis-py (one message over many segments), against
# a source redis-server that has a replica attached (its replication link
# must be recognised, not parsed as replies). Captured with tcpdump on
# loopback, decoded, piped into an empty server; every key that differs must
# be one the decoder flagged.
#   usage: benchmark_roundtrip.sh KVFERRYCTL
# Needs root (tcpdump), redis-server, redis-cli, redis-benchmark, python3-redis.
# Ports 16540-16542, /tmp/kvft-bench-rt.*; cleans up. Exit 77 = skipped.
set -euo pipefail
CTL=${1:?kvferryctl}
SRC=16540 DST=16541 REPL=16542
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (tcpdump on loopback)"; exit 77; }
for t in tcpdump redis-server redis-cli redis-benchmark; do
  command -v $t >/dev/null || { echo "SKIP: needs $t"; exit 77; }
done
/usr/bin/python3 -c 'import redis' 2>/dev/null || { echo "SKIP: needs python3-redis"; exit 77; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/kvft-bench-rt.XXXXXX)
TD=
cleanup() {
  [ -n "$TD" ] && kill "$TD" 2>/dev/null || true
  for p in $REPL $SRC $DST; do redis-cli -p $p shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?"' ERR
start() {
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --enable-debug-command yes --dir "$W" --pidfile "$W/r$1.pid" --logfile "$W/r$1.log" "${@:2}"
  for _ in $(seq 50); do redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return; sleep 0.1; done
  echo "FAIL: redis-server on $1 did not start"; exit 1
}
start $SRC
start $DST
tcpdump -i lo -s 0 -B 65536 -w "$W/a.pcap" "tcp port $SRC" 2>"$W/tcpdump.log" &
TD=$!
for _ in $(seq 100); do grep -q listening "$W/tcpdump.log" && break; sleep 0.1; done
sleep 0.5
redis-cli -p $SRC config set repl-diskless-sync-delay 0 >/dev/null
start $REPL --replicaof 127.0.0.1 $SRC
redis-benchmark -p $SRC -n 5000 -r 100000 -P 4 -c 4 -q >/dev/null 2>&1
/usr/bin/python3 -c "
import redis
r = redis.Redis(port=$SRC)
r.set('big', b'v' * (5 << 20))
r.set('after-big', 'x')
"
for _ in $(seq 50); do
  redis-cli -p $REPL info replication | tr -d '\r' | grep -q '^master_link_status:up' && break
  sleep 0.1
done
sleep 1.5  # a replica ACK or two on the link
kill -INT "$TD"
wait "$TD" || true
TD=
grep -q "^0 packets dropped by kernel" "$W/tcpdump.log" || { cat "$W/tcpdump.log"; echo "FAIL: tcpdump dropped packets"; exit 1; }
"$CTL" decode --pcap "$W/a.pcap" --server 127.0.0.1:$SRC --format stats >"$W/stats.txt"
"$CTL" decode --pcap "$W/a.pcap" --server 127.0.0.1:$SRC --format json >"$W/records.json"
"$CTL" decode --pcap "$W/a.pcap" --server 127.0.0.1:$SRC --format resp | redis-cli -p $DST --pipe >"$W/pipe.txt"
stat() { sed -n "s/^conn $1 \([0-9]*\)$/\1/p" "$W/stats.txt"; }
echo "requests $(stat requests) records $(grep -c . "$W/records.json") replication_links $(stat replication_links)" \
  "parse_errors $(stat parse_errors) desyncs $(stat desyncs) unpaired_replies $(stat unpaired_replies)"
[ "$(stat replication_links)" = 1 ] || { echo "FAIL: the replica's link was not recognised"; exit 1; }
for c in parse_errors desyncs unpaired_replies gaps; do
  [ "$(stat $c)" = 0 ] || { cat "$W/stats.txt"; echo "FAIL: $c is $(stat $c)"; exit 1; }
done
grep -q "errors: 0," "$W/pipe.txt" || { cat "$W/pipe.txt"; echo "FAIL: the target refused replayed commands"; exit 1; }
/usr/bin/python3 - "$W/records.json" >"$W/flagged.txt" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="latin-1"):
    r = json.loads(line)
    if "needs_readback" in r.get("flags", []) or "ambiguous_order" in r.get("flags", []):
        print(f"{r.get('db', 0)} {r.get('key', '')}")
PY
/usr/bin/python3 "$ROOT/tests/lab/redis_snapshot.py" --port $SRC >"$W/a.json"
/usr/bin/python3 "$ROOT/tests/lab/redis_snapshot.py" --port $DST >"$W/b.json"
/usr/bin/python3 "$ROOT/tests/lab/redis_snapshot.py" --compare "$W/a.json" "$W/b.json" --flagged "$W/flagged.txt" |
  grep -v "^flagged '" || { echo "FAIL: keys differ that the decoder did not flag"; exit 1; }
echo "PASS: redis-benchmark's suite and a replica's link round-trip; every differing key was flagged"
