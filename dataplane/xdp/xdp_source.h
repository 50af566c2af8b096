// The XDP capture backend: loads bpf/capture.bpf.c through its skeleton,
// attaches it to an interface (XDP native/generic, or TC ingress where XDP
// cannot attach), and hands the frames it copies into the BPF ring buffer to
// the flow workers as Packet bursts, without copying them again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "dataplane/endpoint.h"
#include "dataplane/packet.h"

namespace kvf::dataplane {

enum class XdpAttachMode : uint8_t {
  kAuto,     // native XDP if the driver supports it, else generic (skb) XDP
  kNative,   // driver XDP only
  kGeneric,  // generic (skb) XDP: any device, slower
  kTc,       // TC ingress cls_bpf, direct action (devices where XDP cannot attach)
};

struct XdpOptions {
  std::string iface;
  std::vector<Endpoint> servers;  // segments to or from these are captured (*:PORT: any address)
  XdpAttachMode mode = XdpAttachMode::kAuto;
  // BPF ring buffer size: a power of two, at least one page.
  uint32_t ring_bytes = 16u << 20;
  // Kernel wakes the reader after this many records (per CPU) or as soon
  // as ring_bytes / 4 wait unread; the reader also polls every
  // poll_timeout_ms, which bounds the latency of a quiet trickle.
  uint32_t wakeup_every = 64;
  int poll_timeout_ms = 10;
  // False (a dedicated mirror port): every frame is dropped after
  // inspection. True: frames go on to the stack (the interface also carries
  // the host's own traffic, e.g. in tests).
  bool pass_frames = false;
};

// The program names the kernel reports for our programs: an attached
// program with one of these names and no live owner is a stale leftover
// (crashed kvferry) and is replaced; any other program is left alone and
// OpenXdpSource fails.
inline constexpr const char* kXdpProgramName = "kvf_capture_xdp";
inline constexpr const char* kTcProgramName = "kvf_capture_tc";

// open -> configure -> load -> attach, in that order (see xdp_source.cc).
// The returned source detaches the program when destroyed. Contract: in TC
// mode, destroy the source in the network namespace it was opened in (the
// detach goes through a netlink socket of the calling thread's namespace);
// XDP mode uses a bpf_link and has no such restriction. Thread confinement:
// one thread calls RxBurst (the ring has a single consumer).
Result<std::unique_ptr<PacketSource>> OpenXdpSource(const XdpOptions& options);

}  // namespace kvf::dataplane
