// End-to-end check of pairing + conversion against real servers: a workload
// driving every write family runs on a source redis-server while its traffic
// is mirrored into resp::Connection; the records are applied to an empty
// replica server; every key must then be equal (type, DEBUG DIGEST-VALUE, TTL
// within 1 s) once flagged keys are read back, and every key that differed
// before the read-back must have been flagged.
#include <gtest/gtest.h>

#include "resp/ambiguity.h"
#include "tests/resp/mirror.h"
#include "tests/resp/workload.h"

namespace kvf::resp {
namespace {

using namespace testing;  // NOLINT

constexpr int kSourcePort = 16420;
constexpr int kReplicaPort = 16421;
constexpr int kDbs = 4;

TEST(RespRoundTrip, EveryWriteFamilyRebuildsTheSource) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  LiveRedis source(kSourcePort), replica(kReplicaPort);
  ASSERT_TRUE(source.ok() && replica.ok());
  VectorSink sink;
  {
    MirroredClient c(kSourcePort, &sink, 1), other(kSourcePort, &sink, 2);
    ASSERT_TRUE(c.ok() && other.ok());
    RunWorkload(c, other);
    const ConnectionStats& st = c.conn().stats();
    ExpectPairedCleanly(st);
    EXPECT_EQ(st.bad_shapes, 0u);
    EXPECT_EQ(st.transactions, 1u);
    EXPECT_EQ(st.exec_aborted, 1u);
    EXPECT_EQ(st.watch_aborted, 1u);
    EXPECT_GE(st.writes_rejected, 2u);
    EXPECT_GE(st.writes_no_effect, 8u);
  }
  Replica r(kReplicaPort);
  ASSERT_TRUE(r.ok());
  r.Apply(sink.records);
  const auto src = Snapshot(kSourcePort, kDbs);
  const auto before = Differences(src, Snapshot(kReplicaPort, kDbs));
  for (const auto& [db, key] : before) {
    EXPECT_TRUE(r.readback_keys().count({static_cast<uint16_t>(db), key}))
        << "db" << db << " key " << key << " differs but was not flagged";
  }
  // The idempotent conversions alone must already have got most keys right.
  EXPECT_GT(src.size(), 80u);
  EXPECT_LT(before.size(), src.size() / 2);
  r.RepairFrom(kSourcePort);
  const auto after = Differences(src, Snapshot(kReplicaPort, kDbs));
  for (const auto& [db, key] : after)
    ADD_FAILURE() << "db" << db << " key " << key << " differs after repair";
  // No record ever carries a refused or never-applied write.
  for (const ChangeRecord& rec : sink.records) {
    for (const auto& a : rec.args) {
      EXPECT_NE(a, "lost");
      EXPECT_NE(a, "wrongtype");
    }
    EXPECT_NE(rec.key, "t:never");
    EXPECT_NE(rec.key, "t:2");
    EXPECT_NE(rec.key, "t:d");
  }
}

// Several connections write the same keys concurrently: every key that ends up
// different on the replica must be one the output flagged.
TEST(RespRoundTrip, ConcurrentWritersDifferOnlyOnFlaggedKeys) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  LiveRedis source(kSourcePort), replica(kReplicaPort);
  ASSERT_TRUE(source.ok() && replica.ok());
  VectorSink out;
  AmbiguityOptions ao;
  ao.window_ns = 5'000'000;  // 5 ms
  AmbiguityTracker tracker(&out, ao);
  {
    // Each client pipelines its writes; we mirror them in an interleaving
    // that does not match the server's execution order for the shared keys.
    std::vector<std::unique_ptr<MirroredClient>> clients;
    for (int i = 0; i < 3; ++i)
      clients.push_back(std::make_unique<MirroredClient>(kSourcePort, &tracker, 10 + i));
    std::vector<std::string> bursts(3);
    for (int i = 0; i < 3; ++i) {
      for (int k = 0; k < 20; ++k) {
        bursts[i] += Cmd({"SET", "shared:" + std::to_string(k), "c" + std::to_string(i)});
        bursts[i] += Cmd({"APPEND", "shared:log", std::to_string(i)});
        bursts[i] += Cmd({"SET", "own:" + std::to_string(i) + ":" + std::to_string(k), "x"});
      }
    }
    // Send all three bursts before reading any reply, then read in reverse
    // order so the mirrored order is the opposite of the execution order.
    std::vector<uint64_t> sent(3);
    for (int i = 0; i < 3; ++i) {
      sent[i] = NowNs();
      clients[i]->raw().Send(bursts[i], 0);
    }
    for (int i = 2; i >= 0; --i) {
      const std::string reply = clients[i]->raw().Receive(60);
      clients[i]->conn().OnData(Direction::kClientToServer, bursts[i], sent[i]);
      clients[i]->conn().OnData(Direction::kServerToClient, reply, NowNs());
    }
    tracker.Flush();
  }
  EXPECT_GT(tracker.stats().ambiguous, 0u);
  Replica r(kReplicaPort);
  r.Apply(out.records);
  const auto diff = Differences(Snapshot(kSourcePort, 1), Snapshot(kReplicaPort, 1));
  EXPECT_FALSE(diff.empty()) << "the test should provoke reordering";
  for (const auto& [db, key] : diff) {
    EXPECT_TRUE(r.readback_keys().count({static_cast<uint16_t>(db), key})) << key << " differs, not flagged";
    EXPECT_EQ(key.rfind("own:", 0), std::string::npos);
  }
  r.RepairFrom(kSourcePort);
  EXPECT_TRUE(Differences(Snapshot(kSourcePort, 1), Snapshot(kReplicaPort, 1)).empty());
}

}  // namespace
}  // namespace kvf::resp
