// `kvferryctl capture`: the first tool an operator runs to check that the
// mirror delivers. Captures (pcap file, or a live interface through the pcap
// or xdp backend), reassembles the connections to the given servers and
// prints, every second, packets, bytes, flows, gaps and the drops of every
// layer (NIC, kernel/BPF, ring, decode, worker queues, reassembly).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "ctl/command.h"
#include "dataplane/decode.h"
#include "dataplane/dispatcher.h"
#include "dataplane/flow_table.h"
#include "dataplane/pcap_source.h"
#include "kvf_build_info.h"

#if KVF_HAVE_BPF && __has_include("dataplane/xdp/xdp_source.h")
#include "dataplane/xdp/xdp_source.h"
#define KVF_CTL_HAVE_XDP 1
#else
#define KVF_CTL_HAVE_XDP 0
#endif
#if KVF_HAVE_DPDK && __has_include("dataplane/dpdk/dpdk_source.h")
#include "dataplane/dpdk/dpdk_source.h"
#define KVF_CTL_HAVE_DPDK 1
#else
#define KVF_CTL_HAVE_DPDK 0
#endif

namespace {

using namespace kvf::dataplane;
using Counters = std::map<std::string, uint64_t>;

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted.store(true); }

// Every counter of every layer, flat, cumulative.
Counters Collect(const CaptureStats& cap, const DecodeCounters& dec, const FlowTableStats& flows,
                 uint64_t queue_full, uint64_t oversize) {
  Counters c;
  c["frames_received"] = cap.frames_received;
  c["bytes_received"] = cap.bytes_received;
  c["nic_drops"] = cap.nic_drops;
  c["kernel_seen"] = cap.kernel_seen;
  c["kernel_matched"] = cap.kernel_matched;
  c["kernel_filtered"] = cap.kernel_filtered;
  c["kernel_parse_errors"] = cap.kernel_parse_errors;
  c["ring_full_drops"] = cap.ring_full_drops;
  c["oversize_frames"] = cap.oversize_frames;
  c["snap_truncated"] = cap.snap_truncated;
  for (size_t i = 0; i < dec.by_status.size(); ++i) {
    c["decode_" + std::string(DecodeStatusName(static_cast<DecodeStatus>(i)))] = dec.by_status[i];
  }
  c["decode_failures"] = dec.failures();
  c["worker_queue_full_drops"] = queue_full;
  c["worker_oversize_payload_drops"] = oversize;
  for (const auto& [name, v] : flows.Named()) c[name] = v;
  return c;
}

