#!/usr/bin/env bash
# Live capture on the lab mirror, every backend side by side in one run:
# pipelined redis-benchmark SET (-P 32 -c 8) at full speed from site A's
# client namespace while one capturer (kvferryctl capture xdp | dpdk | pcap,
# or `tcpdump -w /dev/null`) reads the appliance's mirror port. Prints, per
# capturer and repetition: achieved SET/s, SETs parsed vs the server's calls,
# drops at every layer, gaps, and the capturer's CPU seconds (utime+stime).
# usage: live_lab.sh [--ctl PATH] [--requests N] [--reps N] [--offloads off|on] [--data-bytes N]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
LAB="$ROOT/deploy/lab/lab.sh"
CTL="${KVF_CTL:-$ROOT/build/integrate/ctl/kvferryctl}"
REQUESTS=2000000
REPS=3
OFFLOADS=off
DATA=64
while [ $# -gt 0 ]; do
  case "$1" in
    --ctl) CTL=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --offloads) OFFLOADS=$2; shift 2 ;;
    --data-bytes) DATA=$2; shift 2 ;;
    *) echo "usage: $0 [--ctl PATH] [--requests N] [--reps N] [--offloads off|on] [--data-bytes N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)" >&2; exit 77; }
[ -x "$CTL" ] || { echo "no kvferryctl at $CTL (--ctl)" >&2; exit 2; }

work=$(mktemp -d /tmp/kvfcapbench-XXXXXX)
cap_pid=""
cleanup() {
  local rc=$?
  [ -n "$cap_pid" ] && kill -KILL "$cap_pid" 2>/dev/null
  "$LAB" down >/dev/null 2>&1 || true
  rm -rf "$work" "/var/run/dpdk/kvfcapb$$"
  exit $rc
}
trap cleanup EXIT
"$LAB" up --offloads "$OFFLOADS" >/dev/null
eval "$("$LAB" env)"
server="$KVF_A_REDIS_IP:$KVF_REDIS_PORT"

set_calls() {
  ip netns exec "$KVF_A_NS_REDIS" redis-cli -p "$KVF_REDIS_PORT" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_set:calls=\([0-9]*\),.*/\1/p' | grep . || echo 0
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# start CAPTURER OUT: capturer in the appliance namespace; `ip netns exec`
# execs it, so $! is the capturer itself (for /proc/PID/stat).
start() {
  local who=$1 out=$2
  case "$who" in
    tcpdump)
      ip netns exec "$KVF_A_NS_APPLIANCE" tcpdump -i "$KVF_A_MIRROR_IF" -B 65536 -s 0 -w /dev/null \
        "tcp port $KVF_REDIS_PORT" >"$out" 2>"$out.err" & ;;
    dpdk)
      ip netns exec "$KVF_A_NS_APPLIANCE" "$CTL" capture --backend dpdk --iface "$KVF_A_MIRROR_IF" \
        --server "$server" --format json --dpdk-port net_af_packet0 \
        --eal "--no-huge --no-shconf -m 256 -l 0 --no-pci --log-level=*:warning --file-prefix=kvfcapb$$ --vdev=net_af_packet0,iface=$KVF_A_MIRROR_IF,framecnt=16384" \
        >"$out" 2>"$out.err" & ;;
    *)
      ip netns exec "$KVF_A_NS_APPLIANCE" "$CTL" capture --backend "$who" --iface "$KVF_A_MIRROR_IF" \
        --server "$server" --format json >"$out" 2>"$out.err" & ;;
  esac
  cap_pid=$!
  for _ in $(seq 100); do
    grep -q "^capturing on\|listening on" "$out.err" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "^capturing on\|listening on" "$out.err" || { cat "$out.err" >&2; echo "$who did not start" >&2; exit 1; }
  sleep 0.5
}

