// ctl/failover.h: which keys a failover threw away, in the orders capture's
// workers may see a failover in (decode sees it in capture order).
#include "ctl/failover.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "dataplane/endpoint.h"

namespace kvf::ctl {
namespace {

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;  // 2023-11-14 22:13:20 UTC
constexpr uint64_t kMs = 1'000'000;

// Records as "op db key @ms after kT0".
struct Collect : resp::RecordSink {
  void Emit(const RecordView& r, uint64_t connection_id) override {
    seen.push_back(std::string(r.op == RecordOp::kReadback ? "readback " : "write ") + std::to_string(r.db) +
                   " " + std::string(r.key) + " @" + std::to_string((r.capture_ns - kT0) / kMs) + " conn " +
                   std::to_string(connection_id) + (r.HasFlag(kNeedsReadback) ? " flagged" : "") +
                   (r.HasFlag(kUnknownDb) ? " unknown_db" : ""));
  }
  std::vector<std::string> seen;
};

dataplane::Endpoint Server(const char* s) {
  auto e = dataplane::Endpoint::Parse(s);
  EXPECT_TRUE(e.ok());
  return *e;
}

RecordView Write(uint16_t db, std::string_view key, uint64_t at_ms, RecordOp op = RecordOp::kIdempotent) {
  RecordView v;
  v.capture_ns = kT0 + at_ms * kMs;
  v.db = db;
  v.op = op;
  v.key = key;
  return v;
}

struct FailoverTest : ::testing::Test {
  FailoverTest() {
    failovers.set_on_change([this](const std::string& s) { told.push_back(s); });
  }
  Failovers failovers{"capture"};
  Collect out;
  std::vector<std::string> told;
  // Two connections to the old master (as on two workers), one to the new.
  FailoverWire old_a{nullptr, Server("10.0.0.2:6379"), Server("10.0.0.99:50000"), &failovers, &out, 1};
  FailoverWire old_b{nullptr, Server("10.0.0.2:6379"), Server("10.0.0.99:50000"), &failovers, &out, 2};
  FailoverWire made{nullptr, Server("10.0.0.3:6379"), Server("10.0.0.99:50000"), &failovers, &out, 3};
};

TEST_F(FailoverTest, WritesOfTheOldMasterAfterThePromotionAreReadBackAtItsDemotion) {
  old_a.Emit(Write(0, "before", 10), 1);
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  EXPECT_TRUE(failovers.recording());
  old_a.Emit(Write(0, "k", 100), 1);
  old_b.Emit(Write(2, "k", 110), 2);
  old_b.Emit(Write(0, "k", 120), 2);   // one read-back per key and db
  made.Emit(Write(0, "new", 130), 3);  // the new master's writes stand
  old_b.OnRoleChange("10.0.0.3:6379", kT0 + 500 * kMs, true);
  EXPECT_EQ(out.seen, (std::vector<std::string>{"write 0 before @10 conn 1", "write 0 k @100 conn 1",
                                                "write 2 k @110 conn 2", "write 0 k @120 conn 2",
                                                "write 0 new @130 conn 3", "readback 0 k @500 conn 2 flagged",
                                                "readback 2 k @500 conn 2 flagged"}));
  EXPECT_EQ(failovers.role_changes(), 2u);
  EXPECT_EQ(failovers.readbacks(), 2u);
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[0],
            "10.0.0.3:6379 was made a master at 2023-11-14 22:13:20.050 UTC (REPLICAOF NO ONE answered)");
  EXPECT_EQ(told[1],
            "10.0.0.2:6379 was made a replica of 10.0.0.3:6379 at 2023-11-14 22:13:20.500 UTC (REPLICAOF "
            "answered), 0.5 s after 10.0.0.3:6379 was made a master: Redis threw away the writes "
            "10.0.0.2:6379 took in between; 2 key(s) written there then are read back (flagged)");
}

// A write whose db was a guess (a connection joined mid-stream) is read back
// flagged so, in its every db: the repair reads the key wherever it is (a
// review: the read-back read db 0 for a key written in db 3, unflagged).
// The same key written in a known db is read back too, once.
TEST_F(FailoverTest, AWriteOfAGuessedDbIsReadBackWithTheDbInDoubt) {
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  RecordView guessed = Write(0, "k", 100);
  guessed.flags = kNeedsReadback | kAfterGap | kUnknownDb;
  old_a.Emit(guessed, 1);
  old_b.Emit(Write(0, "k", 110), 2);
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 500 * kMs, true);
  ASSERT_EQ(out.seen.size(), 4u);
  EXPECT_EQ(out.seen[2], "readback 0 k @500 conn 1 flagged");
  EXPECT_EQ(out.seen[3], "readback 0 k @500 conn 1 flagged unknown_db");
  // Seen after the demotion that threw it away (another worker): at once.
  old_b.Emit(guessed, 2);
  ASSERT_EQ(out.seen.size(), 6u);
  EXPECT_EQ(out.seen[5], "readback 0 k @100 conn 2 flagged unknown_db");
}

