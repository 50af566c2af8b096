// End to end on loopback: a real redis-server, redis-benchmark traffic
// (pipelined and not), captured live with the pcap backend through the
// multi-worker dispatcher. The SET commands parsed out of the reassembled
// client-to-server streams must equal the server's INFO commandstats delta,
// with zero gaps; with packets removed on purpose, the gaps reported add up to
// exactly the bytes removed. Needs root (live capture) and the redis binaries.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "dataplane/dispatcher.h"
#include "dataplane/pcap_source.h"
#include "tests/common/shell.h"

namespace kvf::dataplane {
namespace {

constexpr int kPort = 27311;  // capture's test port range: 27311-27319

std::string Shell(const std::string& cmd) {
  return kvf::testing::RunShell(cmd).out;
}

uint64_t SetCalls() {
  const std::string info = Shell("redis-cli -p " + std::to_string(kPort) + " info commandstats");
  const size_t at = info.find("cmdstat_set:calls=");
  return at == std::string::npos ? 0 : std::stoull(info.substr(at + 18));
}

// Counts complete RESP commands named SET in one client-to-server stream.
// Only arrays of bulk strings (what clients send) are understood.
uint64_t CountSets(const std::string& s, bool* parse_error) {
  uint64_t sets = 0;
  size_t p = 0;
  auto line = [&](size_t* pos, long* v, char type) {
    if (*pos >= s.size() || s[*pos] != type) return false;
    const size_t e = s.find("\r\n", *pos);
    if (e == std::string::npos) return false;
    *v = std::stol(s.substr(*pos + 1, e - *pos - 1));
    *pos = e + 2;
    return true;
  };
  while (p < s.size()) {
    long n = 0;
    if (!line(&p, &n, '*')) {
      *parse_error = true;
      return sets;
    }
    std::string name;
    for (long i = 0; i < n; ++i) {
      long len = 0;
      if (!line(&p, &len, '$') || p + static_cast<size_t>(len) + 2 > s.size()) {
        *parse_error = true;
        return sets;
      }
      if (i == 0) name = s.substr(p, static_cast<size_t>(len));
      p += static_cast<size_t>(len) + 2;
    }
    if (name == "SET" || name == "set") ++sets;
  }
  return sets;
}

class StreamCounter : public StreamConsumerFactory {
 public:
  struct C : StreamConsumer {
    explicit C(StreamCounter* o) : owner(o) {}
    void OnData(Direction d, ByteSpan b, uint64_t) override {
      if (d == Direction::kClientToServer) requests.append(AsChars(b));
    }
    void OnGap(Direction, uint64_t n) override { gap_bytes += n; }
    void OnClose(CloseReason) override {
      bool err = false;
      const uint64_t sets = CountSets(requests, &err);
      std::lock_guard<std::mutex> lock(owner->mu);
      owner->sets += sets;
      owner->gap_bytes += gap_bytes;
      owner->parse_errors += err ? 1 : 0;
    }
    StreamCounter* owner;
    std::string requests;
    uint64_t gap_bytes = 0;
  };
  std::unique_ptr<StreamConsumer> NewFlow(const FlowInfo&) override { return std::make_unique<C>(this); }

