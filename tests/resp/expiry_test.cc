// ExpiryKeeper: a write that keeps a key's expiry is followed by the
// expiry, for a replica that applies it after the key expired; what the
// keeper cannot be sure of is forgotten. Units on hand-made records, then a
// real exchange applied to a real replica late and in time.
#include "resp/expiry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
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

constexpr uint64_t kNowMs = 1'700'000'000'000;  // capture time of the records below
constexpr int64_t kLater = kNowMs + 60'000;

ChangeRecord Rec(std::vector<std::string> args, uint16_t db = 0, RecordOp op = RecordOp::kIdempotent,
                 uint16_t flags = 0, uint64_t ms = kNowMs) {
  ChangeRecord r;
  r.db = db;
  r.op = op;
  r.flags = flags;
  r.capture_ns = ms * 1'000'000;
  if (args.size() > 1) r.key = args[1];
  r.args = std::move(args);
  return r;
}

class ExpiryKeeperTest : public ::testing::Test {
 protected:
  // Passes `r` through the keeper; returns the commands that came out.
  std::vector<std::string> Pass(const ChangeRecord& r, uint64_t request_ms = 0) {
    const size_t before = out_.records.size();
    EmitRecord(&keeper_, r, 1, request_ms * 1'000'000);
    std::vector<std::string> got;
    for (size_t i = before; i < out_.records.size(); ++i) {
      std::string line;
      for (const auto& a : out_.records[i].args) line += (line.empty() ? "" : " ") + a;
      got.push_back(line);
    }
    return got;
  }
  std::string Restore(const std::string& key, int64_t at = kLater) {
    return "PEXPIREAT " + key + " " + std::to_string(at);
  }

  VectorSink out_;
  ExpiryKeeper keeper_{&out_};
};

TEST_F(ExpiryKeeperTest, AWriteThatKeepsAKnownExpiryIsFollowedByIt) {
  const std::string at = std::to_string(kLater);
  Pass(Rec({"SET", "k", "1", "PXAT", at}));
  Pass(Rec({"SET", "h", "x"}));
  Pass(Rec({"PEXPIREAT", "h", at}));
  // INCR (as the converter ships it), APPEND, a hash write (client's case).
  // SET … KEEPTTL takes the expiry in the same record.
  EXPECT_EQ(Pass(Rec({"SET", "k", "2", "KEEPTTL"})), (std::vector<std::string>{"SET k 2 PXAT " + at}));
  EXPECT_EQ(Pass(Rec({"append", "h", "y"}, 0, RecordOp::kOrdered)),
            (std::vector<std::string>{"append h y", Restore("h")}));
  // The restore carries the write's context, not its doubts.
  const ChangeRecord doubtful =
      Rec({"APPEND", "h", "z"}, 0, RecordOp::kOrdered, kNeedsReadback | kAmbiguousOrder | kInTransaction);
  Pass(doubtful);
  ASSERT_GE(out_.records.size(), 2u);
  EXPECT_EQ(out_.records.back().flags, kInTransaction);
  EXPECT_EQ(out_.records.back().op, RecordOp::kIdempotent);
  EXPECT_EQ(out_.records.back().key, "h");
  // Another db's key of the same name is another key; an unknown key, or a
  // write that does not keep the expiry, gets nothing.
  EXPECT_EQ(Pass(Rec({"SET", "k", "3", "KEEPTTL"}, 1)).size(), 1u);
  EXPECT_EQ(Pass(Rec({"APPEND", "other", "y"})).size(), 1u);
  EXPECT_EQ(keeper_.stats().restored, 3u);
  EXPECT_EQ(keeper_.tracked_keys(), 2u);
}

