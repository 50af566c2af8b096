#!/bin/sh
# End-to-end decode rate from a pcap versus the rate redis-server itself
# executed the same traffic, for each pipeline depth given.
#
#   bench/resp/pcap_bench.sh BUILD_DIR [REQUESTS] [DEPTHS] [REPS]
#   e.g. bench/resp/pcap_bench.sh build/ci 1000000 "1 16" 5
#
# For each depth P: redis-benchmark -P P SET (50 connections, 100k random
# keys) without capture = the server's own rate; the same run again while
# tcpdump writes the pcap (its rate is printed too: capture slows the
# server); then `kvferryctl decode --format stats` on the pcap with
# --threads 1, 2 and 3, REPS times each, alternating; medians and the ratio
# to the server's own rate. Needs root (tcpdump on lo), redis-server,
# redis-benchmark, tcpdump. Port 16460 and /tmp/kvft-resp-bench.*; cleans up.
set -eu
BUILD=${1:?build dir}
N=${2:-1000000}
DEPTHS=${3:-"1 16"}
REPS=${4:-5}
PORT=16460
CTL="$BUILD/ctl/kvferryctl"
DIR=$(mktemp -d /tmp/kvft-resp-bench.XXXXXX)
TCPDUMP_PID=
cleanup() {
  [ -n "$TCPDUMP_PID" ] && kill "$TCPDUMP_PID" 2>/dev/null || true
  [ -f "$DIR/redis.pid" ] && kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
redis-server --port $PORT --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --dir "$DIR" \
  --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
sleep 0.5

# Requests per second reported by redis-benchmark (last line of -q output).
bench_rate() {
  redis-benchmark -p $PORT -P "$1" -n "$N" -r 100000 -t set -q 2>&1 | tr '\r' '\n' |
    sed -n 's/.*SET: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

printf '%-6s %-12s %-12s %-8s %-14s %-14s %-14s %s\n' depth server/s captured/s drops \
  'decode t=1' 'decode t=2' 'decode t=3' 'best/server'
for P in $DEPTHS; do
  redis-cli -p $PORT flushall >/dev/null
  server=$(bench_rate "$P")
  redis-cli -p $PORT flushall >/dev/null
  tcpdump --immediate-mode -B 262144 -i lo -s 0 -w "$DIR/cap.pcap" "tcp port $PORT" 2>"$DIR/tcpdump.log" &
  TCPDUMP_PID=$!
  # Wait until tcpdump really listens: a capture that misses the SYNs sees
  # every connection as joined mid-stream.
  for _ in $(seq 100); do grep -q listening "$DIR/tcpdump.log" && break; sleep 0.1; done
  sleep 1
  captured=$(bench_rate "$P")
  sleep 1
  kill -INT "$TCPDUMP_PID"
  wait "$TCPDUMP_PID" || true
  TCPDUMP_PID=
  drops=$(sed -n 's/^\([0-9]*\) packets dropped by kernel/\1/p' "$DIR/tcpdump.log")
  # Correctness of the capture itself: every request decoded and paired.
  "$CTL" decode --pcap "$DIR/cap.pcap" --server 127.0.0.1:$PORT --format stats >"$DIR/stats.txt"
  grep -E '^(frames|records|conn (requests|unpaired_replies|desyncs|gaps) )' "$DIR/stats.txt" | tr '\n' ' ' >&2
  echo >&2
  : >"$DIR/t1"; : >"$DIR/t2"; : >"$DIR/t3"
  for _ in $(seq "$REPS"); do
    for t in 1 2 3; do
      "$CTL" decode --pcap "$DIR/cap.pcap" --server 127.0.0.1:$PORT --format stats --threads $t |
        sed -n 's/^throughput commands\/s \([0-9]*\).*/\1/p' >>"$DIR/t$t"
    done
  done
  m1=$(median <"$DIR/t1"); m2=$(median <"$DIR/t2"); m3=$(median <"$DIR/t3")
  best=$(printf '%s\n%s\n%s\n' "$m1" "$m2" "$m3" | sort -n | tail -1)
  printf '%-6s %-12.0f %-12.0f %-8s %-14.0f %-14.0f %-14.0f %.1fx\n' "$P" "$server" "$captured" "${drops:-?}" \
    "$m1" "$m2" "$m3" "$(awk -v b="$best" -v s="$server" 'BEGIN {print b / s}')"
  echo "  runs t=1: $(tr '\n' ' ' <"$DIR/t1")| t=2: $(tr '\n' ' ' <"$DIR/t2")| t=3: $(tr '\n' ' ' <"$DIR/t3")" >&2
done