// A hot key written again when the keys kept are near the cap is kept
// already, and costs nothing more: the failover reads back every key
// rather than saying to resynchronise (a review's suspicion).
TEST(Failovers, AKeyWrittenAgainNearTheCapOverflowsNothing) {
  struct Count : resp::RecordSink {
    void Emit(const RecordView& r, uint64_t) override { readbacks += r.op == RecordOp::kReadback; }
    size_t readbacks = 0;
  } out;
  Failovers failovers("capture");
  FailoverWire old_a{nullptr, Server("10.0.0.2:6379"), Server("10.0.0.99:50000"), &failovers, &out, 1};
  FailoverWire made{nullptr, Server("10.0.0.3:6379"), Server("10.0.0.99:50000"), &failovers, &out, 2};
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  const size_t n = Failovers::kMaxKeyBytes / (8 + Failovers::kEntryBytes);  // 8-byte keys, to the cap
  char key[16];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(key, sizeof(key), "%08zu", i);
    old_a.Emit(Write(0, key, 100), 1);
  }
  old_a.Emit(Write(0, "00000007", 200), 1);  // kept already
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 500 * kMs, true);
  EXPECT_EQ(out.readbacks, n);
  EXPECT_EQ(failovers.readbacks(), n);
  // One more distinct key would have overflowed: then nothing is read back.
  Failovers full("capture");
  FailoverWire a{nullptr, Server("10.0.0.2:6379"), Server("10.0.0.99:50000"), &full, &out, 1};
  FailoverWire m{nullptr, Server("10.0.0.3:6379"), Server("10.0.0.99:50000"), &full, &out, 2};
  m.OnRoleChange("", kT0 + 50 * kMs, true);
  for (size_t i = 0; i <= n; ++i) {
    std::snprintf(key, sizeof(key), "%08zu", i);
    a.Emit(Write(0, key, 100), 1);
  }
  a.OnRoleChange("10.0.0.3:6379", kT0 + 500 * kMs, true);
  EXPECT_EQ(full.readbacks(), 0u);
}

// Capture's workers: the demotion seen on one before a write it threw away
// is seen on another. That write is read back right after it; one from
// before the promotion, or after the demotion, is not.
TEST_F(FailoverTest, AWriteSeenAfterTheDemotionThatThrewItAwayIsReadBackAtOnce) {
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 500 * kMs, true);
  old_b.Emit(Write(0, "early", 40), 2);
  old_b.Emit(Write(0, "late", 300), 2);
  old_b.Emit(Write(0, "after", 600), 2);
  EXPECT_EQ(out.seen,
            (std::vector<std::string>{"write 0 early @40 conn 2", "write 0 late @300 conn 2",
                                      "readback 0 late @300 conn 2 flagged", "write 0 after @600 conn 2"}));
  EXPECT_EQ(failovers.readbacks(), 1u);
  // A database-wide write seen that late: no read-back undoes it.
  old_b.Emit(Write(0, "", 200, RecordOp::kDatabase), 2);
  ASSERT_FALSE(told.empty());
  EXPECT_NE(told.back().find("10.0.0.2:6379 took a database-wide write (FLUSHDB, SWAPDB…, a script that "
                             "declares no keys) between the promotion and its demotion, seen only now: "
                             "resynchronise"),
            std::string::npos)
      << told.back();
}

