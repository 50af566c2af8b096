// Text forms of addresses and endpoints, and the flow-key hash.
#include "dataplane/endpoint.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>

namespace kvf::dataplane {

Result<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.size() >= INET6_ADDRSTRLEN) return InvalidArgument("address too long: " + std::string(text));
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  uint8_t raw[16];
  if (inet_pton(AF_INET, buf, raw) == 1) return FromV4(raw);
  if (inet_pton(AF_INET6, buf, raw) == 1) return FromV6(raw);
  return InvalidArgument("not an IPv4 or IPv6 address: " + std::string(text));
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (IsV4()) {
    inet_ntop(AF_INET, &bytes[12], buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

Result<Endpoint> Endpoint::Parse(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return InvalidArgument("expected [IPv6]:PORT, got " + std::string(text));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return InvalidArgument("expected HOST:PORT, got " + std::string(text));
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5) return InvalidArgument("bad port in " + std::string(text));
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgument("bad port in " + std::string(text));
    p = p * 10 + static_cast<uint32_t>(c - '0');
  }
  if (p == 0 || p > 65535) return InvalidArgument("port out of range in " + std::string(text));
  Result<IpAddress> addr = IpAddress::Parse(host);
  if (!addr.ok()) return addr.status();
  return Endpoint{*addr, static_cast<uint16_t>(p)};
}

std::string Endpoint::ToString() const {
  std::string s = addr.IsV4() ? addr.ToString() : "[" + addr.ToString() + "]";
  return s + ":" + std::to_string(port);
}

}  // namespace kvf::dataplane
