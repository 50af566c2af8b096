// Packet decode: a chain of small layer parsers over a bounds-checked cursor.
// Lengths claimed by headers (IPv4 total length, IPv6 payload length) trim the
// cursor, so Ethernet padding never leaks into a TCP payload; a claimed length
// beyond the captured bytes marks the frame snap-truncated.
#include "dataplane/decode.h"

namespace kvf::dataplane {
namespace {

inline uint16_t Be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The bytes not yet parsed, and whether an outer header said there should
// have been more of them (`missing` more, by the innermost IP header's count).
struct Cursor {
  const uint8_t* p;
  size_t n;
  bool truncated;
  size_t missing = 0;

  bool Has(size_t k) const { return n >= k; }
  void Skip(size_t k) {
    p += k;
    n -= k;
  }
};

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88a8;
constexpr uint16_t kEthQinQOld = 0x9100;
constexpr uint16_t kEthTeb = 0x6558;  // transparent Ethernet bridging (GRE)
constexpr uint16_t kEthErspan2 = 0x88be;
constexpr uint16_t kEthErspan3 = 0x22eb;

constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint8_t kIpProtoGre = 47;

DecodeStatus Ethernet(Cursor c, int depth, TcpSegment* out);
DecodeStatus Network(uint16_t ethertype, Cursor c, int depth, TcpSegment* out);

DecodeStatus Tcp(Cursor c, TcpSegment* out) {
  if (!c.Has(20)) return DecodeStatus::kTruncatedTcp;
  // The endpoints first: a refused segment still says whose it was.
  out->src.port = Be16(c.p);
  out->dst.port = Be16(c.p + 2);
  const size_t doff = static_cast<size_t>(c.p[12] >> 4) * 4;
  if (doff < 20) return DecodeStatus::kBadTcpDataOffset;
  if (!c.Has(doff)) return c.truncated ? DecodeStatus::kTruncatedTcp : DecodeStatus::kBadTcpDataOffset;
  out->seq = Be32(c.p + 4);
  out->ack = Be32(c.p + 8);
  out->flags = c.p[13];
  out->window = Be16(c.p + 14);
  c.Skip(doff);
  out->payload = c.p;
  out->payload_len = static_cast<uint32_t>(c.n);
  out->payload_cut = c.truncated ? static_cast<uint32_t>(c.missing) : 0;
  return c.truncated ? DecodeStatus::kPayloadTruncated : DecodeStatus::kOk;
}

// ERSPAN I/II/III carried in GRE; the mirrored frame follows as Ethernet.
DecodeStatus Erspan(uint16_t proto, bool gre_seq, Cursor c, int depth, TcpSegment* out) {
  if (proto == kEthErspan2) {
    if (!gre_seq) return Ethernet(c, depth, out);  // type I: no ERSPAN header
    if (!c.Has(8)) return DecodeStatus::kTruncatedErspan;
    if ((c.p[0] >> 4) != 1) return DecodeStatus::kBadErspan;
    c.Skip(8);
    return Ethernet(c, depth, out);
  }
  if (!c.Has(12)) return DecodeStatus::kTruncatedErspan;
  if ((c.p[0] >> 4) != 2) return DecodeStatus::kBadErspan;
  const bool platform_subheader = (c.p[11] & 0x01) != 0;
  c.Skip(12);
  if (platform_subheader) {
    if (!c.Has(8)) return DecodeStatus::kTruncatedErspan;
    c.Skip(8);
  }
  return Ethernet(c, depth, out);
}

DecodeStatus Gre(Cursor c, int depth, TcpSegment* out) {
  if (!c.Has(4)) return DecodeStatus::kTruncatedGre;
  const uint16_t flags = Be16(c.p);
  const uint16_t proto = Be16(c.p + 2);
  if ((flags & 0x0007) != 0 || (flags & 0x4000) != 0) return DecodeStatus::kUnsupportedGre;
  const bool has_csum = (flags & 0x8000) != 0;
  const bool has_key = (flags & 0x2000) != 0;
  const bool has_seq = (flags & 0x1000) != 0;
  const size_t hlen = 4 + (has_csum ? 4 : 0) + (has_key ? 4 : 0) + (has_seq ? 4 : 0);
  if (!c.Has(hlen)) return DecodeStatus::kTruncatedGre;
  c.Skip(hlen);
  switch (proto) {
    case kEthTeb: return Ethernet(c, depth + 1, out);
    case kEthIpv4:
    case kEthIpv6: return Network(proto, c, depth + 1, out);
    case kEthErspan2:
    case kEthErspan3: return Erspan(proto, has_seq, c, depth + 1, out);
    default: return DecodeStatus::kUnsupportedGre;
  }
}

DecodeStatus Udp(Cursor c, int depth, TcpSegment* out) {
  if (!c.Has(8)) return DecodeStatus::kTruncatedUdp;
  const uint16_t dport = Be16(c.p + 2);
  if (dport != kVxlanPort) return DecodeStatus::kUnsupportedTransport;
  c.Skip(8);
  if (!c.Has(8)) return DecodeStatus::kTruncatedVxlan;
  if ((c.p[0] & 0x08) == 0) return DecodeStatus::kBadVxlan;
  c.Skip(8);
  return Ethernet(c, depth + 1, out);
}

DecodeStatus Transport(uint8_t proto, Cursor c, int depth, TcpSegment* out) {
  switch (proto) {
    case kIpProtoTcp: return Tcp(c, out);
    case kIpProtoUdp: return Udp(c, depth, out);
    case kIpProtoGre: return Gre(c, depth, out);
    default: return DecodeStatus::kUnsupportedTransport;
  }
}

DecodeStatus Ipv4(Cursor c, int depth, TcpSegment* out) {
  if (!c.Has(20)) return DecodeStatus::kTruncatedIpv4;
  if ((c.p[0] >> 4) != 4) return DecodeStatus::kBadIpv4Header;
  const size_t ihl = static_cast<size_t>(c.p[0] & 0x0f) * 4;
  const size_t total = Be16(c.p + 2);
  if (ihl < 20 || total < ihl) return DecodeStatus::kBadIpv4Header;
  if (!c.Has(ihl)) return DecodeStatus::kTruncatedIpv4;
  if ((Be16(c.p + 6) & 0x3fff) != 0) return DecodeStatus::kIpv4Fragment;  // MF or offset
  const uint8_t proto = c.p[9];
  out->src.addr = IpAddress::FromV4(c.p + 12);
  out->dst.addr = IpAddress::FromV4(c.p + 16);
  Cursor l4{c.p + ihl, 0, true};
  if (c.n < total) {
    l4.n = c.n - ihl;
    l4.missing = total - c.n;
    out->cut_in_tunnel = !c.truncated && depth > 0;
  } else {
    // Whole, whatever an outer layer lost after it (an inner frame's FCS).
    l4.n = total - ihl;  // drops Ethernet padding
    l4.truncated = false;
  }
  return Transport(proto, l4, depth, out);
}

DecodeStatus Ipv6(Cursor c, int depth, TcpSegment* out) {
  if (!c.Has(40)) return DecodeStatus::kTruncatedIpv6;
  if ((c.p[0] >> 4) != 6) return DecodeStatus::kBadIpv6Header;
  const size_t payload_len = Be16(c.p + 4);
  if (payload_len == 0) return DecodeStatus::kBadIpv6Header;  // jumbogram or empty
  uint8_t next = c.p[6];
  out->src.addr = IpAddress::FromV6(c.p + 8);
  out->dst.addr = IpAddress::FromV6(c.p + 24);
  c.Skip(40);
  if (c.n < payload_len) {
    out->cut_in_tunnel = !c.truncated && depth > 0;
    c.truncated = true;
    c.missing = payload_len - c.n;
  } else {
    // Whole, whatever an outer layer lost after it (an inner frame's FCS).
    c.n = payload_len;
    c.truncated = false;
    c.missing = 0;
  }
  for (int i = 0;; ++i) {
    size_t hlen = 0;
    switch (next) {
      case 0:   // hop-by-hop options
      case 43:  // routing
      case 60:  // destination options
        if (!c.Has(2)) return DecodeStatus::kTruncatedIpv6;
        hlen = (static_cast<size_t>(c.p[1]) + 1) * 8;
        break;
      case 51:  // authentication header: length in 4-byte units, minus 2
        if (!c.Has(2)) return DecodeStatus::kTruncatedIpv6;
        hlen = (static_cast<size_t>(c.p[1]) + 2) * 4;
        break;
      case 44: return DecodeStatus::kIpv6Fragment;
      case 50:  // ESP: the payload is encrypted
      case 135:
      case 139:
      case 140: return DecodeStatus::kUnsupportedIpv6Extension;
      default: return Transport(next, c, depth, out);
    }
    if (i + 1 >= kMaxIpv6Extensions) return DecodeStatus::kIpv6TooManyExtensions;
    if (!c.Has(hlen)) return DecodeStatus::kTruncatedIpv6;
    next = c.p[0];
    c.Skip(hlen);
  }
}

DecodeStatus Network(uint16_t ethertype, Cursor c, int depth, TcpSegment* out) {
  if (depth > kMaxEncapsulations) return DecodeStatus::kTooManyEncapsulations;
  out->encapsulations = static_cast<uint8_t>(depth);
  if (ethertype == kEthIpv4) return Ipv4(c, depth, out);
  if (ethertype == kEthIpv6) return Ipv6(c, depth, out);
  return DecodeStatus::kUnsupportedEthertype;
}

// What follows an ethertype: 802.1Q/802.1ad tags, then IPv4 or IPv6.
DecodeStatus Tagged(uint16_t ethertype, Cursor c, int depth, TcpSegment* out) {
  for (int tags = 0; ethertype == kEthVlan || ethertype == kEthQinQ || ethertype == kEthQinQOld; ++tags) {
    if (tags == kMaxVlanTags) return DecodeStatus::kTooManyVlanTags;
    if (!c.Has(4)) return DecodeStatus::kTruncatedEthernet;
    ethertype = Be16(c.p + 2);
    c.Skip(4);
  }
  return Network(ethertype, c, depth, out);
}

DecodeStatus Ethernet(Cursor c, int depth, TcpSegment* out) {
  if (depth > kMaxEncapsulations) return DecodeStatus::kTooManyEncapsulations;
  if (!c.Has(14)) return DecodeStatus::kTruncatedEthernet;
  const uint16_t ethertype = Be16(c.p + 12);
  c.Skip(14);
  return Tagged(ethertype, c, depth, out);
}

// Bare IP: the version nibble says which.
DecodeStatus RawIp(Cursor c, TcpSegment* out) {
  if (!c.Has(1)) return DecodeStatus::kTruncatedLinkHeader;
  switch (c.p[0] >> 4) {
    case 4: return Network(kEthIpv4, c, 0, out);
    case 6: return Network(kEthIpv6, c, 0, out);
    default: return DecodeStatus::kUnsupportedEthertype;
  }
}

// BSD loopback: a 4-byte address family, in the byte order of the host that
// wrote it (DLT_NULL) or big-endian (DLT_LOOP); IPv6's value differs between
// systems (Linux 10, the BSDs 24, FreeBSD 28, Darwin 30).
DecodeStatus Loopback(Cursor c, TcpSegment* out) {
  if (!c.Has(4)) return DecodeStatus::kTruncatedLinkHeader;
  uint32_t family = Be32(c.p);
  if (family > 0xffff) family = __builtin_bswap32(family);
  c.Skip(4);
  switch (family) {
    case 2: return Network(kEthIpv4, c, 0, out);
    case 10:
    case 24:
    case 28:
    case 30: return Network(kEthIpv6, c, 0, out);
    default: return DecodeStatus::kUnsupportedEthertype;
  }
}

// Linux cooked capture v1: packet type, ARPHRD type, address length, 8
// address bytes, protocol (an ethertype for the frames decoded here).
DecodeStatus LinuxSll(Cursor c, TcpSegment* out) {
  if (!c.Has(16)) return DecodeStatus::kTruncatedLinkHeader;
  const uint16_t protocol = Be16(c.p + 14);
  c.Skip(16);
  return Tagged(protocol, c, 0, out);
}

// Linux cooked capture v2: protocol, reserved, interface index, ARPHRD
// type, packet type, address length, 8 address bytes.
DecodeStatus LinuxSll2(Cursor c, TcpSegment* out) {
  if (!c.Has(20)) return DecodeStatus::kTruncatedLinkHeader;
  const uint16_t protocol = Be16(c.p);
  c.Skip(20);
  return Tagged(protocol, c, 0, out);
}

}  // namespace

bool LinkTypeFromPcap(int linktype, LinkType* out) {
  switch (linktype) {
    case 0: *out = LinkType::kNull; return true;
    case 1: *out = LinkType::kEthernet; return true;
    case 12:  // DLT_RAW on Linux and most systems
    case 14:  // DLT_RAW on BSD/OS
    case 101: *out = LinkType::kRaw; return true;
    case 108: *out = LinkType::kLoop; return true;
    case 113: *out = LinkType::kLinuxSll; return true;
    case 228: *out = LinkType::kIpv4; return true;
    case 229: *out = LinkType::kIpv6; return true;
    case 276: *out = LinkType::kLinuxSll2; return true;
    default: return false;
  }
}

bool Reassemblable(DecodeStatus status, const TcpSegment& seg, size_t captured, uint32_t wire_len) {
  constexpr size_t kMaxTrailer = 64;  // an FCS, a capture card's trailer
  if (status == DecodeStatus::kOk) return true;
  if (status != DecodeStatus::kPayloadTruncated || seg.payload_cut == 0) return false;
  if (seg.cut_in_tunnel) return true;  // at most 64 KiB: an IP length's
  if (wire_len <= captured) return false;
  const size_t lost = wire_len - captured;
  return seg.payload_cut <= lost && lost - seg.payload_cut <= kMaxTrailer;
}

DecodeStatus DecodeFrame(const uint8_t* data, size_t len, uint64_t ts_ns, TcpSegment* out) {
  out->ts_ns = ts_ns;
  out->cut_in_tunnel = false;
  return Ethernet(Cursor{data, len, false}, 0, out);
}

DecodeStatus DecodeFrame(LinkType link, const uint8_t* data, size_t len, uint64_t ts_ns, TcpSegment* out) {
  if (link == LinkType::kEthernet) return DecodeFrame(data, len, ts_ns, out);
  out->ts_ns = ts_ns;
  out->cut_in_tunnel = false;
  const Cursor c{data, len, false};
  switch (link) {
    case LinkType::kRaw: return RawIp(c, out);
    case LinkType::kIpv4: return Network(kEthIpv4, c, 0, out);
    case LinkType::kIpv6: return Network(kEthIpv6, c, 0, out);
    case LinkType::kNull:
    case LinkType::kLoop: return Loopback(c, out);
    case LinkType::kLinuxSll: return LinuxSll(c, out);
    case LinkType::kLinuxSll2: return LinuxSll2(c, out);
    case LinkType::kEthernet: break;
  }
  return DecodeStatus::kUnsupportedEthertype;
}

std::string_view DecodeStatusName(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::kOk: return "tcp_segments_decoded";
    case DecodeStatus::kTruncatedEthernet: return "ethernet_header_truncated";
    case DecodeStatus::kTruncatedLinkHeader: return "link_header_truncated";
    case DecodeStatus::kTooManyVlanTags: return "too_many_vlan_tags";
    case DecodeStatus::kUnsupportedEthertype: return "not_ip_ignored";
    case DecodeStatus::kTruncatedIpv4: return "ipv4_header_truncated";
    case DecodeStatus::kBadIpv4Header: return "ipv4_header_invalid";
    case DecodeStatus::kIpv4Fragment: return "ipv4_fragment_ignored";
    case DecodeStatus::kTruncatedIpv6: return "ipv6_header_truncated";
    case DecodeStatus::kBadIpv6Header: return "ipv6_header_invalid";
    case DecodeStatus::kIpv6Fragment: return "ipv6_fragment_ignored";
    case DecodeStatus::kIpv6TooManyExtensions: return "ipv6_too_many_extension_headers";
    case DecodeStatus::kUnsupportedIpv6Extension: return "ipv6_extension_unsupported";
    case DecodeStatus::kUnsupportedTransport: return "not_tcp_ignored";
    case DecodeStatus::kTruncatedUdp: return "udp_header_truncated";
    case DecodeStatus::kTruncatedVxlan: return "vxlan_header_truncated";
    case DecodeStatus::kBadVxlan: return "vxlan_header_invalid";
    case DecodeStatus::kTruncatedGre: return "gre_header_truncated";
    case DecodeStatus::kUnsupportedGre: return "gre_unsupported";
    case DecodeStatus::kTruncatedErspan: return "erspan_header_truncated";
    case DecodeStatus::kBadErspan: return "erspan_header_invalid";
    case DecodeStatus::kTooManyEncapsulations: return "too_many_nested_tunnels";
    case DecodeStatus::kTruncatedTcp: return "tcp_header_truncated";
    case DecodeStatus::kBadTcpDataOffset: return "tcp_data_offset_invalid";
    case DecodeStatus::kPayloadTruncated: return "tcp_payload_cut_by_snaplen";
    case DecodeStatus::kCount: break;
  }
  return "unknown";
}

uint64_t DecodeCounters::failures() const {
  uint64_t n = 0;
  for (size_t i = 1; i < by_status.size(); ++i) n += by_status[i];
  return n;
}

DecodeCounters& DecodeCounters::operator+=(const DecodeCounters& o) {
  for (size_t i = 0; i < by_status.size(); ++i) by_status[i] += o.by_status[i];
  return *this;
}

}  // namespace kvf::dataplane
