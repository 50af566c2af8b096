#!/usr/bin/env bash
# Round trip through kvferry's understanding of the wire (issue 5): a real
# client library drives every write family at site A while the appliance's
# mirror port is captured to a pcap; `kvferryctl decode --format resp` of that
# pcap, piped into site B's empty Redis with `redis-cli --pipe`, must rebuild
# site A's dataset key by key (type, DEBUG DIGEST-VALUE, TTL within 1 s).
# A second phase has several connections write the same keys at once: every
# key that then differs must be one the decoder flagged for read-back.
source "$(dirname "$0")/lib.sh"
need_root
command -v tcpdump >/dev/null || skip "tcpdump is not installed (deploy/install-deps.sh)"
/usr/bin/python3 -c 'import redis' 2>/dev/null || skip "python3-redis is not installed (deploy/install-deps.sh)"
CTL="${KVF_CTL:-$ROOT/build/ci/ctl/kvferryctl}"
[ -x "$CTL" ] || fail "kvferryctl not found at $CTL (set KVF_CTL)"
lab_up "$@"
work=$(mktemp -d /tmp/kvf-roundtrip-XXXXXX)
trap 'rc=$?; rm -rf "$work"; "$LAB" down >/dev/null 2>&1 || true; exit $rc' EXIT
PY=/usr/bin/python3

ip netns exec "$KVF_A_NS_APPLIANCE" tcpdump -i "$KVF_A_MIRROR_IF" -s 0 -B 32768 -U -w "$work/a.pcap" \
  "tcp port $KVF_REDIS_PORT" 2>"$work/tcpdump.log" &
dump=$!
sleep 1
in_ns "$KVF_A_NS_CLIENT" $PY "$ROOT/tests/lab/workload.py" --host "$KVF_A_REDIS_IP" --port "$KVF_REDIS_PORT"
in_ns "$KVF_A_NS_CLIENT" $PY "$ROOT/tests/lab/workload.py" --host "$KVF_A_REDIS_IP" --port "$KVF_REDIS_PORT" \
  --phase concurrent
sleep 1
kill -TERM $dump 2>/dev/null || true
wait $dump 2>/dev/null || true
cat "$work/tcpdump.log"
grep -q "^0 packets dropped by kernel" "$work/tcpdump.log" || fail "tcpdump dropped packets"

server="$KVF_A_REDIS_IP:$KVF_REDIS_PORT"
"$CTL" decode --pcap "$work/a.pcap" --server "$server" --format stats
"$CTL" decode --pcap "$work/a.pcap" --server "$server" --format json >"$work/records.json"
"$CTL" decode --pcap "$work/a.pcap" --server "$server" --format resp >"$work/replay.resp"
# The same decode split over two and three threads prints the same records.
for t in 2 3; do
  "$CTL" decode --pcap "$work/a.pcap" --server "$server" --format json --threads $t >"$work/records.t$t.json"
  cmp -s "$work/records.json" "$work/records.t$t.json" || fail "decode --threads $t differs from one thread"
done
if grep -a -q 'kvf-test-password' "$work/records.json" "$work/replay.resp"; then
  fail "a password seen on the wire leaked into decode output"
fi
pipe_rc=0
in_ns "$KVF_B_NS_REDIS" redis-cli -p "$KVF_REDIS_PORT" --pipe <"$work/replay.resp" || pipe_rc=$?

$PY - "$work/records.json" >"$work/flagged.txt" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="latin-1"):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    flags = r.get("flags", [])
    names = flags if isinstance(flags, list) else str(flags).split("|")
    if "needs_readback" in names or "ambiguous_order" in names:
        print(f"{r.get('db', 0)} {r.get('key', '')}")
PY
in_ns "$KVF_A_NS_REDIS" $PY "$ROOT/tests/lab/redis_snapshot.py" --port "$KVF_REDIS_PORT" >"$work/a.json"
in_ns "$KVF_B_NS_REDIS" $PY "$ROOT/tests/lab/redis_snapshot.py" --port "$KVF_REDIS_PORT" >"$work/b.json"
# Keys outside the concurrent phase must match exactly, flagged or not.
grep -v ' hot:' "$work/flagged.txt" >"$work/flagged-hot-only.txt" || true
grep ' hot:' "$work/flagged.txt" >"$work/flagged-hot.txt" || true
$PY "$ROOT/tests/lab/redis_snapshot.py" --compare "$work/a.json" "$work/b.json" --flagged "$work/flagged-hot.txt" \
  || fail "site B's dataset differs from site A's on keys the decoder did not flag"
[ "$pipe_rc" -eq 0 ] || fail "site B's Redis refused some of the replayed commands"
pass "decode --format resp rebuilt the dataset; every differing key was flagged"
