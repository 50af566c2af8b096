#!/bin/sh
# End-to-end decode rate from a pcap versus the rate redis-server itself
# executed the same traffic. Needs root (tcpdump on lo), redis-server,
# redis-benchmark, tcpdump. Usage: bench/resp/pcap_bench.sh BUILD_DIR [REQUESTS]
# Uses port 16460 (resp's range) and /tmp/kvft-resp-bench.*; cleans up.
set -eu
BUILD=${1:?build dir}
N=${2:-2000000}
PORT=16460
DIR=$(mktemp -d /tmp/kvft-resp-bench.XXXXXX)
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
sleep 0.5
cleanup() {
  [ -n "${TCPDUMP_PID:-}" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
  kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
echo "== baseline: redis-benchmark -P 16 SET, no capture running"
redis-benchmark -p $PORT -P 16 -n "$N" -r 100000 -t set -q
redis-cli -p $PORT flushall >/dev/null
tcpdump --immediate-mode -B 131072 -i lo -s 0 -w "$DIR/cap.pcap" "tcp port $PORT" 2>"$DIR/tcpdump.log" &
TCPDUMP_PID=$!
# Wait until tcpdump really listens: a capture that misses the SYNs sees every
# connection as joined mid-stream (unknown db, first pipeline unpaired).
for _ in $(seq 100); do grep -q listening "$DIR/tcpdump.log" && break; sleep 0.1; done
sleep 1
echo "== the same traffic while tcpdump writes the pcap"
redis-benchmark -p $PORT -P 16 -n "$N" -r 100000 -t set -q
sleep 1
kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
TCPDUMP_PID=
tail -3 "$DIR/tcpdump.log"
ls -l "$DIR/cap.pcap"
echo "== kvferryctl decode --format stats (single thread, file in page cache)"
"$BUILD/ctl/kvferryctl" decode --pcap "$DIR/cap.pcap" --server 127.0.0.1:$PORT --format stats >/dev/null
for i in 1 2 3; do
  "$BUILD/ctl/kvferryctl" decode --pcap "$DIR/cap.pcap" --server 127.0.0.1:$PORT --format stats |
    grep -E '^(frames|throughput|records|conn (requests|unpaired_replies|desyncs|gaps) )'
done
