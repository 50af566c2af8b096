// Crafts frames for the BPF and backend tests: Ethernet (+VLAN tags),
// IPv4/IPv6, TCP, UDP and the mirror encapsulations (VXLAN, GRE, ERSPAN
// II/III). Each function returns one layer with its payload, so layers
// compose: Eth(Ipv4(…, Udp(…, Vxlan(Eth(…))))). Checksums are left zero.
// (tests/common/packet_builder.h, written in parallel for the decode tests,
// covers the same ground; this one has its own namespace until they merge.)
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace kvf::bpftest {

using Bytes = std::vector<uint8_t>;

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
inline Bytes Concat(Bytes a, const Bytes& b) {
  Append(&a, b);
  return a;
}

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86dd;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kTpid8021Q = 0x8100;
constexpr uint16_t kTpid8021AD = 0x88a8;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoGre = 47;

// Ethernet with the given VLAN tags (outermost first: {TPID, VID} pairs).
struct VlanTag {
  uint16_t tpid;
  uint16_t vid;
};
inline Bytes Eth(uint16_t ethertype, const Bytes& payload, std::vector<VlanTag> tags = {}) {
  Bytes b = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  for (const VlanTag& t : tags) {
    Put16(&b, t.tpid);
    Put16(&b, t.vid);
  }
  Put16(&b, ethertype);
  Append(&b, payload);
  return b;
}

inline Bytes V4Addr(const char* text) {
  Bytes b(4);
  inet_pton(AF_INET, text, b.data());
  return b;
}
inline Bytes V6Addr(const char* text) {
  Bytes b(16);
  inet_pton(AF_INET6, text, b.data());
  return b;
}

// IPv4 header (IHL 5 unless `options` is given) + payload.
inline Bytes Ipv4(const char* src, const char* dst, uint8_t proto, const Bytes& payload,
                  uint16_t frag_off = 0, const Bytes& options = {}) {
  Bytes b;
  const size_t hlen = 20 + options.size();
  b.push_back(static_cast<uint8_t>(0x40 | (hlen / 4)));
  b.push_back(0);
  Put16(&b, static_cast<uint16_t>(hlen + payload.size()));
  Put16(&b, 0x1234);    // id
  Put16(&b, frag_off);  // flags + fragment offset
  b.push_back(64);
  b.push_back(proto);
  Put16(&b, 0);  // checksum
  Append(&b, V4Addr(src));
  Append(&b, V4Addr(dst));
  Append(&b, options);
  Append(&b, payload);
  return b;
}

// IPv6 header + payload; `next` is the first next-header value.
inline Bytes Ipv6(const char* src, const char* dst, uint8_t next, const Bytes& payload) {
  Bytes b;
  Put32(&b, 0x60000000);
  Put16(&b, static_cast<uint16_t>(payload.size()));
  b.push_back(next);
  b.push_back(64);
  Append(&b, V6Addr(src));
  Append(&b, V6Addr(dst));
  Append(&b, payload);
  return b;
}

// An IPv6 extension header of 8 * (1 + hdrlen) bytes.
inline Bytes Ipv6Ext(uint8_t next, uint8_t hdrlen, const Bytes& payload) {
  Bytes b = {next, hdrlen};
  b.resize(8u * (1u + hdrlen), 0);
  Append(&b, payload);
  return b;
}

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

// TCP header (data offset 5 + options/4) + payload.
inline Bytes Tcp(uint16_t sport, uint16_t dport, uint8_t flags, std::string_view payload,
                 const Bytes& options = {}) {
  Bytes b;
  Put16(&b, sport);
  Put16(&b, dport);
  Put32(&b, 1000);  // seq
  Put32(&b, 2000);  // ack
  b.push_back(static_cast<uint8_t>(((20 + options.size()) / 4) << 4));
  b.push_back(flags);
  Put16(&b, 65535);  // window
  Put32(&b, 0);      // checksum + urgent
  Append(&b, options);
  b.insert(b.end(), payload.begin(), payload.end());
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

// VXLAN header (I flag set unless `valid_vni` is false) + inner Ethernet.
inline Bytes Vxlan(uint32_t vni, const Bytes& inner, bool valid_vni = true) {
  Bytes b = {static_cast<uint8_t>(valid_vni ? 0x08 : 0x00), 0, 0, 0};
  Put32(&b, vni << 8);
  Append(&b, inner);
  return b;
}

constexpr uint16_t kGreCsum = 0x8000, kGreKey = 0x2000, kGreSeq = 0x1000;
// GRE header with optional checksum/key/sequence words (zero-filled).
inline Bytes Gre(uint16_t flags, uint16_t proto, const Bytes& payload) {
  Bytes b;
  Put16(&b, flags);
  Put16(&b, proto);
  if (flags & kGreCsum) Put32(&b, 0);
  if (flags & kGreKey) Put32(&b, 7);
  if (flags & kGreSeq) Put32(&b, 1);
  Append(&b, payload);
  return b;
}

// ERSPAN type II header (version 1, session 5) + mirrored frame.
inline Bytes Erspan2(const Bytes& inner) {
  Bytes b = {0x10, 0x00, 0x00, 0x05, 0, 0, 0, 0};
  Append(&b, inner);
  return b;
}

// ERSPAN type III header (version 2) + optional 8-byte platform subheader.
inline Bytes Erspan3(const Bytes& inner, bool platform_subheader) {
  Bytes b = {0x20, 0x00, 0x00, 0x05, 0x11, 0x22,
             0x33, 0x44, 0,    0,    0,    static_cast<uint8_t>(platform_subheader ? 0x01 : 0x00)};
  if (platform_subheader) b.insert(b.end(), 8, 0xee);
  Append(&b, inner);
  return b;
}

}  // namespace kvf::bpftest
