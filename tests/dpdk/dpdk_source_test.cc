// Tests of the DPDK backend (dataplane/dpdk). The EAL can start once per
// process, so every DPDK test lives in this binary and shares one
// InitDpdkEal (--no-huge --in-memory, a per-process --file-prefix): a
// net_pcap vdev over a pcap file written here (every frame, in order, with
// its timestamp; symmetric worker choice), and net_af_packet on a veth in
// namespaces this test creates (kvftx<pid>d{a,b}). Needs root.
#include "dataplane/dpdk/dpdk_source.h"

#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include "tests/bpf/frame_builder.h"
#include "tests/common/link_state.h"

namespace kvf::bpftest {
namespace {

using dataplane::DpdkOptions;
using dataplane::InitDpdkEal;
using dataplane::OpenDpdkSource;
using dataplane::Packet;
using dataplane::PacketSource;

int Sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

std::string Prefix() {
  return "kvftx" + std::to_string(getpid()) + "d";
}

// ShutdownDpdkEal removes our runtime directory at exit; SetUp removes
// those of earlier runs that were killed before reaching it.
class RuntimeDirCleanup : public ::testing::Environment {
 public:
  void SetUp() override {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/var/run/dpdk", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("kvftx", 0) != 0 || name.back() != 'd') continue;
      const std::string digits = name.substr(5, name.size() - 6);
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      if (kill(static_cast<pid_t>(std::stol(digits)), 0) != 0 && errno == ESRCH)
        std::filesystem::remove_all(e.path(), ec);
    }
  }
  void TearDown() override {
    dataplane::ShutdownDpdkEal();
    std::error_code ec;
    EXPECT_FALSE(std::filesystem::exists("/var/run/dpdk/" + Prefix(), ec)) << "EAL runtime dir left behind";
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new RuntimeDirCleanup);

class DpdkSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: DPDK EAL and network namespaces";
    const Status s = InitDpdkEal({"--no-huge", "--no-shconf", "--file-prefix=" + Prefix(), "-m", "256", "-l",
                                  "0", "--no-pci", "--log-level=*:warning"});
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Polls until `want` frames arrived (copied out) or 5 s passed.
  static std::vector<std::pair<Bytes, Packet>> Receive(PacketSource* src, size_t want) {
    std::vector<std::pair<Bytes, Packet>> got;
    Packet burst[32];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      const size_t n = src->RxBurst(burst);
      for (size_t i = 0; i < n; ++i)
        got.emplace_back(Bytes(burst[i].data, burst[i].data + burst[i].len), burst[i]);
      if (n == 0) usleep(1000);
    }
    return got;
  }
};

Bytes Segment(const char* src, uint16_t sport, const char* dst, uint16_t dport, size_t payload) {
  return Eth(kEthIpv4, Ipv4(src, dst, kProtoTcp, Tcp(sport, dport, kAck | kPsh, std::string(payload, 'p'))));
}

// Removes a file when it goes out of scope, also when an ASSERT returns early.
struct TempFile {
  std::string path;
  ~TempFile() { unlink(path.c_str()); }
};

// Writes `frames` to a pcap file with timestamps base + i * 1.5 ms.
std::string WritePcap(const std::vector<Bytes>& frames, uint64_t base_us) {
  const std::string path = "/tmp/" + Prefix() + "_" + std::to_string(frames.size()) + ".pcap";
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  for (size_t i = 0; i < frames.size(); ++i) {
    const uint64_t us = base_us + i * 1500;
    pcap_pkthdr h{};
    h.ts.tv_sec = static_cast<time_t>(us / 1'000'000);
    h.ts.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
    h.caplen = h.len = static_cast<uint32_t>(frames[i].size());
    pcap_dump(reinterpret_cast<u_char*>(d), &h, frames[i].data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
  return path;
}

TEST_F(DpdkSourceTest, PcapVdevDeliversEveryFrameInOrderWithTimestamps) {
  std::vector<Bytes> frames;
  for (int i = 0; i < 300; ++i) {
    frames.push_back(Segment("10.1.0.1", static_cast<uint16_t>(40000 + i % 7), "10.1.0.2", 6379,
                             static_cast<size_t>((i * 37) % 1400)));
  }
  const uint64_t base_us = 1'700'000'000'000'000ull;
  const TempFile file{WritePcap(frames, base_us)};
  const std::string& path = file.path;
  DpdkOptions o;
  o.device = "net_pcap_kvf0";
  o.vdev_args = o.device + ",rx_pcap=" + path;
  auto r = OpenDpdkSource(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto got = Receive(r.value().get(), frames.size());
  ASSERT_EQ(frames.size(), got.size());
  Packet extra[4];
  for (int i = 0; i < 10; ++i) EXPECT_EQ(0u, r.value()->RxBurst(extra));  // nothing else
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i], got[i].first) << "frame " << i;
    EXPECT_EQ(frames[i].size(), got[i].second.wire_len);
    EXPECT_EQ((base_us + i * 1500) * 1000, got[i].second.ts_ns) << "frame " << i;
  }
  const auto s = r.value()->Stats();
  EXPECT_EQ(frames.size(), s.frames_received);
  EXPECT_EQ(0u, s.nic_drops);
  EXPECT_EQ(frames.size(), dataplane::GetDpdkNicStats(*r.value()).ipackets);
  EXPECT_EQ(std::string::npos, r.value()->Describe().find("no receive timestamps"));
  r.value().reset();
}

