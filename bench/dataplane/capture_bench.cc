// Offline capture throughput on one core: a generated pcap (on tmpfs) read
// with the pcap backend, decoded and reassembled, for pipelined traffic
// (full-MSS request segments) and for one small command per packet. Baselines
// in the same run: libpcap's raw read loop over the same file and a plain
// memcpy of the same payload bytes; decode-only and reassembly-only rows
// show where the time goes.
#include <benchmark/benchmark.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/decode.h"
#include "dataplane/flow_table.h"
#include "dataplane/pcap_source.h"
#include "tests/common/packet_builder.h"

namespace {

using namespace kvf::dataplane;
namespace tb = kvf::testing;

constexpr int kFlows = 64;

struct Workload {
  std::string path;
  std::vector<tb::Bytes> frames;
  uint64_t payload_bytes = 0;
};

// Requests of `request_bytes` per packet from kFlows clients, each answered
// by a small reply packet every `reply_every` requests.
Workload Generate(const char* name, size_t request_bytes, int packets, int reply_every) {
  Workload w;
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  w.path = std::string(dir) + "/kvf_capture_bench_" + name + "_" + std::to_string(getpid()) + ".pcap";
  std::string cmd;
  while (cmd.size() < request_bytes) cmd += "*3\r\n$3\r\nSET\r\n$8\r\nkey:0042\r\n$3\r\nbar\r\n";
  cmd.resize(request_bytes);
  std::vector<uint32_t> cseq(kFlows, 1000), sseq(kFlows, 5000);
  for (int i = 0; i < packets; ++i) {
    const int f = i % kFlows;
    tb::TcpSpec s;
    s.sport = static_cast<uint16_t>(20000 + f);
    s.dport = 6379;
    s.seq = cseq[f];
    s.payload = cmd;
    cseq[f] += static_cast<uint32_t>(cmd.size());
    w.frames.push_back(tb::TcpFrame("10.0.0.1", "10.0.0.2", s));
    w.payload_bytes += cmd.size();
    if ((i / kFlows) % reply_every == 0) {
      tb::TcpSpec r;
      r.sport = 6379;
      r.dport = static_cast<uint16_t>(20000 + f);
      r.seq = sseq[f];
      r.payload = "+OK\r\n";
      sseq[f] += 5;
      w.frames.push_back(tb::TcpFrame("10.0.0.2", "10.0.0.1", r));
      w.payload_bytes += 5;
    }
  }
  pcap_t* dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_NANO);
  pcap_dumper_t* d = pcap_dump_open(dead, w.path.c_str());
  uint64_t ts = 1'700'000'000'000'000'000ull;
  for (const tb::Bytes& f : w.frames) {
    pcap_pkthdr h{};
    ts += 1000;
    h.ts.tv_sec = static_cast<time_t>(ts / 1'000'000'000ull);
    h.ts.tv_usec = static_cast<suseconds_t>(ts % 1'000'000'000ull);
    h.caplen = h.len = static_cast<bpf_u_int32>(f.size());
    pcap_dump(reinterpret_cast<u_char*>(d), &h, f.data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
  return w;
}

// Removes a generated file at exit (declared after the Workload it names,
// so it is destroyed first).
struct FileRemover {
  std::string path;
  ~FileRemover() { std::remove(path.c_str()); }
};

Workload& Pipelined() {
  static Workload w = Generate("pipelined", 1448, 40000, 16);
  static FileRemover rm{w.path};
  return w;
}
Workload& Small() {
  static Workload w = Generate("small", 40, 200000, 1);
  static FileRemover rm{w.path};
  return w;
}
Workload& Pick(int which) {
  return which == 0 ? Pipelined() : Small();
}

// A consumer that reads every delivered byte (so delivery is not free).
class Sum : public StreamConsumerFactory {
 public:
  struct C : StreamConsumer {
    explicit C(uint64_t* acc) : acc(acc) {}
    void OnData(Direction, kvf::ByteSpan b, uint64_t) override { *acc += b.size() + b[b.size() - 1]; }
    void OnGap(Direction, uint64_t) override {}
    void OnClose(CloseReason) override {}
    uint64_t* acc;
  };
  std::unique_ptr<StreamConsumer> NewFlow(const FlowInfo&) override { return std::make_unique<C>(&acc); }
  uint64_t acc = 0;
};

FlowTableConfig Config() {
  FlowTableConfig c;
  c.servers = {*Endpoint::Parse("10.0.0.2:6379")};
  return c;
}

void SetCounters(benchmark::State& state, const Workload& w) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * w.frames.size()));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * w.payload_bytes));
}