  std::mutex mu;
  uint64_t sets = 0;
  uint64_t gap_bytes = 0;
  uint64_t parse_errors = 0;
};

struct Outcome {
  uint64_t server_sets = 0;            // INFO commandstats delta
  uint64_t parsed_sets = 0;            // SETs parsed from reassembled streams
  uint64_t gap_bytes = 0;              // reported to consumers
  uint64_t dropped_payload_bytes = 0;  // what the test removed on purpose
  uint64_t parse_errors = 0;
  DispatcherStats stats;
  CaptureStats capture;
};

// Captures redis-benchmark traffic; with `drop_every` > 0 every n-th payload
// segment is removed before dispatch, as a lossy mirror would.
void CaptureBenchmark(int drop_every, Outcome* out) {
  PcapLiveOptions o;
  o.iface = "lo";
  o.poll_timeout_ms = 10;
  o.bpf_filter = "tcp port " + std::to_string(kPort);
  auto src = PcapSource::OpenLive(o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  StreamCounter counter[2];
  DispatcherConfig dc;
  dc.workers = 2;
  dc.max_segment_payload = 65536;  // loopback MTU
  // Deep queues: the exact-count assertions below need a worker that never
  // falls a queue behind, even on a busy 2-core machine (payload pages are
  // only touched as far as the backlog reaches).
  dc.queue_bytes = 256u << 20;
  dc.queue_slots = 16384;
  dc.flow_table.servers = {*Endpoint::Parse("127.0.0.1:" + std::to_string(kPort))};
  Dispatcher dispatcher(dc, {&counter[0], &counter[1]});
  dispatcher.Start();
  std::atomic<bool> stop{false};
  std::thread rx([&] {
    Packet burst[256];
    uint64_t payload_segments = 0;
    auto handle = [&](size_t n) {
      size_t kept = 0;
      for (size_t i = 0; i < n; ++i) {
        TcpSegment seg;
        if (drop_every > 0 && DecodeFrame(burst[i].data, burst[i].len, 0, &seg) == DecodeStatus::kOk &&
            seg.payload_len > 0 && ++payload_segments % static_cast<uint64_t>(drop_every) == 0) {
          out->dropped_payload_bytes += seg.payload_len;
          continue;
        }
        burst[kept++] = burst[i];
      }
      if (kept > 0) dispatcher.Dispatch(std::span<const Packet>(burst, kept));
    };
    while (!stop.load()) handle((*src)->RxBurst(burst));
    for (size_t n; (n = (*src)->RxBurst(burst)) > 0;) handle(n);  // what the kernel still holds
  });

  const uint64_t before = SetCalls();
  const std::string port = std::to_string(kPort);
  Shell("redis-benchmark -p " + port + " -t set -n 30000 -P 16 -c 8 -r 1000 -q >/dev/null 2>&1");
  Shell("redis-benchmark -p " + port + " -t set -n 3000 -c 4 -q >/dev/null 2>&1");
  out->server_sets = SetCalls() - before;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop.store(true);
  rx.join();
  dispatcher.Stop();
  out->stats = dispatcher.Stats();
  out->capture = (*src)->Stats();
  for (StreamCounter& c : counter) {
    out->parsed_sets += c.sets;
    out->gap_bytes += c.gap_bytes;
    out->parse_errors += c.parse_errors;
  }
}

class RedisCaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: live capture on lo";
    for (const char* tool : {"redis-server", "redis-benchmark", "redis-cli"}) {
      if (Shell(std::string("command -v ") + tool).empty()) GTEST_SKIP() << "needs " << tool;
    }
    server_ = fork();
    ASSERT_GE(server_, 0);
    if (server_ == 0) {
      execlp("redis-server", "redis-server", "--port", std::to_string(kPort).c_str(), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--logfile", "/dev/null", static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0;
         i < 100 && Shell("redis-cli -p " + std::to_string(kPort) + " ping 2>/dev/null").find("PONG") ==
                        std::string::npos;
         ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  void TearDown() override {
    if (server_ > 0) {
      kill(server_, SIGTERM);
      waitpid(server_, nullptr, 0);
    }
  }
  pid_t server_ = -1;
};

TEST_F(RedisCaptureTest, ReassembledCommandsMatchServerCommandstats) {
  Outcome o;
  CaptureBenchmark(0, &o);
  EXPECT_EQ(o.server_sets, 33000u);
  EXPECT_EQ(o.parsed_sets, o.server_sets);
  EXPECT_EQ(o.gap_bytes, 0u);
  EXPECT_EQ(o.parse_errors, 0u);
  EXPECT_EQ(o.capture.ring_full_drops, 0u);
  EXPECT_EQ(o.stats.queue_full_drops, 0u);
  EXPECT_EQ(o.stats.flows.gaps, 0u);
  EXPECT_GE(o.stats.flows.flows_created, 12u);
}

// Loopback never retransmits, so every byte removed on purpose must come
// back as exactly one reported gap byte, and nothing else may break.
TEST_F(RedisCaptureTest, LossyMirrorReportsExactGapBytes) {
  Outcome o;
  CaptureBenchmark(41, &o);
  EXPECT_EQ(o.server_sets, 33000u);
  EXPECT_GT(o.dropped_payload_bytes, 0u);
  EXPECT_EQ(o.gap_bytes, o.dropped_payload_bytes);
  EXPECT_EQ(o.stats.flows.gap_bytes, o.dropped_payload_bytes);
  EXPECT_GT(o.stats.flows.gaps, 0u);
  EXPECT_LT(o.parsed_sets, o.server_sets);
  EXPECT_EQ(o.capture.ring_full_drops, 0u);
  EXPECT_EQ(o.stats.queue_full_drops, 0u);
}

}  // namespace
}  // namespace kvf::dataplane
