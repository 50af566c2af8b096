// XDP/TC capture backend: skeleton lifecycle, stale-program replacement,
// and a zero-copy reader of the BPF ring buffer that hands out records as
// Packets and releases them on the next RxBurst.
#include "dataplane/xdp/xdp_source.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.skel.h"
#include "capture_shared.h"
#include "dataplane/interface_watch.h"
#include "dataplane/promiscuous.h"

namespace kvf::dataplane {

static_assert(sizeof(kvf_cap_endpoint) == 20, "capture_shared.h: endpoint key layout");
static_assert(sizeof(kvf_cap_counters) == 12 * sizeof(uint64_t), "capture_shared.h: counters layout");
static_assert(sizeof(kvf_cap_record) == 24, "capture_shared.h: record header layout");

namespace {

// Frames the interface itself dropped before any program saw them (its ring
// overflowed, the NIC missed them): rx_missed_errors, rx_fifo_errors and
// rx_over_errors of the link's counters, in the current network namespace.
// Not rx_dropped: drivers count their XDP programs' own drops there. (A veth
// counts its ring overflows on the peer, as the peer's tx_dropped.)
uint64_t InterfaceRxMisses(const std::string& iface) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return 0;
  uint64_t n = 0;
  for (const ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_PACKET || a->ifa_data == nullptr ||
        iface != a->ifa_name)
      continue;
    const auto* st = static_cast<const rtnl_link_stats*>(a->ifa_data);
    n = uint64_t{st->rx_missed_errors} + st->rx_fifo_errors + st->rx_over_errors;
    break;
  }
  freeifaddrs(list);
  return n;
}

// ---------------------------------------------------------------------------
// Ring buffer reader
// ---------------------------------------------------------------------------

// Record header the kernel puts before each ring buffer sample.
constexpr uint32_t kRingBusyBit = 1u << 31;
constexpr uint32_t kRingDiscardBit = 1u << 30;
constexpr uint32_t kRingHeaderBytes = 8;

