// Crafts frames for tests: Ethernet (+802.1Q/QinQ tags), IPv4/IPv6 (with
// options, extension headers, fragments), TCP, UDP, VXLAN, GRE and ERSPAN II/III.
// Header-only and dependency-free so the capture tests and the BPF tests
// (BPF_PROG_TEST_RUN) build the same frames. Layers are built inside-out:
//   Ethernet(kEthIpv4, Ipv4(src, dst, kIpTcp, Tcp(spec)))
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvf::testing {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthIpv6 = 0x86dd;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kEthVlan = 0x8100;
inline constexpr uint16_t kEthQinQ = 0x88a8;
inline constexpr uint16_t kEthTeb = 0x6558;
inline constexpr uint16_t kEthErspan2 = 0x88be;
inline constexpr uint16_t kEthErspan3 = 0x22eb;
inline constexpr uint8_t kIpTcp = 6;
inline constexpr uint8_t kIpUdp = 17;
inline constexpr uint8_t kIpGre = 47;
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08, kTcpAck = 0x10;

inline void Put16(Bytes* b, uint16_t v) {
  b->push_back(static_cast<uint8_t>(v >> 8));
  b->push_back(static_cast<uint8_t>(v));
}
inline void Put32(Bytes* b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}
inline void Append(Bytes* b, const Bytes& tail) {
  b->insert(b->end(), tail.begin(), tail.end());
}
inline Bytes ToBytes(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

// An IPv4 ("10.0.0.1") or IPv6 ("fd00::1") address as raw bytes (4 or 16).
inline Bytes Addr(const std::string& text) {
  uint8_t raw[16];
  if (inet_pton(AF_INET, text.c_str(), raw) == 1) return Bytes(raw, raw + 4);
  if (inet_pton(AF_INET6, text.c_str(), raw) == 1) return Bytes(raw, raw + 16);
  throw std::invalid_argument("bad address " + text);
}

// Internet checksum (RFC 1071) over `data`, starting from `sum`.
inline uint16_t InetChecksum(const uint8_t* data, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>((data[i] << 8) | data[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(data[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

struct TcpSpec {
  uint16_t sport = 40000;
  uint16_t dport = 6379;
  uint32_t seq = 1000;
  uint32_t ack = 0;
  uint8_t flags = kTcpAck | kTcpPsh;
  uint16_t window = 65535;
  uint8_t data_offset_words = 5;  // > 5 adds NOP option bytes; < 5 crafts a bogus header
  std::string payload;
};

// TCP header + payload. Checksum left 0: nothing on the capture path checks it.
inline Bytes Tcp(const TcpSpec& s) {
  Bytes b;
  Put16(&b, s.sport);
  Put16(&b, s.dport);
  Put32(&b, s.seq);
  Put32(&b, s.ack);
  b.push_back(static_cast<uint8_t>(s.data_offset_words << 4));
  b.push_back(s.flags);
  Put16(&b, s.window);
  Put16(&b, 0);  // checksum
  Put16(&b, 0);  // urgent
  for (int i = 5; i < s.data_offset_words; ++i) b.insert(b.end(), {1, 1, 1, 1});
  b.insert(b.end(), s.payload.begin(), s.payload.end());
  return b;
}

inline Bytes Udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b;
  Put16(&b, sport);
  Put16(&b, dport);
  Put16(&b, static_cast<uint16_t>(8 + payload.size()));
  Put16(&b, 0);
  Append(&b, payload);
  return b;
}

struct Ipv4Options {
  uint8_t ttl = 64;
  uint16_t id = 1;
  bool more_fragments = false;
  uint16_t fragment_offset_units = 0;  // in 8-byte units
  uint8_t option_words = 0;            // NOP options, 4 bytes each
  int ihl_override = -1;               // crafts a bogus IHL when >= 0
  int total_length_override = -1;
};

inline Bytes Ipv4(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload,
                  const Ipv4Options& o = {}) {
  const size_t hlen = 20 + size_t{o.option_words} * 4;
  Bytes b;
  const uint8_t ihl =
      o.ihl_override >= 0 ? static_cast<uint8_t>(o.ihl_override) : static_cast<uint8_t>(hlen / 4);
  b.push_back(static_cast<uint8_t>(0x40 | (ihl & 0x0f)));
  b.push_back(0);
  Put16(&b, o.total_length_override >= 0 ? static_cast<uint16_t>(o.total_length_override)
                                         : static_cast<uint16_t>(hlen + payload.size()));
  Put16(&b, o.id);
  Put16(&b, static_cast<uint16_t>((o.more_fragments ? 0x2000 : 0) | (o.fragment_offset_units & 0x1fff)));
  b.push_back(o.ttl);
  b.push_back(proto);
  Put16(&b, 0);
  Append(&b, Addr(src));
  Append(&b, Addr(dst));
  for (int i = 0; i < o.option_words; ++i) b.insert(b.end(), {1, 1, 1, 1});
  const uint16_t csum = InetChecksum(b.data(), hlen);
  b[10] = static_cast<uint8_t>(csum >> 8);
  b[11] = static_cast<uint8_t>(csum);
  Append(&b, payload);
  return b;
}

// One IPv6 extension header: `type` is its own protocol number (0, 43, 44,
// 60, 51); its body is padded to the header's length unit.
struct Ipv6Extension {
  uint8_t type;
  size_t body_bytes = 6;  // for 0/43/60: total length = 8 * ceil((2 + body) / 8)
};

inline Bytes Ipv6(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload,
                  const std::vector<Ipv6Extension>& ext = {}) {
  Bytes chain;
  for (size_t i = 0; i < ext.size(); ++i) {
    const uint8_t next = i + 1 < ext.size() ? ext[i + 1].type : proto;
    Bytes h;
    h.push_back(next);
    if (ext[i].type == 44) {  // fragment header: fixed 8 bytes
      h.push_back(0);
      Put16(&h, 0x0001);  // offset 0, more fragments
      Put32(&h, 0x1234);
    } else if (ext[i].type == 51) {  // AH: length in 4-byte units minus 2
      const size_t total = ((2 + ext[i].body_bytes + 3) / 4) * 4;
      h.push_back(static_cast<uint8_t>(total / 4 - 2));
      h.resize(total, 0);
    } else {
      const size_t total = ((2 + ext[i].body_bytes + 7) / 8) * 8;
      h.push_back(static_cast<uint8_t>(total / 8 - 1));
      h.resize(total, 0);
    }
    Append(&chain, h);
  }
  Bytes b;
  Put32(&b, 0x60000000);
  Put16(&b, static_cast<uint16_t>(chain.size() + payload.size()));
  b.push_back(ext.empty() ? proto : ext[0].type);
  b.push_back(64);
  Append(&b, Addr(src));
  Append(&b, Addr(dst));
  Append(&b, chain);
  Append(&b, payload);
  return b;
}

// Ethernet II with optional VLAN tags, outermost first: each {tpid, vid}.
struct VlanTag {
  uint16_t tpid = kEthVlan;
  uint16_t vid = 100;
};
inline Bytes Ethernet(uint16_t ethertype, const Bytes& payload, const std::vector<VlanTag>& tags = {}) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  for (const VlanTag& t : tags) {
    Put16(&b, t.tpid);
    Put16(&b, t.vid);
  }
  Put16(&b, ethertype);
  Append(&b, payload);
  return b;
}

inline Bytes Vxlan(uint32_t vni, const Bytes& inner_frame, uint8_t flags = 0x08) {
  Bytes b = {flags, 0, 0, 0};
  Put32(&b, vni << 8);
  Append(&b, inner_frame);
  return b;
}

struct GreOptions {
  bool checksum = false;
  bool key = false;
  bool sequence = false;
  uint8_t version = 0;
};
inline Bytes Gre(uint16_t proto, const Bytes& payload, const GreOptions& o = {}) {
  Bytes b;
  Put16(&b, static_cast<uint16_t>((o.checksum ? 0x8000 : 0) | (o.key ? 0x2000 : 0) |
                                  (o.sequence ? 0x1000 : 0) | (o.version & 7)));
  Put16(&b, proto);
  if (o.checksum) Put32(&b, 0);
  if (o.key) Put32(&b, 0xabcd);
  if (o.sequence) Put32(&b, 7);
  Append(&b, payload);
  return b;
}

// ERSPAN type II header (8 bytes, version 1) + mirrored frame; goes in GRE
// proto 0x88be with the sequence bit set.
inline Bytes ErspanII(uint16_t session, const Bytes& inner_frame) {
  Bytes b;
  Put16(&b, static_cast<uint16_t>(0x1000 | 0));  // version 1, VLAN 0
  Put16(&b, static_cast<uint16_t>(session & 0x3ff));
  Put32(&b, 0);
  Append(&b, inner_frame);
  return b;
}

// ERSPAN type III header (12 bytes, version 2), optionally with the 8-byte
// platform-specific subheader (O bit); goes in GRE proto 0x22eb.
inline Bytes ErspanIII(uint16_t session, const Bytes& inner_frame, bool platform_subheader = false) {
  Bytes b;
  Put16(&b, 0x2000);
  Put16(&b, static_cast<uint16_t>(session & 0x3ff));
  Put32(&b, 0x11223344);  // timestamp
  Put16(&b, 0);           // SGT
  Put16(&b, platform_subheader ? 1 : 0);
  if (platform_subheader) {
    Put32(&b, 0);
    Put32(&b, 0);
  }
  Append(&b, inner_frame);
  return b;
}

// A plain TCP frame over IPv4 or IPv6 (chosen by the address text).
inline Bytes TcpFrame(const std::string& src, const std::string& dst, const TcpSpec& s) {
  const Bytes tcp = Tcp(s);
  if (Addr(src).size() == 4) return Ethernet(kEthIpv4, Ipv4(src, dst, kIpTcp, tcp));
  return Ethernet(kEthIpv6, Ipv6(src, dst, kIpTcp, tcp));
}

}  // namespace kvf::testing
