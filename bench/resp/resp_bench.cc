// Parse and parse+pair throughput for pipelined small commands, fed in
// 1448-byte (TCP MSS) segments as reassembly would deliver them. Baseline in
// the same run: a memchr pass over the same bytes counting CRLFs, the floor
// for any RESP reader. Items/s = commands/s.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <thread>

#include "resp/ambiguity.h"
#include "resp/connection.h"
#include "resp/expiry.h"
#include "resp/merge.h"
#include "resp/parser.h"

namespace {

using kvf::resp::Connection;
using kvf::resp::Direction;
using kvf::resp::Parser;
using kvf::resp::ParseStatus;

constexpr size_t kSegment = 1448;
// Capture-time step per segment: ~30 small commands in 12.5 µs each way, the
// pace of a server doing ~1.2 M commands/s (what redis-benchmark -P 16 gets here).
constexpr uint64_t kSegmentNs = 12'500;
constexpr int kCommands = 10000;

std::string Cmd(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out.append(a);
    out += "\r\n";
  }
  return out;
}

// kind 0: GET key:N (reads); 1: SET key:N value (writes); 2: INCR counter:N.
// `ends` (optional) gets, per command, where its request and reply end.
void Workload(int kind, std::string* requests, std::string* replies,
              std::vector<std::pair<size_t, size_t>>* ends = nullptr) {
  for (int i = 0; i < kCommands; ++i) {
    if (ends != nullptr && i > 0) ends->emplace_back(requests->size(), replies->size());
    const std::string key = "key:" + std::to_string(i % 1000);
    if (kind == 0) {
      *requests += Cmd({"GET", key});
      *replies += "$10\r\nvalue-" + std::to_string(1000 + i % 1000) + "\r\n";
    } else if (kind == 1) {
      *requests += Cmd({"SET", key, "value-" + std::to_string(1000 + i % 1000)});
      *replies += "+OK\r\n";
    } else {
      *requests += Cmd({"INCR", key});
      *replies += ":" + std::to_string(i) + "\r\n";
    }
  }
  if (ends != nullptr) ends->emplace_back(requests->size(), replies->size());
}

void BM_Baseline_MemchrCrlf(benchmark::State& state) {
  std::string req, rep;
  Workload(static_cast<int>(state.range(0)), &req, &rep);
  size_t lines = 0;
  for (auto _ : state) {
    for (size_t off = 0; off < req.size(); off += kSegment) {
      const char* p = req.data() + off;
      const char* end = req.data() + std::min(req.size(), off + kSegment);
      while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)))) != nullptr) {
        ++lines;
        ++p;
      }
    }
  }
  benchmark::DoNotOptimize(lines);
  state.SetItemsProcessed(state.iterations() * kCommands);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(req.size()));
}

void BM_ParseRequests(benchmark::State& state) {
  std::string req, rep;
  Workload(static_cast<int>(state.range(0)), &req, &rep);
  Parser p(Parser::Mode::kRequest);
  size_t n = 0;
  for (auto _ : state) {
    for (size_t off = 0; off < req.size(); off += kSegment) {
      p.Feed(std::string_view(req).substr(off, kSegment));
      while (p.Next() == ParseStatus::kMessage) n += p.args().size();
    }
  }
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(state.iterations() * kCommands);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(req.size()));
}

// One bulk-load request larger than max_message_bytes (an RPUSH of 100 k
// values of 100 bytes, 10.6 MB, against a 1 MiB limit), in MTU-sized
// segments: what comes past the limit is elided, and the kept part must not
// be rebuilt at every segment (a review's 77 MB message took 74 s).
void BM_ParseOversizedRequest(benchmark::State& state) {
  std::string req = "*100002\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n";
  const std::string value(100, 'v');
  for (int i = 0; i < 100000; ++i) req += "$100\r\n" + value + "\r\n";
  kvf::resp::Limits limits;
  limits.max_message_bytes = 1u << 20;
  size_t n = 0;
  for (auto _ : state) {
    Parser p(Parser::Mode::kRequest, limits);
    for (size_t off = 0; off < req.size(); off += kSegment) {
      p.Feed(std::string_view(req).substr(off, kSegment));
      while (p.Next() == ParseStatus::kMessage) n += p.args().size();
    }
  }
  if (n != 100002 * static_cast<size_t>(state.iterations()))
    state.SkipWithError("the request was not parsed whole");
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(req.size()));
}