// Single consumer of a BPF_MAP_TYPE_RINGBUF (the positions are shared with
// the kernel, hence the __atomic builtins on plain mapped memory). The data area is mapped twice
// back to back by the kernel, so a record that wraps is still contiguous.
// Records handed out by Next() stay valid until Release(): the consumer
// position the kernel sees only moves there.
class RingReader {
 public:
  ~RingReader() {
    if (consumer_ != MAP_FAILED) munmap(consumer_, page_);
    if (producer_ != MAP_FAILED) munmap(producer_, page_ + 2 * size_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  Status Init(int map_fd, uint32_t size) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_ = size;
    consumer_ = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (consumer_ == MAP_FAILED) return Status::FromErrno(errno, "mmap ring consumer page");
    producer_ = mmap(nullptr, page_ + 2 * size_, PROT_READ, MAP_SHARED, map_fd, static_cast<off_t>(page_));
    if (producer_ == MAP_FAILED) return Status::FromErrno(errno, "mmap ring data");
    data_ = static_cast<const uint8_t*>(producer_) + page_;
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return Status::FromErrno(errno, "epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, map_fd, &ev) != 0)
      return Status::FromErrno(errno, "epoll_ctl ring");
    pos_ = __atomic_load_n(static_cast<const uint64_t*>(consumer_), __ATOMIC_ACQUIRE);
    return Status::Ok();
  }

  // The next unread record, or nullptr when the ring is empty (or the next
  // record is still being written).
  const kvf_cap_record* Next(uint32_t* len) {
    const uint64_t prod = __atomic_load_n(static_cast<const uint64_t*>(producer_), __ATOMIC_ACQUIRE);
    while (pos_ < prod) {
      const uint8_t* hdr = data_ + (pos_ & (size_ - 1));
      const uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
      if (word & kRingBusyBit) return nullptr;
      const uint32_t n = word & ~(kRingBusyBit | kRingDiscardBit);
      pos_ += (n + kRingHeaderBytes + 7) & ~7u;
      if (word & kRingDiscardBit) continue;
      *len = n;
      return reinterpret_cast<const kvf_cap_record*>(hdr + kRingHeaderBytes);
    }
    return nullptr;
  }

  // Gives every record returned by Next() so far back to the kernel.
  void Release() { __atomic_store_n(static_cast<uint64_t*>(consumer_), pos_, __ATOMIC_RELEASE); }

  // Waits up to timeout_ms for a wake-up from the kernel.
  void Wait(int timeout_ms) {
    epoll_event ev;
    (void)epoll_wait(epoll_fd_, &ev, 1, timeout_ms);
  }

 private:
  size_t page_ = 0;
  uint64_t size_ = 0;
  void* consumer_ = MAP_FAILED;
  void* producer_ = MAP_FAILED;
  const uint8_t* data_ = nullptr;
  uint64_t pos_ = 0;  // next unread byte; the kernel's consumer_pos lags until Release()
  int epoll_fd_ = -1;
};

// ---------------------------------------------------------------------------
// Attachment helpers
// ---------------------------------------------------------------------------

const char* ModeName(XdpAttachMode m) {
  switch (m) {
    case XdpAttachMode::kAuto: return "auto";
    case XdpAttachMode::kNative: return "native";
    case XdpAttachMode::kGeneric: return "generic";
    case XdpAttachMode::kTc: return "tc";
  }
  return "?";
}

// The kernel's name of program `id`, or "" when it cannot be read.
std::string ProgramName(uint32_t id) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  std::string name;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
  close(fd);
  return name;
}

// Removes a kvferry XDP program left attached by a crashed process (via
// netlink, e.g. an older build or `ip link set xdp`), in either mode.
// Refuses to touch a foreign program.
Status ReplaceStaleXdp(int ifindex, const std::string& iface) {
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  const int err = bpf_xdp_query(ifindex, 0, &q);
  if (err) return Status::FromErrno(-err, "bpf_xdp_query " + iface);
  const std::pair<uint32_t, uint32_t> attached[] = {{q.drv_prog_id, XDP_FLAGS_DRV_MODE},
                                                    {q.skb_prog_id, XDP_FLAGS_SKB_MODE}};
  for (const auto& [id, mode_flag] : attached) {
    if (id == 0) continue;
    const std::string name = ProgramName(id);
    if (name != kXdpProgramName) {
      return Unavailable("interface " + iface + " already runs XDP program '" + name + "' (id " +
                         std::to_string(id) + "); not replacing a program kvferry does not own");
    }
    const int derr = bpf_xdp_detach(ifindex, mode_flag, nullptr);
    if (derr) {
      // A bpf_link owns it: a live kvferry process, not a stale leftover.
      return Status(StatusCode::kUnavailable,
                    "interface " + iface + ": kvferry XDP program id " + std::to_string(id) +
                        " is held by a live process (" + strerror(-derr) + ")",
                    -derr);
    }
    std::fprintf(stderr, "kvferry: replaced stale XDP program id %u on %s\n", id, iface.c_str());
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// The source
// ---------------------------------------------------------------------------

struct SkeletonDeleter {
  void operator()(capture* s) const { capture__destroy(s); }
};

class XdpSource final : public PacketSource {
 public:
  static Result<std::unique_ptr<PacketSource>> Open(const XdpOptions& o);

  ~XdpSource() override {
    if (link_fd_ >= 0) close(link_fd_);  // detaches the XDP program
    if (tc_attached_) {
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_INGRESS);
      LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
      bpf_tc_detach(&hook, &opts);
      if (tc_hook_created_) bpf_tc_hook_destroy(&hook);
    }
  }

  size_t RxBurst(std::span<Packet> out) override {
    ring_.Release();  // the previous burst's bytes are now the kernel's again
    size_t n = Fill(out);
    if (n == 0 && !out.empty()) {
      // What the ring held before the interface went is still delivered:
      // read once more after seeing it gone (the diff review).
      if (watch_.Gone()) {
        n = Fill(out);
        exhausted_ = n == 0;
        return n;
      }
      ring_.Wait(poll_timeout_ms_);
      n = Fill(out);
    }
    return n;
  }
  bool Exhausted() const override { return exhausted_; }
  Status error() const override { return watch_.error(); }

  CaptureStats Stats() const override {
    CaptureStats s;
    s.frames_received = frames_;
    s.bytes_received = bytes_;
    s.snap_truncated = truncated_;
    const uint64_t misses = InterfaceRxMisses(iface_);
    s.nic_drops = misses > rx_misses_at_open_ ? misses - rx_misses_at_open_ : 0;
    const int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0) return s;
    std::vector<kvf_cap_counters> per_cpu(static_cast<size_t>(ncpu));
    const uint32_t key = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.counters), &key, per_cpu.data()) != 0) return s;
    for (const kvf_cap_counters& c : per_cpu) {
      s.kernel_seen += c.seen;
      s.kernel_matched += c.matched;
      s.kernel_filtered += c.not_tcp + c.no_match + c.pure_ack;
      s.kernel_parse_errors += c.parse_errors + c.fragments;
      s.ring_full_drops += c.ring_full;
      s.oversize_frames += c.oversize;
    }
    return s;
  }

  std::string Describe() const override { return description_; }

 private:
  static constexpr uint32_t kTcHandle = 0x4b56;  // "KV"
  static constexpr uint32_t kTcPriority = 1;

  Status LoadAndConfigure(const XdpOptions& o);
  Status AttachXdp(const XdpOptions& o);
  Status AttachTc(const XdpOptions& o);

  size_t Fill(std::span<Packet> out) {
    size_t n = 0;
    uint32_t len = 0;
    while (n < out.size()) {
      const kvf_cap_record* rec = ring_.Next(&len);
      if (rec == nullptr) break;
      if (len < sizeof(kvf_cap_record) || rec->cap_len > len - sizeof(kvf_cap_record))
        continue;  // cannot happen
      Packet& p = out[n++];
      p.data = rec->data;
      p.len = rec->cap_len;
      p.wire_len = rec->wire_len;
      p.ts_ns = rec->ts_ns + mono_to_realtime_ns_;
      p.rx_queue = rec->rx_queue;
      bytes_ += rec->cap_len;
      if (rec->flags & KVF_CAP_F_TRUNCATED) ++truncated_;
    }
    frames_ += n;
    return n;
  }

  std::unique_ptr<capture, SkeletonDeleter> skel_;
  RingReader ring_;
  int ifindex_ = 0;
  std::string iface_;
  InterfaceWatch watch_;            // the interface, from the namespace it was opened in
  bool exhausted_ = false;          // the interface went away and the ring is empty
  PromiscuousHold promiscuous_;     // a dedicated mirror port only, dropped when the source goes
  uint64_t rx_misses_at_open_ = 0;  // InterfaceRxMisses when opened: drops before are not ours
  int link_fd_ = -1;
  bool tc_attached_ = false;
  bool tc_hook_created_ = false;
  int poll_timeout_ms_ = 10;
  uint64_t mono_to_realtime_ns_ = 0;
  uint64_t frames_ = 0;
  uint64_t bytes_ = 0;
  uint64_t truncated_ = 0;
  std::string description_;
};

