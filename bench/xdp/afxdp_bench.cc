// AF_XDP delivery on veth, for the "AF_XDP or BPF ring buffer" decision in
// docs/xdp.md: same lab, frame and sender as BM_VethDelivery in
// capture_bench.cc, but frames are redirected by bpf/capture_afxdp.bpf.c (the
// same parser) to a hand-written AF_XDP socket in copy mode. Needs root.
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
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

#include "capture_afxdp.skel.h"
#include "capture_shared.h"
#include "bench/xdp/veth_bench_util.h"
#include "dataplane/packet.h"
#include "dataplane/xdp/xdp_source.h"
#include "tests/bpf/frame_builder.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

namespace kvf::bpftest {
namespace {

// One single-producer/single-consumer ring shared with the kernel: the
// producer and consumer indexes are free-running u32 counters in mapped
// memory (hence acquire/release __atomic builtins); the slot count, mask + 1,
// is a power of two.
struct XskRing {
  uint32_t* producer = nullptr;
  uint32_t* consumer = nullptr;
  void* desc = nullptr;
  uint32_t mask = 0;
  void* map = MAP_FAILED;
  size_t map_len = 0;
};

// An AF_XDP socket receiving on one queue of one interface, built from raw
// syscalls (libbpf 1.1 has no xsk.h; libxdp is not used). UMEM of `frames`
// frames of kFrameSize bytes; every frame is either in the fill ring, in the
// RX ring, or held by the caller's current burst. Copy mode (XDP_COPY):
// the kernel copies each redirected frame into a UMEM frame.
class XskSocket {
 public:
  static constexpr uint32_t kFrameSize = 2048;  // the smallest chunk AF_XDP accepts
  static constexpr size_t kMaxBurst = 64;

  // `frames`: UMEM frames, a power of two; the fill and RX rings get as many
  // slots, so the fill ring always has room for every frame.
  explicit XskSocket(uint32_t frames) : frames_(frames), umem_bytes_(size_t{frames} * kFrameSize) {}
  XskSocket(const XskSocket&) = delete;
  XskSocket& operator=(const XskSocket&) = delete;
  ~XskSocket() {
    if (rx_.map != MAP_FAILED) munmap(rx_.map, rx_.map_len);
    if (fill_.map != MAP_FAILED) munmap(fill_.map, fill_.map_len);
    if (fd_ >= 0) close(fd_);
    if (umem_ != MAP_FAILED) munmap(umem_, umem_bytes_);
  }