void BM_ParseReplies(benchmark::State& state) {
  std::string req, rep;
  Workload(static_cast<int>(state.range(0)), &req, &rep);
  Parser p(Parser::Mode::kReply);
  size_t n = 0;
  for (auto _ : state) {
    for (size_t off = 0; off < rep.size(); off += kSegment) {
      p.Feed(std::string_view(rep).substr(off, kSegment));
      while (p.Next() == ParseStatus::kMessage) n += p.nodes().size();
    }
  }
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(state.iterations() * kCommands);
}

// Counts records and touches their bytes.
class CountingSink : public kvf::resp::RecordSink {
 public:
  void Emit(const kvf::RecordView& r, uint64_t) override {
    bytes += r.key.size();
    ++records;
  }
  uint64_t records = 0, bytes = 0;
};

// Parse both directions, pair, convert: the whole resp stage per command.
// tracker:1 also passes the records through the ambiguity tracker (1 ms
// window, held records copied into its ring), as decode and capture do.
void BM_ParseAndPair(benchmark::State& state) {
  std::string req, rep;
  std::vector<std::pair<size_t, size_t>> ends;
  Workload(static_cast<int>(state.range(0)), &req, &rep, &ends);
  CountingSink sink;
  kvf::resp::AmbiguityTracker tracker(&sink);
  Connection conn(state.range(1) != 0 ? static_cast<kvf::resp::RecordSink*>(&tracker) : &sink);
  uint64_t ts = 1'700'000'000'000'000'000ull;
  for (auto _ : state) {
    // Alternate request and reply segments the way a pipelining client and
    // its server interleave on the wire (requests run ahead of replies).
    size_t ro = 0, po = 0, done = 0;
    while (ro < req.size() || po < rep.size()) {
      if (ro < req.size()) {
        conn.OnData(Direction::kClientToServer, std::string_view(req).substr(ro, kSegment), ts += kSegmentNs);
        ro = std::min(req.size(), ro + kSegment);
      }
      // Replies only for requests the server has completely received.
      while (done < ends.size() && ends[done].first <= ro) ++done;
      const size_t reply_share = done == 0 ? 0 : ends[done - 1].second;
      if (po < reply_share) {
        const size_t n = std::min(reply_share - po, kSegment);
        conn.OnData(Direction::kServerToClient, std::string_view(rep).substr(po, n), ts += kSegmentNs);
        po += n;
      }
    }
    tracker.Advance(ts);
  }
  tracker.Flush();
  if (conn.stats().desyncs != 0 || conn.stats().unpaired_replies != 0)
    state.SkipWithError("pairing lost sync");
  benchmark::DoNotOptimize(sink.bytes);
  state.counters["records/cmd"] =
      static_cast<double>(sink.records) / static_cast<double>(state.iterations() * kCommands);
  state.SetItemsProcessed(state.iterations() * kCommands);
}

// Live capture's record path after pairing: `shards` producer threads (the
// capture workers) hand SET records to one ShardMerge, whose thread merges
// them by capture time into the ambiguity tracker. Compare with
// BM_ParseAndPair/kind:1/tracker:1, the one-thread path.
void BM_ShardMergeIntoTracker(benchmark::State& state) {
  const size_t shards = static_cast<size_t>(state.range(0));
  constexpr size_t kRecords = 200000;
  std::vector<std::string> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back("key:" + std::to_string(i));
  const std::string value = "value-1234";
  class Count : public kvf::resp::RecordSink {
   public:
    void Emit(const kvf::RecordView&, uint64_t) override { ++n; }
    uint64_t n = 0;
  } sink;
  for (auto _ : state) {
    kvf::resp::AmbiguityTracker tracker(&sink);
    kvf::resp::ShardMerge merge(shards, &tracker);
    std::vector<std::thread> producers;
    for (size_t s = 0; s < shards; ++s) {
      producers.emplace_back([&, s] {
        // 1 M records/s of capture time, shard s taking every shards-th one.
        for (size_t i = s; i < kRecords; i += shards) {
          const std::string_view args[] = {"SET", keys[i % keys.size()], value};
          kvf::RecordView v;
          v.capture_ns = 1'700'000'000'000'000'000ull + i * 1000;
          v.key = keys[i % keys.size()];
          v.args = args;
          merge.input(s)->Emit(v, s + 1);
          if (i % 256 < shards) merge.Progress(s, v.capture_ns);
        }
        merge.Finish(s);
      });
    }
    merge.Run();
    for (std::thread& t : producers) t.join();
  }
  if (sink.n != kRecords * state.iterations()) state.SkipWithError("records lost");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRecords));
}

