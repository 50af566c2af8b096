// The pcap backend: files written by libpcap's dumper read back frame for
// frame (bytes, lengths, nanosecond timestamps, bursts), then decoded and
// reassembled; and a live capture on loopback of a real TCP connection.
#include "dataplane/pcap_source.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <thread>

#include "dataplane/flow_table.h"
#include "tests/dataplane/pcap_writer.h"

namespace kvf::dataplane {
namespace {

namespace tb = kvf::testing;

std::string TempPath(const char* name) {
  return std::string(::testing::TempDir()) + "kvf_capture_" + std::to_string(getpid()) + "_" + name;
}

// Collects each flow's client-to-server and server-to-client bytes.
class Collect : public StreamConsumerFactory {
 public:
  struct Flow : StreamConsumer {
    std::string data[2];
    uint64_t gaps = 0;
    bool closed = false;
    void OnData(Direction d, ByteSpan b, uint64_t) override { data[static_cast<int>(d)].append(AsChars(b)); }
    void OnGap(Direction, uint64_t n) override { gaps += n; }
    void OnClose(CloseReason) override { closed = true; }
  };
  struct Handle : StreamConsumer {
    explicit Handle(Flow* f) : f(f) {}
    void OnData(Direction d, ByteSpan b, uint64_t ts) override { f->OnData(d, b, ts); }
    void OnGap(Direction d, uint64_t n) override { f->OnGap(d, n); }
    void OnClose(CloseReason r) override { f->OnClose(r); }
    Flow* f;
  };
  std::unique_ptr<StreamConsumer> NewFlow(const FlowInfo&) override {
    flows.push_back(std::make_unique<Flow>());
    return std::make_unique<Handle>(flows.back().get());
  }
  std::vector<std::unique_ptr<Flow>> flows;
};

TEST(PcapSourceTest, OfflineReadBackAndReassemble) {
  std::vector<tb::TimedFrame> frames;
  uint64_t ts = 1'700'000'000'123'456'789ull;
  auto add = [&](bool c2s, uint32_t seq, uint8_t flags, std::string payload) {
    frames.push_back(tb::ClientServerFrame(40000, c2s, seq, flags, std::move(payload), ts));
    ts += 1000;
  };
  add(true, 99, tb::kTcpSyn, "");
  add(false, 499, tb::kTcpSyn | tb::kTcpAck, "");
  add(true, 100, tb::kTcpAck, "*3\r\n$3\r\nSET\r\n");
  add(true, 113, tb::kTcpAck, "$1\r\nk\r\n$1\r\nv\r\n");
  add(false, 500, tb::kTcpAck, "+OK\r\n");
  frames.push_back({tb::Ethernet(tb::kEthArp, tb::Bytes(28, 0)), ts});  // not IP: counted
  const std::string path = TempPath("offline.pcap");
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, frames, &err)) << err;

  auto src = PcapSource::OpenOffline(path);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  Packet burst[4];
  std::vector<Packet> got;
  std::vector<std::vector<uint8_t>> copies;
  while (!(*src)->Exhausted()) {
    const size_t n = (*src)->RxBurst(burst);
    EXPECT_LE(n, 4u);
    for (size_t i = 0; i < n; ++i) {
      copies.emplace_back(burst[i].data, burst[i].data + burst[i].len);
      got.push_back(burst[i]);
    }
  }
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(copies[i], frames[i].bytes) << i;
    EXPECT_EQ(got[i].ts_ns, frames[i].ts_ns) << i;
    EXPECT_EQ(got[i].wire_len, frames[i].bytes.size());
  }
  EXPECT_EQ((*src)->Stats().frames_received, frames.size());
  EXPECT_TRUE((*src)->error().ok());

  Collect sink;
  FlowTableConfig cfg;
  cfg.servers = {*Endpoint::Parse("10.0.0.2:6379")};
  FlowTable table(cfg, &sink);
  DecodeCounters counters;
  for (size_t i = 0; i < frames.size(); ++i) {
    TcpSegment seg;
    const DecodeStatus st = DecodeFrame(copies[i].data(), copies[i].size(), got[i].ts_ns, &seg);
    counters.Add(st);
    if (st == DecodeStatus::kOk) table.Process(seg);
  }
  table.CloseAll();
  EXPECT_EQ(counters.decoded(), 5u);
  EXPECT_EQ(counters.Get(DecodeStatus::kUnsupportedEthertype), 1u);
  ASSERT_EQ(sink.flows.size(), 1u);
  EXPECT_EQ(sink.flows[0]->data[0], "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
  EXPECT_EQ(sink.flows[0]->data[1], "+OK\r\n");
  EXPECT_EQ(sink.flows[0]->gaps, 0u);
  std::remove(path.c_str());
}

