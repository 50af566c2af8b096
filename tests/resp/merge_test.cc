// ShardMerge: the records of several shards, each produced on its own
// thread, reach one ambiguity tracker in capture-time order, all of them,
// with same-key writes of connections in different shards flagged exactly
// as one tracker seeing every write in order would flag them.
#include "resp/merge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kvf::resp {
namespace {

struct Write {
  uint64_t ts;
  uint64_t conn;
  std::string key;
};

ChangeRecord RecordOf(const Write& w, uint64_t seq) {
  ChangeRecord r;
  r.seq = seq;
  r.capture_ns = w.ts;
  r.key = w.key;
  r.args = {"SET", w.key, std::to_string(seq)};
  return r;
}

// Random writes of `conns` connections to `keys` keys, one every 1–200 ns.
std::vector<Write> Writes(size_t n, uint64_t conns, int keys, uint64_t seed) {
  std::vector<Write> out;
  uint64_t ts = 1'000'000'000;
  auto next = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed >> 33;
  };
  for (size_t i = 0; i < n; ++i) {
    ts += 1 + next() % 200;  // strictly increasing: one order for the reference
    out.push_back({ts, next() % conns, "k" + std::to_string(next() % static_cast<uint64_t>(keys))});
  }
  return out;
}

// What one tracker fed every write in order flags (seq → flags).
std::map<uint64_t, uint16_t> Reference(const std::vector<Write>& writes, AmbiguityOptions o) {
  VectorSink out;
  AmbiguityTracker t(&out, o);
  for (size_t i = 0; i < writes.size(); ++i) EmitRecord(&t, RecordOf(writes[i], i), writes[i].conn);
  t.Flush();
  std::map<uint64_t, uint16_t> flags;
  for (const ChangeRecord& r : out.records) flags[r.seq] = r.flags;
  return flags;
}

// Connection c belongs to shard c % shards; each shard's thread emits its
// writes in time order and reports its progress (the time of its next write)
// every few writes, as a capture worker does after each slice.
void Produce(ShardMerge* merge, size_t shard, size_t shards, const std::vector<Write>& writes, size_t every) {
  size_t since = 0;
  for (size_t i = 0; i < writes.size(); ++i) {
    if (writes[i].conn % shards != shard) continue;
    EmitRecord(merge->input(shard), RecordOf(writes[i], i), writes[i].conn);
    if (++since % every == 0) merge->Progress(shard, writes[i].ts);
  }
  merge->Finish(shard);
}

TEST(ShardMerge, RecordsArriveInTimeOrderAndFlagsMatchOneTracker) {
  const std::vector<Write> writes = Writes(60000, 6, 3000, 99);
  AmbiguityOptions o;
  o.window_ns = 20'000;  // ~200 writes per window
  const auto expect = Reference(writes, o);
  for (size_t shards : {1, 2, 3}) {
    VectorSink out;
    AmbiguityTracker tracker(&out, o);
    MergeOptions mo;
    mo.batch_records = 64;
    mo.max_batches = 4;  // small: shards wait for the merge now and then
    ShardMerge merge(shards, &tracker, mo);
    std::vector<std::thread> producers;
    for (size_t s = 0; s < shards; ++s) {
      producers.emplace_back([&, s] { Produce(&merge, s, shards, writes, 1 + 7 * s); });
    }
    merge.Run();
    for (std::thread& t : producers) t.join();
    ASSERT_EQ(out.records.size(), writes.size()) << shards << " shards";
    size_t flagged = 0;
    for (size_t i = 0; i < out.records.size(); ++i) {
      const ChangeRecord& r = out.records[i];
      if (i > 0) ASSERT_GE(r.capture_ns, out.records[i - 1].capture_ns) << "record " << i;
      ASSERT_EQ(r.flags, expect.at(r.seq)) << "seq " << r.seq << " with " << shards << " shards";
      flagged += r.HasFlag(kAmbiguousOrder);
    }
    EXPECT_GT(flagged, 1000u);  // the case is exercised
    EXPECT_LT(flagged, writes.size() / 2);
    const MergeStats st = merge.stats();
    EXPECT_EQ(st.records, writes.size());
    EXPECT_EQ(st.late, 0u);
    EXPECT_EQ(st.queued_batches, 0u);
  }
}

