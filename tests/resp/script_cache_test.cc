// The script cache shared by capture workers: threads learning and finding at
// once keep the bounds and never see a wrong or torn body, and a script loaded
// through a Connection on one thread names the body for an EVALSHA decoded by
// another thread's Connection.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "resp/ambiguity.h"
#include "resp/connection.h"
#include "resp/merge.h"
#include "resp/script_cache.h"
#include "tests/resp/live_redis.h"

namespace kvf::resp {
namespace {

using testing::Cmd;

TEST(SharedScriptCache, ConcurrentLearnAndFindKeepBoundsAndBodies) {
  constexpr size_t kMaxScripts = 16, kMaxBytes = 600;
  ScriptCache cache({.max_scripts = kMaxScripts, .max_bytes = kMaxBytes});
  // 64 distinct bodies of 10..73 bytes; every thread learns and looks up all of them.
  std::vector<std::string> bodies, shas;
  for (int i = 0; i < 64; ++i) {
    bodies.push_back("return " + std::to_string(i) + std::string(static_cast<size_t>(i), '+'));
    shas.push_back(Sha1Hex(bodies.back()));
  }
  std::atomic<uint64_t> hits{0}, wrong{0}, over_bound{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      uint32_t x = 77u + static_cast<uint32_t>(t);
      for (int i = 0; i < 5000; ++i) {
        x = x * 1664525 + 1013904223;
        const size_t k = (x >> 16) % bodies.size();
        if (i % 3 == 0) {
          cache.Learn(shas[k], bodies[k]);
        } else if (auto body = cache.Find(shas[k])) {
          ++hits;
          if (*body != bodies[k]) ++wrong;
        }
        if (cache.size() > kMaxScripts || cache.bytes() > kMaxBytes) ++over_bound;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(over_bound.load(), 0u);
  EXPECT_GT(hits.load(), 100u);
  EXPECT_GT(cache.evictions(), 100u);
  EXPECT_LE(cache.size(), kMaxScripts);
  EXPECT_LE(cache.bytes(), kMaxBytes);
}

TEST(SharedScriptCache, FoundBodyOutlivesItsEviction) {
  ScriptCache cache({.max_scripts = 1, .max_bytes = 100});
  cache.LearnBody("return 1");
  auto held = cache.Find(Sha1Hex("return 1"));
  ASSERT_NE(held, nullptr);
  std::thread other([&] { cache.LearnBody("return 2"); });  // evicts "return 1"
  other.join();
  EXPECT_EQ(cache.Find(Sha1Hex("return 1")), nullptr);
  EXPECT_EQ(*held, "return 1");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), 8u);
}

// One Connection per thread, as capture workers have them; replies are what
// redis-server 7 sends for these requests.
struct Worker {
  explicit Worker(ScriptCache* cache, uint64_t id) {
    ConnectionOptions o;
    o.scripts = cache;
    o.connection_id = id;
    conn = std::make_unique<Connection>(&sink, o);
  }
  void Do(const std::vector<std::string>& args, const std::string& reply) {
    conn->OnData(Direction::kClientToServer, AsBytes(Cmd(args)), ++ts);
    conn->OnData(Direction::kServerToClient, AsBytes(reply), ++ts);
  }
  VectorSink sink;
  std::unique_ptr<Connection> conn;
  uint64_t ts = 1000;
};

TEST(SharedScriptCache, ScriptLoadedOnOneThreadDecodesEvalshaOnAnother) {
  ScriptCache cache;
  const std::string body = "return redis.call('SET', KEYS[1], ARGV[1])";
  const std::string sha = Sha1Hex(body);
  std::thread loader([&] {
    Worker a(&cache, 1);
    a.Do({"SCRIPT", "LOAD", body}, "$40\r\n" + sha + "\r\n");
    EXPECT_TRUE(a.sink.records.empty());  // SCRIPT LOAD is not a write
  });
  loader.join();
  std::vector<ChangeRecord> got;
  uint64_t unknown = 0;
  std::thread runner([&] {
    Worker b(&cache, 2);
    b.Do({"EVALSHA", sha, "1", "k", "v"}, "+OK\r\n");
    got = b.sink.records;
    unknown = b.conn->stats().script_unknown;
  });
  runner.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "k");
  EXPECT_EQ(got[0].args, (std::vector<std::string>{"EVAL", body, "1", "k", "v"}));
  EXPECT_EQ(unknown, 0u);
}

// With several capture workers, one worker may decode an EVALSHA before the
// worker of another connection has decoded the SCRIPT LOAD that ran first (a
// review saw 19-26 of 60 such EVALSHAs read back with three workers). The
// connection defers it; the merge, which releases records in capture-time
// order once every worker is past them, finds the body and ships EVAL. A
// script nobody loaded in the capture is still read back, key by key.
TEST(SharedScriptCache, AnEvalshaOneWorkerDeferredIsShippedAsEvalByTheMerge) {
  ScriptCache cache;
  VectorSink out;
  AmbiguityTracker tracker(&out, AmbiguityOptions{});
  ShardMerge merge(2, &tracker, {}, &cache);
  std::thread run([&] { merge.Run(); });
  auto on_shard = [&](size_t shard, uint64_t id) {
    ConnectionOptions o;
    o.scripts = &cache;
    o.connection_id = id;
    o.defer_unknown_scripts = true;
    return std::make_unique<Connection>(merge.input(shard), o);
  };
  uint64_t ts = 0;
  auto send = [&](Connection& c, std::initializer_list<std::string_view> args, const std::string& reply) {
    c.OnData(Direction::kClientToServer, AsBytes(Cmd(args)), ++ts);
    c.OnData(Direction::kServerToClient, AsBytes(reply), ++ts);
  };
  const std::string body = "return redis.call('SET', KEYS[1], 'x')";
  const std::string sha = Sha1Hex(body);
  // Shard 1's worker runs ahead: it decodes the EVALSHAs (at 31-36 ns)
  // before shard 0's decodes the load that ran at 11-12 ns.
  ts = 30;
  std::unique_ptr<Connection> b = on_shard(1, 2);
  send(*b, {"EVALSHA", sha, "1", "k"}, "+OK\r\n");
  send(*b, {"EVALSHA", std::string(40, 'e'), "2", "u1", "u2"}, "+OK\r\n");  // loaded before the capture
  send(*b, {"EVALSHA", std::string(40, 'f'), "0"}, "+OK\r\n");              // no keys: nothing to read
  merge.Progress(1, ts);
  merge.Finish(1);
  ts = 10;
  std::unique_ptr<Connection> a = on_shard(0, 1);
  send(*a, {"SCRIPT", "LOAD", body}, "$40\r\n" + sha + "\r\n");
  merge.Finish(0);
  run.join();
  ASSERT_EQ(out.records.size(), 3u);
  EXPECT_EQ(out.records[0].args, (std::vector<std::string>{"EVAL", body, "1", "k"}));
  EXPECT_EQ(out.records[0].op, RecordOp::kOrdered);
  EXPECT_TRUE(out.records[0].HasFlag(kNeedsReadback));
  for (size_t i : {1u, 2u}) {
    EXPECT_EQ(out.records[i].op, RecordOp::kReadback);
    EXPECT_TRUE(out.records[i].args.empty());
    EXPECT_TRUE(out.records[i].HasFlag(kNeedsReadback));
  }
  EXPECT_EQ(out.records[1].key, "u1");
  EXPECT_EQ(out.records[2].key, "u2");
  EXPECT_EQ(merge.stats().scripts_resolved, 1u);
  EXPECT_EQ(merge.stats().scripts_unknown, 2u);
}

TEST(SharedScriptCache, WorkersLoadingAndRunningConcurrently) {
  ScriptCache cache;
  constexpr int kThreads = 4, kScripts = 50;
  auto body_of = [](int t, int i) {
    return "return redis.call('SET', KEYS[1], '" + std::to_string(t) + "/" + std::to_string(i) + "')";
  };
  // Phase 1: every worker loads its own scripts (half by SCRIPT LOAD, half by EVAL).
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Worker w(&cache, static_cast<uint64_t>(t));
      for (int i = 0; i < kScripts; ++i) {
        const std::string body = body_of(t, i);
        if (i % 2 == 0) {
          w.Do({"SCRIPT", "LOAD", body}, "$40\r\n" + Sha1Hex(body) + "\r\n");
        } else {
          w.Do({"EVAL", body, "1", "k"}, "+OK\r\n");
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  threads.clear();
  // Phase 2: every worker runs the scripts the next worker loaded.
  std::vector<uint64_t> unknown(kThreads), evals(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Worker w(&cache, static_cast<uint64_t>(10 + t));
      const int from = (t + 1) % kThreads;
      for (int i = 0; i < kScripts; ++i) {
        w.Do({"EVALSHA", Sha1Hex(body_of(from, i)), "1", "k"}, "+OK\r\n");
        // Another worker keeps learning meanwhile.
        if (t == 0) cache.LearnBody("return " + std::to_string(i));
      }
      unknown[t] = w.conn->stats().script_unknown;
      for (const ChangeRecord& r : w.sink.records) {
        evals[t] += !r.args.empty() && r.args[0] == "EVAL";
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(unknown[t], 0u) << "worker " << t;
    EXPECT_EQ(evals[t], static_cast<uint64_t>(kScripts)) << "worker " << t;
  }
}

}  // namespace
}  // namespace kvf::resp
