#!/usr/bin/env bash
# The site-A mirror: Redis traffic between the client and Redis namespaces
# arrives, both directions, on the appliance's mirror port. Checked byte for
# byte: the client->server TCP payload seen on the mirror equals what Redis
# counted as input (INFO total_net_input_bytes), with offloads off (MTU-sized
# frames, the default) and on (GSO super-frames).
# usage: mirror_test.sh off|on
source "$(dirname "$0")/lib.sh"
need_root
command -v tcpdump >/dev/null || skip "tcpdump is not installed (deploy/install-deps.sh)"
offloads=${1:-off}
lab_up --offloads "$offloads"
pcap=$(mktemp /tmp/kvf-mirror-XXXXXX.pcap)
trap 'rc=$?; rm -f "$pcap"; "$LAB" down >/dev/null 2>&1 || true; exit $rc' EXIT
info_in() { in_ns "$KVF_A_NS_REDIS" redis-cli -p "$KVF_REDIS_PORT" info stats | tr -d '\r' | sed -n 's/^total_net_input_bytes://p'; }
in0=$(info_in)
ip netns exec "$KVF_A_NS_APPLIANCE" tcpdump -i "$KVF_A_MIRROR_IF" -B 16384 -s 0 -w "$pcap" -U "tcp port $KVF_REDIS_PORT" 2>"$pcap.log" &
dump=$!
sleep 1
in_ns "$KVF_A_NS_CLIENT" redis-benchmark -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" -c 1 -n 3000 -t set,get -d 64 -q >/dev/null
in_ns "$KVF_A_NS_CLIENT" redis-benchmark -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" -c 4 -n 20000 -P 16 -t set -d 900 -q >/dev/null
sleep 1
kill -TERM $dump 2>/dev/null || true
wait $dump 2>/dev/null || true
in1=$(info_in)
cat "$pcap.log"
grep -q "^0 packets dropped by kernel" "$pcap.log" || fail "tcpdump dropped packets"
rm -f "$pcap.log"
# The second INFO's own request (25 bytes over loopback) is in the delta but not on the mirror.
expected=$(( in1 - in0 - 25 ))
counts=$(python3 "$ROOT/tests/lab/pcap_tcp_bytes.py" "$pcap" "$KVF_REDIS_PORT")
echo "offloads $offloads: redis input delta $expected bytes; mirror: $counts"
got=$(echo "$counts" | python3 -c "import json,sys; print(json.load(sys.stdin)['to_server']['payload'])")
back=$(echo "$counts" | python3 -c "import json,sys; d=json.load(sys.stdin)['from_server']; print(d['segments'], d['payload'])")
[ "$got" -eq "$expected" ] || fail "client->server payload on the mirror ($got) != redis input ($expected)"
read -r seg_back bytes_back <<<"$back"
[ "$seg_back" -ge 3000 ] || fail "only $seg_back server->client segments on the mirror"
[ "$bytes_back" -ge $(( 23000 * 5 )) ] || fail "only $bytes_back server->client payload bytes"
pass "mirror carries both directions (offloads $offloads)"
