// The unit every capture backend (xdp, dpdk, pcap) hands to the flow
// workers: a captured frame, starting at its outermost link-layer header
// (Ethernet, except for pcap captures of other link types), with its capture
// timestamp. Backends deliver bursts through PacketSource.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace kvf::dataplane {

// The link layer a frame starts with, as pcap files and libpcap name it
// (LINKTYPE_* values). XDP and DPDK deliver Ethernet only; pcap captures
// also come as Linux cooked frames (`tcpdump -i any`: SLL2 since libpcap
// 1.10, SLL before), bare IP (tun devices, DLT_RAW) and BSD loopback.
enum class LinkType : uint16_t {
  kNull = 0,  // BSD loopback: 4-byte address family in the writer's byte order
  kEthernet = 1,
  kRaw = 101,   // bare IPv4/IPv6 (LINKTYPE_RAW; DLT_RAW is 12 or 14 in memory)
  kLoop = 108,  // OpenBSD loopback: 4-byte address family, network byte order
  kLinuxSll = 113,
  kIpv4 = 228,
  kIpv6 = 229,
  kLinuxSll2 = 276,
};

// The link type a pcap file header (LINKTYPE_*) or libpcap (DLT_*) names,
// or false when frames of that type are not decoded.
bool LinkTypeFromPcap(int linktype, LinkType* out);

struct Packet {
  const uint8_t* data = nullptr;  // frame bytes from the link-layer header on
  uint32_t len = 0;               // bytes available at `data`
  uint32_t wire_len = 0;          // length on the wire (> len when truncated/snapped)
  uint64_t ts_ns = 0;             // capture time, CLOCK_REALTIME nanoseconds
  uint32_t rx_queue = 0;          // backend queue / worker the frame arrived on
  LinkType link = LinkType::kEthernet;
};

// Drop and delivery counters a backend keeps, named for an operator.
struct CaptureStats {
  uint64_t frames_received = 0;  // frames handed to user space
  uint64_t bytes_received = 0;
  uint64_t nic_drops = 0;            // dropped by the NIC/driver (imissed, rx_nombuf)
  uint64_t kernel_seen = 0;          // frames the BPF filter looked at
  uint64_t kernel_matched = 0;       // frames to or from a configured server
  uint64_t kernel_filtered = 0;      // not for us, or pure ACKs: dropped in the kernel on purpose
  uint64_t kernel_parse_errors = 0;  // malformed or unsupported headers
  uint64_t ring_full_drops = 0;      // matched, but the kernel-to-user ring was full
  uint64_t oversize_frames = 0;      // larger than a capture buffer (GSO): counted, not parsed
  uint64_t snap_truncated = 0;       // captured shorter than on the wire
};

// A capture backend. Thread confinement: one thread calls RxBurst on a given
// source (or on a given queue of it, for multi-queue backends).
class PacketSource {
 public:
  virtual ~PacketSource() = default;
  // Fills up to out.size() packets and returns how many. The bytes each
  // Packet points to stay valid until the next RxBurst call on this source.
  // Returns 0 when nothing arrived within the backend's poll interval.
  virtual size_t RxBurst(std::span<Packet> out) = 0;
  // True once an offline source (a pcap file) has delivered everything, or
  // a source can deliver no more (error() then says why).
  virtual bool Exhausted() const { return false; }
  // Why the source stopped early (a read error, the interface went away);
  // Ok otherwise.
  virtual Status error() const { return Status::Ok(); }
  // Frames carry the times a file recorded (DPDK's net_pcap), not the time
  // they arrive: timeouts must run on those, not on the wall clock.
  virtual bool FileTimestamps() const { return false; }
  virtual CaptureStats Stats() const = 0;
  virtual std::string Describe() const = 0;
};

}  // namespace kvf::dataplane