// A downstream that takes its time: the shards fill their hand-overs and
// wait, and nothing is lost or reordered.
TEST(ShardMerge, FullHandOversMakeShardsWaitWithoutLoss) {
  const std::vector<Write> writes = Writes(5000, 4, 100, 7);
  class Slow : public RecordSink {
   public:
    void Emit(const RecordView& r, uint64_t) override {
      if (++n % 256 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      last_ok = last_ok && r.capture_ns >= last;
      last = r.capture_ns;
    }
    uint64_t n = 0, last = 0;
    bool last_ok = true;
  } slow;
  AmbiguityTracker tracker(&slow, {});
  ShardMerge merge(2, &tracker, {.batch_records = 8, .max_batches = 2});
  std::thread a([&] { Produce(&merge, 0, 2, writes, 1); });
  std::thread b([&] { Produce(&merge, 1, 2, writes, 1); });
  merge.Run();
  a.join();
  b.join();
  EXPECT_EQ(slow.n, writes.size());
  EXPECT_TRUE(slow.last_ok);
  EXPECT_GT(merge.stats().shard_waits, 0u);
}

// A shard with no traffic holds nothing back once its watermark moves on
// (a capture worker reports one at every tick while idle), and records of
// the busy shard flow while both still run.
TEST(ShardMerge, AnIdleShardsWatermarkLetsTheOthersRecordsThrough) {
  std::atomic<uint64_t> got{0};
  class Count : public RecordSink {
   public:
    explicit Count(std::atomic<uint64_t>* n) : n_(n) {}
    void Emit(const RecordView&, uint64_t) override { n_->fetch_add(1); }

   private:
    std::atomic<uint64_t>* n_;
  } count(&got);
  AmbiguityOptions o;
  o.window_ns = 1000;
  o.max_span_ns = 0;  // records held one window
  AmbiguityTracker tracker(&count, o);
  ShardMerge merge(2, &tracker, {.batch_records = 4, .max_batches = 16});
  std::thread run([&] { merge.Run(); });
  for (uint64_t i = 0; i < 40; ++i) {
    EmitRecord(merge.input(0), RecordOf({1'000'000 + i * 100, 1, "k" + std::to_string(i)}, i), 1);
  }
  merge.Progress(0, 1'000'000 + 40 * 100);
  // Shard 1 has said nothing yet: its records could still be older.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(got.load(), 0u);
  merge.Progress(1, 1'000'000 + 40 * 100);  // idle: nothing older will come
  for (int i = 0; i < 2000 && got.load() < 30; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // Everything older than the watermark minus the window has left the tracker.
  EXPECT_GE(got.load(), 30u);
  EXPECT_LT(got.load(), 40u);
  merge.Finish(0);
  merge.Finish(1);
  run.join();
  EXPECT_EQ(got.load(), 40u);
}

// A record older than what the tracker's window already passed (an
// unanswered write found at a close carries its request's time) still goes
// through, and is counted.
TEST(ShardMerge, LateRecordsPassAndAreCounted) {
  class Keys : public RecordSink {
   public:
    void Emit(const RecordView& r, uint64_t) override {
      std::lock_guard<std::mutex> lock(mu);
      keys.emplace_back(r.key);
    }
    size_t size() {
      std::lock_guard<std::mutex> lock(mu);
      return keys.size();
    }
    std::mutex mu;
    std::vector<std::string> keys;
  } out;
  AmbiguityTracker tracker(&out, {});
  ShardMerge merge(1, &tracker, {.batch_records = 1, .max_batches = 4});
  std::thread run([&] { merge.Run(); });
  EmitRecord(merge.input(0), RecordOf({5'000'000'000, 1, "a"}, 0), 1);
  merge.Progress(0, 9'000'000'000);
  // "a" leaves the tracker only once its window has advanced past it.
  for (int i = 0; i < 5000 && out.size() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(out.size(), 1u);
  EmitRecord(merge.input(0), RecordOf({2'000'000'000, 1, "b"}, 1), 1);
  merge.Finish(0);
  run.join();
  ASSERT_EQ(out.keys.size(), 2u);
  EXPECT_EQ(out.keys[1], "b");
  EXPECT_EQ(merge.stats().late, 1u);
}

}  // namespace
}  // namespace kvf::resp