TEST(PcapSourceTest, SnapTruncatedFramesAreCounted) {
  tb::TcpSpec s;
  s.payload = std::string(1000, 'x');
  tb::Bytes full = tb::TcpFrame("10.0.0.1", "10.0.0.2", s);
  const uint32_t wire = static_cast<uint32_t>(full.size());
  full.resize(128);
  const std::string path = TempPath("snap.pcap");
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, {{full, 1, wire}}, &err, 128)) << err;
  auto src = PcapSource::OpenOffline(path);
  ASSERT_TRUE(src.ok());
  Packet p[2];
  ASSERT_EQ((*src)->RxBurst(p), 1u);
  EXPECT_EQ(p[0].len, 128u);
  EXPECT_EQ(p[0].wire_len, wire);
  EXPECT_EQ((*src)->Stats().snap_truncated, 1u);
  TcpSegment seg;
  EXPECT_EQ(DecodeFrame(p[0].data, p[0].len, 0, &seg), DecodeStatus::kPayloadTruncated);
  std::remove(path.c_str());
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::vector<uint8_t> v;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return v;
  int c;
  while ((c = std::fgetc(f)) != EOF) v.push_back(static_cast<uint8_t>(c));
  std::fclose(f);
  return v;
}
void WriteFile(const std::string& path, const std::vector<uint8_t>& v) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(v.data(), 1, v.size(), f);
  std::fclose(f);
}
void Swap32(std::vector<uint8_t>* v, size_t off) {
  std::reverse(v->begin() + off, v->begin() + off + 4);
}

// Microsecond files, files from a host of the other byte order, and a file
// cut in the middle of a record (the frames before the cut are delivered and
// the cut is an error, never a crash or a short frame).
// Classic files, mapped and read through the window (map = false): the
// same frames, timestamps and errors either way.
class PcapClassicTest : public ::testing::TestWithParam<bool> {};

TEST_P(PcapClassicTest, FileVariants) {
  const bool map = GetParam();
  std::vector<tb::TimedFrame> frames;
  for (int i = 0; i < 3; ++i) {
    tb::TcpSpec s;
    s.seq = 100 + i;
    s.payload = std::string(10 + i, 'a' + i);
    frames.push_back({tb::TcpFrame("10.0.0.1", "10.0.0.2", s), 5'000'000'000ull + i * 1000});
  }
  const std::string path = TempPath("variants.pcap");
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, frames, &err)) << err;
  const std::vector<uint8_t> nano = ReadFile(path);
  auto read_all = [&](const std::vector<uint8_t>& bytes, std::vector<std::vector<uint8_t>>* out,
                      std::vector<uint64_t>* ts) -> kvf::Status {
    WriteFile(path, bytes);
    auto src = PcapSource::OpenOffline(path, map);
    if (!src.ok()) return src.status();
    EXPECT_EQ((*src)->mapped_file().empty(), !map);
    Packet burst[2];
    while (!(*src)->Exhausted()) {
      const size_t n = (*src)->RxBurst(burst);
      for (size_t i = 0; i < n; ++i) {
        out->emplace_back(burst[i].data, burst[i].data + burst[i].len);
        ts->push_back(burst[i].ts_ns);
      }
    }
    return (*src)->error();
  };
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint64_t> ts;
  ASSERT_TRUE(read_all(nano, &got, &ts).ok());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(ts[2], 5'000'002'000ull);

  // Microsecond magic: the fraction field now counts microseconds.
  std::vector<uint8_t> micro = nano;
  const uint32_t usec_magic = 0xa1b2c3d4;
  std::memcpy(micro.data(), &usec_magic, 4);
  got.clear();
  ts.clear();
  ASSERT_TRUE(read_all(micro, &got, &ts).ok());
  ASSERT_EQ(ts.size(), 3u);
  EXPECT_EQ(ts[1], 5'000'000'000ull + 1000ull * 1000);

  // Other byte order: every header field swapped.
  std::vector<uint8_t> swapped = nano;
  for (size_t off : {0, 8, 12, 16, 20}) Swap32(&swapped, off);
  std::reverse(swapped.begin() + 4, swapped.begin() + 6);
  std::reverse(swapped.begin() + 6, swapped.begin() + 8);
  for (size_t pos = 24; pos < swapped.size();) {
    uint32_t caplen;
    std::memcpy(&caplen, &nano[pos + 8], 4);
    for (size_t k = 0; k < 16; k += 4) Swap32(&swapped, pos + k);
    pos += 16 + caplen;
  }
  got.clear();
  ts.clear();
  ASSERT_TRUE(read_all(swapped, &got, &ts).ok());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2], frames[2].bytes);
  EXPECT_EQ(ts[2], 5'000'002'000ull);

  // Cut inside the last record, and inside the last record header.
  for (size_t cut : {nano.size() - 5, nano.size() - frames[2].bytes.size() - 10}) {
    std::vector<uint8_t> truncated(nano.begin(), nano.begin() + static_cast<long>(cut));
    got.clear();
    ts.clear();
    const kvf::Status st = read_all(truncated, &got, &ts);
    EXPECT_EQ(st.code(), kvf::StatusCode::kCorruption) << cut;
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1], frames[1].bytes);
  }

  // Two files joined with cat (a review): the first file's frames, then an
  // error that says what happened, for either byte order of the second.
  for (const std::vector<uint8_t>* second : {&nano, static_cast<const std::vector<uint8_t>*>(&swapped)}) {
    std::vector<uint8_t> joined = nano;
    joined.insert(joined.end(), second->begin(), second->end());
    got.clear();
    ts.clear();
    const kvf::Status st = read_all(joined, &got, &ts);
    EXPECT_EQ(st.code(), kvf::StatusCode::kCorruption);
    EXPECT_NE(st.ToString().find("another capture file's header at offset " + std::to_string(nano.size()) +
                                 " (files joined with cat?)"),
              std::string::npos)
        << st.ToString();
    EXPECT_EQ(got.size(), 3u);
  }
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(MappedOrRead, PcapClassicTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "Mapped" : "Window";
                         });

