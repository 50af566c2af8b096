// DPDK capture backend: EAL bring-up (once per process), port and mempool
// setup, RX bursts handed out as Packets pointing into mbufs, and the
// software flow hash that assigns each frame to a worker.
#include "dataplane/dpdk/dpdk_source.h"

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <net/if.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <numeric>
#include <vector>

#include "dataplane/decode.h"
#include "dataplane/endpoint.h"
#include "dataplane/interface_watch.h"
#include "dataplane/promiscuous.h"

namespace kvf::dataplane {
namespace {

std::mutex g_eal_mu;
bool g_eal_tried = false;
Status g_eal_status;
std::atomic<uint32_t> g_pool_seq{0};

uint64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

Status RteError(int err, const std::string& what) {
  const int e = err < 0 ? -err : err;
  return Status(StatusCode::kIoError, what + ": " + rte_strerror(e), e);
}

class DpdkSource final : public PacketSource {
 public:
  ~DpdkSource() override {
    FreeHeld();
    if (promiscuous_set_) rte_eth_promiscuous_disable(port_);
    if (started_) rte_eth_dev_stop(port_);
    if (configured_) rte_eth_dev_close(port_);
    if (!vdev_name_.empty()) rte_eal_hotplug_remove("vdev", vdev_name_.c_str());
    if (pool_ != nullptr) rte_mempool_free(pool_);
  }

  Status Open(const DpdkOptions& o);

  size_t RxBurst(std::span<Packet> out) override {
    FreeHeld();
    const size_t want = std::min<size_t>(out.size(), held_.size());
    if (want == 0) return 0;
    // Round-robin over the hardware queues, one poll each at most.
    uint16_t n = 0;
    for (uint16_t tries = 0; tries < nb_queues_ && n == 0; ++tries) {
      const uint16_t q = next_queue_;
      next_queue_ = static_cast<uint16_t>((next_queue_ + 1) % nb_queues_);
      n = rte_eth_rx_burst(port_, q, held_.data(), static_cast<uint16_t>(want));
    }
    if (n == 0 && watch_.Gone()) {
      // af_packet: its interface went away. What its ring held is still
      // read: once more after seeing it gone (the diff review).
      for (uint16_t q = 0; q < nb_queues_ && n == 0; ++q)
        n = rte_eth_rx_burst(port_, q, held_.data(), static_cast<uint16_t>(want));
      exhausted_ = n == 0;
    }
    held_n_ = n;
    if (n == 0) return 0;
    const uint64_t now = RealtimeNs();
    // A frame larger than one mbuf (jumbo frames with scattered RX, net_pcap
    // reading a large frame) arrives as a chain of segments: such frames are
    // copied whole into one buffer per burst, sized once for the burst so
    // that the Packets' pointers stay valid until the next RxBurst.
    size_t chained_bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
      if (held_[i]->nb_segs > 1) chained_bytes += std::min<size_t>(held_[i]->pkt_len, kMaxFrameBytes);
    }
    if (linear_.size() < chained_bytes) linear_.resize(chained_bytes);
    size_t linear_used = 0;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = held_[i];
      Packet& p = out[i];
      if (m->nb_segs > 1) {
        const uint32_t len = std::min<uint32_t>(m->pkt_len, kMaxFrameBytes);  // longer: cut, counted below
        uint8_t* dst = linear_.data() + linear_used;
        const void* src = rte_pktmbuf_read(m, 0, len, dst);
        if (src != dst && src != nullptr) std::memcpy(dst, src, len);
        p.data = src == nullptr ? rte_pktmbuf_mtod(m, const uint8_t*) : dst;
        p.len = src == nullptr ? m->data_len : len;
        linear_used += len;
        ++chained_;
      } else {
        p.data = rte_pktmbuf_mtod(m, const uint8_t*);
        p.len = m->data_len;
      }
      p.wire_len = m->pkt_len;
      if (ts_offset_ >= 0 && (m->ol_flags & ts_flag_) != 0) {
        p.ts_ns = *RTE_MBUF_DYNFIELD(m, ts_offset_, rte_mbuf_timestamp_t*) * ts_ns_per_unit_;
      } else {
        p.ts_ns = now;
      }
      p.rx_queue = workers_ > 1 ? WorkerFor(p) : 0;
      bytes_ += p.len;
      if (p.len < p.wire_len) ++truncated_;
    }
    frames_ += n;
    return n;
  }

