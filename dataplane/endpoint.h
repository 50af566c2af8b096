// Addresses, endpoints and the direction-independent flow key shared by packet
// decode, the flow table and the worker dispatcher. IPv4 addresses are held as
// IPv4-mapped IPv6 (::ffff:a.b.c.d) so both families compare and hash alike.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kvf::dataplane {

struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  static IpAddress FromV4(const uint8_t v4[4]) {
    IpAddress a;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], v4, 4);
    return a;
  }
  static IpAddress FromV6(const uint8_t v6[16]) {
    IpAddress a;
    std::memcpy(a.bytes.data(), v6, 16);
    return a;
  }
  // :: or 0.0.0.0, which a server endpoint uses to mean any address.
  bool IsUnspecified() const {
    static constexpr uint8_t kV4Any[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
    static constexpr uint8_t kV6Any[16] = {};
    return std::memcmp(bytes.data(), kV6Any, 16) == 0 || std::memcmp(bytes.data(), kV4Any, 16) == 0;
  }
  bool IsV4() const {
    static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(bytes.data(), kPrefix, 12) == 0;
  }
  // Parses dotted IPv4 or textual IPv6 (no brackets).
  static Result<IpAddress> Parse(std::string_view text);
  std::string ToString() const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;
  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct Endpoint {
  IpAddress addr;
  uint16_t port = 0;

  // "1.2.3.4:6379", "[::1]:6379"; "*:6379" or ":6379" is the unspecified
  // address (as does "0.0.0.0:6379"). "localhost:6379" is refused: no name
  // lookup here (ResolveServer does it).
  static Result<Endpoint> Parse(std::string_view text);
  std::string ToString() const;
  // Whether `e` is this server endpoint, or has its port when this one's
  // address is unspecified (a server bound to every address: "*:6379").
  bool Matches(const Endpoint& e) const { return port == e.port && (addr == e.addr || addr.IsUnspecified()); }

  friend bool operator==(const Endpoint&, const Endpoint&) = default;
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

// The endpoints a --server argument names: an address as Endpoint::Parse
// reads it, or a host name looked up (every IPv4 and IPv6 address it has,
// each once; "localhost:6379" is 127.0.0.1 and ::1).
Result<std::vector<Endpoint>> ResolveServer(std::string_view text);

// A TCP connection named without direction: `lo` is the smaller endpoint, so
// both directions of one connection produce the same key and the same hash.
struct FlowKey {
  Endpoint lo;
  Endpoint hi;

  static FlowKey Of(const Endpoint& a, const Endpoint& b) { return a < b ? FlowKey{a, b} : FlowKey{b, a}; }
  // Symmetric by construction; used for the worker choice and the flow table.
  // Computed for every packet, so a few multiplies rather than a byte hash:
  // each 64-bit word is mixed in, then a splitmix64 finalizer spreads every
  // input bit over the low bits that table masks and `% workers` use.
  uint64_t Hash() const {
    uint64_t w[4];
    std::memcpy(w, lo.addr.bytes.data(), 16);
    std::memcpy(w + 2, hi.addr.bytes.data(), 16);
    uint64_t h = ((uint64_t{lo.port} << 16) | hi.port) * 0x9e3779b97f4a7c15ull;
    for (uint64_t x : w) {
      h = (h ^ x) * 0xbf58476d1ce4e5b9ull;
      h ^= h >> 29;
    }
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
  }
  // The worker (of `workers`) for this flow, from its two ports alone: NAT
  // rewrites addresses, so the views of one connection captured before and
  // after a translation go to the same worker, whose flow table can tell
  // they are one connection. The ports are mixed by a finalizer unlike
  // Hash()'s, so the table index (Hash()'s low bits) stays uniform within a
  // worker's share of the flows.
  size_t WorkerOf(size_t workers) const {
    const uint64_t a = std::min(lo.port, hi.port), b = std::max(lo.port, hi.port);
    uint64_t h = ((a << 16) | b) * 0xd6e8feb86659fd93ull;
    h = (h ^ (h >> 32)) * 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return static_cast<size_t>(((h & 0xffffffffull) * static_cast<uint64_t>(workers)) >> 32);
  }

  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};

struct FlowKeyHasher {
  size_t operator()(const FlowKey& k) const { return static_cast<size_t>(k.Hash()); }
};

}  // namespace kvf::dataplane
