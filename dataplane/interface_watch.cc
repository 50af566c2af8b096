// InterfaceWatch and InterfaceMtu: see interface_watch.h.
#include "dataplane/interface_watch.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <utility>

namespace kvf::dataplane {

InterfaceWatch::InterfaceWatch(int ifindex, std::string name)
    : ifindex_(ifindex), fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)), name_(std::move(name)) {}

InterfaceWatch& InterfaceWatch::operator=(InterfaceWatch&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    ifindex_ = o.ifindex_;
    fd_ = std::exchange(o.fd_, -1);
    name_ = std::move(o.name_);
    next_check_ns_ = o.next_check_ns_;
    gone_ = o.gone_;
  }
  return *this;
}

InterfaceWatch::~InterfaceWatch() {
  if (fd_ >= 0) close(fd_);
}

bool InterfaceWatch::Gone() {
  if (gone_ || fd_ < 0) return gone_;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  const uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
  if (now < next_check_ns_) return false;
  next_check_ns_ = now + kCheckEveryNs;
  ifreq ifr{};
  ifr.ifr_ifindex = ifindex_;
  // ENODEV: no such index (any other error proves nothing).
  if (ioctl(fd_, SIOCGIFNAME, &ifr) != 0 && errno == ENODEV) gone_ = true;
  return gone_;
}

Status InterfaceWatch::error() const {
  if (!gone_) return Status::Ok();
  return Unavailable("interface " + name_ + " (index " + std::to_string(ifindex_) +
                     ") went away; one re-created under its name is another interface");
}

Result<uint32_t> InterfaceMtu(const std::string& name) {
  ifreq ifr{};
  if (name.size() >= sizeof(ifr.ifr_name)) return InvalidArgument("interface name too long: " + name);
  name.copy(ifr.ifr_name, name.size());
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket for SIOCGIFMTU");
  const int rc = ioctl(fd, SIOCGIFMTU, &ifr);
  const int err = errno;
  close(fd);
  if (rc != 0) return Status::FromErrno(err, "MTU of " + name);
  return static_cast<uint32_t>(ifr.ifr_mtu);
}

}  // namespace kvf::dataplane