// Through the window, a file several windows long, with frames of every
// size up to the largest record, read in bursts of every size: each frame
// arrives whole and in order, records straddling a window edge included.
TEST(PcapSourceTest, WindowReadsRecordsAcrossItsEdges) {
  std::vector<tb::TimedFrame> frames;
  size_t total = 0;
  for (uint32_t i = 0; total < 3 * PcapSource::kWindowBytes; ++i) {
    const size_t size = i % 37 == 0 ? PcapSource::kMaxFrameBytes : 60 + (i * 7919) % 3000;
    tb::Bytes f(size);
    for (size_t k = 0; k < size; ++k) f[k] = static_cast<uint8_t>(i * 31 + k);
    total += 16 + size;
    frames.push_back({std::move(f), 1'000'000'000ull + i});
  }
  const std::string path = TempPath("window.pcap");
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, frames, &err)) << err;
  auto src = PcapSource::OpenOffline(path, /*map=*/false);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  std::vector<Packet> burst(64);
  size_t got = 0;
  for (size_t want = 1; !(*src)->Exhausted(); want = want % 64 + 1) {
    const size_t n = (*src)->RxBurst(std::span<Packet>(burst.data(), want));
    for (size_t i = 0; i < n; ++i, ++got) {
      ASSERT_LT(got, frames.size());
      ASSERT_EQ(tb::Bytes(burst[i].data, burst[i].data + burst[i].len), frames[got].bytes) << got;
      EXPECT_EQ(burst[i].ts_ns, frames[got].ts_ns);
    }
  }
  EXPECT_EQ(got, frames.size());
  EXPECT_TRUE((*src)->error().ok()) << (*src)->error().ToString();
  std::remove(path.c_str());
}

void Put32Le(std::vector<uint8_t>* v, uint32_t x) {
  for (int i = 0; i < 4; ++i) v->push_back(static_cast<uint8_t>(x >> (8 * i)));
}