  // Creates the socket in the calling thread's network namespace and binds
  // it to (ifindex, queue). Returns an error string, empty on success.
  std::string Open(unsigned ifindex, uint32_t queue) {
    fd_ = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Err("socket(AF_XDP)");
    umem_ =
        mmap(nullptr, umem_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (umem_ == MAP_FAILED) return Err("mmap umem");
    xdp_umem_reg reg{};
    reg.addr = reinterpret_cast<uint64_t>(umem_);
    reg.len = umem_bytes_;
    reg.chunk_size = kFrameSize;
    reg.headroom = 0;
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) != 0) return Err("XDP_UMEM_REG");
    const int ring = static_cast<int>(frames_);
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_FILL_RING, &ring, sizeof(ring)) != 0) return Err("FILL_RING");
    // The kernel refuses to bind without a completion ring, even for RX only.
    if (setsockopt(fd_, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ring, sizeof(ring)) != 0) {
      return Err("COMPLETION_RING");
    }
    if (setsockopt(fd_, SOL_XDP, XDP_RX_RING, &ring, sizeof(ring)) != 0) return Err("XDP_RX_RING");
    xdp_mmap_offsets off{};
    socklen_t optlen = sizeof(off);
    if (getsockopt(fd_, SOL_XDP, XDP_MMAP_OFFSETS, &off, &optlen) != 0) return Err("XDP_MMAP_OFFSETS");
    if (!MapRing(&fill_, off.fr, sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING)) return Err("mmap fill");
    if (!MapRing(&rx_, off.rx, sizeof(xdp_desc), XDP_PGOFF_RX_RING)) return Err("mmap rx");
    // Hand every frame to the kernel.
    auto* fill = static_cast<uint64_t*>(fill_.desc);
    for (uint32_t i = 0; i < frames_; ++i) fill[i & fill_.mask] = uint64_t{i} * kFrameSize;
    __atomic_store_n(fill_.producer, frames_, __ATOMIC_RELEASE);
    fill_prod_ = frames_;
    sockaddr_xdp sxdp{};
    sxdp.sxdp_family = AF_XDP;
    sxdp.sxdp_flags = XDP_COPY;
    sxdp.sxdp_ifindex = ifindex;
    sxdp.sxdp_queue_id = queue;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sxdp), sizeof(sxdp)) != 0) return Err("bind");
    return {};
  }

  int fd() const { return fd_; }

  // The PacketSource contract of XdpSource::RxBurst: returns the previous
  // burst's frames to the fill ring, then takes up to out.size() (<=
  // kMaxBurst) frames from the RX ring, waiting up to poll_ms when empty.
  // sleep_us > 0: instead of poll() (one wake-up per NAPI poll that
  // delivered frames, i.e. about per frame on veth), sleep that long when the
  // ring is empty -- a user-space way to batch wake-ups.
  size_t RxBurst(std::span<dataplane::Packet> out, int poll_ms, int sleep_us) {
    Release();
    size_t n = Take(out);
    if (n == 0) {
      if (sleep_us > 0) {
        usleep(static_cast<useconds_t>(sleep_us));
      } else {
        pollfd p{fd_, POLLIN, 0};
        poll(&p, 1, poll_ms);
      }
      n = Take(out);
    }
    return n;
  }

  // Kernel-side drops of this socket (RX ring full, no fill frame, bad desc).
  // rx_dropped covers both causes in copy mode (no fill frame, RX ring
  // full); rx_ring_full and rx_fill_ring_empty_descs say which.
  xdp_statistics Statistics() const {
    xdp_statistics st{};
    socklen_t len = sizeof(st);
    getsockopt(fd_, SOL_XDP, XDP_STATISTICS, &st, &len);
    return st;
  }

 private:
  static std::string Err(const char* what) { return std::string(what) + ": " + strerror(errno); }

  bool MapRing(XskRing* r, const xdp_ring_offset& o, size_t desc_size, off_t pgoff) {
    r->map_len = o.desc + frames_ * desc_size;
    r->map = mmap(nullptr, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, pgoff);
    if (r->map == MAP_FAILED) return false;
    auto* base = static_cast<uint8_t*>(r->map);
    r->producer = reinterpret_cast<uint32_t*>(base + o.producer);
    r->consumer = reinterpret_cast<uint32_t*>(base + o.consumer);
    r->desc = base + o.desc;
    r->mask = frames_ - 1;
    return true;
  }

  void Release() {
    if (held_ == 0) return;
    auto* fill = static_cast<uint64_t*>(fill_.desc);
    // Never overflows: the fill ring has a slot for every UMEM frame.
    for (size_t i = 0; i < held_; ++i) fill[fill_prod_++ & fill_.mask] = held_addr_[i];
    __atomic_store_n(fill_.producer, fill_prod_, __ATOMIC_RELEASE);
    held_ = 0;
  }

  size_t Take(std::span<dataplane::Packet> out) {
    const uint32_t prod = __atomic_load_n(rx_.producer, __ATOMIC_ACQUIRE);
    const uint32_t cons = *rx_.consumer;  // only this thread writes it
    size_t n = prod - cons;
    if (n > out.size()) n = out.size();
    if (n > kMaxBurst) n = kMaxBurst;
    if (n == 0) return 0;
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);  // copy mode has no per-frame time: one per burst
    const uint64_t ts = static_cast<uint64_t>(now.tv_sec) * 1000000000u + static_cast<uint64_t>(now.tv_nsec);
    const auto* descs = static_cast<const xdp_desc*>(rx_.desc);
    for (size_t i = 0; i < n; ++i) {
      const xdp_desc& d = descs[(cons + i) & rx_.mask];
      out[i].data = static_cast<const uint8_t*>(umem_) + d.addr;
      out[i].len = d.len;
      out[i].wire_len = d.len;
      out[i].ts_ns = ts;
      out[i].rx_queue = 0;
      held_addr_[i] = d.addr;
    }
    held_ = n;
    __atomic_store_n(rx_.consumer, cons + static_cast<uint32_t>(n), __ATOMIC_RELEASE);
    return n;
  }

  const uint32_t frames_;
  const size_t umem_bytes_;
  int fd_ = -1;
  void* umem_ = MAP_FAILED;
  XskRing fill_;
  XskRing rx_;
  uint32_t fill_prod_ = 0;
  uint64_t held_addr_[kMaxBurst] = {};
  size_t held_ = 0;
};

