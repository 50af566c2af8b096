// The DPDK capture backend: EAL initialisation with operator-supplied
// arguments, RX bursts from one ethdev port (a NIC bound to vfio-pci in
// production; net_af_packet / net_pcap vdevs in the lab and in tests), and
// software symmetric flow hashing that names the worker for every frame.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "dataplane/packet.h"

namespace kvf::dataplane {

// Initialises the DPDK EAL with `args` (without argv[0]), e.g.
// {"--no-huge", "--in-memory", "--file-prefix=kvf42", "-l", "0", "--no-pci"}.
// The EAL can be initialised once per process: later calls return the first
// call's status and ignore their arguments.
Status InitDpdkEal(const std::vector<std::string>& args);

// Releases the EAL (rte_eal_cleanup) and removes its runtime directory
// (/var/run/dpdk/<file-prefix>), which the EAL leaves behind even with
// --no-shconf. Call at exit, after every DpdkSource is destroyed; the EAL
// cannot be initialised again in this process afterwards.
void ShutdownDpdkEal();

struct DpdkOptions {
  // Port to read: an ethdev name ("0000:03:00.0", "net_pcap0").
  std::string device;
  // Non-empty: hot-plug this virtual device first (e.g.
  // "net_pcap0,rx_pcap=/tmp/x.pcap" or "net_af_packet0,iface=veth0") and
  // remove it when the source is destroyed. Its name must equal `device`.
  std::string vdev_args;
  uint16_t rx_queues = 1;  // hardware RX queues, polled round-robin
  uint16_t rx_ring_size = 1024;
  uint32_t mbufs = 8191;  // mbuf pool size (caps the frames in flight)
  // Bytes of each mbuf's buffer (headroom included): a PMD that copies a
  // frame into one mbuf (net_af_packet) cuts what does not fit.
  uint16_t mbuf_data_room = 2048 + 128;  // RTE_MBUF_DEFAULT_BUF_SIZE
  uint16_t max_burst = 64;               // frames taken from the NIC per RxBurst
  // Worker fan-out: Packet::rx_queue is set to a worker in [0, workers),
  // the same for both directions of a TCP connection (symmetric hash of
  // the decoded inner endpoints; undecodable frames go to worker 0).
  uint32_t workers = 1;
};

// Options for the af_packet PMD on kernel interface `iface` whose MTU is
// `mtu`: ring frames and mbufs that hold its largest frame (with two VLAN
// tags), so that a jumbo-MTU mirror port is not cut to 2 KB (a review lost
// every large write on a 9000-MTU port), with the ring kept near 32 MiB and
// the pool near 64 MiB of EAL memory. `max_frame` receives the longest
// frame delivered whole (less than the MTU's frame only past 64 KiB, where
// an mbuf ends).
DpdkOptions AfPacketOptions(const std::string& device, const std::string& iface, uint32_t mtu,
                            uint32_t* max_frame);

// NIC-level counters from rte_eth_stats_get.
struct DpdkNicStats {
  uint64_t ipackets = 0;
  uint64_t imissed = 0;    // dropped by the NIC: RX ring full
  uint64_t rx_nombuf = 0;  // dropped: mbuf pool empty
  uint64_t ierrors = 0;    // bad frames (CRC, length)
  // Not a NIC counter: frames that arrived as a chain of mbufs (larger than
  // one mbuf: jumbo frames with scattered RX) and were copied whole.
  uint64_t chained_frames = 0;
};

// Opens and starts the port. Requires InitDpdkEal() to have succeeded.
// Thread confinement: one thread calls RxBurst. Frames stay valid until the
// next RxBurst (their mbufs are freed then).
Result<std::unique_ptr<PacketSource>> OpenDpdkSource(const DpdkOptions& options);

// The NIC counters of a source returned by OpenDpdkSource (others: zeros).
DpdkNicStats GetDpdkNicStats(const PacketSource& source);

}  // namespace kvf::dataplane