// A pcapng file: one section, one interface of `link_type` (microsecond
// timestamps), one enhanced packet block per frame, the i-th at 7 s + i µs.
std::vector<uint8_t> Pcapng(uint32_t link_type, const std::vector<tb::Bytes>& frames) {
  std::vector<uint8_t> f;
  // Section header block.
  Put32Le(&f, 0x0a0d0d0a);
  Put32Le(&f, 28);
  Put32Le(&f, 0x1a2b3c4d);
  Put32Le(&f, 1);  // version 1.0
  Put32Le(&f, 0xffffffff);
  Put32Le(&f, 0xffffffff);  // section length unknown
  Put32Le(&f, 28);
  // Interface description block: default microsecond resolution.
  Put32Le(&f, 1);
  Put32Le(&f, 20);
  Put32Le(&f, link_type);  // reserved 0 in the high half
  Put32Le(&f, 65535);
  Put32Le(&f, 20);
  for (size_t i = 0; i < frames.size(); ++i) {
    const tb::Bytes& fr = frames[i];
    const uint32_t padded = static_cast<uint32_t>((fr.size() + 3) / 4 * 4);
    const uint64_t ts_us = 7'000'000ull + i;
    Put32Le(&f, 6);
    Put32Le(&f, 32 + padded);
    Put32Le(&f, 0);
    Put32Le(&f, static_cast<uint32_t>(ts_us >> 32));
    Put32Le(&f, static_cast<uint32_t>(ts_us));
    Put32Le(&f, static_cast<uint32_t>(fr.size()));
    Put32Le(&f, static_cast<uint32_t>(fr.size()));
    f.insert(f.end(), fr.begin(), fr.end());
    f.resize(f.size() + (padded - fr.size()), 0);
    Put32Le(&f, 32 + padded);
  }
  return f;
}

// pcapng is not mapped: it goes through libpcap and the burst arena.
TEST(PcapSourceTest, PcapngGoesThroughLibpcap) {
  std::vector<tb::Bytes> frames;
  for (int i = 0; i < 3; ++i) {
    tb::TcpSpec s;
    s.seq = 100 + static_cast<uint32_t>(i);
    s.payload = std::string(1 + i, 'x');
    frames.push_back(tb::TcpFrame("10.0.0.1", "10.0.0.2", s));
  }
  const std::vector<uint8_t> f = Pcapng(1, frames);
  const std::string path = TempPath("capture.pcapng");
  WriteFile(path, f);
  auto src = PcapSource::OpenOffline(path);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  Packet burst[8];
  ASSERT_EQ((*src)->RxBurst(burst), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(tb::Bytes(burst[i].data, burst[i].data + burst[i].len), frames[i]);
    EXPECT_EQ(burst[i].ts_ns, (7'000'000ull + i) * 1000);
  }
  EXPECT_EQ((*src)->RxBurst(burst), 0u);
  EXPECT_TRUE((*src)->Exhausted());
  EXPECT_TRUE((*src)->error().ok());
  std::remove(path.c_str());
}

// `tcpdump -i any` writes Linux cooked frames (SLL2 since libpcap 1.10):
// read in place from a classic file and through libpcap from pcapng, each
// packet says its link type and decodes; a link type that is not decoded
// (802.11) is refused at open with a message naming it.
TEST(PcapSourceTest, LinkTypesOtherThanEthernet) {
  std::vector<tb::TimedFrame> frames;
  for (int i = 0; i < 3; ++i) {
    tb::TcpSpec s;
    s.seq = 100 + static_cast<uint32_t>(i);
    s.payload = std::string(5 + i, 'a');
    const tb::Bytes ip = tb::Ipv4("10.0.0.1", "10.0.0.2", tb::kIpTcp, tb::Tcp(s));
    tb::Bytes f = {0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0};
    f.insert(f.end(), ip.begin(), ip.end());
    frames.push_back({f, 9'000'000'000ull + static_cast<uint64_t>(i)});
  }
  const std::string path = TempPath("cooked.pcap");
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, frames, &err, 262144, DLT_LINUX_SLL2)) << err;
  auto src = PcapSource::OpenOffline(path);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ((*src)->link_type(), LinkType::kLinuxSll2);
  ASSERT_FALSE((*src)->mapped_file().empty());  // the classic file is read in place
  Packet burst[8];
  ASSERT_EQ((*src)->RxBurst(burst), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(burst[i].link, LinkType::kLinuxSll2);
    TcpSegment seg;
    ASSERT_EQ(DecodeFrame(burst[i].link, burst[i].data, burst[i].len, burst[i].ts_ns, &seg),
              DecodeStatus::kOk);
    EXPECT_EQ(seg.seq, 100 + i);
    EXPECT_EQ(seg.payload_len, 5 + i);
    EXPECT_EQ(seg.dst.ToString(), "10.0.0.2:6379");
  }

  // The same frames through libpcap (a pcapng file: the reader is not ours).
  const std::string ng = TempPath("cooked.pcapng");
  std::vector<tb::Bytes> bare;
  for (const tb::TimedFrame& f : frames) bare.push_back(f.bytes);
  WriteFile(ng, Pcapng(276, bare));
  auto via = PcapSource::OpenOffline(ng);
  ASSERT_TRUE(via.ok()) << via.status().ToString();
  EXPECT_TRUE((*via)->mapped_file().empty());
  EXPECT_EQ((*via)->link_type(), LinkType::kLinuxSll2);
  ASSERT_EQ((*via)->RxBurst(burst), 3u);
  TcpSegment seg;
  EXPECT_EQ(burst[2].link, LinkType::kLinuxSll2);
  ASSERT_EQ(DecodeFrame(burst[2].link, burst[2].data, burst[2].len, 0, &seg), DecodeStatus::kOk);
  EXPECT_EQ(seg.payload_len, 7u);
  std::remove(ng.c_str());

  ASSERT_TRUE(tb::WritePcap(path, frames, &err, 262144, DLT_IEEE802_11)) << err;
  auto wifi = PcapSource::OpenOffline(path);
  ASSERT_FALSE(wifi.ok());
  EXPECT_NE(wifi.status().ToString().find("link type 105"), std::string::npos) << wifi.status().ToString();
  std::remove(path.c_str());
}