Bytes Request(size_t payload) {
  return Eth(kEthIpv4, Ipv4("10.0.0.9", "10.0.0.1", kProtoTcp,
                            Tcp(40000, 6379, kAck | kPsh, std::string(payload, 'x'))));
}

kvf_cap_counters SumCounters(capture_afxdp* skel) {
  kvf_cap_counters sum{};
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return sum;
  std::vector<kvf_cap_counters> per_cpu(static_cast<size_t>(ncpu));
  const uint32_t key = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.counters), &key, per_cpu.data()) != 0) return sum;
  for (const kvf_cap_counters& c : per_cpu) {
    sum.seen += c.seen;
    sum.delivered += c.delivered;
    sum.ring_full += c.ring_full;
  }
  return sum;
}

double CpuSeconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// The two namespaces and the veth pair of BM_VethDelivery; deleted on
// destruction. Our namespaces are named kvftaf<pid>{a,b}.
struct VethLab {
  std::string a = "kvftaf" + std::to_string(getpid()) + "a";
  std::string b = "kvftaf" + std::to_string(getpid()) + "b";
  VethLab() {
    Sh("ip netns add " + a);
    Sh("ip netns add " + b);
    Sh("ip -n " + a + " link add va type veth peer name vb netns " + b);
    Sh("ip -n " + a + " link set va up");
    Sh("ip -n " + b + " link set vb up");
  }
  ~VethLab() {
    Sh("ip netns del " + a);
    Sh("ip netns del " + b);
  }
};

// What the kernel side reports, read before and after the measurement.
struct KernelCounts {
  uint64_t seen = 0;
  uint64_t drops = 0;       // matched but lost between filter and user space
  uint64_t ring_full = 0;   // AF_XDP only: of those, RX ring full
  uint64_t fill_empty = 0;  // AF_XDP only: of those, no free UMEM frame
};

