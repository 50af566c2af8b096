// The BPF and backend tests' spelling of tests/common/packet_builder.h:
// one call per layer, so layers compose as
// Eth(Ipv4(…, Udp(…, Vxlan(Eth(…))))), with the raw fields (fragment word,
// GRE flag bits, option bytes) the filter's tests set by hand. Every layer is
// built by packet_builder.h; only Ipv6Ext, a hand-made extension chain,
// is its own.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tests/common/packet_builder.h"

namespace kvf::bpftest {

using testing::Append;
using testing::Bytes;
using testing::kEthArp;
using testing::kEthIpv4;
using testing::kEthIpv6;
using testing::Put16;
using testing::Put32;
using testing::Udp;
using testing::VlanTag;

inline constexpr uint16_t kTpid8021Q = testing::kEthVlan;
inline constexpr uint16_t kTpid8021AD = testing::kEthQinQ;
inline constexpr uint8_t kProtoTcp = testing::kIpTcp;
inline constexpr uint8_t kProtoUdp = testing::kIpUdp;
inline constexpr uint8_t kProtoGre = testing::kIpGre;
inline constexpr uint8_t kFin = testing::kTcpFin, kSyn = testing::kTcpSyn, kRst = testing::kTcpRst,
                         kPsh = testing::kTcpPsh, kAck = testing::kTcpAck;
inline constexpr uint16_t kGreCsum = 0x8000, kGreKey = 0x2000, kGreSeq = 0x1000;

inline Bytes V4Addr(const char* text) {
  return testing::Addr(text);
}
inline Bytes V6Addr(const char* text) {
  return testing::Addr(text);
}

// Ethernet with VLAN tags, outermost first.
inline Bytes Eth(uint16_t ethertype, const Bytes& payload, const std::vector<VlanTag>& tags = {}) {
  return testing::Ethernet(ethertype, payload, tags);
}

// NOP option bytes (1s) in whole words, as packet_builder writes them.
inline uint8_t NopWords(const Bytes& options) {
  for (uint8_t b : options) {
    if (b != 1) throw std::invalid_argument("frame_builder: options are NOP bytes (1)");
  }
  if (options.size() % 4 != 0) throw std::invalid_argument("frame_builder: options in whole words");
  return static_cast<uint8_t>(options.size() / 4);
}

// IPv4 (id 0x1234) + payload; `frag_off` is the flags and fragment-offset
// word (0x2000: more fragments).
inline Bytes Ipv4(const char* src, const char* dst, uint8_t proto, const Bytes& payload,
                  uint16_t frag_off = 0, const Bytes& options = {}) {
  testing::Ipv4Options o;
  o.id = 0x1234;
  o.more_fragments = (frag_off & 0x2000) != 0;
  o.fragment_offset_units = frag_off & 0x1fff;
  o.option_words = NopWords(options);
  return testing::Ipv4(src, dst, proto, payload, o);
}

// IPv6 + payload; `next` is the first next-header value (build a chain of
// extension headers with Ipv6Ext).
inline Bytes Ipv6(const char* src, const char* dst, uint8_t next, const Bytes& payload) {
  return testing::Ipv6(src, dst, next, payload);
}

// An IPv6 extension header of 8 * (1 + hdrlen) zero bytes, then `payload`.
inline Bytes Ipv6Ext(uint8_t next, uint8_t hdrlen, const Bytes& payload) {
  Bytes b = {next, hdrlen};
  b.resize(8u * (1u + hdrlen), 0);
  Append(&b, payload);
  return b;
}

// TCP (seq 1000, ack 2000) + payload; `options` are NOP bytes.
inline Bytes Tcp(uint16_t sport, uint16_t dport, uint8_t flags, std::string_view payload,
                 const Bytes& options = {}) {
  testing::TcpSpec s;
  s.sport = sport;
  s.dport = dport;
  s.ack = 2000;
  s.flags = flags;
  s.data_offset_words = static_cast<uint8_t>(5 + NopWords(options));
  s.payload = std::string(payload);
  return testing::Tcp(s);
}

// VXLAN (I flag set unless `valid_vni` is false) + inner Ethernet.
inline Bytes Vxlan(uint32_t vni, const Bytes& inner, bool valid_vni = true) {
  return testing::Vxlan(vni, inner, valid_vni ? 0x08 : 0x00);
}

// GRE with the optional words that `flags` (kGreCsum, kGreKey, kGreSeq) ask for.
inline Bytes Gre(uint16_t flags, uint16_t proto, const Bytes& payload) {
  testing::GreOptions o;
  o.checksum = (flags & kGreCsum) != 0;
  o.key = (flags & kGreKey) != 0;
  o.sequence = (flags & kGreSeq) != 0;
  return testing::Gre(proto, payload, o);
}

// ERSPAN type II / III (session 5) + mirrored frame.
inline Bytes Erspan2(const Bytes& inner) {
  return testing::ErspanII(5, inner);
}
inline Bytes Erspan3(const Bytes& inner, bool platform_subheader) {
  return testing::ErspanIII(5, inner, platform_subheader);
}

}  // namespace kvf::bpftest