// A RESTORE as the converter ships it (… REPLACE ABSTTL) makes the key anew
// with that expiry, or none; the consumer-group commands keep a stream's
// expiry like XADD does. Without these, a late replica kept a restored key
// an APPEND wrote after, and a stream whose group an XGROUP CREATE … MKSTREAM
// made anew, forever (found by a review).
TEST_F(ExpiryKeeperTest, RestoresSetTheExpiryAndConsumerGroupCommandsKeepIt) {
  const std::string at = std::to_string(kLater);
  Pass(Rec({"RESTORE", "r", at, "payload", "REPLACE", "ABSTTL"}, 0, RecordOp::kIdempotent));
  EXPECT_EQ(Pass(Rec({"APPEND", "r", "x"}, 0, RecordOp::kOrdered)),
            (std::vector<std::string>{"APPEND r x", Restore("r")}));
  // TTL 0: no expiry any more.
  Pass(Rec({"RESTORE", "r", "0", "payload", "REPLACE", "ABSTTL"}, 0, RecordOp::kIdempotent));
  EXPECT_EQ(Pass(Rec({"APPEND", "r", "y"}, 0, RecordOp::kOrdered)).size(), 1u);
  Pass(Rec({"XADD", "s", "1-1", "f", "v"}));
  Pass(Rec({"PEXPIREAT", "s", at}));
  for (const std::vector<std::string>& w :
       {std::vector<std::string>{"XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"},
        std::vector<std::string>{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"},
        std::vector<std::string>{"XCLAIM", "s", "g", "c", "0", "1-1", "TIME", "5", "JUSTID"},
        std::vector<std::string>{"XACK", "s", "g", "1-1"}}) {
    std::string line;
    for (const std::string& a : w) line += (line.empty() ? "" : " ") + a;
    ChangeRecord r = Rec(w, 0, RecordOp::kOrdered);
    r.key = "s";
    EXPECT_EQ(Pass(r), (std::vector<std::string>{line, Restore("s")})) << w[0];
  }
}

// What may have changed a key's expiry puts it in doubt: the next write
// that keeps the expiry is read back instead of shipped without one (a
// replica applying it after the expiry would keep the key forever; found
// by a review). What certainly removed it is forgotten. The keeper never
// gives a key an expiry the source's key may lack.
TEST_F(ExpiryKeeperTest, WhatMayChangeTheExpiryPutsItInDoubt) {
  const std::string at = std::to_string(kLater);
  auto expire = [&](const std::string& key, uint16_t db = 0) { Pass(Rec({"PEXPIREAT", key, at}, db)); };
  // What a later SADD of the key gets: "restore", "doubt" (read back) or "none".
  auto next = [&](const std::string& key, uint16_t db = 0) -> std::string {
    const size_t before = out_.records.size();
    const size_t n = Pass(Rec({"SADD", key, "m"}, db)).size();
    if (n == 2) return "restore";
    return out_.records[before].HasFlag(kNeedsReadback) ? "doubt" : "none";
  };
  expire("a");
  EXPECT_EQ(next("a"), "restore");
  // Certainly gone: a plain SET, PERSIST, DEL of two keys.
  Pass(Rec({"SET", "a", "v"}));
  EXPECT_EQ(next("a"), "none");
  expire("a");
  Pass(Rec({"PERSIST", "a"}));
  EXPECT_EQ(next("a"), "none");
  expire("a");
  expire("b");
  Pass(Rec({"DEL", "a", "b"}));
  EXPECT_EQ(next("a"), "none");
  EXPECT_EQ(next("b"), "none");
  // In doubt: RENAME's two keys, a removal that may empty the key, a read-back.
  expire("a");
  expire("b");
  Pass(Rec({"RENAME", "b", "a"}, 0, RecordOp::kOrdered));
  EXPECT_EQ(next("a"), "doubt");
  EXPECT_EQ(next("b"), "doubt");
  expire("s");  // (due within the 60 s a replica may lag: see the next test)
  Pass(Rec({"SREM", "s", "m"}));
  EXPECT_EQ(next("s"), "doubt");
  expire("r");
  ChangeRecord rb = Rec({}, 0, RecordOp::kReadback);
  rb.key = "r";
  Pass(rb);
  EXPECT_EQ(next("r"), "doubt");
  // A script: the keys it declares; one that declares none, every key.
  expire("x");
  expire("y");
  Pass(Rec({"EVAL", "return 1", "1", "x"}, 0, RecordOp::kOrdered));
  EXPECT_EQ(next("x"), "doubt");
  EXPECT_EQ(next("y"), "restore");
  ChangeRecord script = Rec({"EVAL", "redis.call('persist', ARGV[1])", "0", "y"}, 0, RecordOp::kOrdered);
  script.key.clear();
  Pass(script);
  EXPECT_EQ(next("y"), "doubt");
  // One that may flush or swap dbs, whatever keys it declares: every key.
  expire("z");
  Pass(Rec({"EVAL", "redis.call('FlushDB') return redis.call('set', KEYS[1], 1)", "1", "x"}, 0,
           RecordOp::kOrdered));
  EXPECT_EQ(next("z"), "doubt");
  // A record whose db is a guess: its key in every db.
  expire("g", 0);
  expire("g", 3);
  expire("h", 3);
  Pass(Rec({"HDEL", "g", "f"}, 0, RecordOp::kIdempotent, kUnknownDb));
  EXPECT_EQ(next("g", 0), "doubt");
  EXPECT_EQ(next("g", 3), "doubt");
  EXPECT_EQ(next("h", 3), "restore");
  Pass(Rec({"PEXPIREAT", "u", at}, 0, RecordOp::kIdempotent, kUnknownDb));  // teaches nothing
  EXPECT_EQ(next("u"), "none");
  // FLUSHDB empties its db; SWAPDB puts both dbs in doubt; FLUSHALL empties all.
  expire("f", 1);
  expire("f", 2);
  expire("f", 5);
  ChangeRecord flushdb = Rec({"FLUSHDB"}, 1, RecordOp::kDatabase);
  Pass(flushdb);
  EXPECT_EQ(next("f", 1), "none");
  EXPECT_EQ(next("f", 2), "restore");
  Pass(Rec({"SWAPDB", "2", "3"}, 0, RecordOp::kDatabase));  // the expiry moves to db 3, in doubt
  EXPECT_EQ(next("f", 2), "none");
  EXPECT_EQ(next("f", 3), "doubt");
  EXPECT_EQ(next("f", 5), "restore");
  Pass(Rec({"FLUSHALL"}, 0, RecordOp::kDatabase));
  EXPECT_EQ(next("f", 5), "none");
  // A FLUSHDB or SWAPDB of dbs that hold no expiry changes nothing.
  expire("k", 6);
  Pass(Rec({"FLUSHDB"}, 8, RecordOp::kDatabase));
  Pass(Rec({"SWAPDB", "8", "9"}, 0, RecordOp::kDatabase));
  EXPECT_EQ(next("k", 6), "restore");
  EXPECT_EQ(keeper_.stats().doubted_all, 3u);  // (the scripts without keys and with FLUSHDB, SWAPDB 2 3)
  // A record after a gap, and a command the table does not know: every key
  // known then; one set after it is sure again.
  expire("x");
  expire("w", 6);
  Pass(Rec({"SET", "z", "1"}, 0, RecordOp::kIdempotent, kAfterGap));
  expire("after");
  EXPECT_EQ(next("x"), "doubt");
  EXPECT_EQ(next("w", 6), "doubt");
  EXPECT_EQ(next("after"), "restore");
  expire("x");
  Pass(Rec({"JSON.SET", "j", "$", "1"}, 0, RecordOp::kOrdered));
  EXPECT_EQ(next("x"), "doubt");
  EXPECT_EQ(keeper_.stats().doubted_all, 5u);
}

// RENAME, RENAMENX, COPY and MOVE make a key that carries the source key's
// expiry: a later write that keeps it is read back (a review: SET a 1 PX
// 1500, RENAME a b, INCR b, replayed after a had expired, left b = 2 for
// good, unflagged). A key the capture knows no expiry of carries none. The
// empty key "" is a key: a read-back of it doubts it alone (a review saw
// every expiry doubted).
TEST_F(ExpiryKeeperTest, AKeyMadeFromAnotherCarriesItsExpiryInDoubt) {
  const std::string at = std::to_string(kLater);
  auto next = [&](const std::string& key, uint16_t db = 0) -> std::string {
    const size_t before = out_.records.size();
    const size_t n = Pass(Rec({"SADD", key, "m"}, db)).size();
    if (n == 2) return "restore";
    return out_.records[before].HasFlag(kNeedsReadback) ? "doubt" : "none";
  };
  for (const std::vector<std::string>& made :
       {std::vector<std::string>{"RENAME", "a", "b"}, {"RENAMENX", "a", "b"}, {"COPY", "a", "b"}}) {
    Pass(Rec({"SET", "a", "1", "PXAT", at}));
    Pass(Rec({"DEL", "b"}));
    EXPECT_EQ(next("b"), "none") << made[0];
    Pass(Rec(made, 0, RecordOp::kOrdered, kNeedsReadback));
    EXPECT_EQ(next("b"), "doubt") << made[0];
  }
  Pass(Rec({"SET", "a", "1", "PXAT", at}));
  Pass(Rec({"COPY", "a", "c", "DB", "4", "REPLACE"}, 0, RecordOp::kOrdered, kNeedsReadback));
  EXPECT_EQ(next("c", 4), "doubt");
  EXPECT_EQ(next("c", 0), "none");
  Pass(Rec({"SET", "m", "1", "PXAT", at}));
  Pass(Rec({"MOVE", "m", "7"}, 0, RecordOp::kOrdered, kNeedsReadback));
  EXPECT_EQ(next("m", 7), "doubt");
  Pass(Rec({"SET", "plain", "1"}));
  Pass(Rec({"RENAME", "plain", "p2"}, 0, RecordOp::kOrdered, kNeedsReadback));
  EXPECT_EQ(next("p2"), "none");
  // The empty key.
  Pass(Rec({"SET", "kept", "1", "PXAT", at}));
  ChangeRecord rb = Rec({}, 0, RecordOp::kReadback);
  rb.key = "";
  Pass(rb);
  EXPECT_EQ(next("kept"), "restore");
  EXPECT_EQ(keeper_.stats().doubted_all, 0u);
}

// An ordered removal that may empty the key (LTRIM, the list pops' LTRIMs,
// LREM, ZREMRANGEBYSCORE/RANK) leaves the key its expiry or no key: a later
// write made it anew without one. That expiry is not restored after a write
// that keeps it, and such a write is read back only if the expiry may pass
// within what a replica may lag, as for a PERSIST (a review: a sliding-window
// rate limiter, MULTI ZREMRANGEBYSCORE ZADD ZCARD EXPIRE 120, was read back
// whole on every request, its ZADD and its PEXPIREAT). An idempotent SREM,
// ZREM or HDEL still doubts: of a key from before the capture the replica
// may hold another value, which it empties or not (a review of the change).
TEST_F(ExpiryKeeperTest, AnOrderedRemovalThatMayEmptyTheKeyLeavesItsExpiryOrNone) {
  // What a later write of the key gets: "restore", "doubt" (read back) or "none".
  auto after = [&](const std::vector<std::string>& removal, int64_t expiry_in_ms, uint16_t removal_flags = 0,
                   RecordOp op = RecordOp::kOrdered) -> std::string {
    const std::string key = removal[1];
    Pass(Rec({"PEXPIREAT", key, std::to_string(kNowMs + expiry_in_ms)}));
    Pass(Rec(removal, 0, op, removal_flags));
    const size_t before = out_.records.size();
    const size_t n = Pass(Rec({"ZADD", key, "1", "m"})).size();
    if (n == 2) return "restore";
    return out_.records[before].HasFlag(kNeedsReadback) ? "doubt" : "none";
  };
  for (const auto& removal : std::vector<std::vector<std::string>>{{"LTRIM", "c", "1", "-1"},
                                                                   {"ZREMRANGEBYSCORE", "e", "0", "10"},
                                                                   {"ZREMRANGEBYRANK", "f", "0", "0"},
                                                                   {"LREM", "h", "0", "x"}}) {
    SCOPED_TRACE(removal[0]);
    EXPECT_EQ(after(removal, 3'600'000), "none");
    EXPECT_EQ(after(removal, 30'000), "doubt");  // a replica 30 s behind finds no key
  }
  for (const auto& removal :
       std::vector<std::vector<std::string>>{{"SREM", "a", "m"}, {"HDEL", "b", "f"}, {"ZREM", "d", "m"}}) {
    SCOPED_TRACE(removal[0]);
    EXPECT_EQ(after(removal, 3'600'000, 0, RecordOp::kIdempotent), "doubt");
  }
  // ZREMRANGEBYLEX is shipped flagged (its range may differ on the replica).
  EXPECT_EQ(after({"ZREMRANGEBYLEX", "g", "-", "[b"}, 3'600'000, kNeedsReadback), "doubt");
  // Without the removal the expiry is restored (the key certainly has it).
  Pass(Rec({"PEXPIREAT", "k", std::to_string(kNowMs + 3'600'000)}));
  EXPECT_EQ(Pass(Rec({"ZADD", "k", "1", "m"})).size(), 2u);
  // A removal in doubt itself (its order, a read-back) still doubts.
  EXPECT_EQ(after({"LTRIM", "s", "1", "-1"}, 3'600'000, kAmbiguousOrder | kNeedsReadback), "doubt");
  // Further writes and removals leave it so; a new expiry is known whole.
  Pass(Rec({"PEXPIREAT", "z", std::to_string(kNowMs + 3'600'000)}));
  Pass(Rec({"ZREMRANGEBYSCORE", "z", "0", "10"}, 0, RecordOp::kOrdered));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Pass(Rec({"ZADD", "z", "1", "m"})).size(), 1u);
    EXPECT_FALSE(out_.records.back().HasFlag(kNeedsReadback));
    Pass(Rec({"ZREMRANGEBYSCORE", "z", "0", "10"}, 0, RecordOp::kOrdered));
  }
  // The limiter's EXPIRE: its old expiry an hour off, not read back.
  Pass(Rec({"PEXPIREAT", "z", std::to_string(kNowMs + 3'700'000)}));
  EXPECT_FALSE(out_.records.back().HasFlag(kNeedsReadback));
  EXPECT_EQ(Pass(Rec({"ZADD", "z", "1", "m"})).size(), 2u) << "known whole again: restored";
  // Applied long after the capture (decode, hours later): read back.
  VectorSink out;
  ExpiryKeeper late(&out, {.apply_at_ms = static_cast<int64_t>(kNowMs) + 7'200'000});
  EmitRecord(&late, Rec({"PEXPIREAT", "p", std::to_string(kNowMs + 3'600'000)}), 1);
  EmitRecord(&late, Rec({"LTRIM", "p", "1", "-1"}, 0, RecordOp::kOrdered), 1);
  EmitRecord(&late, Rec({"LPUSH", "p", "x"}), 1);
  EXPECT_TRUE(out.records.back().HasFlag(kNeedsReadback));
}

// A PERSIST, or an expiry moved later, applied by a replica after the
// key's old expiry passed finds no key, and the source keeps one (a review
// found it: SET k v EX 1; PERSIST k, decoded later). It is read back when
// the old expiry was due within what a replica may lag behind (60 s, or,
// for decode, the time since the capture).
TEST_F(ExpiryKeeperTest, APersistOrALaterExpiryIsReadBackWhenTheOldOneWasNear) {
  auto persist_doubted = [&](int64_t expiry_in_ms) {
    Pass(Rec({"PEXPIREAT", "p", std::to_string(kNowMs + expiry_in_ms)}));
    Pass(Rec({"PERSIST", "p"}));
    return out_.records.back().HasFlag(kNeedsReadback);
  };
  EXPECT_TRUE(persist_doubted(5'000));
  EXPECT_FALSE(persist_doubted(3'600'000));
  Pass(Rec({"PEXPIREAT", "e", std::to_string(kNowMs + 5'000)}));
  Pass(Rec({"PEXPIREAT", "e", std::to_string(kNowMs + 2'000)}));  // earlier: gone sooner anyway
  EXPECT_FALSE(out_.records.back().HasFlag(kNeedsReadback));
  Pass(Rec({"PEXPIREAT", "e", std::to_string(kNowMs + 9'000)}));  // later
  EXPECT_TRUE(out_.records.back().HasFlag(kNeedsReadback));
  // Applied long after the capture (decode, hours later): any such write.
  VectorSink out;
  ExpiryKeeper late(&out, {.apply_at_ms = static_cast<int64_t>(kNowMs) + 7'200'000});
  EmitRecord(&late, Rec({"PEXPIREAT", "p", std::to_string(kNowMs + 3'600'000)}), 1);
  EmitRecord(&late, Rec({"PERSIST", "p"}), 1);
  EXPECT_TRUE(out.records.back().HasFlag(kNeedsReadback));
}

TEST_F(ExpiryKeeperTest, AnExpiryThatPassedBeforeTheWriteIsNotRestored) {
  // The key expired on the source before the write (by more than the
  // clocks' slack, 2 ms): the write made a new key without an expiry, and
  // so does the replica. Within the slack the order is not known.
  Pass(Rec({"SET", "k", "1", "PXAT", std::to_string(kNowMs + 100)}));
  EXPECT_EQ(Pass(Rec({"APPEND", "k", "1"}, 0, RecordOp::kOrdered, 0, kNowMs + 101)).size(), 2u);
  EXPECT_TRUE(out_.records[out_.records.size() - 2].HasFlag(kNeedsReadback));
  EXPECT_EQ(Pass(Rec({"SET", "k", "2", "KEEPTTL"}, 0, RecordOp::kIdempotent, 0, kNowMs + 102)).size(), 1u);
  EXPECT_EQ(keeper_.tracked_keys(), 0u);
  // An expiry already in the past removes the key: nothing to remember.
  Pass(Rec({"PEXPIREAT", "k", std::to_string(kNowMs - 10)}));
  EXPECT_EQ(keeper_.tracked_keys(), 0u);
  EXPECT_EQ(keeper_.stats().restored, 1u);
}

// The write ran somewhere between its request and its reply: an expiry
// that passed in between may have come before or after it (a review's
// case: INCR pipelined with DEBUG SLEEP, the key expiring meanwhile). The
// expiry is restored and the key read back; one that passed before the
// request is not restored.
TEST_F(ExpiryKeeperTest, AnExpiryPassingWhileTheWriteWasOnItsWayIsRestoredAndTheKeyReadBack) {
  Pass(Rec({"SET", "n", "1", "PXAT", std::to_string(kNowMs + 20)}));
  const ChangeRecord incr = Rec({"SET", "n", "2", "KEEPTTL"}, 0, RecordOp::kIdempotent, 0, kNowMs + 21);
  EXPECT_EQ(Pass(incr, kNowMs + 17),
            (std::vector<std::string>{"SET n 2 PXAT " + std::to_string(kNowMs + 20)}));
  EXPECT_TRUE(out_.records.back().HasFlag(kNeedsReadback));
  EXPECT_EQ(keeper_.stats().doubted, 1u);
  // Requested after the expiry: a new key, nothing restored.
  EXPECT_EQ(Pass(Rec({"SET", "n", "3", "KEEPTTL"}, 0, RecordOp::kIdempotent, 0, kNowMs + 30), kNowMs + 25),
            (std::vector<std::string>{"SET n 3 KEEPTTL"}));
  EXPECT_EQ(keeper_.tracked_keys(), 0u);
}

// Records in doubt themselves (a racing SET … PXAT, flagged for its order)
// teach only a doubtful expiry: the next write that keeps it is read back,
// not followed by an unflagged restore (which a read-back at the flagged
// record would have been undone by; a review lost 6 of 12 keys that way).
// A restore after a doubted write carries the doubt, so the read-back
// comes after it.
TEST_F(ExpiryKeeperTest, RecordsInDoubtPassTheirDoubtOn) {
  Pass(Rec({"SET", "k", "v", "PXAT", std::to_string(kLater)}, 0, RecordOp::kIdempotent,
           kAmbiguousOrder | kNeedsReadback));
  EXPECT_EQ(Pass(Rec({"APPEND", "k", "z"}, 0, RecordOp::kOrdered)).size(), 1u);
  EXPECT_TRUE(out_.records.back().HasFlag(kNeedsReadback));
  // A flagged plain SET may not have come last: the expiry is in doubt, not gone.
  Pass(Rec({"PEXPIREAT", "j", std::to_string(kLater)}));
  Pass(Rec({"SET", "j", "w"}, 0, RecordOp::kIdempotent, kAmbiguousOrder | kNeedsReadback));
  EXPECT_EQ(Pass(Rec({"APPEND", "j", "z"}, 0, RecordOp::kOrdered)).size(), 1u);
  EXPECT_TRUE(out_.records.back().HasFlag(kNeedsReadback));
  // A restore after a write the expiry may have passed during.
  Pass(Rec({"PEXPIREAT", "n", std::to_string(kNowMs + 20)}));
  EXPECT_EQ(Pass(Rec({"APPEND", "n", "z"}, 0, RecordOp::kOrdered, 0, kNowMs + 21), kNowMs + 17).size(), 2u);
  EXPECT_TRUE(out_.records.back().HasFlag(kNeedsReadback)) << "the restore";
}

// decode --rebase-time shifts capture times but not the absolute expiries
// clients gave (EXAT, PXAT, EXPIREAT): an expiry "before" a shifted write
// may well have been after it on the source (a review's case: SET k EXAT
// now+2, APPEND k, decoded 3.5 s later with --rebase-time). Nothing counts
// as passed: the expiry is restored and the key read back.
TEST(ExpiryKeeper, WithAShiftedClockNoExpiryCountsAsPassed) {
  VectorSink out;
  ExpiryOptions o;
  o.shifted_clock = true;
  ExpiryKeeper keeper(&out, o);
  const std::string at = std::to_string(kNowMs - 5'000);  // the source's clock: before the shifted times
  EmitRecord(&keeper, Rec({"SET", "k", "ab", "PXAT", at}), 1);
  EmitRecord(&keeper, Rec({"APPEND", "k", "c"}, 0, RecordOp::kOrdered), 1);
  ASSERT_EQ(out.records.size(), 3u);
  EXPECT_TRUE(out.records[1].HasFlag(kNeedsReadback));
  EXPECT_EQ(out.records[2].args, (std::vector<std::string>{"PEXPIREAT", "k", at}));
}

// A mirror that delays the client's direction captures requests late: an
// expiry that passed before a request's capture may not have passed before
// the server ran it, as far back as the delay the capture allows for
// (request_slack_ms). A review: an INCR captured 30 ms late was taken for
// one on a new key, `SET k 2 KEEPTTL` shipped, and the replica kept k forever.
TEST(ExpiryKeeper, ARequestCapturedLateMayHaveRunBeforeTheExpiry) {
  for (const int64_t slack : {int64_t{0}, int64_t{50}}) {
    SCOPED_TRACE(slack);
    VectorSink out;
    ExpiryOptions o;
    o.request_slack_ms = slack;
    ExpiryKeeper keeper(&out, o);
    const std::string at = std::to_string(kNowMs + 100);
    EmitRecord(&keeper, Rec({"SET", "k", "1", "PXAT", at}), 1);
    // Requested (captured) 30 ms after the expiry, answered at once.
    EmitRecord(&keeper, Rec({"SET", "k", "2", "KEEPTTL"}, 0, RecordOp::kIdempotent, 0, kNowMs + 131), 1,
               (kNowMs + 130) * 1'000'000);
    ASSERT_EQ(out.records.size(), 2u);
    if (slack == 0) {
      EXPECT_EQ(out.records[1].args, (std::vector<std::string>{"SET", "k", "2", "KEEPTTL"}));
      EXPECT_FALSE(out.records[1].HasFlag(kNeedsReadback));
    } else {
      EXPECT_EQ(out.records[1].args, (std::vector<std::string>{"SET", "k", "2", "PXAT", at}));
      EXPECT_TRUE(out.records[1].HasFlag(kNeedsReadback));
    }
  }
}

TEST(ExpiryKeeper, RemembersAtMostMaxKeysDroppingPassedExpiriesFirst) {
  VectorSink out;
  ExpiryOptions o;
  o.max_keys = 2;
  ExpiryKeeper keeper(&out, o);
  auto pass = [&](std::vector<std::string> args, uint64_t ms) {
    EmitRecord(&keeper, Rec(args, 0, RecordOp::kIdempotent, 0, ms), 1);
  };
  pass({"PEXPIREAT", "a", std::to_string(kNowMs + 10)}, kNowMs);
  pass({"PEXPIREAT", "b", std::to_string(kLater)}, kNowMs);
  pass({"PEXPIREAT", "c", std::to_string(kLater)}, kNowMs + 20);  // a's has passed: c takes its place
  EXPECT_EQ(keeper.tracked_keys(), 2u);
  EXPECT_EQ(keeper.stats().untracked, 0u);
  pass({"PEXPIREAT", "d", std::to_string(kLater)}, kNowMs + 30);  // full of live expiries
  EXPECT_EQ(keeper.stats().untracked, 1u);
  pass({"PEXPIREAT", "b", std::to_string(kLater + 1)}, kNowMs + 40);  // a known key is updated
  const size_t before = out.records.size();
  pass({"APPEND", "b", "x"}, kNowMs + 50);
  pass({"APPEND", "d", "x"}, kNowMs + 50);
  ASSERT_EQ(out.records.size(), before + 3);
  EXPECT_EQ(out.records[before + 1].args[2], std::to_string(kLater + 1));
  // d's expiry was turned away: its write is read back, not shipped as if d
  // had none (a replica applying it after the expiry would keep d forever);
  // a key never given an expiry is not.
  EXPECT_TRUE(out.records[before + 2].HasFlag(kNeedsReadback));
  EXPECT_EQ(keeper.stats().doubted_untracked, 1u);
  pass({"APPEND", "e", "x"}, kNowMs + 60);
  EXPECT_FALSE(out.records.back().HasFlag(kNeedsReadback));
  // Once every expiry turned away has passed, a write makes a key without
  // one on the source too.
  pass({"APPEND", "d", "x"}, kLater + 10);
  EXPECT_FALSE(out.records.back().HasFlag(kNeedsReadback));
  EXPECT_EQ(keeper.stats().doubted_untracked, 1u);
}

// The keys whose expiry the full table turned away are still looked up
// when the table has emptied since (a FLUSHDB of the db that filled it), and
// after a SWAPDB moved them to another db. A review: an INCR of such a key
// shipped as `SET … KEEPTTL` in both cases, the replica kept it forever.
TEST(ExpiryKeeper, ExpiriesTurnedAwayAreFollowedThroughFlushesAndSwaps) {
  for (const bool swap : {false, true}) {
    SCOPED_TRACE(swap ? "SWAPDB 0 1" : "FLUSHDB of the full db");
    VectorSink out;
    ExpiryOptions o;
    o.max_keys = 2;
    ExpiryKeeper keeper(&out, o);
    auto pass = [&](std::vector<std::string> args, uint16_t db, RecordOp op = RecordOp::kIdempotent) {
      EmitRecord(&keeper, Rec(args, db, op, 0, kNowMs), 1);
    };
    pass({"PEXPIREAT", "a", std::to_string(kLater)}, 2);
    pass({"PEXPIREAT", "b", std::to_string(kLater)}, 2);
    pass({"SET", "k", "5", "PXAT", std::to_string(kLater)}, 0);  // turned away
    ASSERT_EQ(keeper.stats().untracked, 1u);
    if (swap) {
      pass({"SWAPDB", "0", "1"}, 0, RecordOp::kDatabase);
    } else {
      pass({"FLUSHDB"}, 2, RecordOp::kDatabase);
      ASSERT_EQ(keeper.tracked_keys(), 0u);
    }
    pass({"SET", "k", "6", "KEEPTTL"}, swap ? 1 : 0);
    EXPECT_TRUE(out.records.back().HasFlag(kNeedsReadback));
    EXPECT_EQ(keeper.stats().doubted_untracked, 1u);
  }
}

// The keeper's table (open addressing, deletion by backward shift, growth)
// against a std::map, through the keeper's own rules: random expiries set,
// keys deleted, and adds that restore exactly the expiries the map holds.
TEST(ExpiryKeeper, ItsTableMatchesAMapThroughGrowthAndDeletion) {
  VectorSink out;
  ExpiryKeeper keeper(&out);
  std::map<std::pair<uint16_t, std::string>, int64_t> ref;
  uint64_t seed = 42;
  auto next = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed >> 33;
  };
  for (int i = 0; i < 40'000; ++i) {
    const uint16_t db = static_cast<uint16_t>(next() % 3);
    const std::string key = "k" + std::to_string(next() % 3000);
    const uint64_t op = next() % 10;
    const size_t before = out.records.size();
    if (op < 4) {
      const int64_t at = kLater + static_cast<int64_t>(next() % 1000);
      EmitRecord(&keeper, Rec({"PEXPIREAT", key, std::to_string(at)}, db), 1);
      ref[{db, key}] = at;
    } else if (op < 7) {
      EmitRecord(&keeper, Rec({"DEL", key}, db), 1);
      ref.erase({db, key});
    } else {
      EmitRecord(&keeper, Rec({"SADD", key, "m"}, db), 1);
      const auto it = ref.find({db, key});
      ASSERT_EQ(out.records.size() - before, it == ref.end() ? 1u : 2u) << i;
      if (it != ref.end()) ASSERT_EQ(out.records.back().args[2], std::to_string(it->second)) << i;
    }
    ASSERT_EQ(keeper.tracked_keys(), ref.size()) << i;
  }
  EXPECT_GT(keeper.stats().restored, 1000u);
}

// Records taken in batches (as the ambiguity tracker passes them on) come
// out in the same order, with the restores in place, and a batch with no
// expiry in it passes on whole.
TEST(ExpiryKeeper, BatchesComeOutAsSingleRecordsWould) {
  struct Runs : VectorSink {
    void EmitBatch(const RecordBatch& b, size_t begin, size_t end) override {
      ++runs;
      RecordSink::EmitBatch(b, begin, end);
    }
    int runs = 0;
  };
  std::vector<ChangeRecord> in = {Rec({"SET", "a", "1"}),
                                  Rec({"SET", "k", "1", "PXAT", std::to_string(kLater)}),
                                  Rec({"SET", "k", "2", "KEEPTTL"}),
                                  Rec({"HSET", "h", "f", "v"}),
                                  Rec({"SET", "k", "3", "KEEPTTL"}),
                                  Rec({"SET", "b", "1"}),
                                  Rec({"SET", "d", "1", "PXAT", std::to_string(kNowMs + 5)}),
                                  Rec({"APPEND", "d", "x"}, 0, RecordOp::kOrdered, 0, kNowMs + 10)};
  const uint64_t request_ns[] = {0, 0, 0, 0, 0, 0, 0, (kNowMs + 1) * 1'000'000};
  Runs one, batched;
  ExpiryKeeper a(&one), b(&batched);
  RecordBatch batch;
  for (size_t i = 0; i < in.size(); ++i) {
    EmitRecord(&a, in[i], 7, request_ns[i]);
    std::vector<std::string_view> args;
    RecordView v = RecordView::Of(in[i], &args);
    v.request_ns = request_ns[i];
    batch.Add(v, 7);
  }
  b.EmitBatch(batch, 0, batch.size());
  ASSERT_EQ(one.records.size(), in.size() + 1);  // the KEEPTTL SETs take their expiry in place
  ASSERT_EQ(batched.records.size(), one.records.size());
  for (size_t i = 0; i < one.records.size(); ++i) {
    EXPECT_EQ(batched.records[i].args, one.records[i].args) << i;
    EXPECT_EQ(batched.records[i].flags, one.records[i].flags) << i;
  }
  EXPECT_TRUE(batched.records[in.size() - 1].HasFlag(kNeedsReadback));  // the APPEND
  EXPECT_EQ(batched.runs, 3);
  Runs plain;
  ExpiryKeeper c(&plain);
  c.EmitBatch(batch, 0, 1);
  EXPECT_EQ(plain.runs, 1);
}

// The records (and, in `stats`, the keeper's counts) that come out of an
// ExpiryKeeper behind an ambiguity tracker for what `drive` does on one
// connection to the server on `port`, mirrored.
std::vector<ChangeRecord> KeptFromLive(int port, const std::function<void(MirroredClient&)>& drive,
                                       ExpiryStats* stats = nullptr) {
  VectorSink out;
  ExpiryKeeper keeper(&out);
  {
    AmbiguityTracker tracker(&keeper);
    MirroredClient c(port, &tracker, 1);
    EXPECT_TRUE(c.ok());
    if (c.ok()) drive(c);
    tracker.Flush();
  }
  if (stats != nullptr) *stats = keeper.stats();
  return std::move(out.records);
}

// The replay-lag case with a real server: SET with PX, then INCR and APPEND
// of keys with an expiry. Applied after the keys expired, the records alone
// left k=2 and h=xy with no expiry on the replica, forever; with the
// restored expiries the replica holds nothing, as the source. Applied in
// time, the keys and their expiries are the source's.
TEST(ExpiryKeeperLive, WritesKeepingAnExpiryDoNotResurrectTheKeyOnALateReplica) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kSource = 16444, kReplica = 16445;
  LiveRedis source(kSource), replica(kReplica);
  ASSERT_TRUE(source.ok() && replica.ok());
  ExpiryStats stats;
  const std::vector<ChangeRecord> records = KeptFromLive(
      kSource,
      [](MirroredClient& c) {
        c.Do({"SET", "k", "1", "PX", "400"});
        c.Do({"INCR", "k"});
        c.Do({"SET", "h", "x", "PX", "400"});
        c.Do({"APPEND", "h", "y"});
        c.Do({"HSET", "m", "f", "1"});
        c.Do({"PEXPIRE", "m", "400"});
        c.Do({"HINCRBY", "m", "f", "2"});
      },
      &stats);
  EXPECT_EQ(stats.restored, 3u);
  testing::Replica in_time(kReplica);
  ASSERT_TRUE(in_time.ok());
  in_time.Apply(records);
  RawClient r(kReplica);
  EXPECT_EQ(r.Send(Cmd({"GET", "k"}), 1), "$1\r\n2\r\n");
  EXPECT_EQ(r.Send(Cmd({"GET", "h"}), 1), "$2\r\nxy\r\n");
  for (const char* key : {"k", "h", "m"}) {
    const std::string pttl = r.Send(Cmd({"PTTL", key}), 1);
    EXPECT_EQ(pttl[0], ':') << pttl;
    EXPECT_GT(std::stoll(pttl.substr(1)), 0) << key << " " << pttl;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(RawClient(kSource).Send(Cmd({"DBSIZE"}), 1), ":0\r\n");
  r.Send(Cmd({"FLUSHALL"}), 1);
  testing::Replica late(kReplica);
  late.Apply(records);
  // (EXISTS: a SET … PXAT in the past leaves a key that has expired, not yet
  // collected.)
  EXPECT_EQ(r.Send(Cmd({"EXISTS", "k", "h", "m"}), 1), ":0\r\n") << "a key the source no longer holds";
}

// The sliding-window rate limiter and the capped list, as applications run
// them, captured from a real server: nothing is read back, and the replica
// holds what the source holds, expiries included.
TEST(ExpiryKeeperLive, ALimiterAndACappedListAreNotReadBack) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kSource = 16448, kReplica = 16449;  // (prior_test has 16446-16447)
  LiveRedis source(kSource), replica(kReplica);
  ASSERT_TRUE(source.ok() && replica.ok());
  const std::vector<ChangeRecord> records = KeptFromLive(kSource, [](MirroredClient& c) {
    for (int i = 0; i < 5; ++i) {
      const std::string now = std::to_string(1000 + i), floor = std::to_string(i - 2);
      c.Do(Cmd({"MULTI"}) + Cmd({"ZREMRANGEBYSCORE", "limit", "-inf", floor}) +
               Cmd({"ZADD", "limit", now, "req" + now}) + Cmd({"ZCARD", "limit"}) +
               Cmd({"EXPIRE", "limit", "120"}) + Cmd({"EXEC"}),
           6);
      c.Do(Cmd({"LPUSH", "recent", "item" + now}) + Cmd({"LTRIM", "recent", "0", "2"}) +
               Cmd({"EXPIRE", "recent", "300"}),
           3);
    }
  });
  ASSERT_FALSE(records.empty());
  for (const ChangeRecord& r : records) EXPECT_FALSE(r.HasFlag(kNeedsReadback)) << r.args[0] << " " << r.key;
  testing::Replica in_time(kReplica);
  ASSERT_TRUE(in_time.ok());
  in_time.Apply(records);
  RawClient src(kSource), dst(kReplica);
  for (const std::string& request :
       {Cmd({"ZRANGE", "limit", "0", "-1", "WITHSCORES"}), Cmd({"LRANGE", "recent", "0", "-1"})}) {
    EXPECT_EQ(dst.Send(request, 1), src.Send(request, 1)) << request;
  }
  for (const char* key : {"limit", "recent"}) {
    const std::string a = src.Send(Cmd({"PEXPIRETIME", key}), 1), b = dst.Send(Cmd({"PEXPIRETIME", key}), 1);
    ASSERT_EQ(a[0], ':');
    ASSERT_EQ(b[0], ':');
    EXPECT_NEAR(std::stoll(a.substr(1)), std::stoll(b.substr(1)), 1000) << key;
    EXPECT_GT(std::stoll(b.substr(1)), 0) << key;
  }
}

}  // namespace
}  // namespace kvf::resp
