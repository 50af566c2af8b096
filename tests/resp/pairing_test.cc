// Pairing and conversion, case by case, from real exchanges with a local
// redis-server (the replies are what the server sent, byte for byte).
#include <gtest/gtest.h>

#include "resp/ambiguity.h"
#include "resp/convert.h"
#include "tests/resp/mirror.h"

namespace kvf::resp {
namespace {

using namespace testing;  // NOLINT

constexpr int kPort = 16430;

class Pairing : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
    redis_ = std::make_unique<LiveRedis>(kPort);
    ASSERT_TRUE(redis_->ok());
    c_ = std::make_unique<MirroredClient>(kPort, &sink_, 7);
    ASSERT_TRUE(c_->ok());
  }
  // The records emitted since the last call, rendered as "db op flags key: args".
  std::vector<std::string> Take() {
    std::vector<std::string> out;
    for (const ChangeRecord& r : sink_.records) {
      std::string s = std::to_string(r.db) + " " + std::string(RecordOpName(r.op));
      if (r.flags) s += " f" + std::to_string(r.flags);
      s += " " + r.key + ":";
      for (const auto& a : r.args) s += " " + a;
      out.push_back(s);
    }
    sink_.records.clear();
    return out;
  }
  uint64_t LastCaptureMs() const { return sink_.records.back().capture_ns / 1000000; }

  VectorSink sink_;
  std::unique_ptr<LiveRedis> redis_;
  std::unique_ptr<MirroredClient> c_;
};

using V = std::vector<std::string>;
const std::string kIdem = std::string(RecordOpName(RecordOp::kIdempotent));
const std::string kOrd = std::string(RecordOpName(RecordOp::kOrdered));

TEST_F(Pairing, CountersBecomeSetOfTheRepliedValue) {
  c_->Do({"INCRBY", "n", "5"});
  c_->Do({"INCRBYFLOAT", "f", "1.25"});
  c_->Do({"HINCRBY", "h", "x", "3"});
  c_->Do({"ZINCRBY", "z", "2.5", "m"});
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " n: SET n 5 KEEPTTL", "0 " + kIdem + " f: SET f 1.25 KEEPTTL",
                       "0 " + kIdem + " h: HSET h x 3", "0 " + kIdem + " z: ZADD z 2.5 m"}));
}

TEST_F(Pairing, ConditionalWritesOnlyWhenTheReplySaysSo) {
  c_->Do({"SETNX", "a", "1"});
  c_->Do({"SETNX", "a", "2"});
  c_->Do({"SET", "b", "1", "XX"});
  c_->Do({"SET", "a", "3", "NX", "GET"});
  c_->Do({"HSETNX", "h", "f", "v"});
  c_->Do({"HSETNX", "h", "f", "w"});
  c_->Do({"MSETNX", "a", "9", "c", "9"});
  c_->Do({"EXPIRE", "nokey", "10"});
  c_->Do({"PERSIST", "a"});
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " a: SET a 1", "0 " + kIdem + " h: HSET h f v"}));
  EXPECT_EQ(c_->conn().stats().writes_no_effect, 7u);
}

TEST_F(Pairing, RelativeExpiriesBecomeAbsolute) {
  c_->Do({"SET", "k", "v", "EX", "100"});
  const uint64_t ms = LastCaptureMs();
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " k: SET k v PXAT " + std::to_string(ms + 100000)}));
  c_->Do({"PEXPIRE", "k", "5000"});
  const uint64_t ms2 = LastCaptureMs();
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " k: PEXPIREAT k " + std::to_string(ms2 + 5000)}));
  c_->Do({"SETEX", "k2", "7", "v"});
  const uint64_t ms3 = LastCaptureMs();
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " k2: SET k2 v PXAT " + std::to_string(ms3 + 7000)}));
  c_->Do({"GETEX", "k2", "EXAT", "4000000000"});
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " k2: PEXPIREAT k2 4000000000000"}));
}

TEST_F(Pairing, PopsRemoveExactlyWhatTheReplyReturned) {
  c_->Do({"SADD", "s", "a"});
  c_->Do({"ZADD", "z", "1", "a", "2", "b", "3", "c"});
  c_->Do({"RPUSH", "l", "1", "2", "3", "4"});
  Take();
  c_->Do({"SPOP", "s", "5"});
  c_->Do({"ZPOPMIN", "z", "2"});
  c_->Do({"LPOP", "l", "2"});
  c_->Do({"RPOP", "l"});
  c_->Do({"BZPOPMAX", "z", "0"});
  const int kR = kNeedsReadback;
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " s: SREM s a", "0 " + kIdem + " z: ZREM z a b",
                       "0 " + kOrd + " f" + std::to_string(kR) + " l: LTRIM l 2 -1",
                       "0 " + kOrd + " f" + std::to_string(kR) + " l: LTRIM l 0 -2",
                       "0 " + kIdem + " z: ZREM z c"}));
}

