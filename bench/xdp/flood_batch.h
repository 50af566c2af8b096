// A sendmmsg batch that repeats one frame out of an AF_PACKET socket: the
// traffic generator the XDP and AF_XDP delivery benchmarks share.
#pragma once

#include <linux/if_packet.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace kvf::bpftest {

// Holds the address and message array; send with sendmmsg(fd, msgs, kSize, 0).
// `frame` must outlive the batch; the batch must not move once filled.
struct FloodBatch {
  static constexpr unsigned kSize = 64;
  sockaddr_ll to{};
  iovec iov{};
  mmsghdr msgs[kSize]{};

  void Fill(unsigned ifindex, const uint8_t* frame, size_t len) {
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(ifindex);
    to.sll_halen = 6;
    iov = iovec{const_cast<uint8_t*>(frame), len};
    for (auto& m : msgs) {
      m.msg_hdr.msg_name = &to;
      m.msg_hdr.msg_namelen = sizeof(to);
      m.msg_hdr.msg_iov = &iov;
      m.msg_hdr.msg_iovlen = 1;
    }
  }
};

}  // namespace kvf::bpftest
