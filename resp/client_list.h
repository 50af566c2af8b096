// The text of a source server's `CLIENT LIST` reply: which db each client
// connection has selected, by the client's address as the server sees it.
// A capture that joined a pooled connection mid-stream, or lost bytes where a
// SELECT may have been, asks the server instead of guessing (docs/resp.md,
// "Unknown db"). The reply comes from the network, so it is parsed with caps
// and without trusting its shape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace kvf::resp {

// An endpoint as 16 address bytes (IPv4 as ::ffff:a.b.c.d, as
// dataplane::IpAddress holds it) followed by the port, big-endian.
using ClientAddrKey = std::array<uint8_t, 18>;
ClientAddrKey ClientAddrKeyOf(const std::array<uint8_t, 16>& addr, uint16_t port);

struct ClientListEntry {
  ClientAddrKey addr{};   // the client (addr=)
  ClientAddrKey laddr{};  // the server's own end (laddr=, Redis 6.2+); has_laddr says if given
  bool has_laddr = false;
  uint16_t db = 0;
  // Unread bytes in its query buffer (qbuf=) and commands queued in a MULTI
  // (multi=, -1 outside one): a SELECT among them has not run yet, so the
  // db may still change where the capture has already read.
  uint64_t qbuf = 0;
  int64_t multi = -1;
  bool settled() const { return qbuf == 0 && multi < 0; }
};

struct ClientList {
  std::vector<ClientListEntry> entries;
  // Lines without a usable addr= or db= (a unix socket client, a malformed
  // line), and lines past the cap: not entries.
  uint64_t skipped_lines = 0;
};

struct ClientListLimits {
  size_t max_entries = 1u << 20;  // a server has at most maxclients (default 10,000)
  size_t max_line_bytes = 64u << 10;
};

// Parses `text` line by line ("id=7 addr=10.0.0.5:51234 laddr=10.0.0.9:6379
// … db=3 …"). Fields are looked up by name, in any order; an address is
// "a.b.c.d:port" or "[v6]:port"; db is 0..65535; qbuf and multi, when
// given, are numbers. Never fails: what cannot be read is counted in
// skipped_lines.
ClientList ParseClientList(std::string_view text, ClientListLimits limits = {});

}  // namespace kvf::resp
