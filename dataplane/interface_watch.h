// Notices that a live capture's interface went away. libpcap reports that
// as a read error; the xdp backend (its bpf_link goes defunct) and the dpdk
// af_packet PMD read nothing from then on, for ever (a review: both ran
// blind and exited 0 after the mirror port was deleted, and a port
// re-created under the same name is another interface, which nothing was
// attached to).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "core/status.h"

namespace kvf::dataplane {

class InterfaceWatch {
 public:
  InterfaceWatch() = default;
  // Interface `ifindex` of the calling thread's network namespace (the
  // watch keeps a socket there, so Gone may be called from any namespace);
  // `name` for the error.
  InterfaceWatch(int ifindex, std::string name);
  InterfaceWatch(InterfaceWatch&& o) noexcept { *this = std::move(o); }
  InterfaceWatch& operator=(InterfaceWatch&& o) noexcept;
  InterfaceWatch(const InterfaceWatch&) = delete;
  InterfaceWatch& operator=(const InterfaceWatch&) = delete;
  ~InterfaceWatch();

  // True once the interface no longer exists. Asks the kernel at most every
  // kCheckEveryNs, so that it can be called on every idle burst.
  bool Gone();
  // Why the capture stopped (Ok while the interface is there).
  Status error() const;

  static constexpr uint64_t kCheckEveryNs = 200'000'000;

 private:
  int ifindex_ = 0;
  int fd_ = -1;  // a socket in the interface's namespace; -1: nothing watched
  std::string name_;
  uint64_t next_check_ns_ = 0;
  bool gone_ = false;
};

// The MTU of interface `name` in the calling thread's network namespace.
Result<uint32_t> InterfaceMtu(const std::string& name);

}  // namespace kvf::dataplane
