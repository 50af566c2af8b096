#!/usr/bin/env bash
# WAN emulator, delay and loss: with --delay-ms 15 --loss 1, ping between the
# appliances has an RTT of 30 ms +- 3 ms, and each direction loses 1 % +- 0.5
# points of its packets (counted on both TUN devices, over 6000 packets).
source "$(dirname "$0")/lib.sh"
need_root
lab_up --delay-ms 15 --loss 1 --no-redis

A=$KVF_A_NS_APPLIANCE B=$KVF_B_NS_APPLIANCE
a_tx0=$(ns_link_stat "$A" kvfwan tx_packets); a_rx0=$(ns_link_stat "$A" kvfwan rx_packets)
b_tx0=$(ns_link_stat "$B" kvfwan tx_packets); b_rx0=$(ns_link_stat "$B" kvfwan rx_packets)
out=$(in_ns "$A" ping -q -c 6000 -i 0.001 -l 64 -W 1 "$KVF_B_WAN_IP" || true)
sleep 0.2
echo "$out" | tail -3
a_tx=$(( $(ns_link_stat "$A" kvfwan tx_packets) - a_tx0 )); a_rx=$(( $(ns_link_stat "$A" kvfwan rx_packets) - a_rx0 ))
b_tx=$(( $(ns_link_stat "$B" kvfwan tx_packets) - b_tx0 )); b_rx=$(( $(ns_link_stat "$B" kvfwan rx_packets) - b_rx0 ))
rtt=$(echo "$out" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
[ -n "$rtt" ] || fail "no RTT in ping output"
loss_ab=$(python3 -c "print(round(100.0*($a_tx-$b_rx)/$a_tx, 3))")
loss_ba=$(python3 -c "print(round(100.0*($b_tx-$a_rx)/$b_tx, 3))")
echo "rtt avg ${rtt} ms; A->B sent $a_tx arrived $b_rx (loss ${loss_ab}%); B->A sent $b_tx arrived $a_rx (loss ${loss_ba}%)"
[ "$a_tx" -ge 6000 ] || fail "only $a_tx packets sent A->B"
approx "$rtt" 30 3 || fail "RTT $rtt ms is not 30 +- 3 ms"
approx "$loss_ab" 1 0.5 || fail "A->B loss $loss_ab% is not 1 +- 0.5"
approx "$loss_ba" 1 0.5 || fail "B->A loss $loss_ba% is not 1 +- 0.5"
pass "delay and loss as configured"