Status XdpSource::LoadAndConfigure(const XdpOptions& o) {
  // 1. open
  skel_.reset(capture__open());
  if (!skel_) return Status::FromErrno(errno, "open capture BPF skeleton");
  // 2. configure: rodata and map sizes, before load
  skel_->rodata->cfg_pass_frames = o.pass_frames ? 1 : 0;
  skel_->rodata->cfg_wakeup_every = o.wakeup_every == 0 ? 1 : o.wakeup_every;
  skel_->rodata->cfg_wakeup_bytes = o.ring_bytes / 4;
  skel_->rodata->cfg_any_address = std::any_of(o.servers.begin(), o.servers.end(),
                                               [](const Endpoint& e) { return e.addr.IsUnspecified(); });
  const bool tc = o.mode == XdpAttachMode::kTc;
  bpf_program__set_autoload(skel_->progs.kvf_capture_xdp, !tc);
  bpf_program__set_autoload(skel_->progs.kvf_capture_tc, tc);
  int err = bpf_map__set_max_entries(skel_->maps.events, o.ring_bytes);
  if (err) return Status::FromErrno(-err, "ring size");
  if (o.servers.size() > KVF_CAP_MAX_SERVERS) {
    err = bpf_map__set_max_entries(skel_->maps.servers, static_cast<uint32_t>(o.servers.size()));
    if (err) return Status::FromErrno(-err, "server map size");
  }
  // 3. load (the verifier runs here)
  err = capture__load(skel_.get());
  if (err) return Status::FromErrno(-err, "load capture BPF program (verifier log above)");
  for (const Endpoint& e : o.servers) {
    kvf_cap_endpoint key{};  // the unspecified address (:: or 0.0.0.0) is stored all zero
    if (!e.addr.IsUnspecified()) std::memcpy(key.addr, e.addr.bytes.data(), 16);
    key.port = htons(e.port);
    const uint32_t value = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.servers), &key, &value, BPF_ANY) != 0) {
      return Status::FromErrno(errno, "add server " + e.ToString());
    }
  }
  return ring_.Init(bpf_map__fd(skel_->maps.events), o.ring_bytes);
}