TEST_F(Pairing, Resp3ShapesConvertTheSame) {
  c_->Do({"HELLO", "3"});
  EXPECT_EQ(c_->conn().protocol(), 3);
  c_->Do({"ZADD", "z", "1", "a", "2", "b", "3", "c"});
  Take();
  c_->Do({"ZPOPMIN", "z", "2"});     // [[a, 1.0], [b, 2.0]]
  c_->Do({"ZINCRBY", "z", "1", "c"});  // double reply
  c_->Do({"ZMPOP", "1", "z", "MAX"});
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " z: ZREM z a b", "0 " + kIdem + " z: ZADD z 4 c",
                       "0 " + kIdem + " z: ZREM z c"}));
}

TEST_F(Pairing, XaddRecordsTheAssignedId) {
  const std::string reply = c_->Do({"XADD", "x", "*", "f", "v"});
  const std::string id = reply.substr(reply.find("\r\n") + 2, reply.size() - reply.find("\r\n") - 4);
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " x: XADD x " + id + " f v"}));
}

TEST_F(Pairing, MultiKeyWritesSplitPerKey) {
  c_->Do({"MSET", "a", "1", "b", "2"});
  c_->Do({"DEL", "a", "b", "c"});
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " a: SET a 1", "0 " + kIdem + " b: SET b 2", "0 " + kIdem + " a: DEL a",
                       "0 " + kIdem + " b: DEL b", "0 " + kIdem + " c: DEL c"}));
}

TEST_F(Pairing, UnknowableEffectsAreOrderedAndReadBack) {
  c_->Do({"APPEND", "a", "x"});
  c_->Do({"SUNIONSTORE", "dst", "s1", "s2"});
  c_->Do({"EVAL", "return redis.call('INCR', KEYS[1])", "2", "k1", "k2"});
  c_->Do({"FLUSHDB"});
  const std::string f = " f" + std::to_string(kNeedsReadback);
  EXPECT_EQ(Take(), (V{"0 " + kOrd + f + " a: APPEND a x", "0 " + kOrd + f + " dst: SUNIONSTORE dst s1 s2",
                       "0 " + kOrd + f + " k1: EVAL return redis.call('INCR', KEYS[1]) 2 k1 k2",
                       "0 " + std::string(RecordOpName(RecordOp::kReadback)) + f + " k2:",
                       "0 " + std::string(RecordOpName(RecordOp::kDatabase)) + " : FLUSHDB"}));
}

TEST_F(Pairing, RejectedWritesProduceNothing) {
  c_->Do({"SET", "s", "x"});
  Take();
  c_->Do({"INCR", "s"});
  c_->Do({"LPUSH", "s", "x"});
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(c_->conn().stats().writes_rejected, 2u);
}

TEST_F(Pairing, TransactionsMapExecRepliesToQueuedCommands) {
  c_->Do(Cmd({"MULTI"}) + Cmd({"SET", "a", "1"}) + Cmd({"INCR", "n"}) + Cmd({"SELECT", "2"}) +
             Cmd({"INCR", "n"}) + Cmd({"EXEC"}),
         6);
  const std::string t = " f" + std::to_string(kInTransaction);
  EXPECT_EQ(Take(), (V{"0 " + kIdem + t + " a: SET a 1", "0 " + kIdem + t + " n: SET n 1 KEEPTTL",
                       "2 " + kIdem + t + " n: SET n 1 KEEPTTL"}));
  EXPECT_EQ(c_->conn().db(), 2);
  EXPECT_FALSE(c_->conn().in_multi());
}

TEST_F(Pairing, ExecAbortAndWatchDiscardEverything) {
  MirroredClient other(kPort, &sink_, 8);
  c_->Do(Cmd({"MULTI"}) + Cmd({"SET", "a", "1"}) + Cmd({"SET"}) + Cmd({"EXEC"}), 4);
  c_->Do({"WATCH", "w"});
  other.Do({"SET", "w", "1"});
  Take();
  c_->Do(Cmd({"MULTI"}) + Cmd({"SET", "a", "1"}) + Cmd({"EXEC"}), 3);
  c_->Do(Cmd({"MULTI"}) + Cmd({"SET", "a", "1"}) + Cmd({"DISCARD"}), 3);
  EXPECT_TRUE(Take().empty());
  EXPECT_EQ(c_->conn().stats().exec_aborted, 1u);
  EXPECT_EQ(c_->conn().stats().watch_aborted, 1u);
}

