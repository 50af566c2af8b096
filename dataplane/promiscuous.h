// Promiscuous mode for as long as a capture runs. A mirror port receives
// frames addressed to other hosts (a SPAN copy keeps the server's MAC), and a
// NIC filters those out unless it is promiscuous.
#pragma once

#include "core/status.h"

namespace kvf::dataplane {

// Holds an interface promiscuous the way libpcap does: through a membership
// of an AF_PACKET socket. The kernel counts such memberships apart from the
// flag an operator sets with `ip link set … promisc on`, and drops ours when
// the socket closes, also when the process is killed. So the interface ends
// as it was found.
class PromiscuousHold {
 public:
  PromiscuousHold() = default;
  PromiscuousHold(PromiscuousHold&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  PromiscuousHold& operator=(PromiscuousHold&& o) noexcept;
  PromiscuousHold(const PromiscuousHold&) = delete;
  PromiscuousHold& operator=(const PromiscuousHold&) = delete;
  ~PromiscuousHold();

  // `ifindex` in the calling thread's network namespace.
  static Result<PromiscuousHold> Take(int ifindex);

  bool held() const { return fd_ >= 0; }

 private:
  explicit PromiscuousHold(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Whether the interface's own PROMISC flag is set (an operator's `ip link set
// … promisc on`; memberships like the hold above do not show in it).
Result<bool> PromiscuousFlagSet(int ifindex);

}  // namespace kvf::dataplane