// ExpiryKeeper with 65,536 expiries kept (its cap, far in the future), per
// record of each kind: 0 a plain SET passed on (the baseline), 1 a SET with
// an expiry of a new key (the table full: turned away), 2 a FLUSHDB of
// another db, 3 a write after a gap (every expiry in doubt). Before the
// twenty-fourth follow-up, 1-3 each cost a pass over the whole table.
void BM_ExpiryKeeperAtItsCap(benchmark::State& state) {
  const int kind = static_cast<int>(state.range(0));
  constexpr size_t kKept = 1u << 16;
  class Count : public kvf::resp::RecordSink {
   public:
    void Emit(const kvf::RecordView&, uint64_t) override { ++n; }
    uint64_t n = 0;
  } sink;
  kvf::resp::ExpiryOptions o;
  o.max_keys = kKept;
  kvf::resp::ExpiryKeeper keeper(&sink, o);
  const uint64_t t0 = 1'700'000'000'000'000'000ull;
  const std::string far = std::to_string(t0 / 1'000'000 + 3'600'000);
  auto set_pxat = [&](const std::string& key) {
    const std::string_view args[] = {"SET", key, "v", "PXAT", far};
    kvf::RecordView v;
    v.capture_ns = t0;
    v.key = key;
    v.args = args;
    keeper.Emit(v, 1);
  };
  for (size_t i = 0; i < kKept; ++i) set_pxat("kept:" + std::to_string(i));
  uint64_t i = 0;
  for (auto _ : state) {
    const std::string key = "new:" + std::to_string(i++);
    if (kind == 1) {
      set_pxat(key);
      continue;
    }
    const std::string_view set[] = {"SET", key, "v"};
    const std::string_view flushdb[] = {"FLUSHDB"};
    kvf::RecordView v;
    v.capture_ns = t0;
    v.key = kind == 2 ? std::string_view() : std::string_view(key);
    v.args = kind == 2 ? std::span<const std::string_view>(flushdb) : std::span<const std::string_view>(set);
    if (kind == 2) {
      v.op = kvf::RecordOp::kDatabase;
      v.db = 1;
    }
    if (kind == 3) v.flags = kvf::kAfterGap | kvf::kNeedsReadback;
    keeper.Emit(v, 1);
  }
  if (keeper.tracked_keys() != kKept) state.SkipWithError("the kept expiries changed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

BENCHMARK(BM_ShardMergeIntoTracker)->Arg(1)->Arg(2)->ArgName("shards")->UseRealTime();
BENCHMARK(BM_ExpiryKeeperAtItsCap)->DenseRange(0, 3)->ArgName("kind");
BENCHMARK(BM_Baseline_MemchrCrlf)->Arg(0)->Arg(1)->ArgName("kind");
BENCHMARK(BM_ParseRequests)->Arg(0)->Arg(1)->ArgName("kind");
BENCHMARK(BM_ParseReplies)->Arg(0)->Arg(1)->ArgName("kind");
BENCHMARK(BM_ParseOversizedRequest)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ParseAndPair)->ArgsProduct({{0, 1, 2}, {0, 1}})->ArgNames({"kind", "tracker"});

}  // namespace

BENCHMARK_MAIN();
