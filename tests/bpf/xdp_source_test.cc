// End-to-end tests of the XDP backend (dataplane/xdp) on a veth pair between
// two network namespaces this test creates (kvftx<pid>a/b, deleted at the
// end even on failure): raw frames sent from one side must come out of
// RxBurst on the other, non-matching ones counted and dropped; stale
// kvferry programs are replaced, foreign ones left alone. Needs root.
#include "dataplane/xdp/xdp_source.h"
#include "tests/common/link_state.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include "capture.skel.h"
#include "tests/bpf/frame_builder.h"

namespace kvf::bpftest {
namespace {

using dataplane::CaptureStats;
using dataplane::Endpoint;
using dataplane::OpenXdpSource;
using dataplane::Packet;
using dataplane::PacketSource;
using dataplane::XdpAttachMode;
using dataplane::XdpOptions;

int Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

uint64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Two namespaces joined by a veth pair: "va" (198.18.77.1) in a_, "vb"
// (198.18.77.2) in b_. Deleted by the destructor.
// The TCP server the real-connection tests listen on, in namespace b_.
sockaddr_in ServerAddr() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(7000);
  inet_pton(AF_INET, "198.18.77.2", &addr.sin_addr);
  return addr;
}

class VethLab {
 public:
  VethLab() : a_("kvftx" + std::to_string(getpid()) + "a"), b_("kvftx" + std::to_string(getpid()) + "b") {
    RemoveLeftovers();
    ok_ = Sh("ip netns add " + a_) == 0 && Sh("ip netns add " + b_) == 0 &&
          Sh("ip -n " + a_ + " link add va type veth peer name vb netns " + b_) == 0 &&
          Sh("ip -n " + a_ + " addr add 198.18.77.1/24 dev va") == 0 &&
          Sh("ip -n " + b_ + " addr add 198.18.77.2/24 dev vb") == 0 &&
          Sh("ip -n " + a_ + " link set va up") == 0 && Sh("ip -n " + b_ + " link set vb up") == 0 &&
          Sh("ip -n " + a_ + " link set lo up") == 0 && Sh("ip -n " + b_ + " link set lo up") == 0;
  }
  ~VethLab() {
    Sh("ip netns del " + a_);
    Sh("ip netns del " + b_);
  }
  bool ok() const { return ok_; }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }

  // Deletes kvftx<pid>{a,b} namespaces of test processes that died without
  // running their destructor (killed by a timeout), and our own names.
  static void RemoveLeftovers() {
    DIR* d = opendir("/var/run/netns");
    if (d == nullptr) return;
    std::vector<std::string> doomed;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind("kvftx", 0) != 0 || name.size() < 7) continue;
      const std::string digits = name.substr(5, name.size() - 6);
      if (digits.find_first_not_of("0123456789") != std::string::npos || digits.empty()) continue;
      const pid_t pid = static_cast<pid_t>(std::stol(digits));
      if (pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH)) doomed.push_back(name);
    }
    closedir(d);
    for (const std::string& n : doomed) Sh("ip netns del " + n);
  }

  // Runs `fn` with the calling thread inside namespace `ns`.
  static void In(const std::string& ns, const std::function<void()>& fn) {
    const int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(self, 0);
    ASSERT_GE(target, 0);
    ASSERT_EQ(0, setns(target, CLONE_NEWNET));
    fn();
    ASSERT_EQ(0, setns(self, CLONE_NEWNET));
    close(self);
    close(target);
  }

 private:
  std::string a_, b_;
  bool ok_ = false;
};