  bool Exhausted() const override { return exhausted_; }
  Status error() const override { return watch_.error(); }
  // net_pcap: the file's (or, reading an interface, libpcap's) times.
  bool FileTimestamps() const override { return ts_offset_ >= 0; }

  CaptureStats Stats() const override {
    CaptureStats s;
    s.frames_received = frames_;
    s.bytes_received = bytes_;
    s.snap_truncated = truncated_;
    const DpdkNicStats nic = NicStats();
    s.nic_drops = nic.imissed + nic.rx_nombuf;
    return s;
  }

  DpdkNicStats NicStats() const {
    DpdkNicStats n;
    rte_eth_stats st{};
    if (rte_eth_stats_get(port_, &st) == 0) {
      n.ipackets = st.ipackets;
      n.imissed = st.imissed;
      n.rx_nombuf = st.rx_nombuf;
      n.ierrors = st.ierrors;
    }
    n.chained_frames = chained_;
    return n;
  }

  std::string Describe() const override { return description_; }

 private:
  // Symmetric: both directions decode to the same unordered endpoint pair.
  uint32_t WorkerFor(const Packet& p) const {
    TcpSegment seg;
    if (DecodeFrame(p.data, p.len, 0, &seg) != DecodeStatus::kOk) return 0;
    return static_cast<uint32_t>(FlowKey::Of(seg.src, seg.dst).WorkerOf(workers_));
  }

  void FreeHeld() {
    if (held_n_ > 0) rte_pktmbuf_free_bulk(held_.data(), held_n_);
    held_n_ = 0;
  }

  uint16_t port_ = 0;
  uint16_t nb_queues_ = 1;
  uint16_t next_queue_ = 0;
  uint32_t workers_ = 1;
  bool configured_ = false;
  bool started_ = false;
  bool promiscuous_set_ = false;      // turned on by us through the driver, off again on close
  PromiscuousHold promiscuous_hold_;  // af_packet: a membership the kernel drops with us
  InterfaceWatch watch_;              // af_packet: its kernel interface
  bool exhausted_ = false;            // that interface went away
  std::string vdev_name_;
  rte_mempool* pool_ = nullptr;
  static constexpr uint32_t kMaxFrameBytes = 65536 + 256;  // a GSO super-frame plus headers
  std::vector<rte_mbuf*> held_;                            // the last burst, freed on the next RxBurst
  std::vector<uint8_t> linear_;                            // chained frames of the last burst, copied whole
  uint16_t held_n_ = 0;
  int ts_offset_ = -1;
  uint64_t ts_flag_ = 0;
  uint64_t ts_ns_per_unit_ = 1;
  uint64_t frames_ = 0;
  uint64_t bytes_ = 0;
  uint64_t truncated_ = 0;
  uint64_t chained_ = 0;
  std::string description_;
};

