// Packet decode: from a captured frame (outermost Ethernet header, or the
// link header of a pcap capture: Linux cooked, bare IP, BSD loopback) to the
// TCP segment it carries, through 802.1Q/QinQ tags, IPv4/IPv6 and the mirror
// encapsulations VXLAN (UDP 4789), GRE (keyed/sequenced/checksummed) and
// ERSPAN type I/II/III. Every read is bounds-checked; every refusal has a
// reason with a counter name an operator can read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/endpoint.h"
#include "dataplane/packet.h"

namespace kvf::dataplane {

enum class DecodeStatus : uint8_t {
  kOk = 0,
  kTruncatedEthernet,
  kTooManyVlanTags,       // more than two 802.1Q/802.1ad tags
  kUnsupportedEthertype,  // not IPv4/IPv6 (ARP, LLDP, MPLS, ...)
  kTruncatedIpv4,
  kBadIpv4Header,  // version != 4, IHL < 5, total length < IHL
  kIpv4Fragment,   // fragments are counted and ignored
  kTruncatedIpv6,
  kBadIpv6Header,  // version != 6 or jumbogram
  kIpv6Fragment,
  kIpv6TooManyExtensions,     // more than kMaxIpv6Extensions extension headers
  kUnsupportedIpv6Extension,  // ESP or an unknown extension chain
  kUnsupportedTransport,      // neither TCP nor a mirror tunnel (ICMP, plain UDP, ...)
  kTruncatedUdp,
  kTruncatedVxlan,
  kBadVxlan,  // VXLAN "I" flag not set
  kTruncatedGre,
  kUnsupportedGre,  // GRE version != 0, routing present, unknown protocol
  kTruncatedErspan,
  kBadErspan,              // ERSPAN version field does not match the GRE protocol
  kTooManyEncapsulations,  // tunnels nested deeper than kMaxEncapsulations
  kTruncatedTcp,
  kBadTcpDataOffset,     // data offset < 5 words
  kPayloadTruncated,     // snap length cut the TCP payload: unusable for reassembly
  kTruncatedLinkHeader,  // shorter than a Linux cooked / loopback / IP link header
  kCount
};

// Snake-case counter name ("ipv4_fragment_ignored").
std::string_view DecodeStatusName(DecodeStatus s);

inline constexpr int kMaxVlanTags = 2;
inline constexpr int kMaxEncapsulations = 3;
inline constexpr int kMaxIpv6Extensions = 8;
inline constexpr uint16_t kVxlanPort = 4789;

enum TcpFlags : uint8_t {
  kTcpFin = 0x01,
  kTcpSyn = 0x02,
  kTcpRst = 0x04,
  kTcpPsh = 0x08,
  kTcpAck = 0x10,
};

// A decoded TCP segment. `payload` points into the frame it was decoded from
// and lives exactly as long as that frame's bytes.
struct TcpSegment {
  Endpoint src;
  Endpoint dst;
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t window = 0;
  uint8_t flags = 0;
  uint8_t encapsulations = 0;  // tunnel layers stripped (0 for a plain frame)
  const uint8_t* payload = nullptr;
  uint32_t payload_len = 0;
  // On kPayloadTruncated: the payload bytes the snap length cut, after the
  // `payload_len` captured ones (as the IP header counts them).
  uint32_t payload_cut = 0;
  // On kPayloadTruncated: cut inside a tunnel whose outer packet came whole,
  // by a mirror session that truncates what it encapsulates (AWS Traffic
  // Mirroring's packet length, an ERSPAN session's MTU), not by the capture.
  bool cut_in_tunnel = false;
  uint64_t ts_ns = 0;

  bool Has(TcpFlags f) const { return (flags & f) != 0; }
};

// Decodes `len` bytes of a frame starting at its Ethernet header. On kOk
// `*out` is filled; on kPayloadTruncated too, with the captured part of the
// payload and `payload_cut` (see CutMatchesFrame); otherwise `*out` is
// unspecified but for the addresses and ports it got to. Never reads outside
// [data, data + len).
DecodeStatus DecodeFrame(const uint8_t* data, size_t len, uint64_t ts_ns, TcpSegment* out);
// The same for a frame that starts with a `link` header.
DecodeStatus DecodeFrame(LinkType link, const uint8_t* data, size_t len, uint64_t ts_ns, TcpSegment* out);

// Whether DecodeFrame's segment goes to reassembly: kOk, or kPayloadTruncated
// whose captured payload can stand in place with its `payload_cut` bytes a
// hole known at once (FlowTable::Process). That is when the capture says the
// frame lost (`wire_len` - `captured`) what the IP header says the payload
// lost, give or take a trailer (an FCS); a header that claims more than the
// frame lost is damage, not a snap length, and is not trusted. A cut inside a
// tunnel whose outer packet came whole (`cut_in_tunnel`) is the mirror
// session's: its outer packet cannot tell, and it goes to reassembly.
bool Reassemblable(DecodeStatus status, const TcpSegment& seg, size_t captured, uint32_t wire_len);

// One counter per DecodeStatus; index kOk counts decoded segments.
struct DecodeCounters {
  std::array<uint64_t, static_cast<size_t>(DecodeStatus::kCount)> by_status{};

  void Add(DecodeStatus s) { ++by_status[static_cast<size_t>(s)]; }
  uint64_t Get(DecodeStatus s) const { return by_status[static_cast<size_t>(s)]; }
  uint64_t decoded() const { return Get(DecodeStatus::kOk); }
  uint64_t failures() const;
  DecodeCounters& operator+=(const DecodeCounters& o);
};

}  // namespace kvf::dataplane
