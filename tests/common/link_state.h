// What `ip -d link show` says of an interface in a network namespace: its
// promiscuity count (every holder: an operator's flag, libpcap's and our
// memberships) and whether the operator's PROMISC flag is set.
#pragma once

#include <optional>
#include <string>

#include "tests/common/shell.h"

namespace kvf::testing {

struct LinkState {
  int promiscuity = -1;
  bool promisc_flag = false;  // `ip link set … promisc on`, not a socket's membership
};

inline std::optional<LinkState> ReadLinkState(const std::string& netns, const std::string& dev) {
  const std::string cmd = "ip -d -n " + netns + " link show dev " + dev + " 2>/dev/null";
  const ShellResult shell = RunShell(cmd);
  if (shell.code != 0) return std::nullopt;
  const std::string& out = shell.out;
  LinkState s;
  const size_t at = out.find(" promiscuity ");
  if (at == std::string::npos) return std::nullopt;
  s.promiscuity = std::stoi(out.substr(at + 13));
  const size_t flags_end = out.find('>');
  s.promisc_flag = out.substr(0, flags_end).find("PROMISC") != std::string::npos;
  return s;
}

}  // namespace kvf::testing