class XdpSourceTest : public ::testing::TestWithParam<XdpAttachMode> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces and attaches XDP";
    ASSERT_TRUE(lab_.ok()) << "could not build the veth lab";
  }

  XdpOptions Options(XdpAttachMode mode) {
    XdpOptions o;
    o.iface = "vb";
    o.servers.push_back(Endpoint::Parse("198.18.77.2:7000").value());
    o.servers.push_back(Endpoint::Parse("[fd77::2]:7000").value());
    o.mode = mode;
    o.ring_bytes = 1 << 20;
    o.wakeup_every = 8;
    o.poll_timeout_ms = 5;
    return o;
  }

  // A source on "vb", opened in namespace b; null after a failure.
  std::unique_ptr<PacketSource> OpenOnVb(const XdpOptions& o) {
    std::unique_ptr<PacketSource> src;
    VethLab::In(lab_.b(), [&] {
      auto r = OpenXdpSource(o);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      src = std::move(r.value());
    });
    return src;
  }

  // A TCP listener on ServerAddr() in namespace b.
  int ListenOnB() {
    int fd = -1;
    VethLab::In(lab_.b(), [&] {
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const sockaddr_in addr = ServerAddr();
      ASSERT_EQ(0, bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)));
      ASSERT_EQ(0, listen(fd, 4));
    });
    return fd;
  }

  // A client in namespace a, connected to ServerAddr().
  int ConnectFromA() {
    int fd = -1;
    VethLab::In(lab_.a(), [&] { fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); });
    const sockaddr_in addr = ServerAddr();
    EXPECT_EQ(0, connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)));
    return fd;
  }

  // An AF_PACKET socket on "va" in namespace a.
  int RawSocket() {
    int fd = -1;
    VethLab::In(lab_.a(), [&] { fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0); });
    return fd;
  }
  void SendRaw(int fd, const Bytes& frame) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(va_index_);
    to.sll_halen = 6;
    ASSERT_EQ(static_cast<ssize_t>(frame.size()),
              sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)));
  }

  // Reads bursts until `want` packets arrived (copied out) or 5 s passed.
  std::vector<Bytes> Receive(PacketSource* src, size_t want, std::vector<Packet>* meta = nullptr) {
    std::vector<Bytes> got;
    Packet burst[16];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      const size_t n = src->RxBurst(burst);
      for (size_t i = 0; i < n; ++i) {
        got.emplace_back(burst[i].data, burst[i].data + burst[i].len);
        if (meta) meta->push_back(burst[i]);
      }
    }
    return got;
  }

  VethLab lab_;
  unsigned va_index_ = 0;
};

Bytes ToServer(int i, uint16_t port = 7000, uint8_t flags = kAck | kPsh) {
  const std::string payload = flags == kAck ? "" : "*1\r\n$4\r\nPING\r\n#" + std::to_string(i);
  return Eth(kEthIpv4, Ipv4("198.18.77.1", "198.18.77.2", kProtoTcp, Tcp(40000, port, flags, payload)));
}

TEST_P(XdpSourceTest, MatchingFramesArriveInOrderOthersAreCountedAndDropped) {
  std::unique_ptr<PacketSource> src = OpenOnVb(Options(GetParam()));
  ASSERT_TRUE(src);
  if (GetParam() == XdpAttachMode::kAuto) {  // veth has driver XDP
    EXPECT_EQ("xdp:vb (native)", src->Describe());
  }
  VethLab::In(lab_.a(), [&] { va_index_ = if_nametoindex("va"); });
  const int raw = RawSocket();
  ASSERT_GE(raw, 0);

  const uint64_t t0 = RealtimeNs();
  std::vector<Bytes> sent;
  for (int i = 0; i < 60; ++i) {
    Bytes f;
    if (i % 3 == 0) {
      f = ToServer(i);
    } else if (i % 3 == 1) {  // VXLAN-mirrored IPv6 segment
      f = Eth(kEthIpv4,
              Ipv4("198.18.77.1", "198.18.77.2", kProtoUdp,
                   Udp(999, 4789,
                       Vxlan(7, Eth(kEthIpv6, Ipv6("fd77::1", "fd77::2", kProtoTcp,
                                                   Tcp(40000, 7000, kAck, "v6#" + std::to_string(i))))))));
    } else {
      f = ToServer(i, 7000, kSyn);
    }
    sent.push_back(f);
    SendRaw(raw, f);
    SendRaw(raw, ToServer(i, 7001));        // another port: filtered
    SendRaw(raw, ToServer(i, 7000, kAck));  // pure ACK: filtered
  }
  std::vector<Packet> meta;
  const std::vector<Bytes> got = Receive(src.get(), sent.size(), &meta);
  ASSERT_EQ(sent.size(), got.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i], got[i]) << "frame " << i;
    EXPECT_EQ(sent[i].size(), meta[i].wire_len);
    EXPECT_GE(meta[i].ts_ns + 1'000'000, t0);  // realtime, 1 ms slack for the clock offset
    EXPECT_LE(meta[i].ts_ns, RealtimeNs() + 1'000'000);
  }
  Packet extra[4];
  EXPECT_EQ(0u, src->RxBurst(extra));  // nothing else came through

  const CaptureStats s = src->Stats();
  EXPECT_EQ(sent.size(), s.frames_received);
  EXPECT_EQ(sent.size(), s.kernel_matched);
  EXPECT_GE(s.kernel_filtered, 2 * sent.size());
  EXPECT_GE(s.kernel_seen, 3 * sent.size());
  EXPECT_EQ(0u, s.ring_full_drops);
  EXPECT_EQ(0u, s.oversize_frames);
  EXPECT_EQ(0u, s.nic_drops);  // the program's own drops are not the interface's
  close(raw);

  // Destroying the source detaches the program.
  VethLab::In(lab_.b(), [&] {
    src.reset();
    const int ifindex = static_cast<int>(if_nametoindex("vb"));
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    ASSERT_EQ(0, bpf_xdp_query(ifindex, 0, &q));
    EXPECT_EQ(0u, q.prog_id);
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, tq, .handle = 0x4b56, .priority = 1);
    EXPECT_NE(0, bpf_tc_query(&hook, &tq));
  });
}