TEST_F(Pairing, SelectAndResetTrackTheDb) {
  c_->Do({"SELECT", "5"});
  c_->Do({"SET", "a", "1"});
  c_->Do({"SELECT", "99"});  // refused: stays in 5
  c_->Do({"SET", "b", "1"});
  c_->Do({"RESET"});
  c_->Do({"SET", "c", "1"});
  EXPECT_EQ(Take(), (V{"5 " + kIdem + " a: SET a 1", "5 " + kIdem + " b: SET b 1", "0 " + kIdem + " c: SET c 1"}));
}

TEST_F(Pairing, ClientReplyOffMakesWritesReadBacks) {
  c_->Do(Cmd({"CLIENT", "REPLY", "OFF"}) + Cmd({"SET", "a", "1"}), 0);
  c_->Do(Cmd({"CLIENT", "REPLY", "ON"}), 1);
  c_->Do(Cmd({"CLIENT", "REPLY", "SKIP"}) + Cmd({"SET", "b", "1"}) + Cmd({"SET", "c", "1"}), 1);
  const std::string rb = std::string(RecordOpName(RecordOp::kReadback)) + " f" + std::to_string(kNeedsReadback);
  EXPECT_EQ(Take(), (V{"0 " + rb + " a:", "0 " + rb + " b:", "0 " + kIdem + " c: SET c 1"}));
  EXPECT_EQ(c_->conn().stats().unpaired_replies, 0u);
}

TEST_F(Pairing, AuthPasswordNeverLeavesTheLayer) {
  c_->Do({"CONFIG", "SET", "requirepass", "s3cret-pw"});
  c_->Do({"AUTH", "s3cret-pw"});
  c_->Do({"AUTH", "default", "s3cret-pw"});
  c_->Do({"HELLO", "2", "AUTH", "default", "s3cret-pw"});
  c_->Do({"MIGRATE", "127.0.0.1", "1", "", "0", "10", "AUTH", "s3cret-pw", "KEYS", "k"});
  c_->Do({"SET", "a", "1"});
  for (const ChangeRecord& r : sink_.records) {
    EXPECT_EQ(r.key.find("s3cret"), std::string::npos);
    for (const auto& a : r.args) EXPECT_EQ(a.find("s3cret"), std::string::npos);
  }
  EXPECT_EQ(Take().back(), "0 " + kIdem + " a: SET a 1");
  c_->Do({"CONFIG", "SET", "requirepass", ""});
}

TEST_F(Pairing, ReplayerConnectionsAreNotCaptured) {
  c_->Do({"CLIENT", "SETNAME", "kvferry:siteB"});
  EXPECT_TRUE(c_->conn().replayer());
  c_->Do({"SET", "a", "1"});
  EXPECT_TRUE(Take().empty());
  c_->Do({"CLIENT", "SETNAME", "app"});
  c_->Do({"SET", "a", "2"});
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " a: SET a 2"}));
}

TEST_F(Pairing, SubscriberAndMonitorConnectionsAreIgnored) {
  MirroredClient sub(kPort, &sink_, 9), mon(kPort, &sink_, 10);
  sub.Do({"SUBSCRIBE", "ch"});
  EXPECT_TRUE(sub.conn().ignored());
  mon.Do({"MONITOR"});
  EXPECT_TRUE(mon.conn().ignored());
  c_->Do({"PUBLISH", "ch", "hello"});
  c_->Do({"SET", "a", "1"});
  sub.ReceiveMirrored(1);
  mon.ReceiveMirrored(2);
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " a: SET a 1"}));
  EXPECT_GT(sub.conn().stats().ignored_bytes + mon.conn().stats().ignored_bytes, 0u);
}

TEST_F(Pairing, Resp3SubscribeKeepsPairingWithPushes) {
  c_->Do({"HELLO", "3"});
  c_->Do(Cmd({"SUBSCRIBE", "ch"}), 1);  // answered by a push
  MirroredClient pub(kPort, &sink_, 11);
  pub.Do({"PUBLISH", "ch", "m"});
  c_->Do(Cmd({"SET", "a", "1"}), 2);  // the message push, then +OK
  EXPECT_FALSE(c_->conn().ignored());
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " a: SET a 1"}));
  EXPECT_EQ(c_->conn().stats().pushes, 2u);
}

