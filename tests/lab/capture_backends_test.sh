#!/usr/bin/env bash
# Live capture end to end, one backend per run: `kvferryctl capture` in the
# appliance namespace reads site A's mirror port, reassembles and parses the
# RESP streams; the requests it parsed per command must EQUAL the server's
# INFO commandstats delta with zero gaps (pipelined and not). Then the mirror
# is made lossy on purpose: gaps must be reported with byte counts, and the
# command must still exit 0 with a final summary.
# usage: capture_backends_test.sh xdp|dpdk|pcap [off|on]   (offloads on the site LANs)
source "$(dirname "$0")/lib.sh"
need_root
backend=${1:?usage: capture_backends_test.sh xdp|dpdk|pcap [off|on]}
offloads=${2:-off}
[ -n "${KVF_CTL:-}" ] && [ -x "$KVF_CTL" ] || skip "KVF_CTL does not name a kvferryctl binary"
command -v redis-benchmark >/dev/null || skip "redis-benchmark is not installed"
"$KVF_CTL" capture --help 2>&1 | grep -q -- "--backend" || fail "kvferryctl has no capture command"

work=$(mktemp -d /tmp/kvfcap-XXXXXX)
cap_pid=""
cleanup() {
  local rc=$?
  [ -n "$cap_pid" ] && kill -TERM "$cap_pid" 2>/dev/null && sleep 1 && kill -KILL "$cap_pid" 2>/dev/null
  "$LAB" down >/dev/null 2>&1 || true
  rm -rf "$work" "/var/run/dpdk/kvfcap$$"
  exit $rc
}
trap cleanup EXIT
"$LAB" up --offloads "$offloads"
eval "$("$LAB" env)"
server="$KVF_A_REDIS_IP:$KVF_REDIS_PORT"

# start_capture SECONDS OUT [FORMAT [CAPTURE ARGS…]]: runs the capturer in the background
# (cap_pid) and waits until it reports that it is attached.
start_capture() {
  local secs=$1 out=$2 format=${3:-json}
  local extra=("${@:4}")
  if [ "$backend" = dpdk ]; then
    extra+=(--dpdk-port net_af_packet0
           --eal "--no-huge --no-shconf -m 256 -l 0 --no-pci --log-level=*:warning --file-prefix=kvfcap$$ --vdev=net_af_packet0,iface=$KVF_A_MIRROR_IF,framecnt=16384")
  fi
  ip netns exec "$KVF_A_NS_APPLIANCE" timeout -s INT $((secs + 20)) "$KVF_CTL" capture --backend "$backend" \
    --iface "$KVF_A_MIRROR_IF" --server "$server" --seconds "$secs" --format "$format" "${extra[@]}" \
    >"$out" 2>"$out.err" &
  cap_pid=$!
  for _ in $(seq 100); do
    grep -q "^capturing on" "$out.err" 2>/dev/null && break
    kill -0 "$cap_pid" 2>/dev/null || { cat "$out.err"; fail "$backend capture exited during start-up"; }
    sleep 0.1
  done
  grep -q "^capturing on" "$out.err" || { cat "$out.err"; fail "$backend capture did not attach in 10 s"; }
  sleep 0.5  # the first frames after attach must already be ours
}

# stop_capture OUT FORMAT: waits for the capturer's own --seconds end; it must exit 0.
stop_capture() {
  local out=$1 format=$2 rc=0
  wait "$cap_pid" || rc=$?
  cap_pid=""
  [ "$rc" -eq 0 ] || { cat "$out.err"; tail -3 "$out"; fail "$backend capture exited with $rc"; }
  if [ "$backend" = xdp ] && ip -n "$KVF_A_NS_APPLIANCE" -d link show "$KVF_A_MIRROR_IF" | grep -q "prog/xdp"; then
    fail "the XDP program is still attached to $KVF_A_MIRROR_IF after the capture ended"
  fi
  if [ "$format" = records ]; then  # records on stdout, the stats lines on stderr
    grep -q "^total " "$out.err" || { tail -3 "$out.err"; fail "no final summary line"; }
  else
    tail -1 "$out" | grep -q '"at":"total"' || { tail -3 "$out"; fail "no final summary object"; }
  fi
}