Status DpdkSource::Open(const DpdkOptions& o) {
  if (!o.vdev_args.empty()) {
    // "name,k=v,k=v": the name must be the device we read from.
    const size_t comma = o.vdev_args.find(',');
    const std::string name = o.vdev_args.substr(0, comma);
    const std::string drv_args = comma == std::string::npos ? "" : o.vdev_args.substr(comma + 1);
    if (name != o.device) return InvalidArgument("vdev " + name + " is not the device " + o.device);
    const int rc = rte_eal_hotplug_add("vdev", name.c_str(), drv_args.c_str());
    if (rc != 0) return RteError(rc, "hot-plug vdev " + o.vdev_args);
    vdev_name_ = o.device;
  }
  int rc = rte_eth_dev_get_port_by_name(o.device.c_str(), &port_);
  if (rc != 0) return RteError(rc, "no DPDK port named " + o.device);

  rte_eth_dev_info info{};
  rc = rte_eth_dev_info_get(port_, &info);
  if (rc != 0) return RteError(rc, "dev_info " + o.device);
  rte_eth_conf conf{};
  const bool hw_ts = (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP) != 0;
  if (hw_ts) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
  nb_queues_ = std::max<uint16_t>(1, std::min<uint16_t>(o.rx_queues, info.max_rx_queues));
  rc = rte_eth_dev_configure(port_, nb_queues_, 0, &conf);
  if (rc != 0) return RteError(rc, "configure " + o.device);
  configured_ = true;

  const std::string pool_name = "kvfrx" + std::to_string(g_pool_seq.fetch_add(1));
  const int socket =
      rte_eth_dev_socket_id(port_) < 0 ? static_cast<int>(rte_socket_id()) : rte_eth_dev_socket_id(port_);
  pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), o.mbufs, 256, 0, o.mbuf_data_room, socket);
  if (pool_ == nullptr) return RteError(rte_errno, "mbuf pool of " + std::to_string(o.mbufs));
  for (uint16_t q = 0; q < nb_queues_; ++q) {
    rc = rte_eth_rx_queue_setup(port_, q, o.rx_ring_size, static_cast<unsigned>(socket), nullptr, pool_);
    if (rc != 0) return RteError(rc, "rx queue setup " + o.device);
  }
  // A mirror port needs promiscuous mode. The af_packet PMD switches the
  // kernel interface's own flag: it would leave it set behind us, and its
  // start clears an operator's. So the operator's flag is put back, and ours
  // is held as libpcap holds it, dropped by the kernel when we go. Other
  // drivers own their device: what we turn on we turn off on close. Best
  // effort there: vdevs may refuse.
  const bool af_packet = std::strcmp(info.driver_name, "net_af_packet") == 0 && info.if_index != 0;
  bool operator_flag = false;
  if (af_packet) {
    auto flag = PromiscuousFlagSet(static_cast<int>(info.if_index));
    if (!flag.ok()) return flag.status();
    operator_flag = *flag;
  }
  rc = rte_eth_dev_start(port_);
  if (rc != 0) return RteError(rc, "start " + o.device);
  started_ = true;
  if (af_packet) {
    if (operator_flag) (void)rte_eth_promiscuous_enable(port_);
    auto hold = PromiscuousHold::Take(static_cast<int>(info.if_index));
    if (!hold.ok()) return hold.status();
    promiscuous_hold_ = std::move(*hold);
    char ifname[IF_NAMESIZE] = {};
    if (if_indextoname(info.if_index, ifname) == nullptr) return Status::FromErrno(errno, o.device);
    watch_ = InterfaceWatch(static_cast<int>(info.if_index), ifname);
  } else if (rte_eth_promiscuous_get(port_) == 0) {
    promiscuous_set_ = rte_eth_promiscuous_enable(port_) == 0;
  }
  // net_pcap stamps each mbuf with the file's capture time, in
  // microseconds since the epoch (DPDK 22.11), through the standard dynamic
  // field. NIC timestamps run on the device clock and would need
  // rte_eth_read_clock calibration: other drivers get the software
  // CLOCK_REALTIME of the burst.
  ts_offset_ = -1;
  if (std::strcmp(info.driver_name, "net_pcap") == 0) {
    const int offset = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
    const int flag_bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
    if (offset >= 0 && flag_bit >= 0) {
      ts_offset_ = offset;
      ts_flag_ = uint64_t{1} << flag_bit;
      ts_ns_per_unit_ = 1000;
    }
  }
  workers_ = o.workers == 0 ? 1 : o.workers;
  held_.resize(o.max_burst == 0 ? 32 : o.max_burst);
  // Without the driver's timestamps a frame is stamped when its burst is
  // read: late by the time it waited (a review saw a median of 1.3 ms and
  // 150 ms at worst on a busy 2-CPU host with net_af_packet), which coarsens
  // the ambiguity window's judgements and the relative expiries. Said where
  // the operator looks first.
  description_ = "dpdk:" + o.device + " (" + info.driver_name + ", " + std::to_string(nb_queues_) +
                 " rx queues" +
                 (ts_offset_ < 0 ? "; the driver gives no receive timestamps: frames are stamped when their "
                                   "burst is read, late by as long as they waited (xdp and pcap stamp in the "
                                   "kernel)"
                                 : "") +
                 ")";
  return Status::Ok();
}

}  // namespace