TEST_F(Pairing, BlockingPopBecomesAWriteWhenItsReplyArrives) {
  MirroredClient pusher(kPort, &sink_, 12);
  c_->SendOnly(Cmd({"BLMOVE", "src", "dst", "LEFT", "RIGHT", "5"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(Take().empty());
  pusher.Do({"RPUSH", "src", "job"});
  c_->ReceiveMirrored(1);
  const std::string f = " f" + std::to_string(kNeedsReadback);
  EXPECT_EQ(Take(), (V{"0 " + kOrd + f + " src: RPUSH src job", "0 " + kOrd + f + " src: LTRIM src 1 -1",
                       "0 " + kOrd + f + " dst: RPUSH dst job"}));
}

TEST_F(Pairing, PipelinedRequestsPairInOrderAcrossSplitSegments) {
  std::string req, all;
  for (int i = 0; i < 20; ++i) req += Cmd({"INCR", "n"});
  const std::string reply = c_->raw().Send(req, 20);
  // Mirror in awkward pieces, interleaving the directions (a reply is never
  // captured before its request is complete).
  Connection conn(&sink_, {});
  for (size_t i = 0, j = 0; i < req.size() || j < reply.size(); i += 29, j += 3) {
    if (i < req.size()) conn.OnData(Direction::kClientToServer, std::string_view(req).substr(i, 29), 1);
    if (j < reply.size()) conn.OnData(Direction::kServerToClient, std::string_view(reply).substr(j, 3), 2);
  }
  EXPECT_EQ(conn.stats().desyncs, 0u);
  auto recs = Take();
  ASSERT_EQ(recs.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(recs[i], "0 " + kIdem + " n: SET n " + std::to_string(i + 1) + " KEEPTTL");
}

TEST_F(Pairing, GapsFlagAndReadBackThenResync) {
  ConnectionOptions o;
  o.after_gap_records = 2;
  Connection conn(&sink_, o);
  RawClient& raw = c_->raw();
  auto exchange = [&](const std::string& req, uint64_t t) {
    const std::string rep = raw.Send(req, 1);
    conn.OnData(Direction::kClientToServer, req, t);
    conn.OnData(Direction::kServerToClient, rep, t + 1);
  };
  exchange(Cmd({"SELECT", "3"}), 10);
  exchange(Cmd({"SET", "a", "1"}), 20);
  // A request is sent and lost in capture; its reply is seen.
  const std::string lost = Cmd({"SET", "lost", "1"});
  const std::string lost_reply = raw.Send(lost, 1);
  conn.OnGap(Direction::kClientToServer, lost.size());
  conn.OnData(Direction::kServerToClient, lost_reply, 31);
  exchange(Cmd({"SET", "b", "1"}), 40);
  exchange(Cmd({"SET", "c", "1"}), 50);
  exchange(Cmd({"SET", "d", "1"}), 60);
  const uint16_t g = kAfterGap | kNeedsReadback | kUnknownDb;
  EXPECT_EQ(Take(), (V{"3 " + kIdem + " a: SET a 1", "3 " + kIdem + " f" + std::to_string(g) + " b: SET b 1",
                       "3 " + kIdem + " f" + std::to_string(g) + " c: SET c 1",
                       "3 " + kIdem + " f" + std::to_string(kUnknownDb) + " d: SET d 1"}));
  EXPECT_EQ(conn.stats().gaps, 1u);
  EXPECT_EQ(conn.stats().unpaired_replies, 1u);
  exchange(Cmd({"SELECT", "3"}), 70);  // proves the db again
  exchange(Cmd({"SET", "e", "1"}), 80);
  EXPECT_EQ(Take(), (V{"3 " + kIdem + " e: SET e 1"}));
}

TEST_F(Pairing, MidStreamJoinStartsWithAnUnknownDb) {
  ConnectionOptions o;
  o.joined_mid_stream = true;
  o.after_gap_records = 0;
  Connection conn(&sink_, o);
  // The join happens mid-reply of an earlier request.
  const std::string r0 = c_->raw().Send(Cmd({"ECHO", "hello world"}), 1);
  conn.OnData(Direction::kServerToClient, r0.substr(6), 1);
  const std::string req = Cmd({"SET", "a", "1"});
  conn.OnData(Direction::kClientToServer, req, 2);
  conn.OnData(Direction::kServerToClient, c_->raw().Send(req, 1), 3);
  EXPECT_FALSE(conn.db_known());
  EXPECT_EQ(Take(), (V{"0 " + kIdem + " f" + std::to_string(kUnknownDb) + " a: SET a 1"}));
}

TEST(PairingOffline, AReplyThatDoesNotFitItsCommandMeansLostSync) {
  VectorSink sink;
  Connection conn(&sink, {});
  conn.OnData(Direction::kClientToServer, Cmd({"INCR", "n"}) + Cmd({"SET", "k", "v"}), 1);
  conn.OnData(Direction::kServerToClient, "+OK\r\n+OK\r\n", 2);  // INCR answered +OK: off by one
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[0].op, RecordOp::kReadback);
  EXPECT_EQ(sink.records[0].key, "n");
  EXPECT_EQ(sink.records[1].op, RecordOp::kReadback);  // SET k was waiting: read back too
  EXPECT_TRUE(sink.records[1].HasFlag(kAfterGap));
  EXPECT_EQ(conn.stats().bad_shapes, 1u);
  EXPECT_FALSE(conn.in_sync());
  // The next request after a quiet point re-establishes pairing.
  conn.OnData(Direction::kClientToServer, Cmd({"SET", "a", "1"}), 3);
  conn.OnData(Direction::kServerToClient, "+OK\r\n", 4);
  EXPECT_TRUE(conn.in_sync());
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(sink.records[2].args, (std::vector<std::string>{"SET", "a", "1"}));
  EXPECT_TRUE(sink.records[2].HasFlag(kAfterGap));
}

TEST(PairingOffline, GarbageAndRepliesWithoutRequestsStayBounded) {
  VectorSink sink;
  ConnectionOptions o;
  o.max_pending_requests = 8;
  Connection conn(&sink, o);
  conn.OnData(Direction::kServerToClient, ":1\r\n:2\r\n", 1);
  EXPECT_EQ(conn.stats().unpaired_replies, 2u);
  std::string flood;
  for (int i = 0; i < 100; ++i) flood += Cmd({"SET", "k" + std::to_string(i), "v"});
  conn.OnData(Direction::kClientToServer, flood, 2);
  EXPECT_GT(conn.stats().overflows, 0u);
  conn.OnData(Direction::kClientToServer, std::string("\x00\xff*9999999999\r\n$-5\r\n", 20), 3);
  conn.OnData(Direction::kServerToClient, "$999999999999\r\n", 4);
  EXPECT_GT(conn.stats().parse_errors, 0u);
  conn.OnClose(CloseReason::kFin);
  for (const ChangeRecord& r : sink.records) EXPECT_EQ(r.op, RecordOp::kReadback);
}

TEST(Ambiguity, WritesFromTwoConnectionsInsideTheWindowAreBothFlagged) {
  VectorSink out;
  AmbiguityOptions o;
  o.window_ns = 1000;
  AmbiguityTracker t(&out, o);
  auto rec = [](std::string key, uint64_t ts) {
    ChangeRecord r;
    r.key = std::move(key);
    r.capture_ns = ts;
    r.args = {"SET", r.key, "v"};
    return r;
  };
  t.Emit(rec("k", 10'000), 1);
  t.Emit(rec("k", 10'500), 2);  // other connection, 500 ns later: ambiguous
  t.Emit(rec("k", 10'600), 2);  // same connection: ordered by the wire... but still inside c1's window
  t.Emit(rec("j", 10'700), 1);
  t.Emit(rec("j", 12'000), 2);  // outside the window
  EXPECT_EQ(out.records.size(), 0u) << "records are held for one window";
  t.Advance(13'000);
  EXPECT_EQ(out.records.size(), 4u);
  t.Flush();
  ASSERT_EQ(out.records.size(), 5u);
  const uint16_t both = kAmbiguousOrder | kNeedsReadback;
  EXPECT_EQ(out.records[0].flags, both);
  EXPECT_EQ(out.records[1].flags, both);
  EXPECT_EQ(out.records[2].flags, both);  // within 1000 ns of connection 1's write
  EXPECT_EQ(out.records[3].flags, 0);
  EXPECT_EQ(out.records[4].flags, 0);
  EXPECT_EQ(t.stats().ambiguous, 3u);
}

TEST(Ambiguity, MemoryStaysBounded) {
  VectorSink out;
  AmbiguityOptions o;
  o.window_ns = 1'000'000'000;
  o.max_keys = 100;
  o.max_held = 50;
  AmbiguityTracker t(&out, o);
  for (int i = 0; i < 10000; ++i) {
    ChangeRecord r;
    r.key = "k" + std::to_string(i % 1000);
    r.capture_ns = 1000 + i;
    t.Emit(std::move(r), i % 3);
    ASSERT_LE(t.held(), 50u);
    ASSERT_LE(t.tracked_keys(), 100u);
  }
  t.Flush();
  EXPECT_EQ(out.records.size(), 10000u);
  EXPECT_GT(t.stats().forced_releases, 0u);
}

}  // namespace
}  // namespace kvf::resp
