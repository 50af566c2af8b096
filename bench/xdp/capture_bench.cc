// Benchmarks of the capture filter. BM_Filter: in-kernel cost per frame of
// kvf_capture_xdp through BPF_PROG_TEST_RUN (repeat), against a one-insn
// XDP_DROP program in the same run. BM_VethDelivery: frames per second
// delivered through XdpSource on a veth pair (AF_PACKET sender in another
// namespace), with and without batched wake-ups, against a filter-only run
// (no server matches) as the offered-rate baseline. Needs root.
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <benchmark/benchmark.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.skel.h"
#include "capture_shared.h"
#include "bench/xdp/veth_bench_util.h"
#include "dataplane/xdp/xdp_source.h"
#include "tests/bpf/frame_builder.h"

namespace kvf::bpftest {
namespace {

Bytes Request(size_t payload) {
  return Eth(kEthIpv4, Ipv4("10.0.0.9", "10.0.0.1", kProtoTcp,
                            Tcp(40000, 6379, kAck | kPsh, std::string(payload, 'x'))));
}

enum FilterCase { kBaselineDrop, kNoMatch, kPureAck, kMatchSmall, kMatchVxlan, kMatch1400, kMatchWakeEach };

void BM_Filter(benchmark::State& state) {
  if (geteuid() != 0) {
    state.SkipWithError("needs root");
    return;
  }
  const auto which = static_cast<FilterCase>(state.range(0));
  Bytes frame;
  switch (which) {
    case kBaselineDrop:
    case kMatchSmall:
    case kMatchWakeEach: frame = Request(40); break;
    case kNoMatch:
      frame = Eth(kEthIpv4, Ipv4("10.0.0.9", "10.0.0.2", kProtoTcp, Tcp(40000, 6379, kAck, "abc")));
      break;
    case kPureAck:
      frame = Request(0);
      frame[14 + 20 + 13] = kAck;
      break;
    case kMatchVxlan:
      frame =
          Eth(kEthIpv4, Ipv4("192.168.0.1", "192.168.0.2", kProtoUdp, Udp(5, 4789, Vxlan(1, Request(40)))));
      break;
    case kMatch1400: frame = Request(1400); break;
  }
  capture* skel = capture__open();
  bpf_map__set_max_entries(skel->maps.events, 64u << 20);
  // Nothing consumes while the kernel loops, so keep the fill-level wake-up
  // out of reach (a repeat writes ~3 MiB) and measure the batch setting.
  skel->rodata->cfg_wakeup_every = which == kMatchWakeEach ? 1 : 64;
  skel->rodata->cfg_wakeup_bytes = 16u << 20;
  if (capture__load(skel) != 0) {
    state.SkipWithError("load failed");
    return;
  }
  kvf_cap_endpoint key{};
  key.addr[10] = key.addr[11] = 0xff;
  const Bytes v4 = V4Addr("10.0.0.1");
  memcpy(&key.addr[12], v4.data(), 4);
  key.port = htons(6379);
  const uint32_t zero = 0;
  bpf_map_update_elem(bpf_map__fd(skel->maps.servers), &key, &zero, BPF_ANY);
  ring_buffer* ring = ring_buffer__new(
      bpf_map__fd(skel->maps.events), [](void*, void*, size_t) { return 0; }, nullptr, nullptr);
  int prog_fd = bpf_program__fd(skel->progs.kvf_capture_xdp);
  int baseline_fd = -1;
  if (which == kBaselineDrop) {
    const bpf_insn drop[] = {{.code = 0xb7, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 1},
                             {.code = 0x95, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0}};
    baseline_fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "kvf_bench_drop", "GPL", drop, 2, nullptr);
    prog_fd = baseline_fd;
  }
  constexpr uint32_t kRepeat = 4000;  // <= 8.3 MiB of records: below every wake-up threshold
  double kernel_ns = 0;
  for (auto _ : state) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()), .repeat = kRepeat);
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
      state.SkipWithError("test run failed");
      break;
    }
    kernel_ns += opts.duration;  // the kernel's mean ns per run of the program
    ring_buffer__consume(ring);
  }
  // The wall time of a test run also holds the syscall and, in this VM,
  // scheduler noise; the kernel's own per-run figure is the number to read.
  state.counters["kernel_ns_per_frame"] = kernel_ns / static_cast<double>(state.iterations());
  state.counters["kernel_frames_per_s"] = 1e9 * static_cast<double>(state.iterations()) / kernel_ns;
  ring_buffer__free(ring);
  if (baseline_fd >= 0) close(baseline_fd);
  capture__destroy(skel);
}
BENCHMARK(BM_Filter)
    ->ArgName("case")
    ->DenseRange(kBaselineDrop, kMatchWakeEach)
    ->Iterations(50)
    ->Unit(benchmark::kMicrosecond);