commandstats() {
  in_ns "$KVF_A_NS_REDIS" redis-cli -p "$KVF_REDIS_PORT" info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_\([a-z|]*\):calls=\([0-9]*\),.*/\1 \2/p'
}

bench() { in_ns "$KVF_A_NS_CLIENT" timeout 60 redis-benchmark -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" -q "$@" >/dev/null; }

# Phase 1: lossless mirror, pipelined and not. Parsed requests == server calls, no gaps.
out="$work/lossless.json"
before=$(commandstats)
# The capture runs until the traffic is over (SIGINT ends it like --seconds),
# however long the benchmarks take on a busy machine.
start_capture 120 "$out"
bench -c 4 -n 20000 -t set,incr,lpush -d 64
bench -c 8 -n 20000 -P 16 -t set,incr,lpush -d 64
bench -c 8 -n 10000 -P 16 -t set -d 1000  # large writes: GSO super-frames when offloads are on
after=$(commandstats)
sleep 1  # the last replies cross the mirror
kill -INT "$cap_pid"
stop_capture "$out" json
python3 - "$out" "$backend" "$offloads" <<PY || fail "$backend (offloads $offloads): parsed requests differ from INFO commandstats"
import json, sys
before = dict(l.split() for l in """$before""".splitlines() if l)
after = dict(l.split() for l in """$after""".splitlines() if l)
total = json.loads(open(sys.argv[1]).read().splitlines()[-1])["totals"]
parsed = total["requests_parsed_by_command"]
# dpdk over net_af_packet copies frames into 2 KB mbufs: GSO super-frames
# arrive cut, which must be counted (decode, gaps), never silent.
cut_expected = sys.argv[2] == "dpdk" and sys.argv[3] == "on"
ok = True
for cmd in ("set", "incr", "lpush"):
    delta = int(after.get(cmd, 0)) - int(before.get(cmd, 0))
    got = parsed.get(cmd, 0)
    print(f"{sys.argv[2]} offloads {sys.argv[3]}: {cmd}: server calls {delta}, parsed {got}")
    ok &= delta >= 40000 and (got <= delta if cut_expected else got == delta)
drops = {k: total[k] for k in ("gaps", "gap_bytes", "resp_gaps", "resp_desyncs", "resp_parse_errors",
                               "ring_full_drops", "nic_drops", "worker_queue_full_drops",
                               "decode_tcp_payload_cut_by_snaplen")}
print("  counters:", drops, "records", total["records"], "frames", total["frames_received"])
if cut_expected:
    print("  known limitation: dpdk af_packet + GSO: frames cut at the mbuf size, reported as gaps")
    ok &= drops["decode_tcp_payload_cut_by_snaplen"] > 0 and drops["gap_bytes"] > 0
else:
    ok &= all(v == 0 for v in drops.values()) and total["records"] >= 130000
sys.exit(0 if ok else 1)
PY
pass "$backend (offloads $offloads): requests parsed per command match INFO commandstats, no silent loss"

# Phase 2: --format records prints the change records of acknowledged writes.
out="$work/records.json"
start_capture 4 "$out" records
cli() { in_ns "$KVF_A_NS_CLIENT" timeout 10 redis-cli -h "$KVF_A_REDIS_IP" -p "$KVF_REDIS_PORT" "$@" >/dev/null; }
cli set kvfcap:a hello
cli incrby kvfcap:n 5
cli get kvfcap:a
cli expire kvfcap:a 100
stop_capture "$out" records
python3 - "$out" <<'PY' || fail "$backend (offloads $offloads): --format records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
print("records:", [r["args"][:3] for r in recs])
# seq is dense over all workers; across connections (here: one per redis-cli)
# records appear in worker order, so compare them in capture order.
assert [r["seq"] for r in recs] == [1, 2, 3], recs
recs.sort(key=lambda r: r["capture_ns"])
assert recs[0]["args"] == ["SET", "kvfcap:a", "hello"] and recs[0]["op"] == "idempotent", recs[0]
assert recs[1]["key"] == "kvfcap:n" and recs[1]["args"][:3] == ["SET", "kvfcap:n", "5"], recs[1]
assert recs[2]["args"][0] == "PEXPIREAT" and recs[2]["key"] == "kvfcap:a", recs[2]
PY
pass "$backend (offloads $offloads): --format records prints the three change records"

# Phase 2b: a pooled connection, open before the capture, that selected db 2 then: nothing on
# the mirror says so. With --resolve-db the appliance asks Redis A (CLIENT LIST, over its LAN
# port) and the connection's records carry db 2 without unknown_db once the answer applies.
out="$work/pooled.json"
cat >"$work/pooled.py" <<'PY'
import os, socket, sys, time
host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port))
def call(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args)))
    reply = s.recv(100)
    assert reply == b"+OK\r\n", reply
