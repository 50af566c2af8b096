#!/usr/bin/env bash
# Log append throughput and durable-ack latency beside two baselines measured
# in the same run on the same disk: a pwrite+fdatasync loop (in logstore_bench)
# and fio --ioengine=io_uring sequential writes with the same fdatasync cadence.
#   bench/logstore/run.sh [build-dir]      (default: build/ci)
# Environment: KVF_BENCH_DIR (scratch directory, default /tmp), FIO_SECONDS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
build="${1:-build/ci}"
bin="$build/bench/logstore/logstore_bench"
scratch="${KVF_BENCH_DIR:-/tmp}"
fio_seconds="${FIO_SECONDS:-5}"
out="$(mktemp -d "$scratch/kvft-logbench-run-XXXXXX")"
trap 'rm -rf "$out"' EXIT

echo "# logstore_bench ($bin) on $(df --output=source "$scratch" | tail -1), $(nproc) CPUs, $(date -u +%FT%TZ)" >&2
KVF_BENCH_DIR="$scratch" "$bin" --benchmark_format=json --benchmark_out="$out/bench.json" \
  --benchmark_out_format=json >/dev/null

# fio: 256 KiB sequential buffered writes (the log writes in large batches),
# fdatasync every K writes where K matches the log's bytes per fsync interval.
python3 - "$out/bench.json" > "$out/fio_plan" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["benchmarks"]
for b in runs:
    if b["name"].startswith("BM_LogAppend/bytes:4096/"):
        ms = int(b["name"].split("fsync_ms:")[1].split("/")[0])
        k = max(1, round(b["MB_per_s"] * 1e6 * ms / 1000 / 262144))
        print(ms, k)
PY
while read -r ms k; do
  fio --name=seq --ioengine=io_uring --rw=write --bs=256k --size=1g --time_based --runtime="$fio_seconds" \
      --fdatasync="$k" --filename="$out/fio.dat" --output-format=json > "$out/fio_$ms.json" 2>/dev/null
  rm -f "$out/fio.dat"
done < "$out/fio_plan"

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
runs = json.load(open(os.path.join(out, "bench.json")))["benchmarks"]
rows = {}
for b in runs:
    kind, args = b["name"].split("/", 1)
    size = int(args.split("bytes:")[1].split("/")[0]); ms = int(args.split("fsync_ms:")[1].split("/")[0])
    rows.setdefault((size, ms), {})[kind] = b
fio = {}
for f in os.listdir(out):
    if f.startswith("fio_") and f.endswith(".json"):
        j = json.load(open(os.path.join(out, f)))
        fio[int(f[4:-5])] = j["jobs"][0]["write"]["bw_bytes"] / 1e6
print("| record B | fsync ms | log rec/s | log MB/s | pwrite+fdatasync MB/s | fio io_uring MB/s | log/fio | ack p50 ms | ack p99 ms (at load) | load rec/s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (size, ms) in sorted(rows):
    r = rows[(size, ms)]
    a, d, p = r.get("BM_LogAppend"), r.get("BM_LogDurableAck"), r.get("BM_PwriteFdatasync")
    f = fio.get(ms) if size == 4096 else None
    ratio = "%.2f" % (a["MB_per_s"] / f) if (a and f) else ""
    print("| %d | %d | %.0f | %.1f | %.1f | %s | %s | %.2f | %.2f | %.0f |" % (
        size, ms, a["records_per_s"], a["MB_per_s"], p["MB_per_s"], "%.1f" % f if f else "", ratio,
        d["ack_p50_us"] / 1000, d["ack_p99_us"] / 1000, d["records_per_s"]))
PY