TEST(PcapSourceTest, MissingAndCorruptFilesAreErrors) {
  EXPECT_FALSE(PcapSource::OpenOffline("/nonexistent/kvf.pcap").ok());
  const std::string path = TempPath("garbage.pcap");
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("this is not a pcap file at all", f);
  std::fclose(f);
  EXPECT_FALSE(PcapSource::OpenOffline(path).ok());
  std::remove(path.c_str());
}

// Live capture on loopback: a real TCP connection on 127.0.0.1 is captured
// and reassembled byte for byte.
TEST(PcapSourceTest, LiveLoopbackConnectionReassembles) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: live capture on lo";
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t alen = sizeof(addr);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &alen), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  const uint16_t port = ntohs(addr.sin_port);

  PcapLiveOptions o;
  o.iface = "lo";
  o.poll_timeout_ms = 20;
  o.bpf_filter = "tcp port " + std::to_string(port);
  auto src = PcapSource::OpenLive(o);
  if (!src.ok()) GTEST_SKIP() << "live capture unavailable: " << src.status().ToString();

  std::string request;
  for (int i = 0; i < 2000; ++i)
    request += "*2\r\n$3\r\nGET\r\n$6\r\nkey" + std::to_string(100 + i % 900) + "\r\n";
  std::thread peer([&] {
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    const int s = accept(listener, nullptr, nullptr);
    size_t off = 0;
    while (off < request.size()) {
      const ssize_t n = send(c, request.data() + off, std::min<size_t>(1000, request.size() - off), 0);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    std::string got;
    char buf[65536];
    while (got.size() < request.size()) {
      const ssize_t n = recv(s, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    send(s, "+OK\r\n", 5, 0);
    close(c);
    close(s);
  });

  Collect sink;
  FlowTableConfig cfg;
  cfg.servers = {*Endpoint::Parse("127.0.0.1:" + std::to_string(port))};
  FlowTable table(cfg, &sink);
  Packet burst[64];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline && (sink.flows.empty() || !sink.flows[0]->closed)) {
    const size_t n = (*src)->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) {
      TcpSegment seg;
      if (DecodeFrame(burst[i].data, burst[i].len, burst[i].ts_ns, &seg) == DecodeStatus::kOk)
        table.Process(seg);
    }
  }
  peer.join();
  close(listener);
  table.CloseAll();
  ASSERT_EQ(sink.flows.size(), 1u);
  EXPECT_EQ(sink.flows[0]->data[0], request);
  EXPECT_EQ(sink.flows[0]->data[1], "+OK\r\n");
  EXPECT_EQ(sink.flows[0]->gaps, 0u);
  EXPECT_EQ((*src)->Stats().ring_full_drops, 0u);
  EXPECT_GT((*src)->Stats().frames_received, 4u);
}

}  // namespace
}  // namespace kvf::dataplane
