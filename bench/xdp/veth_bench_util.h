// What the XDP and AF_XDP delivery benchmarks on veth share: a quiet shell,
// running code inside a network namespace, and the AF_PACKET traffic
// generator (a sendmmsg batch repeating one frame).
#pragma once

#include <fcntl.h>
#include <linux/if_packet.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

namespace kvf::bpftest {

inline int Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

// Runs `fn` with this thread inside network namespace `ns`, then returns.
inline void InNs(const std::string& ns, const std::function<void()>& fn) {
  const int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int target = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (setns(target, CLONE_NEWNET) == 0) fn();
  setns(self, CLONE_NEWNET);
  close(self);
  close(target);
}

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
