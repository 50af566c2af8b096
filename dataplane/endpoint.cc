// Text forms of addresses and endpoints, and the flow-key hash.
#include "dataplane/endpoint.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
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
  if (host.empty() || host == "*") return Endpoint{IpAddress{}, static_cast<uint16_t>(p)};
  Result<IpAddress> addr = IpAddress::Parse(host);
  if (!addr.ok()) return addr.status();
  return Endpoint{*addr, static_cast<uint16_t>(p)};
}

std::string Endpoint::ToString() const {
  std::string s = addr.IsV4() ? addr.ToString() : "[" + addr.ToString() + "]";
  return s + ":" + std::to_string(port);
}

Result<std::vector<Endpoint>> ResolveServer(std::string_view text) {
  Result<Endpoint> literal = Endpoint::Parse(text);
  if (literal.ok()) return std::vector<Endpoint>{*literal};
  // Only a HOST:PORT whose host is not an address is looked up.
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || text.front() == '[') return literal.status();
  const std::string host(text.substr(0, colon));
  const std::string port(text.substr(colon + 1));
  Result<Endpoint> port_check = Endpoint::Parse("*:" + port);
  if (!port_check.ok()) return InvalidArgument("bad port in " + std::string(text));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return InvalidArgument("cannot resolve " + host + " (in " + std::string(text) + "): " + gai_strerror(rc));
  }
  std::vector<Endpoint> out;
  for (const addrinfo* a = res; a != nullptr; a = a->ai_next) {
    Endpoint e{{}, port_check->port};
    if (a->ai_family == AF_INET) {
      e.addr = IpAddress::FromV4(
          reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr));
    } else if (a->ai_family == AF_INET6) {
      e.addr = IpAddress::FromV6(
          reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr));
    } else {
      continue;
    }
    // Only the literal forms (*:PORT, 0.0.0.0:PORT…) mean "any address": a
    // name that resolves to 0.0.0.0 (a hosts-file block list) matches nothing.
    if (e.addr.IsUnspecified()) continue;
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  freeaddrinfo(res);
  if (out.empty()) {
    return InvalidArgument(host + " resolves to no usable IPv4 or IPv6 address (0.0.0.0 and :: are " +
                           "refused: write *:PORT for any address)");
  }
  return out;
}

}  // namespace kvf::dataplane