Status InitDpdkEal(const std::vector<std::string>& args) {
  std::lock_guard<std::mutex> lock(g_eal_mu);
  if (g_eal_tried) return g_eal_status;
  g_eal_tried = true;
  std::vector<std::string> storage;
  storage.reserve(args.size() + 1);
  storage.push_back("kvferry");
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  // rte_eal_init may permute argv; `storage` keeps the strings alive.
  const int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (rc < 0) g_eal_status = RteError(rte_errno, "rte_eal_init");
  return g_eal_status;
}

void ShutdownDpdkEal() {
  std::lock_guard<std::mutex> lock(g_eal_mu);
  if (!g_eal_tried || !g_eal_status.ok()) return;
  const std::string dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  // The telemetry socket outlives rte_eal_cleanup (its thread closes it at
  // exit); nobody can use it once we are shutting down.
  unlink((dir + "/dpdk_telemetry.v2").c_str());
  rmdir(dir.c_str());  // fails (ENOTEMPTY) and leaves it alone if others share it
  g_eal_status = Unavailable("DPDK EAL was shut down");
}

DpdkOptions AfPacketOptions(const std::string& device, const std::string& iface, uint32_t mtu,
                            uint32_t* max_frame) {
  // A TPACKET_V2 frame starts with 80 bytes of header and alignment
  // (macoff 66 for Ethernet); the PMD needs the mbuf to hold the frame size
  // less 32, after RTE_PKTMBUF_HEADROOM.
  constexpr uint32_t kFrameOverhead = 96;
  constexpr uint32_t kMaxFrameSize = 63 * 1024;  // with the headroom, within an mbuf's 16-bit size
  const uint64_t want = uint64_t{mtu} + 14 + 8 + kFrameOverhead;
  uint32_t frame_size = 2048;
  while (frame_size < want && frame_size < kMaxFrameSize) frame_size += 1024;
  // Blocks are whole pages holding whole frames.
  const uint32_t per_block = 4096 / std::gcd(frame_size, 4096u);
  const uint32_t block_size = frame_size * per_block;
  uint32_t frame_count = std::max<uint32_t>(512, (32u << 20) / frame_size);
  if (frame_size == 2048) frame_count = 16384;  // measured at lab rates (bench/RESULTS.md)
  frame_count -= frame_count % per_block;
  DpdkOptions o;
  o.device = device;
  o.vdev_args = device + ",iface=" + iface + ",framecnt=" + std::to_string(frame_count) +
                ",framesz=" + std::to_string(frame_size) + ",blocksz=" + std::to_string(block_size);
  o.mbuf_data_room = static_cast<uint16_t>(frame_size + 128);
  o.mbufs = std::clamp<uint32_t>((64u << 20) / o.mbuf_data_room, 1023, 8191);
  if (max_frame != nullptr) *max_frame = frame_size - kFrameOverhead;
  return o;
}

Result<std::unique_ptr<PacketSource>> OpenDpdkSource(const DpdkOptions& options) {
  {
    std::lock_guard<std::mutex> lock(g_eal_mu);
    if (!g_eal_tried || !g_eal_status.ok()) return Unavailable("DPDK EAL is not initialised (InitDpdkEal)");
  }
  auto src = std::make_unique<DpdkSource>();
  KVF_RETURN_IF_ERROR(src->Open(options));
  return std::unique_ptr<PacketSource>(std::move(src));
}

DpdkNicStats GetDpdkNicStats(const PacketSource& source) {
  const auto* d = dynamic_cast<const DpdkSource*>(&source);
  return d != nullptr ? d->NicStats() : DpdkNicStats{};
}

}  // namespace kvf::dataplane