TEST_F(FailoverTest, ADatabaseWideWriteInTheWindowSaysToResynchronise) {
  // A script that declares no keys is as database-wide (a review: the old
  // master's EVAL … 0 was shipped, and the report said it wrote nothing);
  // the empty key is a key.
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  RecordView empty_key = Write(0, "", 90);
  const std::string_view set_args[] = {"SET", "", "v"};
  empty_key.args = set_args;
  old_a.Emit(empty_key, 1);
  old_b.OnRoleChange("10.0.0.3:6379", kT0 + 95 * kMs, true);
  EXPECT_EQ(out.seen.back(), "readback 0  @95 conn 2 flagged");
  made.OnRoleChange("", kT0 + 96 * kMs, true);
  RecordView script = Write(0, "", 100, RecordOp::kOrdered);
  const std::string_view args[] = {"EVAL", "return redis.call('SET', 'x', ARGV[1])", "0", "z"};
  script.args = args;
  old_a.Emit(script, 1);
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 120 * kMs, true);
  ASSERT_FALSE(told.empty());
  EXPECT_NE(told.back().find("resynchronise"), std::string::npos) << told.back();
  told.clear();
  made.OnRoleChange("", kT0 + 130 * kMs, true);
  old_a.Emit(Write(0, "k", 140), 1);
  old_a.Emit(Write(0, "", 150, RecordOp::kDatabase), 1);
  old_a.Emit(Write(0, "j", 120), 1);  // not kept any more: the whole dataset is in doubt
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 500 * kMs, false);
  EXPECT_EQ(failovers.readbacks(), 1u);  // the empty key's, above
  ASSERT_EQ(told.size(), 2u);
  EXPECT_NE(told[1].find("(REPLICAOF sent with its reply silenced), 0.4 s after 10.0.0.3:6379 was made a "
                         "master: Redis threw away the writes 10.0.0.2:6379 took in between; a database-wide "
                         "write (FLUSHDB, SWAPDB…, a script that declares no keys), or more keys than "
                         "capture keeps, was among "
                         "them: "
                         "resynchronise"),
            std::string::npos)
      << told[1];
  // The next failover starts clean: the demoted server's writes are kept
  // again once another server is made a master.
  old_a.OnRoleChange("", kT0 + 900 * kMs, true);
  made.Emit(Write(0, "m", 950), 3);
  made.OnRoleChange("10.0.0.2:6379", kT0 + 990 * kMs, true);
  EXPECT_EQ(out.seen.back(), "readback 0 m @990 conn 3 flagged");
}

// A server promoted that never replicated the one promoted before it: that
// one's writes since its own promotion are gone once it is made the new
// master's replica (a review, Sentinel live: an abandoned failover then a
// second choice, or an operator's failback, lost them unflagged). One that
// did replicate it has them: only what came after its promotion is read
// back.
TEST_F(FailoverTest, TheLatestMastersWritesAreKeptUntilEveryOtherServerReplicatesIt) {
  FailoverWire third{nullptr, Server("10.0.0.4:6379"), Server("10.0.0.99:50000"), &failovers, &out, 4};
  made.OnRoleChange("", kT0 + 10 * kMs, true);  // 10.0.0.3
  made.Emit(Write(0, "onB", 20), 3);
  third.OnRoleChange("", kT0 + 30 * kMs, true);  // 10.0.0.4, never a replica of 10.0.0.3
  made.OnRoleChange("10.0.0.4:6379", kT0 + 40 * kMs, true);
  EXPECT_EQ(out.seen.back(), "readback 0 onB @40 conn 3 flagged");
  EXPECT_NE(told.back().find("1 key(s) written there then are read back"), std::string::npos) << told.back();

  // Now every other server replicates the latest master: its writes are
  // safe, and no longer kept.
  out.seen.clear();
  old_a.OnRoleChange("10.0.0.4:6379", kT0 + 50 * kMs, true);
  EXPECT_FALSE(failovers.Keeps("10.0.0.4:6379"));
  third.Emit(Write(0, "onD", 60), 4);
  // 10.0.0.3, its replica, is promoted: 10.0.0.4's writes stand in it.
  made.OnRoleChange("", kT0 + 70 * kMs, true);
  third.Emit(Write(0, "late", 80), 4);
  third.OnRoleChange("10.0.0.3:6379", kT0 + 90 * kMs, true);
  EXPECT_EQ(out.seen, (std::vector<std::string>{"write 0 onD @60 conn 4", "write 0 late @80 conn 4",
                                                "readback 0 late @90 conn 4 flagged"}));
}

