#include "dataplane/promiscuous.h"

#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace kvf::dataplane {

PromiscuousHold& PromiscuousHold::operator=(PromiscuousHold&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

PromiscuousHold::~PromiscuousHold() {
  if (fd_ >= 0) close(fd_);  // the kernel drops the membership with the socket
}

Result<PromiscuousHold> PromiscuousHold::Take(int ifindex) {
  // Protocol 0: the socket is bound to no protocol and receives nothing.
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "AF_PACKET socket for promiscuous mode");
  packet_mreq mr{};
  mr.mr_ifindex = ifindex;
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno(err, "promiscuous mode on interface index " + std::to_string(ifindex));
  }
  return PromiscuousHold(fd);
}

Result<bool> PromiscuousFlagSet(int ifindex) {
  ifreq ifr{};
  if (if_indextoname(static_cast<unsigned>(ifindex), ifr.ifr_name) == nullptr)
    return Status::FromErrno(errno, "interface index " + std::to_string(ifindex));
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket for SIOCGIFFLAGS");
  const int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  const int err = errno;
  close(fd);
  if (rc != 0) return Status::FromErrno(err, std::string("flags of ") + ifr.ifr_name);
  return (ifr.ifr_flags & IFF_PROMISC) != 0;
}

}  // namespace kvf::dataplane