Status XdpSource::AttachXdp(const XdpOptions& o) {
  KVF_RETURN_IF_ERROR(ReplaceStaleXdp(ifindex_, o.iface));
  const int prog_fd = bpf_program__fd(skel_->progs.kvf_capture_xdp);
  auto attach = [&](uint32_t flags) {
    LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = flags);
    const int fd = bpf_link_create(prog_fd, ifindex_, BPF_XDP, &lo);
    return fd >= 0 ? fd : -errno;
  };
  int fd = -EINVAL;
  const char* used = "";
  if (o.mode == XdpAttachMode::kNative || o.mode == XdpAttachMode::kAuto) {
    fd = attach(XDP_FLAGS_DRV_MODE);
    used = "native";
  }
  if (o.mode == XdpAttachMode::kGeneric || (o.mode == XdpAttachMode::kAuto && fd < 0)) {
    fd = attach(XDP_FLAGS_SKB_MODE);
    used = "generic";
  }
  if (fd < 0)
    return Status::FromErrno(-fd, std::string("attach XDP (") + ModeName(o.mode) + ") to " + o.iface);
  link_fd_ = fd;
  description_ = "xdp:" + o.iface + " (" + used + ")";
  return Status::Ok();
}

Status XdpSource::AttachTc(const XdpOptions& o) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);  // adds a clsact qdisc
  if (err && err != -EEXIST) return Status::FromErrno(-err, "create clsact on " + o.iface);
  tc_hook_created_ = (err == 0);
  // Our filter from a crashed run sits at the same handle/priority: replace
  // it; a foreign one there is refused.
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = kTcHandle, .priority = kTcPriority);
  uint32_t flags = 0;
  if (bpf_tc_query(&hook, &query) == 0) {
    const std::string name = ProgramName(query.prog_id);
    if (name != kTcProgramName) {
      return Unavailable("interface " + o.iface + " has foreign TC filter '" + name +
                         "' at kvferry's handle");
    }
    std::fprintf(stderr, "kvferry: replacing stale TC program id %u on %s\n", query.prog_id, o.iface.c_str());
    flags = BPF_TC_F_REPLACE;
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(skel_->progs.kvf_capture_tc), .flags = flags,
              .handle = kTcHandle, .priority = kTcPriority);
  err = bpf_tc_attach(&hook, &opts);
  if (err) return Status::FromErrno(-err, "attach TC filter to " + o.iface);
  tc_attached_ = true;
  description_ = "tc:" + o.iface;
  return Status::Ok();
}

Result<std::unique_ptr<PacketSource>> XdpSource::Open(const XdpOptions& o) {
  if (o.servers.empty()) return InvalidArgument("xdp capture: no server endpoints configured");
  if (o.ring_bytes < 4096 || (o.ring_bytes & (o.ring_bytes - 1)) != 0) {
    return InvalidArgument("xdp capture: ring_bytes must be a power of two >= 4096");
  }
  auto src = std::unique_ptr<XdpSource>(new XdpSource());
  src->ifindex_ = static_cast<int>(if_nametoindex(o.iface.c_str()));
  if (src->ifindex_ == 0) return Status::FromErrno(errno, "interface " + o.iface);
  src->iface_ = o.iface;
  src->watch_ = InterfaceWatch(src->ifindex_, o.iface);
  src->rx_misses_at_open_ = InterfaceRxMisses(o.iface);
  src->poll_timeout_ms_ = o.poll_timeout_ms;
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  src->mono_to_realtime_ns_ = (static_cast<uint64_t>(real.tv_sec) * 1'000'000'000u + real.tv_nsec) -
                              (static_cast<uint64_t>(mono.tv_sec) * 1'000'000'000u + mono.tv_nsec);

  KVF_RETURN_IF_ERROR(src->LoadAndConfigure(o));  // open, configure, load
  KVF_RETURN_IF_ERROR(o.mode == XdpAttachMode::kTc ? src->AttachTc(o) : src->AttachXdp(o));  // attach
  if (!o.pass_frames) {
    // A mirror port's frames carry other hosts' addresses: a NIC that is
    // not promiscuous filters them out before any program runs.
    auto hold = PromiscuousHold::Take(src->ifindex_);
    if (!hold.ok()) return hold.status();
    src->promiscuous_ = std::move(*hold);
  }
  return std::unique_ptr<PacketSource>(std::move(src));  // poll: RxBurst
}

}  // namespace

Result<std::unique_ptr<PacketSource>> OpenXdpSource(const XdpOptions& options) {
  return XdpSource::Open(options);
}

}  // namespace kvf::dataplane
