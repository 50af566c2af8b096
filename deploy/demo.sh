#!/usr/bin/env bash
# kvferry's main job on its embedded default, end to end on one machine:
# brings up the two-site lab (deploy/lab/lab.sh), drives Redis traffic from
# site A's client, shows what the appliance at site A receives on its mirror
# port and what kvferry makes of it, shows the WAN between the sites, and
# tears everything down. Needs root (namespaces, TUN, tc, XDP).
#   ./deploy/demo.sh [--seconds N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
secs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds N]"; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (network namespaces, TUN devices, tc mirred)"; exit 1; }

./deploy/install-deps.sh
echo "demo: building (preset ci)"
cmake --preset ci >/dev/null
cmake --build --preset ci -j "$(nproc)" >/dev/null
BIN="$ROOT/build/ci"
export KVF_WANEM="$BIN/deploy/lab/kvf-wanem"
LAB="$ROOT/deploy/lab/lab.sh"

trap '"$LAB" down >/dev/null 2>&1 || true; rm -f "${pcap:-}"' EXIT
echo "demo: lab up — two sites, mirror at site A, WAN 20 ms each way, 0.5 % loss, 200 Mbit/s"
"$LAB" up --delay-ms 20 --loss 0.5 --rate-mbit 200
eval "$("$LAB" env)"

echo; echo "== WAN between the appliances (site A -> site B)"
ip netns exec "$KVF_A_NS_APPLIANCE" ping -q -c 200 -i 0.005 -l 16 "$KVF_B_WAN_IP" | tail -2

echo; echo "== Capture on site A's mirror port while clients write to Redis A"
pcap=$(mktemp /tmp/kvf-demo-XXXXXX.pcap)
ip netns exec "$KVF_A_NS_APPLIANCE" tcpdump -q -i "$KVF_A_MIRROR_IF" -s 0 -B 16384 -U -w "$pcap" \
  "tcp port $KVF_REDIS_PORT" 2>/dev/null &
dump=$!
sleep 1
ip netns exec "$KVF_A_NS_CLIENT" redis-benchmark -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" \
  -c 4 -n 20000 -P 8 -r 1000 -t set,incr,lpush,hset,sadd -q | tr '\r' '\n' | grep -v '^$'
ip netns exec "$KVF_A_NS_CLIENT" redis-cli -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" \
  set demo:greeting "hello from site A" EX 600 >/dev/null
sleep 1
kill -TERM "$dump" 2>/dev/null || true
wait "$dump" 2>/dev/null || true
echo "mirror port traffic (TCP payload per direction):"
python3 "$ROOT/tests/lab/pcap_tcp_bytes.py" "$pcap" "$KVF_REDIS_PORT" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("  client -> redis: %7d segments %10d bytes" % (d["to_server"]["segments"], d["to_server"]["payload"]))
print("  redis -> client: %7d segments %10d bytes" % (d["from_server"]["segments"], d["from_server"]["payload"]))'
if "$BIN/ctl/kvferryctl" help | grep -q '^  decode'; then
  echo; echo "== What kvferry understands of it (kvferryctl decode --format stats)"
  "$BIN/ctl/kvferryctl" decode --pcap "$pcap" --server "$KVF_A_REDIS_IP:$KVF_REDIS_PORT" --format stats
elif "$BIN/ctl/kvferryctl" help | grep -q '^  capture'; then
  echo; echo "== kvferry's view of the same capture (kvferryctl capture --pcap)"
  "$BIN/ctl/kvferryctl" capture --backend pcap --pcap "$pcap" --server "$KVF_A_REDIS_IP:$KVF_REDIS_PORT" --format stats
fi
echo; echo "== WAN emulator counters"
"$LAB" status | sed -n 's/^wan counters: //p'
echo; echo "demo: done; tearing the lab down"