// `--server *:7002` on a real interface: the loader stores the unspecified
// address and switches the any-address lookup on; segments to any address on
// port 7002 arrive, those to port 7000 (not configured here) do not.
TEST_P(XdpSourceTest, UnspecifiedServerAddressMatchesAnyAddress) {
  XdpOptions o = Options(GetParam());
  o.servers = {Endpoint::Parse("*:7002").value()};
  std::unique_ptr<PacketSource> src = OpenOnVb(o);
  ASSERT_TRUE(src);
  VethLab::In(lab_.a(), [&] { va_index_ = if_nametoindex("va"); });
  const int raw = RawSocket();
  ASSERT_GE(raw, 0);
  std::vector<Bytes> sent;
  for (int i = 0; i < 10; ++i) {
    sent.push_back(ToServer(i, 7002));
    sent.push_back(Eth(kEthIpv4, Ipv4("198.18.77.1", "203.0.113.9", kProtoTcp,
                                      Tcp(40000, 7002, kAck | kPsh, "#" + std::to_string(i)))));
    SendRaw(raw, sent[sent.size() - 2]);
    SendRaw(raw, sent.back());
    SendRaw(raw, ToServer(i, 7000));  // not a configured server now
  }
  const std::vector<Bytes> got = Receive(src.get(), sent.size());
  ASSERT_EQ(sent.size(), got.size());
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(sent[i], got[i]) << "frame " << i;
  Packet extra[4];
  EXPECT_EQ(0u, src->RxBurst(extra));
  EXPECT_EQ(sent.size(), src->Stats().kernel_matched);
  close(raw);
}

TEST_P(XdpSourceTest, RealTcpConnectionIsCapturedInPassMode) {
  XdpOptions o = Options(GetParam());
  o.pass_frames = true;
  std::unique_ptr<PacketSource> src = OpenOnVb(o);
  ASSERT_TRUE(src);
  const int listener = ListenOnB();
  ASSERT_GE(listener, 0);
  const int client = ConnectFromA();
  const std::string msg = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
  ASSERT_EQ(static_cast<ssize_t>(msg.size()), send(client, msg.data(), msg.size(), 0));
  const int conn = accept(listener, nullptr, nullptr);
  ASSERT_GE(conn, 0);
  char buf[128];
  ASSERT_EQ(static_cast<ssize_t>(msg.size()),
            recv(conn, buf, msg.size(), MSG_WAITALL));  // passed to the stack
  close(client);
  close(conn);
  close(listener);

  // Client -> server direction enters vb: SYN, the command, FIN (pure ACKs filtered).
  bool saw_syn = false, saw_cmd = false, saw_fin = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  Packet burst[16];
  while (!(saw_syn && saw_cmd && saw_fin) && std::chrono::steady_clock::now() < deadline) {
    const size_t n = src->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) {
      const Packet& p = burst[i];
      ASSERT_GE(p.len, 54u);
      const uint8_t flags = p.data[14 + 20 + 13];
      saw_syn |= (flags & kSyn) != 0;
      saw_fin |= (flags & kFin) != 0;
      const std::string frame(reinterpret_cast<const char*>(p.data), p.len);
      saw_cmd |= frame.find(msg) != std::string::npos;
    }
  }
  EXPECT_TRUE(saw_syn);
  EXPECT_TRUE(saw_cmd);
  EXPECT_TRUE(saw_fin);
  EXPECT_GT(src->Stats().kernel_filtered, 0u);  // the pure ACKs
  VethLab::In(lab_.b(), [&] { src.reset(); });
}

