// CLIENT LIST parsing: see client_list.h.
#include "resp/client_list.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace kvf::resp {

ClientAddrKey ClientAddrKeyOf(const std::array<uint8_t, 16>& addr, uint16_t port) {
  ClientAddrKey k{};
  std::memcpy(k.data(), addr.data(), 16);
  k[16] = static_cast<uint8_t>(port >> 8);
  k[17] = static_cast<uint8_t>(port & 0xff);
  return k;
}

namespace {

// "a.b.c.d:port" or "[v6]:port" (v6 may be ::ffff:a.b.c.d).
bool ParseAddr(std::string_view text, ClientAddrKey* out) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size() || text.size() - colon - 1 > 5)
    return false;
  uint32_t port = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port > 65535) return false;
  std::string_view host = text.substr(0, colon);
  std::array<uint8_t, 16> bytes{};
  char buf[INET6_ADDRSTRLEN + 1];
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.size() >= sizeof(buf)) return false;
    std::memcpy(buf, host.data(), host.size());
    buf[host.size()] = '\0';
    if (inet_pton(AF_INET6, buf, bytes.data()) != 1) return false;
  } else {
    if (host.size() >= sizeof(buf)) return false;
    std::memcpy(buf, host.data(), host.size());
    buf[host.size()] = '\0';
    if (inet_pton(AF_INET, buf, bytes.data() + 12) != 1) return false;
    bytes[10] = bytes[11] = 0xff;
  }
  *out = ClientAddrKeyOf(bytes, static_cast<uint16_t>(port));
  return true;
}

// A decimal number of at most `max_digits` digits.
bool ParseUnsigned(std::string_view text, size_t max_digits, uint64_t* out) {
  if (text.empty() || text.size() > max_digits) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

bool ParseDb(std::string_view text, uint16_t* out) {
  uint64_t v;
  if (!ParseUnsigned(text, 5, &v) || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

// -1, or a count.
bool ParseMulti(std::string_view text, int64_t* out) {
  if (text == "-1") {
    *out = -1;
    return true;
  }
  uint64_t v;
  if (!ParseUnsigned(text, 18, &v)) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

}  // namespace

ClientList ParseClientList(std::string_view text, ClientListLimits limits) {
  ClientList out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.size() > limits.max_line_bytes || out.entries.size() >= limits.max_entries) {
      ++out.skipped_lines;
      continue;
    }
    ClientListEntry e;
    bool has_addr = false, has_db = false, bad = false;
    while (!line.empty() && !bad) {
      const size_t sp = line.find(' ');
      const std::string_view field = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
      const size_t eq = field.find('=');
      if (eq == std::string_view::npos) continue;
      const std::string_view name = field.substr(0, eq), value = field.substr(eq + 1);
      if (name == "addr") {
        bad = has_addr || !ParseAddr(value, &e.addr);
        has_addr = true;
      } else if (name == "laddr") {
        bad = e.has_laddr || !ParseAddr(value, &e.laddr);
        e.has_laddr = true;
      } else if (name == "db") {
        bad = has_db || !ParseDb(value, &e.db);
        has_db = true;
      } else if (name == "qbuf") {
        bad = !ParseUnsigned(value, 18, &e.qbuf);
      } else if (name == "multi") {
        bad = !ParseMulti(value, &e.multi);
      }
    }
    if (bad || !has_addr || !has_db) {
      ++out.skipped_lines;
      continue;
    }
    out.entries.push_back(e);
  }
  return out;
}

}  // namespace kvf::resp