// --- live veth -----------------------------------------------------------

// range(0): wake-up batch (records per forced wake-up); range(1): 1 = the
// server matches (delivery), 0 = filter-only baseline.
void BM_VethDelivery(benchmark::State& state) {
  if (geteuid() != 0) {
    state.SkipWithError("needs root");
    return;
  }
  const std::string a = "kvftx" + std::to_string(getpid()) + "ba",
                    b = "kvftx" + std::to_string(getpid()) + "bb";
  Sh("ip netns add " + a);
  Sh("ip netns add " + b);
  Sh("ip -n " + a + " link add va type veth peer name vb netns " + b);
  Sh("ip -n " + a + " link set va up");
  Sh("ip -n " + b + " link set vb up");
  dataplane::XdpOptions o;
  o.iface = "vb";
  o.servers.push_back(dataplane::Endpoint::Parse(state.range(1) ? "10.0.0.1:6379" : "10.9.9.9:1").value());
  o.wakeup_every = static_cast<uint32_t>(state.range(0));
  o.ring_bytes = 8u << 20;
  std::unique_ptr<dataplane::PacketSource> src;
  InNs(b, [&] {
    auto r = dataplane::OpenXdpSource(o);
    if (r.ok()) src = std::move(r.value());
  });
  int raw = -1;
  unsigned va = 0;
  InNs(a, [&] {
    raw = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    va = if_nametoindex("va");
  });
  if (!src || raw < 0) {
    state.SkipWithError("lab setup failed");
  } else {
    const Bytes frame = Request(100);
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> sent{0};
    std::thread sender([&] {
      FloodBatch batch;
      batch.Fill(va, frame.data(), frame.size());
      while (!stop.load(std::memory_order_relaxed)) {
        const int n = sendmmsg(raw, batch.msgs, FloodBatch::kSize, 0);
        if (n > 0) sent.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
    });
    dataplane::Packet burst[64];
    uint64_t received = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const uint64_t sent0 = sent.load();
    const dataplane::CaptureStats s0 = src->Stats();
    for (auto _ : state) {
      received += src->RxBurst(burst);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t offered = sent.load() - sent0;
    stop = true;
    sender.join();
    const dataplane::CaptureStats s1 = src->Stats();
    state.counters["offered_pps"] = static_cast<double>(offered) / secs;
    state.counters["kernel_seen_pps"] = static_cast<double>(s1.kernel_seen - s0.kernel_seen) / secs;
    state.counters["delivered_pps"] = static_cast<double>(received) / secs;
    state.counters["ring_full"] = static_cast<double>(s1.ring_full_drops - s0.ring_full_drops);
  }
  if (raw >= 0) close(raw);
  InNs(b, [&] { src.reset(); });
  Sh("ip netns del " + a);
  Sh("ip netns del " + b);
}
BENCHMARK(BM_VethDelivery)
    ->ArgNames({"wakeup_every", "match"})
    ->Args({64, 0})
    ->Args({1, 1})
    ->Args({64, 1})
    ->MinTime(3.0)
    ->UseRealTime();

}  // namespace
}  // namespace kvf::bpftest

BENCHMARK_MAIN();
