// The multi-worker dispatcher: both directions of every flow reach the same
// worker (symmetric hash), streams reassemble exactly across workers, full
// queues and oversize payloads are counted, and decode failures are counted.
#include "dataplane/dispatcher.h"

#include <gtest/gtest.h>

#include <map>
#include <cstdio>
#include <set>
#include <thread>

#include "tests/common/packet_builder.h"

namespace kvf::dataplane {
namespace {

namespace tb = kvf::testing;

// One per worker; used only on that worker's thread until Stop() returns.
class WorkerSink : public StreamConsumerFactory {
 public:
  struct Flow {
    FlowInfo info;
    std::string data[2];
    uint64_t gaps = 0;
    bool closed = false;
  };
  struct Consumer : StreamConsumer {
    explicit Consumer(Flow* f) : f(f) {}
    void OnData(Direction d, ByteSpan b, uint64_t) override {
      f->data[static_cast<int>(d)].append(AsChars(b));
    }
    void OnGap(Direction, uint64_t n) override { f->gaps += n; }
    void OnClose(CloseReason) override { f->closed = true; }
    Flow* f;
  };
  std::unique_ptr<StreamConsumer> NewFlow(const FlowInfo& info) override {
    flows.push_back(std::make_unique<Flow>());
    flows.back()->info = info;
    return std::make_unique<Consumer>(flows.back().get());
  }
  std::vector<std::unique_ptr<Flow>> flows;
};

struct Traffic {
  std::vector<tb::Bytes> frames;
  std::map<uint16_t, std::pair<std::string, std::string>> expected;  // client port -> (c2s, s2c)
};

// `pad`: requests also carry 0-1399 bytes of filler (varied payload sizes).
Traffic MakeTraffic(int flows, int exchanges, bool pad = false) {
  Traffic t;
  uint64_t ts = 1;
  for (int f = 0; f < flows; ++f) {
    const uint16_t cport = static_cast<uint16_t>(30000 + f);
    auto frame = [&](bool c2s, uint32_t seq, uint8_t flags, const std::string& p) {
      tb::TcpSpec s;
      s.sport = c2s ? cport : 6379;
      s.dport = c2s ? 6379 : cport;
      s.seq = seq;
      s.flags = flags;
      s.payload = p;
      t.frames.push_back(c2s ? tb::TcpFrame("10.0.0.1", "10.0.0.2", s)
                             : tb::TcpFrame("10.0.0.2", "10.0.0.1", s));
      ++ts;
    };
    frame(true, 1000, tb::kTcpSyn, "");
    frame(false, 9000, tb::kTcpSyn | tb::kTcpAck, "");
    uint32_t cseq = 1001, sseq = 9001;
    for (int i = 0; i < exchanges; ++i) {
      const std::string req = "*2\r\n$3\r\nGET\r\n$" + std::to_string(std::to_string(f * 1000 + i).size()) +
                              "\r\n" + std::to_string(f * 1000 + i) + "\r\n" +
                              (pad ? std::string(static_cast<size_t>((f * 7919 + i * 104729) % 1400),
                                                 static_cast<char>('a' + (f + i) % 26))
                                   : std::string());
      const std::string rep = "$-1\r\n";
      frame(true, cseq, tb::kTcpAck, req);
      frame(false, sseq, tb::kTcpAck, rep);
      cseq += static_cast<uint32_t>(req.size());
      sseq += static_cast<uint32_t>(rep.size());
      t.expected[cport].first += req;
      t.expected[cport].second += rep;
    }
    frame(true, cseq, tb::kTcpFin | tb::kTcpAck, "");
    frame(false, sseq, tb::kTcpFin | tb::kTcpAck, "");
  }
  return t;
}

std::vector<Packet> AsPackets(const std::vector<tb::Bytes>& frames) {
  std::vector<Packet> v;
  uint64_t ts = 1'000'000'000;
  for (const tb::Bytes& f : frames) {
    Packet p;
    p.data = f.data();
    p.len = p.wire_len = static_cast<uint32_t>(f.size());
    p.ts_ns = ts += 1000;
    v.push_back(p);
  }
  return v;
}

DispatcherConfig Config(size_t workers) {
  DispatcherConfig c;
  c.workers = workers;
  c.queue_slots = 4096;
  c.max_segment_payload = 2048;
  c.flow_table.servers = {*Endpoint::Parse("10.0.0.2:6379")};
  c.wall_clock_ticks = false;
  return c;
}

TEST(DispatcherTest, FlowsStayOnOneWorkerAndReassemble) {
  const Traffic t = MakeTraffic(40, 20);
  const std::vector<Packet> packets = AsPackets(t.frames);
  std::vector<WorkerSink> sinks(3);
  Dispatcher d(Config(3), {&sinks[0], &sinks[1], &sinks[2]});
  d.Start();
  for (size_t i = 0; i < packets.size(); i += 32) {
    const size_t n = std::min<size_t>(32, packets.size() - i);
    ASSERT_EQ(d.Dispatch(std::span<const Packet>(&packets[i], n)), n);  // queues hold the whole run
  }
  d.Stop();
  const DispatcherStats s = d.Stats();
  EXPECT_EQ(s.queue_full_drops, 0u);
  EXPECT_EQ(s.decode.decoded(), packets.size());
  EXPECT_EQ(s.flows.flows_created, 40u);
  EXPECT_EQ(s.flows.flows_closed[static_cast<int>(CloseReason::kFin)], 40u);
  EXPECT_EQ(s.flows.gaps, 0u);
  std::set<uint16_t> seen;
  size_t busy_workers = 0;
  for (const WorkerSink& w : sinks) {
    busy_workers += w.flows.empty() ? 0 : 1;
    for (const auto& f : w.flows) {
      const uint16_t port = f->info.client.port;
      EXPECT_TRUE(seen.insert(port).second) << "flow split across workers: " << port;
      EXPECT_EQ(f->data[0], t.expected.at(port).first);
      EXPECT_EQ(f->data[1], t.expected.at(port).second);  // both directions met in one worker
      EXPECT_TRUE(f->closed);
    }
  }
  EXPECT_EQ(seen.size(), 40u);
  EXPECT_GE(busy_workers, 2u);
}

TEST(DispatcherTest, FullQueueAndOversizeAreCountedDrops) {
  DispatcherConfig c = Config(1);
  c.queue_slots = 4;
  c.max_segment_payload = 64;
  WorkerSink sink;
  Dispatcher d(c, {&sink});
  tb::TcpSpec s;
  std::vector<tb::Bytes> frames;
  for (int i = 0; i < 6; ++i) {
    s.seq = 1000 + 10 * i;
    s.payload = "0123456789";
    frames.push_back(tb::TcpFrame("10.0.0.1", "10.0.0.2", s));
  }
  s.payload = std::string(100, 'x');
  frames.push_back(tb::TcpFrame("10.0.0.1", "10.0.0.2", s));
  frames.push_back(tb::Ethernet(tb::kEthArp, tb::Bytes(28, 0)));
  const std::vector<Packet> packets = AsPackets(frames);
  EXPECT_EQ(d.Dispatch(packets), 4u);  // not started: the queue holds 4
  d.Stop();
  const DispatcherStats st = d.Stats();
  EXPECT_EQ(st.queue_full_drops, 2u);
  EXPECT_EQ(st.oversize_payload_drops, 1u);
  EXPECT_EQ(st.decode.Get(DecodeStatus::kUnsupportedEthertype), 1u);
  ASSERT_EQ(sink.flows.size(), 1u);
  // Joined mid-stream at the first segment; nothing follows the dropped
  // ones, so the stream ends after the four queued segments.
  EXPECT_EQ(sink.flows[0]->data[0], "0123456789012345678901234567890123456789");
  EXPECT_EQ(sink.flows[0]->gaps, 0u);
}

// Payloads live in a byte ring: with a ring of a few segments, the producer
// waits for the worker again and again (a drop is retried), and every byte of
// every stream still arrives intact across thousands of wraps.
TEST(DispatcherTest, PayloadByteRingWrapsWithoutCorruption) {
  const Traffic t = MakeTraffic(30, 60, /*pad=*/true);
  const std::vector<Packet> packets = AsPackets(t.frames);
  DispatcherConfig c = Config(2);
  c.queue_bytes = 4096;  // ~6 padded requests
  c.queue_slots = 64;
  std::vector<WorkerSink> sinks(2);
  Dispatcher d(c, {&sinks[0], &sinks[1]});
  d.Start();
  for (const Packet& p : packets) {
    while (d.Dispatch(std::span<const Packet>(&p, 1)) == 0) std::this_thread::yield();
  }
  d.Stop();
  const DispatcherStats s = d.Stats();
  EXPECT_EQ(s.flows.gaps, 0u);
  EXPECT_EQ(s.decode.decoded(), packets.size() + s.queue_full_drops);  // retries decode again
  size_t flows = 0;
  for (const WorkerSink& w : sinks) {
    for (const auto& f : w.flows) {
      ++flows;
      const uint16_t port = f->info.client.port;
      EXPECT_EQ(f->data[0], t.expected.at(port).first) << port;
      EXPECT_EQ(f->data[1], t.expected.at(port).second) << port;
    }
  }
  EXPECT_EQ(flows, 30u);
  std::printf("byte ring: %llu retried drops\n", static_cast<unsigned long long>(s.queue_full_drops));
}

// A full byte ring drops (and counts) segments even when slots are free.
TEST(DispatcherTest, FullByteRingIsACountedDrop) {
  DispatcherConfig c = Config(1);
  c.queue_slots = 64;
  c.queue_bytes = 256;
  c.max_segment_payload = 64;
  WorkerSink sink;
  Dispatcher d(c, {&sink});
  tb::TcpSpec s;
  std::vector<tb::Bytes> frames;
  for (int i = 0; i < 10; ++i) {
    s.seq = 1000 + 50 * static_cast<uint32_t>(i);
    s.payload = std::string(50, static_cast<char>('a' + i));
    frames.push_back(tb::TcpFrame("10.0.0.1", "10.0.0.2", s));
  }
  EXPECT_EQ(d.Dispatch(AsPackets(frames)), 5u);  // not started: 5 × 50 bytes fit in 256
  d.Stop();
  EXPECT_EQ(d.Stats().queue_full_drops, 5u);
  ASSERT_EQ(sink.flows.size(), 1u);
  EXPECT_EQ(sink.flows[0]->data[0], std::string(50, 'a') + std::string(50, 'b') + std::string(50, 'c') +
                                        std::string(50, 'd') + std::string(50, 'e'));
}

}  // namespace
}  // namespace kvf::dataplane