// The full offline path: pcap read + decode + reassembly + delivery.
void BM_OfflineReassembly(benchmark::State& state, int which) {
  Workload& w = Pick(which);
  std::vector<Packet> burst(256);
  uint64_t gaps = 0;
  for (auto _ : state) {
    auto src = PcapSource::OpenOffline(w.path);
    if (!src.ok()) {
      state.SkipWithError(src.status().ToString().c_str());
      return;
    }
    Sum sum;
    FlowTable table(Config(), &sum);
    while (!(*src)->Exhausted()) {
      const size_t n = (*src)->RxBurst(burst);
      for (size_t i = 0; i < n; ++i) {
        TcpSegment seg;
        if (DecodeFrame(burst[i].data, burst[i].len, burst[i].ts_ns, &seg) == DecodeStatus::kOk)
          table.Process(seg);
      }
    }
    table.CloseAll();
    gaps += table.stats().gaps;
    benchmark::DoNotOptimize(sum.acc);
  }
  if (gaps != 0) state.SkipWithError("unexpected gaps");
  SetCounters(state, w);
}
BENCHMARK_CAPTURE(BM_OfflineReassembly, pipelined, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_OfflineReassembly, small_cmds, 1)->Unit(benchmark::kMillisecond);

// Baseline: libpcap's own read loop over the same file, touching nothing.
void BM_PcapRawRead(benchmark::State& state, int which) {
  Workload& w = Pick(which);
  for (auto _ : state) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline_with_tstamp_precision(w.path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    pcap_pkthdr* h;
    const u_char* d;
    uint64_t n = 0;
    while (pcap_next_ex(p, &h, &d) == 1) n += h->caplen;
    pcap_close(p);
    benchmark::DoNotOptimize(n);
  }
  SetCounters(state, w);
}
BENCHMARK_CAPTURE(BM_PcapRawRead, pipelined, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_PcapRawRead, small_cmds, 1)->Unit(benchmark::kMillisecond);

// Baseline: copying the same payload bytes, segment by segment.
void BM_MemcpyPayload(benchmark::State& state, int which) {
  Workload& w = Pick(which);
  std::vector<uint8_t> dst(1 << 16);
  benchmark::DoNotOptimize(dst.data());
  for (auto _ : state) {
    for (const tb::Bytes& f : w.frames) {
      std::memcpy(dst.data(), f.data() + 54, f.size() - 54);
      benchmark::ClobberMemory();
    }
  }
  SetCounters(state, w);
}
BENCHMARK_CAPTURE(BM_MemcpyPayload, pipelined, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_MemcpyPayload, small_cmds, 1)->Unit(benchmark::kMillisecond);

// Breakdown: decode alone, from frames already in memory.
void BM_DecodeOnly(benchmark::State& state, int which) {
  Workload& w = Pick(which);
  for (auto _ : state) {
    uint64_t n = 0;
    for (const tb::Bytes& f : w.frames) {
      TcpSegment seg;
      if (DecodeFrame(f.data(), f.size(), 0, &seg) == DecodeStatus::kOk) n += seg.payload_len;
    }
    benchmark::DoNotOptimize(n);
  }
  SetCounters(state, w);
}
BENCHMARK_CAPTURE(BM_DecodeOnly, pipelined, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecodeOnly, small_cmds, 1)->Unit(benchmark::kMillisecond);

// Breakdown: decode + reassembly from frames in memory (no pcap read).
void BM_DecodeAndReassemble(benchmark::State& state, int which) {
  Workload& w = Pick(which);
  for (auto _ : state) {
    Sum sum;
    FlowTable table(Config(), &sum);
    for (const tb::Bytes& f : w.frames) {
      TcpSegment seg;
      if (DecodeFrame(f.data(), f.size(), 0, &seg) == DecodeStatus::kOk) table.Process(seg);
    }
    table.CloseAll();
    benchmark::DoNotOptimize(sum.acc);
  }
  SetCounters(state, w);
}
BENCHMARK_CAPTURE(BM_DecodeAndReassemble, pipelined, 0)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DecodeAndReassemble, small_cmds, 1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
