// The unit every capture backend (xdp, dpdk, pcap) hands to the flow
// workers: a captured frame, starting at its outermost Ethernet header, with
// its capture timestamp. Backends deliver bursts through PacketSource.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace kvf::dataplane {

struct Packet {
  const uint8_t* data = nullptr;  // frame bytes from the Ethernet header on
  uint32_t len = 0;               // bytes available at `data`
  uint32_t wire_len = 0;          // length on the wire (> len when truncated/snapped)
  uint64_t ts_ns = 0;             // capture time, CLOCK_REALTIME nanoseconds
  uint32_t rx_queue = 0;          // backend queue / worker the frame arrived on
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
  // True once an offline source (a pcap file) has delivered everything.
  virtual bool Exhausted() const { return false; }
  virtual CaptureStats Stats() const = 0;
  virtual std::string Describe() const = 0;
};

}  // namespace kvf::dataplane
