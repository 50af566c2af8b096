// Fuzz target over packet decode + reassembly. Input: records of
// [u8 control][u16 little-endian length][frame bytes]; control's low bits
// advance the clock, bit 6 makes the frame's first byte pick a link type
// other than Ethernet, bit 7 runs a Tick. Small caps make eviction, gap and
// memory-cap paths reachable. Checks the consumer contract and the caps.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <vector>

#include "dataplane/decode.h"
#include "dataplane/flow_table.h"

namespace {

using namespace kvf::dataplane;

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Consumer : StreamConsumer {
  bool closed = false;
  void OnData(Direction d, kvf::ByteSpan b, uint64_t) override {
    Check(!closed && !b.empty() && static_cast<int>(d) < 2);
  }
  void OnGap(Direction, uint64_t n) override { Check(!closed && n > 0); }
  void OnClose(CloseReason r) override {
    Check(!closed && r < CloseReason::kCount);
    closed = true;
  }
};

struct Factory : StreamConsumerFactory {
  std::unique_ptr<StreamConsumer> NewFlow(const FlowInfo& info) override {
    Check(!(info.client == info.server));
    return std::make_unique<Consumer>();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Factory factory;
  FlowTableConfig cfg;
  cfg.max_flows = 8;
  cfg.max_buffered_bytes_per_direction = 4096;
  cfg.max_buffered_segments_per_direction = 16;
  cfg.max_memory_bytes = 16 * 1024;
  cfg.gap_timeout_ns = 1000;
  cfg.ack_gap_grace_ns = 50;  // holes proven by the peer's data: reachable on the fuzzer's clock
  cfg.peer_hold_ns = 80;      // holds for the peer's bytes, and their expiry, likewise
  cfg.idle_timeout_ns = 100000;
  FlowTable table(cfg, &factory);
  DecodeCounters counters;
  uint64_t now = 1;
  size_t pos = 0;
  while (pos + 3 <= size) {
    const uint8_t control = data[pos];
    const size_t len = std::min<size_t>(data[pos + 1] | (size_t{data[pos + 2]} << 8), size - pos - 3);
    pos += 3;
    // An exact-size heap copy so any over-read is caught by ASan.
    std::unique_ptr<uint8_t[]> frame(new uint8_t[len > 0 ? len : 1]);
    if (len > 0) std::memcpy(frame.get(), data + pos, len);
    pos += len;
    now += control & 0x3f;
    TcpSegment seg;
    DecodeStatus st;
    size_t captured = len;
    if ((control & 0x40) != 0 && len > 0) {
      // A pcap capture's other link types: the frame's first byte picks one,
      // and the frame itself starts after it.
      static constexpr LinkType kLinks[] = {LinkType::kNull,     LinkType::kRaw,  LinkType::kLoop,
                                            LinkType::kLinuxSll, LinkType::kIpv4, LinkType::kIpv6,
                                            LinkType::kLinuxSll2};
      const LinkType link = kLinks[frame[0] % std::size(kLinks)];
      captured = len - 1;
      st = DecodeFrame(link, frame.get() + 1, captured, now, &seg);
    } else {
      st = DecodeFrame(frame.get(), len, now, &seg);
    }
    counters.Add(st);
    // A frame whose IP header claims more than it holds is taken for one a
    // snap length cut (the capture saying it lost that much): its captured
    // part and the cut go to reassembly too.
    const uint32_t wire =
        static_cast<uint32_t>(captured) + (st == DecodeStatus::kPayloadTruncated ? seg.payload_cut : 0);
    if (Reassemblable(st, seg, captured, wire)) {
      Check(seg.payload_len <= len &&
            (seg.payload_len == 0 ||
             (seg.payload >= frame.get() && seg.payload + seg.payload_len <= frame.get() + len)));
      table.Process(seg);
    }
    if (control & 0x80) table.Tick(now * 100);
    Check(table.flow_count() <= cfg.max_flows);
    Check(table.memory_bytes() <= cfg.max_memory_bytes);
  }
  table.CloseAll();
  Check(table.flow_count() == 0 && table.stats().buffered_bytes == 0);
  return 0;
}
