// PriorKeeper: the first in-place edit of a key whose prior value the
// capture never established is read back; later ones are not.
#include "resp/prior.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "resp/ambiguity.h"
#include "tests/resp/live_redis.h"
#include "tests/resp/mirror.h"

namespace kvf::resp {
namespace {

using testing::Cmd;
using testing::HaveRedisServer;
using testing::LiveRedis;
using testing::MirroredClient;
using testing::RawClient;

ChangeRecord Rec(std::vector<std::string> args, uint16_t db = 0, RecordOp op = RecordOp::kOrdered,
                 uint16_t flags = 0) {
  ChangeRecord r;
  r.db = db;
  r.op = op;
  r.flags = flags;
  r.capture_ns = 1'700'000'000'000'000'000;
  if (args.size() > 1) r.key = args[1];
  r.args = std::move(args);
  return r;
}

constexpr uint16_t kRead = kNeedsReadback | kUnknownPrior;

// The flags each record leaves the keeper with.
std::vector<uint16_t> FlagsAfter(const std::vector<ChangeRecord>& in, PriorOptions opts = {}) {
  VectorSink out;
  PriorKeeper keeper(&out, opts);
  for (const ChangeRecord& r : in) EmitRecord(&keeper, r, 1);
  std::vector<uint16_t> flags;
  for (const ChangeRecord& r : out.records) flags.push_back(r.flags);
  return flags;
}

// The empty key "" is a key like any other (a review: LSET "" of a list
// from before the capture went unflagged); a script that declares no keys,
// whose record's key is empty too, is no edit of one.
TEST(PriorKeeper, TheEmptyKeyIsAKey) {
  ChangeRecord keyless = Rec({"EVAL", "return 1", "0"});
  keyless.key.clear();
  EXPECT_EQ(FlagsAfter({Rec({"LSET", "", "0", "z"}), Rec({"LSET", "", "1", "y"}), keyless}),
            (std::vector<uint16_t>{kRead, 0, 0}));
}

TEST(PriorKeeper, TheFirstEditOfAKeyNotEstablishedIsReadBackOnce) {
  EXPECT_EQ(FlagsAfter({Rec({"RPUSH", "q", "a"}),                          // a list from before
                        Rec({"RPUSH", "q", "b"}),                          // known since the read-back
                        Rec({"LTRIM", "q", "1", "-1"}),                    // a pop: known
                        Rec({"SET", "s", "v"}, 0, RecordOp::kIdempotent),  // passes as it is
                        Rec({"LPUSH", "new", "a"}, 0, RecordOp::kOrdered, kCreatesKey),
                        Rec({"LPUSH", "new", "b"}),  // made in the capture
                        Rec({"APPEND", "t", "x"}, 0, RecordOp::kOrdered, kNeedsReadback),
                        Rec({"BITFIELD", "t", "SET", "u8", "0", "1"}),  // read back above
                        Rec({"LREM", "z", "0", "m"}),                   // a list from before
                        Rec({"LREM", "z", "0", "n"})}),
            (std::vector<uint16_t>{kRead, 0, 0, 0, kCreatesKey, 0, kNeedsReadback, 0, kRead, 0}));
}

TEST(PriorKeeper, ReadBacksAndCreatedKeysEstablishAKeyInItsDbOnly) {
  ChangeRecord readback = Rec({}, 2, RecordOp::kReadback, kNeedsReadback);
  readback.key = "q";
  EXPECT_EQ(FlagsAfter({readback, Rec({"RPUSH", "q", "x"}, 2), Rec({"RPUSH", "q", "x"}, 3),
                        Rec({"RPUSH", "l", "a"}, 1, RecordOp::kOrdered, kCreatesKey),
                        Rec({"RPUSH", "l", "b"}, 1), Rec({"RPUSH", "l", "b"}, 0)}),
            (std::vector<uint16_t>{kNeedsReadback, 0, kRead, kCreatesKey, 0, kRead}));
}

TEST(PriorKeeper, AGapForgetsEveryKeyAndAGuessedDbForgetsTheKeyInEveryDb) {
  EXPECT_EQ(FlagsAfter({Rec({"RPUSH", "a", "1"}, 0, RecordOp::kOrdered, kCreatesKey),
                        Rec({"RPUSH", "b", "1"}, 0, RecordOp::kOrdered, kCreatesKey),
                        Rec({"RPUSH", "b", "1"}, 1, RecordOp::kOrdered, kCreatesKey),
                        // The lost bytes may have changed any key.
                        Rec({"SET", "x", "1"}, 0, RecordOp::kIdempotent, kAfterGap), Rec({"RPUSH", "a", "2"}),
                        Rec({"RPUSH", "b", "2"}, 0, RecordOp::kOrdered, kCreatesKey),
                        Rec({"RPUSH", "b", "2"}, 1, RecordOp::kOrdered, kCreatesKey),
                        // Applied in a guessed db: b in its true db (0 or 1) missed it.
                        Rec({"RPUSH", "b", "3"}, 0, RecordOp::kOrdered, kUnknownDb),
                        Rec({"RPUSH", "b", "4"}, 0), Rec({"RPUSH", "b", "4"}, 1)}),
            (std::vector<uint16_t>{kCreatesKey, kCreatesKey, kCreatesKey, kAfterGap, kRead, kCreatesKey,
                                   kCreatesKey, kUnknownDb, kRead, kRead}));
}

TEST(PriorKeeper, SwapdbMovesWhatIsKnownAndFlushesKeepIt) {
  ChangeRecord swap = Rec({"SWAPDB", "0", "1"}, 0, RecordOp::kDatabase);
  ChangeRecord flush = Rec({"FLUSHDB"}, 0, RecordOp::kDatabase);
  EXPECT_EQ(FlagsAfter({Rec({"RPUSH", "a", "1"}, 0, RecordOp::kOrdered, kCreatesKey), swap,
                        Rec({"RPUSH", "a", "2"}, 0), Rec({"RPUSH", "a", "3"}, 1), flush,
                        Rec({"RPUSH", "a", "4"}, 1), swap, Rec({"RPUSH", "a", "5"}, 0),
                        Rec({"RPUSH", "a", "6"}, 1)}),
            (std::vector<uint16_t>{kCreatesKey, 0, kRead, 0, 0, 0, 0, 0, 0}));
}

// What the keeper cannot follow makes it forget everything: a FLUSHDB
// applied in a guessed db (it empties another db on the replica), a script
// that may swap dbs unseen (SWAPDB in an EVAL's body, any FCALL). Other
// scripts do not (the replica runs them too).
TEST(PriorKeeper, AGuessedFlushAndScriptsThatMaySwapDbsForgetEveryKey) {
  const ChangeRecord made = Rec({"RPUSH", "a", "1"}, 0, RecordOp::kOrdered, kCreatesKey);
  const ChangeRecord edit = Rec({"RPUSH", "a", "2"});
  ChangeRecord guessed_flush = Rec({"FLUSHDB"}, 0, RecordOp::kDatabase, kUnknownDb);
  const ChangeRecord eval =
      Rec({"EVAL", "return redis.call('INCR', KEYS[1])", "1", "n"}, 0, RecordOp::kOrdered, kNeedsReadback);
  const ChangeRecord swapping =
      Rec({"EVAL", "redis.call('SwapDb', 0, 1) return 1", "1", "n"}, 0, RecordOp::kOrdered, kNeedsReadback);
  const ChangeRecord fcall = Rec({"FCALL", "f", "1", "n"}, 0, RecordOp::kOrdered, kNeedsReadback);
  EXPECT_EQ(FlagsAfter({made, guessed_flush, edit, edit}),
            (std::vector<uint16_t>{kCreatesKey, kUnknownDb, kRead, 0}));
  const ChangeRecord flush_after_gap = Rec({"FLUSHDB"}, 0, RecordOp::kDatabase, kAfterGap);
  EXPECT_EQ(FlagsAfter({made, flush_after_gap, edit}),
            (std::vector<uint16_t>{kCreatesKey, kAfterGap, kRead}));
  EXPECT_EQ(FlagsAfter({made, eval, edit}), (std::vector<uint16_t>{kCreatesKey, kNeedsReadback, 0}));
  EXPECT_EQ(FlagsAfter({made, swapping, edit}), (std::vector<uint16_t>{kCreatesKey, kNeedsReadback, kRead}));
  EXPECT_EQ(FlagsAfter({made, fcall, edit}), (std::vector<uint16_t>{kCreatesKey, kNeedsReadback, kRead}));
}

// A full table starts over: a key still edited is read back once more,
// not at every edit (a review filled it with 1.5 M dead keys, and every
// push onto a live queue was read back after that).
TEST(PriorKeeper, AFullTableForgetsEverythingAndStartsOver) {
  PriorOptions opts;
  opts.max_keys = 2;
  VectorSink out;
  PriorKeeper keeper(&out, opts);
  for (const char* key : {"a", "b", "c", "c", "a", "c"}) EmitRecord(&keeper, Rec({"RPUSH", key, "x"}), 1);
  std::vector<uint16_t> flags;
  for (const ChangeRecord& r : out.records) flags.push_back(r.flags);
  EXPECT_EQ(flags, (std::vector<uint16_t>{kRead, kRead, kRead, 0, kRead, 0}));
  EXPECT_EQ(keeper.stats().untracked, 1u);
  EXPECT_EQ(keeper.stats().flagged, 4u);
  EXPECT_EQ(keeper.known_keys(), 2u);
}

// Random records through the keeper, one by one and in batches, against a
// set of (db, key): the same verdicts, through growth, gaps, guessed dbs
// (erasing from the middle of probe runs) and swaps.
TEST(PriorKeeper, ItsVerdictsMatchASetOfKeys) {
  std::mt19937_64 rng(11);
  std::vector<ChangeRecord> in;
  for (int i = 0; i < 60'000; ++i) {
    const uint16_t db = static_cast<uint16_t>(rng() % 3);
    const std::string key = "k" + std::to_string(rng() % 5000);
    const unsigned pick = rng() % 100;
    if (pick < 45) {
      in.push_back(Rec({"RPUSH", key, "x"}, db));
    } else if (pick < 60) {
      in.push_back(Rec({"SET", key, "x"}, db, RecordOp::kIdempotent));
    } else if (pick < 75) {
      in.push_back(Rec({"RPUSH", key, "x"}, db, RecordOp::kOrdered, kCreatesKey));
    } else if (pick < 88) {
      in.push_back(Rec({"EVAL", key}, db, RecordOp::kOrdered, kNeedsReadback));
    } else if (pick < 97) {
      in.push_back(Rec({"RPUSH", key, "x"}, db, RecordOp::kOrdered, kUnknownDb));
    } else if (pick < 99) {
      in.push_back(
          Rec({"SWAPDB", std::to_string(rng() % 3), std::to_string(rng() % 3)}, 0, RecordOp::kDatabase));
    } else if (rng() % 10 == 0) {
      in.push_back(Rec({"SET", key, "x"}, db, RecordOp::kIdempotent, kAfterGap));
    }
  }
  // The model: which (db, key) are known, with SWAPDB moving keys.
  std::set<std::pair<uint16_t, std::string>> known;
  std::vector<uint16_t> want;
  for (const ChangeRecord& r : in) {
    uint16_t flags = r.flags;
    if (r.op == RecordOp::kDatabase) {
      const uint16_t a = static_cast<uint16_t>(std::stoi(r.args[1])),
                     b = static_cast<uint16_t>(std::stoi(r.args[2]));
      std::set<std::pair<uint16_t, std::string>> next;
      for (const auto& [db, key] : known) next.insert({db == a ? b : db == b ? a : db, key});
      known.swap(next);
    } else {
      if (r.flags & kAfterGap) known.clear();
      if (r.flags & kUnknownDb) {
        for (uint16_t db = 0; db < 3; ++db) known.erase({db, r.key});
      } else if (r.flags & (kNeedsReadback | kCreatesKey)) {
        known.insert({r.db, r.key});
      } else if (r.op == RecordOp::kOrdered && !known.count({r.db, r.key})) {
        flags |= kRead;
        known.insert({r.db, r.key});
      }
    }
    want.push_back(flags);
  }
  EXPECT_EQ(FlagsAfter(in), want);
  VectorSink out;
  PriorKeeper keeper(&out);
  RecordBatch batch;
  for (const ChangeRecord& r : in) {
    std::vector<std::string_view> args;
    batch.Add(RecordView::Of(r, &args), 1);
    if (batch.size() == 500) {
      keeper.EmitBatch(batch, 0, 200);
      keeper.EmitBatch(batch, 200, batch.size());
      batch.Clear();
    }
  }
  keeper.EmitBatch(batch, 0, batch.size());
  std::vector<uint16_t> batched;
  for (const ChangeRecord& r : out.records) batched.push_back(r.flags);
  EXPECT_EQ(batched, want);
}

// Keys written before the capture (on a connection it does not see), then
// edited where it sees: every key the records alone leave different on an
// empty replica is one they ask to read back, a list the capture saw made
// is not read back, and the repair makes the replica equal.
TEST(PriorKeeperLive, EditsOfKeysFromBeforeTheCaptureAreReadBackOnce) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kSource = 16446, kReplica = 16447;
  LiveRedis source(kSource), replica(kReplica);
  ASSERT_TRUE(source.ok() && replica.ok());
  {
    RawClient before(kSource);
    before.Send(Cmd({"RPUSH", "jobs", "j1", "j2", "j3"}), 1);
    before.Send(Cmd({"SET", "bits", "\x10"}), 1);
    before.Send(Cmd({"ZADD", "z", "1", "m"}), 1);
    before.Send(Cmd({"SELECT", "1"}), 1);
    before.Send(Cmd({"RPUSH", "jobs", "other"}), 1);
  }
  VectorSink out;
  PriorKeeper keeper(&out);
  {
    AmbiguityTracker tracker(&keeper);
    MirroredClient c(kSource, &tracker, 1);
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 5; ++i) {
      c.Do({"RPUSH", "jobs", "n" + std::to_string(i)});
      c.Do({"LPOP", "jobs"});
      c.Do({"RPUSH", "fresh", "f" + std::to_string(i)});  // made by the first push
    }
    c.Do({"LPOP", "fresh", "2"});
    c.Do({"BITFIELD", "bits", "INCRBY", "u8", "0", "1"});
    c.Do({"ZADD", "z", "NX", "5", "m", "6", "n"});
    c.Do({"SELECT", "1"});
    c.Do({"LPOP", "jobs"});
    tracker.Flush();
  }
  // jobs in db 0 and 1, bits: once each (a conditional ZADD is read back by its conversion).
  EXPECT_EQ(keeper.stats().flagged, 3u);
  testing::Replica r(kReplica);
  ASSERT_TRUE(r.ok());
  // A stale list where the capture saw one made: the DEL before the
  // creating push clears it.
  RawClient(kReplica).Send(Cmd({"RPUSH", "fresh", "stale"}), 1);
  r.Apply(out.records);
  EXPECT_EQ(r.readback_keys(),
            (std::set<std::pair<uint16_t, std::string>>{{0, "jobs"}, {0, "bits"}, {0, "z"}, {1, "jobs"}}));
  const auto differ = testing::Differences(testing::Snapshot(kSource, 2), testing::Snapshot(kReplica, 2));
  EXPECT_FALSE(differ.empty());
  for (const auto& [db, key] : differ) {
    EXPECT_TRUE(r.readback_keys().count({static_cast<uint16_t>(db), key})) << "db" << db << " " << key;
  }
  r.RepairFrom(kSource);
  EXPECT_TRUE(testing::Differences(testing::Snapshot(kSource, 2), testing::Snapshot(kReplica, 2)).empty());
}

}  // namespace
}  // namespace kvf::resp