// A bulk transfer over veth produces GSO super-frames (up to 64 KiB) in
// generic XDP and TC mode (native XDP on veth sees MTU-sized segments): the
// program takes them (xdp.frags), delivers them whole, and their payload adds
// up to exactly what the client sent: nothing lost, nothing mis-parsed.
TEST_P(XdpSourceTest, GsoSuperFramesAreCountedAndNeverMisparsed) {
  XdpOptions o = Options(GetParam());
  o.pass_frames = true;
  o.ring_bytes = 8u << 20;
  std::unique_ptr<PacketSource> src = OpenOnVb(o);
  ASSERT_TRUE(src);
  const int listener = ListenOnB();
  ASSERT_GE(listener, 0);
  const int client = ConnectFromA();
  const int conn = accept(listener, nullptr, nullptr);
  ASSERT_GE(conn, 0);
  constexpr size_t kTotal = 512 * 1024;
  std::thread reader([&] {
    std::vector<char> buf(65536);
    size_t got = 0;
    while (got < kTotal) {
      const ssize_t n = recv(conn, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
  });
  const std::string chunk(kTotal, 'g');
  size_t off = 0;
  while (off < kTotal) {
    const ssize_t n = send(client, chunk.data() + off, kTotal - off, 0);
    ASSERT_GT(n, 0);
    off += static_cast<size_t>(n);
  }
  reader.join();

  // The stream's bytes seen, by sequence number: on a loaded machine the
  // sender retransmits, and the hook sees both copies (a run in the full
  // suite counted 563,384 bytes of payload for the 524,288 sent).
  std::vector<std::pair<int64_t, int64_t>> seen;  // [begin, end), from the first segment's sequence number
  uint32_t base = 0;
  auto unique_bytes = [&] {
    std::sort(seen.begin(), seen.end());
    uint64_t total = 0;
    int64_t covered = INT64_MIN;
    for (const auto& [b, e] : seen) {
      const int64_t from = std::max(b, covered);
      if (e > from) total += static_cast<uint64_t>(e - from);
      covered = std::max(covered, e);
    }
    return total;
  };
  uint64_t payload = 0, truncated = 0, super_frames = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  Packet burst[64];
  while (unique_bytes() < kTotal && std::chrono::steady_clock::now() < deadline) {
    const size_t n = src->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) {
      const Packet& p = burst[i];
      ASSERT_GE(p.len, 54u);
      ASSERT_LE(p.len, p.wire_len);
      truncated += p.len < p.wire_len;
      super_frames += p.wire_len > 4096;
      const uint32_t ihl = (p.data[14] & 0x0f) * 4u;
      const uint8_t* tcp = p.data + 14 + ihl;
      const uint32_t doff = (tcp[12] >> 4) * 4u;
      const uint32_t bytes = p.wire_len - 14 - ihl - doff;
      if (bytes == 0) continue;
      const uint32_t seq =
          (uint32_t{tcp[4]} << 24) | (uint32_t{tcp[5]} << 16) | (uint32_t{tcp[6]} << 8) | tcp[7];
      if (payload == 0) base = seq;
      payload += bytes;
      const int64_t at = static_cast<int32_t>(seq - base);
      seen.emplace_back(at, at + bytes);
    }
  }
  close(client);
  close(conn);
  close(listener);
  EXPECT_EQ(kTotal, unique_bytes());
  EXPECT_GE(payload, kTotal);
  const CaptureStats s = src->Stats();
  EXPECT_EQ(0u, truncated);
  EXPECT_EQ(0u, s.oversize_frames);
  EXPECT_EQ(0u, s.ring_full_drops);
  EXPECT_EQ(0u, s.kernel_parse_errors);
  std::printf(
      "[ info ] %s: %llu of %llu frames were GSO super-frames (> 4096 bytes), %llu bytes seen twice\n",
      src->Describe().c_str(), static_cast<unsigned long long>(super_frames),
      static_cast<unsigned long long>(s.frames_received),
      static_cast<unsigned long long>(payload - unique_bytes()));
  VethLab::In(lab_.b(), [&] { src.reset(); });
}

INSTANTIATE_TEST_SUITE_P(Modes, XdpSourceTest,
                         ::testing::Values(XdpAttachMode::kAuto, XdpAttachMode::kGeneric, XdpAttachMode::kTc),
                         [](const auto& info) {
                           switch (info.param) {
                             case XdpAttachMode::kAuto: return std::string("Auto");
                             case XdpAttachMode::kGeneric: return std::string("Generic");
                             case XdpAttachMode::kTc: return std::string("Tc");
                             default: return std::string("Native");
                           }
                         });

// The interface goes away (deleted, or its peer taken down with it): the
// source delivers what its ring held, then says so and stops, in either
// attach mode (a review's capture read nothing for ever and exited 0). The
// check runs in the namespace the source was opened in, wherever it is
// called from.
TEST_P(XdpSourceTest, AnInterfaceThatGoesAwayEndsTheCaptureWithAReason) {
  std::unique_ptr<PacketSource> src = OpenOnVb(Options(GetParam()));
  ASSERT_TRUE(src);
  VethLab::In(lab_.a(), [&] { va_index_ = if_nametoindex("va"); });
  const int raw = RawSocket();
  ASSERT_GE(raw, 0);
  for (int i = 0; i < 3; ++i) SendRaw(raw, ToServer(i));
  close(raw);
  Packet burst[8];
  size_t got = 0;
  for (int i = 0; i < 100 && got < 3; ++i) got += src->RxBurst(burst);
  EXPECT_EQ(got, 3u);
  EXPECT_FALSE(src->Exhausted());
  EXPECT_TRUE(src->error().ok());
  ASSERT_EQ(0, Sh("ip -n " + lab_.b() + " link del vb"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!src->Exhausted() && std::chrono::steady_clock::now() < until) src->RxBurst(burst);
  EXPECT_TRUE(src->Exhausted());
  EXPECT_NE(std::string::npos, src->error().ToString().find("interface vb")) << src->error().ToString();
  VethLab::In(lab_.b(), [&] { src.reset(); });
}

class XdpAttachTest : public XdpSourceTest {};

TEST_F(XdpAttachTest, StaleKvferryProgramIsReplaced) {
  VethLab::In(lab_.b(), [&] {
    const int ifindex = static_cast<int>(if_nametoindex("vb"));
    // A "crashed" kvferry: program attached through netlink, process gone.
    capture* stale = capture__open_and_load();
    ASSERT_NE(nullptr, stale);
    ASSERT_EQ(0, bpf_xdp_attach(ifindex, bpf_program__fd(stale->progs.kvf_capture_xdp), XDP_FLAGS_DRV_MODE,
                                nullptr));
    capture__destroy(stale);
    uint32_t stale_id = 0;
    ASSERT_EQ(0, bpf_xdp_query_id(ifindex, 0, &stale_id));
    ASSERT_NE(0u, stale_id);

    auto r = OpenXdpSource(Options(XdpAttachMode::kAuto));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    uint32_t now_id = 0;
    ASSERT_EQ(0, bpf_xdp_query_id(ifindex, 0, &now_id));
    EXPECT_NE(0u, now_id);
    EXPECT_NE(stale_id, now_id);
    // A second instance while the first is alive is refused, not replaced.
    auto second = OpenXdpSource(Options(XdpAttachMode::kAuto));
    EXPECT_FALSE(second.ok());
    r.value().reset();
    ASSERT_EQ(0, bpf_xdp_query_id(ifindex, 0, &now_id));
    EXPECT_EQ(0u, now_id);
  });
}

TEST_F(XdpAttachTest, ForeignProgramIsLeftAlone) {
  VethLab::In(lab_.b(), [&] {
    const int ifindex = static_cast<int>(if_nametoindex("vb"));
    const bpf_insn pass[] = {
        {.code = 0xb7, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 2},  // r0 = XDP_PASS
        {.code = 0x95, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},  // exit
    };
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "someone_else", "GPL", pass, 2, nullptr);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(0, bpf_xdp_attach(ifindex, fd, XDP_FLAGS_SKB_MODE, nullptr));
    uint32_t id = 0;
    ASSERT_EQ(0, bpf_xdp_query_id(ifindex, 0, &id));

    auto r = OpenXdpSource(Options(XdpAttachMode::kAuto));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(StatusCode::kUnavailable, r.status().code());
    EXPECT_NE(std::string::npos, r.status().message().find("someone_else")) << r.status().message();
    uint32_t still = 0;
    ASSERT_EQ(0, bpf_xdp_query_id(ifindex, 0, &still));
    EXPECT_EQ(id, still);
    bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, nullptr);
    close(fd);
  });
}