// net_pcap hands a frame larger than one mbuf (2 KB of data room) over as a
// chain of mbufs, as a NIC with scattered RX does with jumbo frames: every
// frame must arrive whole, byte for byte, not cut at the first segment.
TEST_F(DpdkSourceTest, JumboFramesInMbufChainsArriveWhole) {
  std::vector<Bytes> frames;
  for (int i = 0; i < 120; ++i) {
    const size_t payload = i % 3 == 0 ? 8900 : i % 3 == 1 ? 3000 + static_cast<size_t>(i) * 7 : 100;
    Bytes f = Segment("10.1.0.1", static_cast<uint16_t>(41000 + i % 5), "10.1.0.2", 6379, payload);
    for (size_t b = 54; b < f.size(); ++b) f[b] = static_cast<uint8_t>(b * 31 + static_cast<size_t>(i));
    frames.push_back(std::move(f));
  }
  const TempFile file{WritePcap(frames, 1'700'000'000'000'000ull)};
  DpdkOptions o;
  o.device = "net_pcap_kvf1";
  o.vdev_args = o.device + ",rx_pcap=" + file.path;
  auto r = OpenDpdkSource(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto got = Receive(r.value().get(), frames.size());
  ASSERT_EQ(frames.size(), got.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].size(), got[i].second.len) << "frame " << i;
    EXPECT_TRUE(frames[i] == got[i].first) << "frame " << i << " differs";
  }
  const auto s = r.value()->Stats();
  EXPECT_EQ(0u, s.snap_truncated);
  EXPECT_EQ(80u, dataplane::GetDpdkNicStats(*r.value()).chained_frames);  // the 8900- and 3000-byte ones
  r.value().reset();
}

TEST_F(DpdkSourceTest, WorkerChoiceIsSymmetricPerConnection) {
  std::vector<Bytes> frames;
  for (int c = 0; c < 32; ++c) {
    const uint16_t port = static_cast<uint16_t>(30000 + c * 13);
    frames.push_back(Segment("10.2.0.9", port, "10.2.0.1", 6379, 10));  // request
    frames.push_back(Segment("10.2.0.1", 6379, "10.2.0.9", port, 5));   // reply
  }
  const TempFile file{WritePcap(frames, 1'000'000)};
  const std::string& path = file.path;
  DpdkOptions o;
  o.device = "net_pcap_kvf1";
  o.vdev_args = o.device + ",rx_pcap=" + path;
  o.workers = 4;
  auto r = OpenDpdkSource(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto got = Receive(r.value().get(), frames.size());
  ASSERT_EQ(frames.size(), got.size());
  std::set<uint32_t> used;
  for (size_t i = 0; i < got.size(); i += 2) {
    EXPECT_EQ(got[i].second.rx_queue, got[i + 1].second.rx_queue) << "connection " << i / 2;
    EXPECT_LT(got[i].second.rx_queue, 4u);
    used.insert(got[i].second.rx_queue);
  }
  EXPECT_GE(used.size(), 3u);  // 32 connections spread over the 4 workers
  r.value().reset();
}

// Namespaces `a` and `b` joined by a veth pair, "va" in a and "vb" in b,
// both up; deleted with the object.
struct VethPair {
  explicit VethPair(uint32_t mtu = 1500) {
    ok = Sh("ip netns add " + a) == 0 && Sh("ip netns add " + b) == 0 &&
         Sh("ip -n " + a + " link add va mtu " + std::to_string(mtu) + " type veth peer name vb mtu " +
            std::to_string(mtu) + " netns " + b) == 0 &&
         Sh("ip -n " + a + " link set va up") == 0 && Sh("ip -n " + b + " link set vb up") == 0;
  }
  ~VethPair() {
    Sh("ip netns del " + a);
    Sh("ip netns del " + b);
  }
  // Runs `fn` with the calling thread in namespace `ns` (the af_packet PMD
  // opens its socket in the calling thread's namespace).
  static void In(const std::string& ns, const std::function<void()>& fn) {
    const int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(0, setns(target, CLONE_NEWNET));
    fn();
    ASSERT_EQ(0, setns(self, CLONE_NEWNET));
    close(self);
    close(target);
  }
  // Sends `frames` out of "va" through an AF_PACKET socket.
  void SendFromA(const std::vector<Bytes>& frames) const {
    int raw = -1;
    unsigned va = 0;
    In(a, [&] {
      raw = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
      va = if_nametoindex("va");
    });
    ASSERT_GE(raw, 0);
    for (const Bytes& f : frames) {
      sockaddr_ll to{};
      to.sll_family = AF_PACKET;
      to.sll_ifindex = static_cast<int>(va);
      to.sll_halen = 6;
      ASSERT_EQ(static_cast<ssize_t>(f.size()),
                sendto(raw, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)));
    }
    close(raw);
  }
  const std::string a = Prefix() + "a", b = Prefix() + "b";
  bool ok = false;
};

TEST_F(DpdkSourceTest, AfPacketVdevOnVethReceivesFrames) {
  VethPair lab;
  ASSERT_TRUE(lab.ok);
  const std::string& b = lab.b;
  auto in_ns = &VethPair::In;
  // The mirror port is promiscuous while captured, and as found after: the
  // PMD's own switch would set the operator's flag and leave it set.
  const auto before = testing::ReadLinkState(b, "vb");
  ASSERT_TRUE(before.has_value());
  ASSERT_FALSE(before->promisc_flag);
  // An af_packet vdev on vb, opened in b (where the PMD's socket must be).
  auto open_on_vb = [&](const std::string& device) {
    std::unique_ptr<PacketSource> opened;
    in_ns(b, [&] {
      DpdkOptions o;
      o.device = device;
      o.vdev_args = o.device + ",iface=vb,qpairs=1";
      auto r = OpenDpdkSource(o);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      opened = std::move(r.value());
    });
    return opened;
  };
  std::unique_ptr<PacketSource> src = open_on_vb("net_af_packet_kvf0");
  ASSERT_TRUE(src);
  EXPECT_EQ(before->promiscuity + 1, testing::ReadLinkState(b, "vb")->promiscuity);
  std::vector<Bytes> sent;
  for (int i = 0; i < 50; ++i)
    sent.push_back(Segment("10.3.0.1", 40000, "10.3.0.2", 6379, static_cast<size_t>(i * 20)));
  lab.SendFromA(sent);
  // The veth may also carry the kernel's own frames (IPv6 ND): keep ours.
  std::map<Bytes, int> expected;
  for (const Bytes& f : sent) ++expected[f];
  size_t matched = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<Bytes> ours;
  while (ours.size() < sent.size() && std::chrono::steady_clock::now() < deadline) {
    for (auto& [bytes, pkt] : Receive(src.get(), 1)) {
      if (expected.count(bytes)) ours.push_back(bytes);
      (void)pkt;
    }
  }
  for (size_t i = 0; i < ours.size() && i < sent.size(); ++i) matched += ours[i] == sent[i];
  EXPECT_EQ(sent.size(), ours.size());
  EXPECT_EQ(sent.size(), matched);  // in order
  EXPECT_GE(src->Stats().frames_received, sent.size());
  EXPECT_NE(std::string::npos, src->Describe().find("af_packet"));
  // Stamped when read, not when received: the operator is told.
  EXPECT_NE(std::string::npos, src->Describe().find("no receive timestamps")) << src->Describe();
  in_ns(b, [&] { src.reset(); });
  const auto after = testing::ReadLinkState(b, "vb");
  EXPECT_EQ(before->promiscuity, after->promiscuity);
  EXPECT_FALSE(after->promisc_flag);

  // An operator's own flag outlives the capture.
  ASSERT_EQ(0, Sh("ip -n " + b + " link set vb promisc on"));
  src = open_on_vb("net_af_packet_kvf1");
  ASSERT_TRUE(src);
  const auto open = testing::ReadLinkState(b, "vb");  // the PMD's start cleared the flag once
  EXPECT_EQ(before->promiscuity + 2, open->promiscuity);
  EXPECT_TRUE(open->promisc_flag);
  in_ns(b, [&] { src.reset(); });
  const auto kept = testing::ReadLinkState(b, "vb");
  EXPECT_EQ(before->promiscuity + 1, kept->promiscuity);
  EXPECT_TRUE(kept->promisc_flag);

  // The interface goes away: the source says so and stops, instead of
  // reading nothing for ever (a review's capture ran blind and exited 0).
  src = open_on_vb("net_af_packet_kvf2");
  ASSERT_TRUE(src);
  Packet burst[8];
  EXPECT_EQ(0u, src->RxBurst(burst));
  EXPECT_FALSE(src->Exhausted());
  EXPECT_TRUE(src->error().ok());
  ASSERT_EQ(0, Sh("ip -n " + b + " link del vb"));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (!src->Exhausted() && std::chrono::steady_clock::now() < until) src->RxBurst(burst);
  EXPECT_TRUE(src->Exhausted());
  EXPECT_NE(std::string::npos, src->error().ToString().find("vb (index")) << src->error().ToString();
  in_ns(b, [&] { src.reset(); });
}

// A jumbo-MTU mirror port: the af_packet PMD's ring frames and the mbufs
// hold the interface's largest frame (a review lost every large write on a
// 9000-MTU port: the frames were cut to the 2 KB default).
TEST_F(DpdkSourceTest, AfPacketOnAJumboMtuPortDeliversWholeFrames) {
  VethPair lab(9000);
  ASSERT_TRUE(lab.ok);
  uint32_t max_frame = 0;
  const DpdkOptions o = kvf::dataplane::AfPacketOptions("net_af_packet_kvf9", "vb", 9000, &max_frame);
  EXPECT_GE(max_frame, 9000u + 14 + 8);
  uint32_t default_max = 0;
  const DpdkOptions d = kvf::dataplane::AfPacketOptions("net_af_packet_kvf8", "vb", 1500, &default_max);
  EXPECT_EQ(d.mbuf_data_room, DpdkOptions{}.mbuf_data_room) << "a 1500-MTU port keeps the default mbufs";
  EXPECT_NE(std::string::npos, d.vdev_args.find("framecnt=16384"));
  std::unique_ptr<PacketSource> src;
  VethPair::In(lab.b, [&] {
    auto r = OpenDpdkSource(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    src = std::move(r.value());
  });
  ASSERT_TRUE(src);
  std::vector<Bytes> sent;
  for (int i = 0; i < 20; ++i)
    sent.push_back(
        Segment("10.3.0.1", 40000, "10.3.0.2", 6379, 8900 + static_cast<size_t>(i * 3)));  // to 9011 B
  lab.SendFromA(sent);
  std::map<Bytes, int> expected;
  for (const Bytes& f : sent) ++expected[f];
  size_t whole = 0, cut = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (whole < sent.size() && std::chrono::steady_clock::now() < deadline) {
    for (auto& [bytes, pkt] : Receive(src.get(), 1)) {
      if (expected.count(bytes) != 0) ++whole;
      if (pkt.len < pkt.wire_len) ++cut;
    }
  }
  EXPECT_EQ(sent.size(), whole);
  EXPECT_EQ(0u, cut);
  VethPair::In(lab.b, [&] { src.reset(); });
}

TEST_F(DpdkSourceTest, UnknownDeviceIsAnError) {
  DpdkOptions o;
  o.device = "net_nothing_here";
  EXPECT_FALSE(OpenDpdkSource(o).ok());
  o.vdev_args = "net_other,foo=1";
  EXPECT_EQ(StatusCode::kInvalidArgument, OpenDpdkSource(o).status().code());
}

}  // namespace
}  // namespace kvf::bpftest