// A third review's sequences: a master told REPLICAOF NO ONE again changes
// nothing; a master's database-wide write is forgiven once every other
// server replicates it; a master named by its IPv6 address in REPLICAOF's
// form is recognised; a master's write seen by another worker after its
// demotion is read back at once, from its own promotion on.
TEST_F(FailoverTest, RepeatedPromotionsForgivenWritesAndLateWritesOfAMaster) {
  FailoverWire third{nullptr, Server("10.0.0.4:6379"), Server("10.0.0.99:50000"), &failovers, &out, 4};
  made.OnRoleChange("", kT0 + 10 * kMs, true);  // B
  made.Emit(Write(0, "b1", 20), 3);
  third.OnRoleChange("10.0.0.3:6379", kT0 + 25 * kMs, true);
  made.OnRoleChange("", kT0 + 30 * kMs, true);  // again: nothing changes
  made.Emit(Write(0, "b2", 40), 3);
  old_a.OnRoleChange("", kT0 + 50 * kMs, true);  // A never replicated B
  made.OnRoleChange("10.0.0.2:6379", kT0 + 60 * kMs, true);
  EXPECT_EQ(
      std::vector<std::string>(out.seen.end() - 2, out.seen.end()),
      (std::vector<std::string>{"readback 0 b1 @60 conn 3 flagged", "readback 0 b2 @60 conn 3 flagged"}));
  // Late: another worker passes B's write captured at 55 on only now.
  made.Emit(Write(0, "b3", 55), 3);
  EXPECT_EQ(out.seen.back(), "readback 0 b3 @55 conn 3 flagged");

  // A FLUSHALL of the new master, replicated by every other server: safe.
  told.clear();
  made.OnRoleChange("", kT0 + 100 * kMs, true);  // B, promoted anew
  made.Emit(Write(0, "", 110, RecordOp::kDatabase), 3);
  EXPECT_FALSE(failovers.Keeps("10.0.0.3:6379"));  // in doubt whole: no key kept
  third.OnRoleChange("10.0.0.3:6379", kT0 + 120 * kMs, true);
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 130 * kMs, true);
  EXPECT_FALSE(failovers.Keeps("10.0.0.3:6379"));  // safe: every other server replicates it
  third.OnRoleChange("", kT0 + 140 * kMs, true);   // C replicated B
  made.Emit(Write(0, "after", 150), 3);
  made.OnRoleChange("10.0.0.4:6379", kT0 + 160 * kMs, true);
  EXPECT_EQ(out.seen.back(), "readback 0 after @160 conn 3 flagged");
  EXPECT_EQ(told.back().find("resynchronise"), std::string::npos) << told.back();
}

// REPLICAOF names a master as "host port": an IPv6 address is the server
// "[addr]:port" as the capture names it.
TEST(FailoverNames, AnIpv6MasterIsRecognised) {
  Failovers failovers("decode");
  Collect out;
  FailoverWire b{nullptr, Server("[fd00::3]:6379"), Server("10.0.0.99:50000"), &failovers, &out, 1};
  FailoverWire a{nullptr, Server("[fd00::2]:6379"), Server("10.0.0.99:50000"), &failovers, &out, 2};
  b.OnRoleChange("", kT0, true);
  EXPECT_TRUE(failovers.Keeps("[fd00::3]:6379"));
  a.OnRoleChange("fd00::3:6379", kT0 + kMs, true);
  EXPECT_FALSE(failovers.Keeps("[fd00::3]:6379"));
}

// Sentinel with announce-hostnames sends REPLICAOF with a host name, which
// no lookup here resolves: the replica's link to the master (its PSYNC,
// with the port it announced) says which server the name is. Without it
// the new master's writes stayed kept for good, and a failback read them
// all back as "thrown away" (more than the cap: "resynchronise").
TEST_F(FailoverTest, AMasterNamedByAHostNameIsKnownByTheReplicasLink) {
  made.OnRoleChange("", kT0 + 10 * kMs, true);  // B, 10.0.0.3
  made.Emit(Write(0, "onB", 20), 3);
  old_a.OnRoleChange("redis-b.example:6379", kT0 + 30 * kMs, true);  // A, 10.0.0.2
  EXPECT_TRUE(failovers.Keeps("10.0.0.3:6379"));
  // Links that prove nothing: from before the REPLICAOF, from a replica
  // announcing another port, from another address.
  FailoverWire to_b{nullptr, Server("10.0.0.3:6379"), Server("10.0.0.2:41000"), &failovers, &out, 7};
  FailoverWire from_c{nullptr, Server("10.0.0.3:6379"), Server("10.0.0.5:41002"), &failovers, &out, 9};
  to_b.OnReplicaLink({6379}, kT0 + 25 * kMs);
  to_b.OnReplicaLink({6380}, kT0 + 31 * kMs);
  from_c.OnReplicaLink({6379}, kT0 + 31 * kMs);
  EXPECT_TRUE(failovers.Keeps("10.0.0.3:6379"));
  to_b.OnReplicaLink({6379}, kT0 + 32 * kMs);
  EXPECT_FALSE(failovers.Keeps("10.0.0.3:6379"));  // every other server replicates B
  made.Emit(Write(0, "onB2", 40), 3);
  // Failback: A, B's replica, is promoted, and B is made A's replica: B's
  // writes stand in A, nothing is read back.
  old_a.OnRoleChange("", kT0 + 50 * kMs, true);
  made.OnRoleChange("redis-a.example:6379", kT0 + 60 * kMs, true);
  EXPECT_EQ(out.seen, (std::vector<std::string>{"write 0 onB @20 conn 3", "write 0 onB2 @40 conn 3"}));
  EXPECT_EQ(failovers.readbacks(), 0u);
  EXPECT_NE(told.back().find("it wrote nothing seen here in between"), std::string::npos) << told.back();
}