// A SPAN copy keeps the server's MAC: a NIC that is not promiscuous drops
// it before XDP runs (a veth does not filter, so only the count shows it).
// The interface is promiscuous while a mirror port is captured, and as it was
// found afterwards, an operator's own flag included.
TEST_F(XdpAttachTest, AMirrorPortIsPromiscuousWhileCapturedAndAsFoundAfter) {
  const auto before = testing::ReadLinkState(lab_.b(), "vb");
  ASSERT_TRUE(before.has_value());
  for (const bool operator_flag : {false, true}) {
    SCOPED_TRACE(operator_flag ? "the operator set promisc on" : "not promiscuous");
    if (operator_flag) ASSERT_EQ(0, Sh("ip -n " + lab_.b() + " link set vb promisc on"));
    const int base = before->promiscuity + (operator_flag ? 1 : 0);
    for (const XdpAttachMode mode : {XdpAttachMode::kAuto, XdpAttachMode::kTc}) {
      std::unique_ptr<PacketSource> src = OpenOnVb(Options(mode));
      ASSERT_TRUE(src);
      EXPECT_EQ(base + 1, testing::ReadLinkState(lab_.b(), "vb")->promiscuity);
      VethLab::In(lab_.b(), [&] { src.reset(); });
      const auto after = testing::ReadLinkState(lab_.b(), "vb");
      EXPECT_EQ(base, after->promiscuity);
      EXPECT_EQ(operator_flag, after->promisc_flag);
    }
    // --pass: the host's own interface, whose frames are addressed to it.
    XdpOptions o = Options(XdpAttachMode::kAuto);
    o.pass_frames = true;
    std::unique_ptr<PacketSource> src = OpenOnVb(o);
    ASSERT_TRUE(src);
    EXPECT_EQ(base, testing::ReadLinkState(lab_.b(), "vb")->promiscuity);
    VethLab::In(lab_.b(), [&] { src.reset(); });
  }
  // A killed capture leaves nothing behind either: the kernel drops the
  // membership with the process's socket.
  ASSERT_EQ(0, Sh("ip -n " + lab_.b() + " link set vb promisc off"));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int rc = 1;
    VethLab::In(lab_.b(), [&] {
      auto r = OpenXdpSource(Options(XdpAttachMode::kAuto));
      if (r.ok()) rc = 0;
      if (r.ok()) (void)r.value().release();  // never destroyed
    });
    std::_Exit(rc);
  }
  int status = 0;
  ASSERT_EQ(child, waitpid(child, &status, 0));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(before->promiscuity, testing::ReadLinkState(lab_.b(), "vb")->promiscuity);
}

TEST_F(XdpAttachTest, BadOptionsAreRefused) {
  XdpOptions o = Options(XdpAttachMode::kAuto);
  o.ring_bytes = 5000;
  EXPECT_EQ(StatusCode::kInvalidArgument, OpenXdpSource(o).status().code());
  o = Options(XdpAttachMode::kAuto);
  o.servers.clear();
  EXPECT_EQ(StatusCode::kInvalidArgument, OpenXdpSource(o).status().code());
  o = Options(XdpAttachMode::kAuto);
  o.iface = "kvftx-no-such";
  EXPECT_FALSE(OpenXdpSource(o).ok());
}

}  // namespace
}  // namespace kvf::bpftest