call("SELECT", "2")
print("selected", flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
for i in range(150):  # 1.5 s
    call("SET", f"kvfpool:{i}", "v")
    time.sleep(0.01)
PY
in_ns "$KVF_A_NS_CLIENT" /usr/bin/python3 "$work/pooled.py" "$KVF_A_REDIS_IP" "$KVF_REDIS_PORT" "$work/go" \
  >"$work/pooled.out" &
pooled=$!
for _ in $(seq 50); do grep -q selected "$work/pooled.out" && break; sleep 0.1; done
start_capture 6 "$out" records --resolve-db
touch "$work/go"
wait "$pooled" || fail "the pooled client failed"
stop_capture "$out" records
python3 - "$out" <<'PY' || { cat "$out.err"; fail "$backend (offloads $offloads): --resolve-db"; }
import json, sys
recs = sorted((json.loads(l) for l in open(sys.argv[1])), key=lambda r: r["capture_ns"])
recs = [r for r in recs if r["key"].startswith("kvfpool:")]
settled = [r for r in recs if "unknown_db" not in r["flags"]]
print(f"pooled connection: {len(recs)} records, {len(settled)} with the db the server named")
assert len(recs) == 150, len(recs)
assert all(r["db"] == 2 for r in settled), [r for r in settled if r["db"] != 2][:2]
assert len(settled) >= 75, len(settled)
first = recs.index(settled[0])
assert all(r in settled for r in recs[first:]), "a guess after the answer"
PY
grep -qE "[1-9][0-9]* connection\(s\) had their db settled" "$out.err" || { cat "$out.err"; fail "no settled connection reported"; }
pass "$backend (offloads $offloads): --resolve-db asks Redis which db a pooled connection selected"

# Phase 3: a lossy mirror. Gaps are reported with their byte counts; the command exits 0.
"$LAB" mirror --rate-mbit 20
out="$work/lossy.json"
start_capture 8 "$out"
bench -c 8 -n 20000 -P 16 -t set -d 1000
stop_capture "$out" json
python3 - "$out" "$backend" "$offloads" <<'PY' || fail "$backend (offloads $offloads): lossy mirror did not report gaps"
import json, sys
total = json.loads(open(sys.argv[1]).read().splitlines()[-1])["totals"]
print(f"{sys.argv[2]} offloads {sys.argv[3]} lossy: gaps {total['gaps']} gap_bytes {total['gap_bytes']}",
      f"resp_gaps {total['resp_gaps']} resp_gap_bytes {total['resp_gap_bytes']} desyncs {total['resp_desyncs']}",
      f"requests {total['requests_parsed']} records {total['records']}")
sys.exit(0 if total["gaps"] > 0 and total["gap_bytes"] > 0 and total["resp_gap_bytes"] > 0 else 1)
PY
pass "$backend (offloads $offloads): lossy mirror reports gaps with byte counts, exits 0"
