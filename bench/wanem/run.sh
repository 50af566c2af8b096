#!/usr/bin/env bash
# Maximum packet rate of the lab's WAN emulator (kvf-wanem), each way at once.
# Two iperf3 UDP flows of 64-byte datagrams (A->B and B->A) offer more than
# the emulator can carry; the forwarded counters over the run give its rate.
# Baseline in the same run: the same flows over a plain veth pair between two
# namespaces (what the kernel alone sustains with these generators).
# usage: bench/wanem/run.sh [seconds]   (root)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LAB="$ROOT/deploy/lab/lab.sh"
secs=${1:-8}
[ "$(id -u)" -eq 0 ] || { echo "needs root"; exit 1; }
trap '"$LAB" down >/dev/null 2>&1 || true; ip netns del kvfbw1 2>/dev/null || true; ip netns del kvfbw2 2>/dev/null || true' EXIT

udp_pair() {  # NS1 IP1 NS2 IP2 -> prints "pps_1to2 pps_2to1" measured by the receivers
  local n1=$1 ip1=$2 n2=$3 ip2=$4
  ip netns exec "$n2" iperf3 -s -1 -B "$ip2" -p 5301 >/dev/null 2>&1 &
  ip netns exec "$n1" iperf3 -s -1 -B "$ip1" -p 5302 >/dev/null 2>&1 &
  sleep 0.5
  ip netns exec "$n1" iperf3 -c "$ip2" -p 5301 -u -b 0 -l 64 -t "$secs" -J >/tmp/kvf-bw-ab.json &
  local p1=$!
  ip netns exec "$n2" iperf3 -c "$ip1" -p 5302 -u -b 0 -l 64 -t "$secs" -J >/tmp/kvf-bw-ba.json &
  local p2=$!
  wait $p1 $p2 || true
  python3 - <<'PY'
import json
def rx(p):
    d = json.load(open(p))["end"]["sum"]
    return (d["packets"] - d["lost_packets"]) / d["seconds"]
print(int(rx("/tmp/kvf-bw-ab.json")), int(rx("/tmp/kvf-bw-ba.json")))
PY
}

"$LAB" up --no-redis >/dev/null
eval "$("$LAB" env)"
stats() { python3 -c "import json; d=json.load(open('$KVF_WANEM_STATS')); print(d['a_to_b']['forwarded'], d['b_to_a']['forwarded'], d['a_to_b']['received'], d['b_to_a']['received'])"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$KVF_LAB_STATE/wanem.pid")/stat"; }
read -r f0ab f0ba r0ab r0ba <<<"$(stats)"
c0=$(cpu_ticks)
t0=$(date +%s.%N)
read -r wan_ab wan_ba <<<"$(udp_pair "$KVF_A_NS_APPLIANCE" "$KVF_A_WAN_IP" "$KVF_B_NS_APPLIANCE" "$KVF_B_WAN_IP")"
t1=$(date +%s.%N)
sleep 0.3
read -r f1ab f1ba r1ab r1ba <<<"$(stats)"
c1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
"$LAB" down >/dev/null

ip netns add kvfbw1; ip netns add kvfbw2
ip link add kvfbw1v type veth peer name kvfbw2v
ip link set kvfbw1v netns kvfbw1; ip link set kvfbw2v netns kvfbw2
ip -n kvfbw1 addr add 198.18.200.1/24 dev kvfbw1v; ip -n kvfbw2 addr add 198.18.200.2/24 dev kvfbw2v
ip -n kvfbw1 link set kvfbw1v up; ip -n kvfbw2 link set kvfbw2v up
read -r veth_ab veth_ba <<<"$(udp_pair kvfbw1 198.18.200.1 kvfbw2 198.18.200.2)"

echo "seconds=$secs"
echo "kvf-wanem forwarded (receiver-measured pps): a_to_b=$wan_ab b_to_a=$wan_ba"
python3 -c "
dt=$t1-$t0
print('kvf-wanem counters: a_to_b forwarded %d pps (offered %d), b_to_a forwarded %d pps (offered %d), over %.1f s' % (($f1ab-$f0ab)/dt, ($r1ab-$r0ab)/dt, ($f1ba-$f0ba)/dt, ($r1ba-$r0ba)/dt, dt))"
python3 -c "
cpu=($c1-$c0)/$hz; pk=($f1ab-$f0ab)+($f1ba-$f0ba)
print('kvf-wanem cpu: %.2f s for %d packets = %.2f us/packet -> %d packets/s per core' % (cpu, pk, 1e6*cpu/pk, pk/cpu))"
echo "baseline plain veth (receiver-measured pps): a_to_b=$veth_ab b_to_a=$veth_ba"