hz=$(getconf CLK_TCK)
rows="$work/rows"
: >"$rows"
for rep in $(seq "$REPS"); do
  for who in none xdp dpdk pcap tcpdump; do
    out="$work/$who.$rep"
    t0=0
    if [ "$who" != none ]; then
      start "$who" "$out"
      t0=$(cpu_ticks "$cap_pid")
    fi
    c0=$(set_calls)
    w0=$(date +%s.%N)
    rate=$(ip netns exec "$KVF_A_NS_CLIENT" timeout 120 redis-benchmark -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" \
             -c 8 -P 32 -n "$REQUESTS" -t set -d "$DATA" -q 2>/dev/null | tr '\r' '\n' |
           sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
    sleep 1  # let the capturer drain
    w1=$(date +%s.%N)
    c1=$(set_calls)
    t1=0
    if [ "$who" != none ]; then
      t1=$(cpu_ticks "$cap_pid")
      kill -INT "$cap_pid"
      for _ in $(seq 100); do kill -0 "$cap_pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$cap_pid" 2>/dev/null && { kill -KILL "$cap_pid"; echo "$who did not stop on SIGINT" >&2; }
      wait "$cap_pid" 2>/dev/null || true
      cap_pid=""
    fi
    echo "$who $rep $rate $((c1 - c0)) $(( t1 - t0 )) $w0 $w1 $out" >>"$rows"
  done
done

python3 - "$rows" "$hz" "$OFFLOADS" "$REQUESTS" "$DATA" <<'PY'
import json, re, statistics, sys
rows_path, hz, offloads, requests, data = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
res = {}
for line in open(rows_path):
    who, rep, rate, calls, ticks, w0, w1, out = line.split()
    r = {"set_per_s": float(rate or 0), "calls": int(calls), "cpu_s": int(ticks) / hz,
         "window_s": float(w1) - float(w0)}
    if who == "tcpdump":
        err = open(out + ".err").read()
        m = re.search(r"(\d+) packets captured", err); r["frames"] = int(m.group(1)) if m else -1
        m = re.search(r"(\d+) packets dropped by kernel", err); r["kernel_drops"] = int(m.group(1)) if m else -1
    elif who != "none":
        t = json.loads(open(out).read().splitlines()[-1])["totals"]
        r["frames"] = t["frames_received"]
        r["parsed"] = t["requests_parsed_by_command"].get("set", 0)
        r["drops"] = {k: t[k] for k in ("nic_drops", "ring_full_drops", "kernel_parse_errors", "oversize_frames",
                                         "snap_truncated", "worker_queue_full_drops",
                                         "worker_oversize_payload_drops") if t.get(k)}
        # Non-IP / non-TCP frames on the mirror (ARP, IPv6 ND) are ignored on purpose, not lost.
        bad = t["decode_failures"] - t.get("decode_not_ip_ignored", 0) - t.get("decode_not_tcp_ignored", 0)
        if bad: r["drops"]["decode_errors"] = bad
        r["gaps"], r["gap_bytes"], r["desyncs"] = t["gaps"], t["gap_bytes"], t["resp_desyncs"]
    res.setdefault(who, []).append(r)
print(f"# live capture on the lab mirror: redis-benchmark -c 8 -P 32 -n {requests} -t set -d {data}, "
      f"offloads {offloads}, {len(next(iter(res.values())))} reps (median SET/s and CPU; worst drops)")
print(f"| capturer | SET/s median (per rep) | SETs parsed / server calls | drops by layer (worst rep) | gaps (bytes) | "
      f"frames | capturer CPU s (median) | CPU % of window |")
print("|---|---|---|---|---|---|---|---|")
for who in ("none", "xdp", "dpdk", "pcap", "tcpdump"):
    rs = res.get(who)
    if not rs: continue
    rate = statistics.median(r["set_per_s"] for r in rs)
    reps = "/".join(f"{r['set_per_s'] / 1000:.0f}K" for r in rs)
    cpu = statistics.median(r["cpu_s"] for r in rs)
    pct = statistics.median(100 * r["cpu_s"] / r["window_s"] for r in rs)
    if who == "none":
        print(f"| (no capturer, baseline) | {rate:,.0f} ({reps}) | - | - | - | - | - | - |"); continue
    frames = "/".join(str(r["frames"]) for r in rs)
    if who == "tcpdump":
        drops = "kernel " + "/".join(str(r["kernel_drops"]) for r in rs)
        print(f"| tcpdump -w /dev/null | {rate:,.0f} ({reps}) | (no parsing) | {drops} | - | {frames} | {cpu:.2f} | {pct:.0f} |")
        continue
    parsed = "; ".join(f"{r['parsed']}/{r['calls']}" for r in rs)
    worst = max(rs, key=lambda r: sum(r["drops"].values()))
    drops = ", ".join(f"{k} {v}" for k, v in worst["drops"].items()) or "0"
    gaps = "; ".join(f"{r['gaps']} ({r['gap_bytes']})" for r in rs)
    print(f"| kvferryctl {who} | {rate:,.0f} ({reps}) | {parsed} | {drops} | {gaps} | {frames} | {cpu:.2f} | {pct:.0f} |")
PY