// Runs the AF_PACKET sender (154-byte frames, sendmmsg of 64, as
// BM_VethDelivery) in namespace lab.a and the consumer loop `rx` (returns
// frames and adds their bytes) on the benchmark thread; sets the counters.
// sender_cpu_ns_per_frame: CPU time of the sending thread per offered frame,
// which includes the veth NAPI poll, the XDP program and its copy (they run
// in the sender's softirq context on this kernel).
void Measure(benchmark::State& state, const VethLab& lab, const std::function<size_t(uint64_t*)>& rx,
             const std::function<KernelCounts()>& kernel) {
  int raw = -1;
  unsigned va = 0;
  InNs(lab.a, [&] {
    raw = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    va = if_nametoindex("va");
  });
  if (raw < 0) {
    state.SkipWithError("AF_PACKET socket failed");
    return;
  }
  const Bytes frame = Request(100);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sent{0};
  std::atomic<double> sender_cpu{0};
  std::atomic<bool> measuring{false};
  std::thread sender([&] {
    FloodBatch batch;
    batch.Fill(va, frame.data(), frame.size());
    double cpu0 = 0;
    bool started = false;
    while (!stop.load(std::memory_order_relaxed)) {
      if (!started && measuring.load(std::memory_order_relaxed)) {
        cpu0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
        started = true;
      }
      const int n = sendmmsg(raw, batch.msgs, FloodBatch::kSize, 0);
      if (n > 0) sent.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
    sender_cpu = started ? CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - cpu0 : 0.0;
  });
  uint64_t received = 0, bytes = 0;
  measuring = true;
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
  const uint64_t sent0 = sent.load();
  const KernelCounts k0 = kernel();
  for (auto _ : state) received += rx(&bytes);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
  const uint64_t offered = sent.load() - sent0;
  const KernelCounts k1 = kernel();
  stop = true;
  sender.join();
  close(raw);
  state.counters["offered_pps"] = static_cast<double>(offered) / secs;
  state.counters["kernel_seen_pps"] = static_cast<double>(k1.seen - k0.seen) / secs;
  state.counters["delivered_pps"] = static_cast<double>(received) / secs;
  state.counters["drops"] = static_cast<double>(k1.drops - k0.drops);
  if (k1.ring_full + k1.fill_empty > 0) {
    state.counters["xsk_ring_full"] = static_cast<double>(k1.ring_full - k0.ring_full);
    state.counters["xsk_fill_empty"] = static_cast<double>(k1.fill_empty - k0.fill_empty);
  }
  state.counters["frames_per_burst"] =
      state.iterations() ? static_cast<double>(received) / static_cast<double>(state.iterations()) : 0.0;
  state.counters["consumer_cpu"] = cpu / secs;  // share of one core used by the RxBurst loop
  state.counters["consumer_ns_per_frame"] = received ? 1e9 * cpu / static_cast<double>(received) : 0.0;
  state.counters["sender_ns_per_frame"] =
      offered ? 1e9 * sender_cpu.load() / static_cast<double>(offered) : 0.0;
  state.counters["bad_bytes"] = static_cast<double>(bytes - received * frame.size());
}

// range(0): 1 = the server matches (delivery through AF_XDP), 0 =
// filter-only baseline (nothing redirected); range(1): UMEM frames (4096 =
// 8 MiB, the ring size of BM_VethDelivery; 32768 = 64 MiB); range(2): 0 =
// poll() for wake-ups, N = sleep N µs when the RX ring is empty. Native XDP
// on the veth peer, AF_XDP copy mode, queue 0.
void BM_VethDeliveryAfxdp(benchmark::State& state) {
  if (geteuid() != 0) {
    state.SkipWithError("needs root");
    return;
  }
  VethLab lab;
  std::string error;
  capture_afxdp* skel = capture_afxdp__open();
  XskSocket xsk(static_cast<uint32_t>(state.range(1)));
  unsigned vb = 0;
  if (skel == nullptr) {
    error = "skeleton open failed";
  } else {
    bpf_program__set_autoload(skel->progs.kvf_capture_xdp, false);
    bpf_program__set_autoload(skel->progs.kvf_capture_tc, false);
    bpf_map__set_max_entries(skel->maps.events, 4096);  // unused by this entry point
    skel->rodata->cfg_pass_frames = 0;
    if (capture_afxdp__load(skel) != 0) error = "load failed";
  }
  if (error.empty()) {
    kvf_cap_endpoint key{};
    key.addr[10] = key.addr[11] = 0xff;
    const Bytes v4 = V4Addr(state.range(0) ? "10.0.0.1" : "10.9.9.9");
    memcpy(&key.addr[12], v4.data(), 4);
    key.port = htons(state.range(0) ? 6379 : 1);
    const uint32_t zero = 0;
    bpf_map_update_elem(bpf_map__fd(skel->maps.servers), &key, &zero, BPF_ANY);
    InNs(lab.b, [&] {
      vb = if_nametoindex("vb");
      error = xsk.Open(vb, 0);
      if (!error.empty()) return;
      const uint32_t queue = 0;
      const int fd = xsk.fd();
      if (bpf_map_update_elem(bpf_map__fd(skel->maps.xsks), &queue, &fd, BPF_ANY) != 0) {
        error = "xsks update failed";
        return;
      }
      if (bpf_xdp_attach(static_cast<int>(vb), bpf_program__fd(skel->progs.kvf_capture_afxdp),
                         XDP_FLAGS_DRV_MODE, nullptr) != 0) {
        error = "native XDP attach failed";
      }
    });
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
  } else {
    dataplane::Packet burst[XskSocket::kMaxBurst];
    Measure(
        state, lab,
        [&](uint64_t* bytes) {
          const size_t n = xsk.RxBurst(burst, 10, static_cast<int>(state.range(2)));
          for (size_t i = 0; i < n; ++i) *bytes += burst[i].len;
          return n;
        },
        [&] {
          const kvf_cap_counters c = SumCounters(skel);
          const xdp_statistics st = xsk.Statistics();
          return KernelCounts{c.seen, c.ring_full + st.rx_dropped, st.rx_ring_full,
                              st.rx_fill_ring_empty_descs};
        });
  }
  if (vb != 0) InNs(lab.b, [&] { bpf_xdp_detach(static_cast<int>(vb), XDP_FLAGS_DRV_MODE, nullptr); });
  capture_afxdp__destroy(skel);
}
BENCHMARK(BM_VethDeliveryAfxdp)
    ->ArgNames({"match", "frames", "sleep_us"})
    ->Args({0, 4096, 0})
    ->Args({1, 4096, 0})
    ->Args({1, 32768, 0})
    ->Args({1, 4096, 100})
    ->Args({1, 32768, 1000})
    ->MinTime(3.0)
    ->UseRealTime();

// The ring buffer path (XdpSource, batched wake-ups every range(0) records,
// reader poll timeout range(1) ms) under the same Measure() as above, so both
// report the same CPU counters; BM_VethDelivery in capture_bench is the same
// setup without them. wakeup_every 2^30 with a 1 ms timeout: the producer
// never wakes the reader, the reader wakes itself every millisecond (the
// counterpart of the AF_XDP sleep_us variants).
void BM_VethDeliveryRing(benchmark::State& state) {
  if (geteuid() != 0) {
    state.SkipWithError("needs root");
    return;
  }
  VethLab lab;
  dataplane::XdpOptions o;
  o.iface = "vb";
  o.servers.push_back(dataplane::Endpoint::Parse("10.0.0.1:6379").value());
  o.wakeup_every = static_cast<uint32_t>(state.range(0));
  o.ring_bytes = 8u << 20;
  o.poll_timeout_ms = static_cast<int>(state.range(1));
  o.mode = dataplane::XdpAttachMode::kNative;
  std::unique_ptr<dataplane::PacketSource> src;
  std::string error = "OpenXdpSource failed";
  InNs(lab.b, [&] {
    auto r = dataplane::OpenXdpSource(o);
    if (r.ok()) {
      src = std::move(r.value());
    } else {
      error = r.status().ToString();
    }
  });
  if (!src) {
    state.SkipWithError(error.c_str());
    return;
  }
  dataplane::Packet burst[64];
  Measure(
      state, lab,
      [&](uint64_t* bytes) {
        const size_t n = src->RxBurst(burst);
        for (size_t i = 0; i < n; ++i) *bytes += burst[i].len;
        return n;
      },
      [&] {
        const dataplane::CaptureStats s = src->Stats();
        return KernelCounts{s.kernel_seen, s.ring_full_drops};
      });
  InNs(lab.b, [&] { src.reset(); });
}
BENCHMARK(BM_VethDeliveryRing)
    ->ArgNames({"wakeup_every", "poll_ms"})
    ->Args({64, 10})
    ->Args({1 << 30, 1})
    ->MinTime(3.0)
    ->UseRealTime();

}  // namespace
}  // namespace kvf::bpftest

BENCHMARK_MAIN();
