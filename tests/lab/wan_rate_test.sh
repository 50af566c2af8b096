#!/usr/bin/env bash
# WAN emulator, rate limit: with --rate-mbit 50, a bulk TCP transfer (iperf3)
# between the appliances measures 50 Mbit/s +- 10 %.
source "$(dirname "$0")/lib.sh"
need_root
command -v iperf3 >/dev/null || skip "iperf3 is not installed (deploy/install-deps.sh)"
lab_up --rate-mbit 50 --delay-ms 5 --no-redis
in_ns "$KVF_B_NS_APPLIANCE" iperf3 -s -1 -B "$KVF_B_WAN_IP" -p 5201 >/dev/null 2>&1 &
sleep 0.5
json=$(in_ns "$KVF_A_NS_APPLIANCE" timeout 30 iperf3 -c "$KVF_B_WAN_IP" -p 5201 -t 6 -O 2 -J)
mbit=$(echo "$json" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6, 2))")
echo "bulk TCP A->B: $mbit Mbit/s"
approx "$mbit" 50 5 || fail "throughput $mbit Mbit/s is not 50 +- 10 %"
pass "rate limit as configured"