// A replica whose link comes from another address than the one it serves
// on (a server bound to one address of several, NAT) is named by the
// address it announces (replica-announce-ip), when it announces one.
TEST_F(FailoverTest, AReplicaIsNamedByTheAddressItAnnounces) {
  made.OnRoleChange("", kT0 + 10 * kMs, true);
  old_a.OnRoleChange("redis-b.example:6379", kT0 + 20 * kMs, true);
  FailoverWire link{nullptr, Server("10.0.0.3:6379"), Server("192.168.9.9:41000"), &failovers, &out, 7};
  link.OnReplicaLink({6379}, kT0 + 30 * kMs);
  EXPECT_TRUE(failovers.Keeps("10.0.0.3:6379"));  // "192.168.9.9:6379" is no server
  link.OnReplicaLink({6379, "10.0.0.2"}, kT0 + 31 * kMs);
  EXPECT_FALSE(failovers.Keeps("10.0.0.3:6379"));
}

// FAILOVER (Redis 6.2+) hands a master's role to its replica with no
// REPLICAOF on the wire: the old master, made the replica's replica, sends
// it PSYNC … FAILOVER, and the replica becomes a master on answering. Both
// changes are told, and a later REPLICAOF NO ONE of the old master is a
// promotion again (a review: nothing was told, and the model went stale).
TEST_F(FailoverTest, AFailoverCommandsHandOverIsTwoRoleChanges) {
  made.OnRoleChange("", kT0 + 10 * kMs, true);                // B
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 20 * kMs, true);  // A, B's replica
  made.Emit(Write(0, "onB", 30), 3);
  FailoverWire handover{nullptr, Server("10.0.0.2:6379"), Server("10.0.0.3:41000"), &failovers, &out, 7};
  handover.OnReplicaLink({6379, "127.0.0.2", true}, kT0 + 40 * kMs);  // B hands over to A
  ASSERT_GE(told.size(), 4u);
  EXPECT_EQ(told[2],
            "10.0.0.2:6379 was made a master at 2023-11-14 22:13:20.040 UTC (FAILOVER, coordinated)");
  EXPECT_NE(told[3].find("10.0.0.3:6379 was made a replica of 10.0.0.2:6379 at 2023-11-14 22:13:20.040 UTC "
                         "(FAILOVER, coordinated), 0.0 s after 10.0.0.2:6379 was made a master; it wrote "
                         "nothing seen here in between"),
            std::string::npos)
      << told[3];
  EXPECT_FALSE(failovers.Keeps("10.0.0.2:6379"));  // its only other server replicates it
  // (The link came from the old master's own address: an address it
  // announced that names no server does not hide it, a review found.)
  // Sentinel then promotes B again: a promotion, B's writes since stand.
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  EXPECT_TRUE(failovers.Keeps("10.0.0.2:6379"));
  EXPECT_EQ(failovers.readbacks(), 0u);
}

// A replica pointed at a master with no failover before: nothing to read
// back, but its own data is gone (a capture of its port cannot see the
// sync).
TEST_F(FailoverTest, AReplicaMadeWithoutAPromotionSaysToResynchroniseIt) {
  old_a.Emit(Write(0, "k", 10), 1);
  old_a.OnRoleChange("10.0.0.3:6379", kT0 + 20 * kMs, true);
  EXPECT_FALSE(failovers.recording());
  EXPECT_EQ(out.seen.size(), 1u);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_NE(told[0].find("it replaced its dataset with the master's"), std::string::npos) << told[0];
}

// The master a REPLICAOF names came off the wire and is printed: its
// control bytes are escaped (a review forged a line of decode's stderr,
// and cleared the screen, with a host name).
TEST_F(FailoverTest, AMasterNamedWithControlBytesIsPrintedEscaped) {
  made.OnRoleChange("", kT0 + 50 * kMs, true);
  old_a.OnRoleChange("\x1b[2J\nkvferryctl decode: all good:6379", kT0 + 500 * kMs, true);
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[1].find('\x1b'), std::string::npos) << told[1];
  EXPECT_EQ(told[1].find('\n'), std::string::npos) << told[1];
  EXPECT_NE(told[1].find("a replica of \\x1b[2J\\x0akvferryctl decode: all good:6379"), std::string::npos)
      << told[1];
}

}  // namespace
}  // namespace kvf::ctl