std::string Human(double v) {
  static const char* kUnits[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f%s" : "%.1f%s", v, kUnits[u]);
  return buf;
}

void Print(const std::string& format, const std::string& label, const Counters& now, const Counters& prev,
           double seconds) {
  auto d = [&](const char* k) {
    const auto p = prev.find(k);
    return now.at(k) - (p == prev.end() ? 0 : p->second);
  };
  const uint64_t kernel_drops = d("ring_full_drops");
  const uint64_t decode_drops = d("decode_failures") - d("decode_not_ip_ignored") - d("decode_not_tcp_ignored");
  if (format == "json") {
    nlohmann::json j;
    j["at"] = label;
    j["interval_seconds"] = seconds;
    nlohmann::json iv;
    for (const char* k : {"frames_received", "bytes_received", "tcp_segments", "payload_bytes_delivered",
                          "flows_created", "gaps", "gap_bytes", "nic_drops", "ring_full_drops", "decode_failures",
                          "worker_queue_full_drops", "segments_not_for_server"}) {
      iv[k] = d(k);
    }
    j["interval"] = iv;
    j["totals"] = now;
    std::printf("%s\n", j.dump().c_str());
  } else {
    auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
    auto h = [](uint64_t v) { return Human(static_cast<double>(v)); };
    std::printf(
        "%s pkts=%s bytes=%s tcp=%s payload=%sB flows=%llu(+%llu) gaps=%llu(%sB)"
        " | drops nic=%llu kernel_parse=%llu ring=%llu oversize=%llu snap=%llu decode=%llu queue=%llu"
        " | ignored kernel_filtered=%s not_server=%s not_tcp=%s retrans=%sB\n",
        label.c_str(), h(d("frames_received")).c_str(), h(d("bytes_received")).c_str(), h(d("tcp_segments")).c_str(),
        h(d("payload_bytes_delivered")).c_str(), u(now.at("active_flows")), u(d("flows_created")), u(d("gaps")),
        h(d("gap_bytes")).c_str(), u(d("nic_drops")), u(d("kernel_parse_errors")), u(kernel_drops),
        u(d("oversize_frames") + d("worker_oversize_payload_drops")), u(d("snap_truncated")), u(decode_drops),
        u(d("worker_queue_full_drops")), h(d("kernel_filtered")).c_str(), h(d("segments_not_for_server")).c_str(),
        h(d("decode_not_ip_ignored") + d("decode_not_tcp_ignored")).c_str(),
        h(d("retransmitted_bytes_dropped")).c_str());
  }
  std::fflush(stdout);
}

std::string TimeLabel(uint64_t ts_ns) {
  const time_t secs = static_cast<time_t>(ts_ns / 1'000'000'000ull);
  tm t;
  gmtime_r(&secs, &t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &t);
  return buf;
}

// Offline: one thread, timeouts on packet time, one line per capture second.
int RunOffline(const std::string& path, const FlowTableConfig& cfg, const std::string& format, int max_seconds) {
  auto src = PcapSource::OpenOffline(path);
  if (!src.ok()) {
    std::fprintf(stderr, "kvferryctl capture: %s\n", src.status().ToString().c_str());
    return 1;
  }
  FlowTable table(cfg, nullptr);
  DecodeCounters dec;
  std::vector<Packet> burst(256);
  Counters prev;
  uint64_t first_ts = 0, second_start = 0, last_ts = 0;
  auto report = [&](uint64_t at) {
    Counters now = Collect((*src)->Stats(), dec, table.stats(), 0, 0);
    Print(format, TimeLabel(at), now, prev, 1.0);
    prev = std::move(now);
  };
  while (!(*src)->Exhausted() && !g_interrupted.load()) {
    const size_t n = (*src)->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) {
      const Packet& p = burst[i];
      if (first_ts == 0) first_ts = second_start = p.ts_ns;
      if (p.ts_ns >= second_start + 1'000'000'000ull) {
        table.Tick(p.ts_ns);
        report(second_start);
        second_start += (p.ts_ns - second_start) / 1'000'000'000ull * 1'000'000'000ull;
      }
      last_ts = std::max(last_ts, p.ts_ns);
      TcpSegment seg;
      const DecodeStatus st = DecodeFrame(p.data, p.len, p.ts_ns, &seg);
      dec.Add(st);
      if (st == DecodeStatus::kOk) table.Process(seg);
    }
    if (max_seconds > 0 && last_ts >= first_ts + static_cast<uint64_t>(max_seconds) * 1'000'000'000ull) break;
  }
  if (!(*src)->error().ok()) std::fprintf(stderr, "kvferryctl capture: %s\n", (*src)->error().ToString().c_str());
  table.CloseAll();
  report(second_start);
  Counters totals = Collect((*src)->Stats(), dec, table.stats(), 0, 0);
  Print(format, "total", totals, {}, static_cast<double>(last_ts - first_ts) / 1e9);
  return (*src)->error().ok() ? 0 : 1;
}

// Live: the RX loop on this thread, reassembly on `workers` threads.
int RunLive(std::unique_ptr<PacketSource> src, const FlowTableConfig& cfg, const std::string& format,
            int max_seconds, size_t workers) {
  DispatcherConfig dc;
  dc.workers = workers;
  dc.flow_table = cfg;
  dc.max_segment_payload = 65536;
  dc.queue_slots = 1024;
  Dispatcher dispatcher(dc, std::vector<StreamConsumerFactory*>(workers, nullptr));
  dispatcher.Start();
  std::vector<Packet> burst(256);
  const auto start = std::chrono::steady_clock::now();
  auto next = start + std::chrono::seconds(1);
  Counters prev;
  auto report = [&](const std::string& label, double secs, const Counters* base) {
    const DispatcherStats ds = dispatcher.Stats();
    Counters now = Collect(src->Stats(), ds.decode, ds.flows, ds.queue_full_drops, ds.oversize_payload_drops);
    Print(format, label, now, base != nullptr ? *base : prev, secs);
    prev = std::move(now);
  };
  while (!g_interrupted.load() && !src->Exhausted()) {
    const size_t n = src->RxBurst(burst);
    if (n > 0) dispatcher.Dispatch(std::span<const Packet>(burst.data(), n));
    const auto t = std::chrono::steady_clock::now();
    if (t >= next) {
      report(TimeLabel(static_cast<uint64_t>(
                 std::chrono::duration_cast<std::chrono::nanoseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count())),
             1.0, nullptr);
      next += std::chrono::seconds(1);
      if (max_seconds > 0 && t - start >= std::chrono::seconds(max_seconds)) break;
    }
  }
  dispatcher.Stop();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Counters empty;
  report("total", secs, &empty);
  return 0;
}

int RunCapture(const std::vector<std::string>& args) {
  CLI::App app{"Capture mirrored traffic, reassemble connections to the servers, print per-second counters",
               "kvferryctl capture"};
  std::string backend = "pcap", iface, pcap_file, format = "stats";
  std::vector<std::string> servers;
  int seconds = 0;
  size_t workers = 2;
  std::string dpdk_port, eal;
  app.add_option("--backend", backend, "capture backend: pcap | xdp | dpdk")->check(CLI::IsMember({"pcap", "xdp", "dpdk"}));
  app.add_option("--iface", iface, "live interface to capture on");
  app.add_option("--pcap", pcap_file, "offline capture file (pcap/pcapng, Ethernet)");
  app.add_option("--server", servers, "HOST:PORT of a Redis server (repeatable)")->required();
  app.add_option("--seconds", seconds, "stop after N seconds (0: until the file ends or Ctrl-C)");
  app.add_option("--format", format, "stats | json")->check(CLI::IsMember({"stats", "json"}));
  app.add_option("--workers", workers, "reassembly worker threads for live capture")->check(CLI::Range(1, 64));
  app.add_option("--dpdk-port", dpdk_port,
                 "dpdk: ethdev to read (e.g. a PCI address); default: net_af_packet on --iface");
  app.add_option("--eal", eal, "dpdk: EAL arguments, space-separated (default: no hugepages, 256 MB, core 0)");
  std::vector<std::string> argv_rev(args.rbegin(), args.rend());
  try {
    app.parse(argv_rev);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (iface.empty() == pcap_file.empty()) {
    std::fprintf(stderr, "kvferryctl capture: give exactly one of --iface or --pcap\n");
    return 2;
  }
  FlowTableConfig cfg;
  for (const std::string& s : servers) {
    auto ep = Endpoint::Parse(s);
    if (!ep.ok()) {
      std::fprintf(stderr, "kvferryctl capture: --server %s: %s\n", s.c_str(), ep.status().message().c_str());
      return 2;
    }
    cfg.servers.push_back(*ep);
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  if (!pcap_file.empty()) {
    if (backend != "pcap") {
      std::fprintf(stderr, "kvferryctl capture: --pcap needs --backend pcap\n");
      return 2;
    }
    return RunOffline(pcap_file, cfg, format, seconds);
  }
  std::unique_ptr<PacketSource> src;
  if (backend == "pcap") {
    PcapLiveOptions o;
    o.iface = iface;
    auto r = PcapSource::OpenLive(o);
    if (!r.ok()) {
      std::fprintf(stderr, "kvferryctl capture: %s\n", r.status().ToString().c_str());
      return 1;
    }
    src = std::move(*r);
  } else if (backend == "xdp") {
#if KVF_CTL_HAVE_XDP
    XdpOptions o;
    o.iface = iface;
    o.servers = cfg.servers;
    o.pass_frames = true;  // a diagnostic must not black-hole an interface that also carries host traffic
    auto r = OpenXdpSource(o);
    if (!r.ok()) {
      std::fprintf(stderr, "kvferryctl capture: %s\n", r.status().ToString().c_str());
      return 1;
    }
    src = std::move(*r);
#else
    std::fprintf(stderr, "kvferryctl capture: this build has no xdp backend (KVF_WITH_BPF=OFF)\n");
    return 2;
#endif
  } else {
#if KVF_CTL_HAVE_DPDK
    std::vector<std::string> eal_args;
    if (eal.empty()) {
      // --no-huge excludes --in-memory; --no-shconf leaves no runtime files behind.
      eal_args = {"--no-huge", "--no-shconf", "-m", "256", "--file-prefix=kvferryctl" + std::to_string(getpid()),
                  "-l", "0", "--log-level=*:warning"};
      if (dpdk_port.empty()) eal_args.push_back("--no-pci");  // af_packet on a kernel interface
    } else {
      for (size_t pos = 0; pos < eal.size();) {
        const size_t end = std::min(eal.find(' ', pos), eal.size());
        if (end > pos) eal_args.push_back(eal.substr(pos, end - pos));
        pos = end + 1;
      }
    }
    const kvf::Status st = InitDpdkEal(eal_args);
    if (!st.ok()) {
      std::fprintf(stderr, "kvferryctl capture: %s\n", st.ToString().c_str());
      return 1;
    }
    DpdkOptions o;
    if (dpdk_port.empty()) {
      o.device = "net_af_packet0";
      o.vdev_args = "net_af_packet0,iface=" + iface;
    } else {
      o.device = dpdk_port;
    }
    auto r = OpenDpdkSource(o);
    if (!r.ok()) {
      std::fprintf(stderr, "kvferryctl capture: %s\n", r.status().ToString().c_str());
      return 1;
    }
    src = std::move(*r);
#else
    std::fprintf(stderr, "kvferryctl capture: this build has no dpdk backend (KVF_WITH_DPDK=OFF)\n");
    return 2;
#endif
  }
  std::fprintf(stderr, "capturing on %s for %zu server(s); Ctrl-C to stop\n", src->Describe().c_str(),
               cfg.servers.size());
  return RunLive(std::move(src), cfg, format, seconds, workers);
}

}  // namespace

KVF_CTL_COMMAND("capture", "capture mirrored traffic and print per-second packets, flows, gaps and drops", RunCapture);
