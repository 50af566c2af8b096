// `kvferryctl log verify|stats|dump` on a log kvferry-logbench wrote: exit
// codes and machine-readable output, healthy and damaged.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "logstore/cursors.h"
#include "logstore/log.h"
#include "test_util.h"
#include "tests/common/shell.h"

namespace {

using kvf::testing::ShellResult;

ShellResult Sh(const std::string& cmd) {
  return kvf::testing::RunShell(cmd);
}

// kvferry-logbench writes a log into `dir` for `seconds` at `rate` records/s
// of `bytes` each, in 1 MiB segments.
int WriteLog(const std::string& dir, int bytes, double seconds, int rate) {
  return Sh(std::string(KVF_LOGBENCH_PATH) + " --dir " + dir + " --record-bytes " + std::to_string(bytes) +
            " --fsync-ms 2 --seconds " + std::to_string(seconds) + " --rate " + std::to_string(rate) +
            " --segment-mb 1 --quiet")
      .code;
}

TEST(CtlLog, VerifyStatsDumpOnHealthyAndDamagedLogs) {
  kvf::logstore::testing::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  const std::string ctl = KVF_CTL_PATH;
  ASSERT_EQ(WriteLog(dir, 100, 0.2, 20000), 0);
  ShellResult v = Sh(ctl + " log verify --dir " + dir + " --format json");
  ASSERT_EQ(v.code, 0) << v.out;
  auto j = nlohmann::json::parse(v.out);
  EXPECT_TRUE(j["ok"].get<bool>());
  const uint64_t last = j["last_seq"].get<uint64_t>();
  EXPECT_GT(last, 1000u);
  EXPECT_EQ(j["first_seq"].get<uint64_t>(), 1u);
  EXPECT_EQ(j["contiguous_to"].get<uint64_t>(), last);

  ShellResult s = Sh(ctl + " log stats --dir " + dir + " --format json");
  ASSERT_EQ(s.code, 0);
  EXPECT_EQ(nlohmann::json::parse(s.out)["last_seq"].get<uint64_t>(), last);

  ShellResult d =
      Sh(ctl + " log dump --dir " + dir + " --from " + std::to_string(last - 1) + " --format json");
  ASSERT_EQ(d.code, 0);
  const size_t nl = d.out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  auto rec = nlohmann::json::parse(d.out.substr(0, nl));
  EXPECT_EQ(rec["seq"].get<uint64_t>(), last - 1);
  EXPECT_EQ(rec["key"].get<std::string>(), "k" + std::to_string(last - 1));

  // Damage one byte in the middle of the first segment: verify must fail.
  {
    std::fstream f(dir + "/" + kvf::logstore::SegmentFileName(1),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('\x7f');
  }
  ShellResult bad = Sh(ctl + " log verify --dir " + dir + " --format json");
  EXPECT_EQ(bad.code, 1) << bad.out;
  auto jb = nlohmann::json::parse(bad.out);
  EXPECT_FALSE(jb["ok"].get<bool>());
  ASSERT_EQ(jb["damage"].size(), 1u);
  EXPECT_LT(jb["contiguous_to"].get<uint64_t>(), last);
  EXPECT_EQ(Sh(ctl + " log bogus --dir " + dir).code, 2);
  // dump skips the damaged stretch, says so, and fails.
  ShellResult dd = Sh(ctl + " log dump --dir " + dir + " 2>&1 >/dev/null");
  EXPECT_EQ(dd.code, 1) << dd.out;
  EXPECT_NE(dd.out.find("incomplete:"), std::string::npos) << dd.out;
}

// A segment gone from the middle of a log (a review's dump skipped 5,268
// seqs and exited 0): dump names the missing seqs and fails, from the start
// or from inside them. --from takes a sequence number only.
TEST(CtlLog, RecordsMissingFromTheMiddleAreSaidAndFailTheDump) {
  kvf::logstore::testing::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  const std::string ctl = KVF_CTL_PATH;
  ASSERT_EQ(WriteLog(dir, 300, 0.3, 40000), 0);
  ShellResult v = Sh(ctl + " log verify --dir " + dir + " --format json");
  ASSERT_EQ(v.code, 0) << v.out;
  ASSERT_GE(nlohmann::json::parse(v.out)["segments"].get<uint64_t>(), 3u) << v.out;
  ShellResult whole = Sh(ctl + " log dump --dir " + dir + " 2>&1 >/dev/null");
  EXPECT_EQ(whole.code, 0) << whole.out;
  EXPECT_EQ(whole.out, "");
  ASSERT_EQ(std::remove((dir + "/" + kvf::logstore::SegmentFileName(2)).c_str()), 0);
  ShellResult d = Sh(ctl + " log dump --dir " + dir + " 2>&1 >/dev/null");
  EXPECT_EQ(d.code, 1) << d.out;
  EXPECT_NE(d.out.find("are missing"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("incomplete: "), std::string::npos) << d.out;
  EXPECT_EQ(Sh(ctl + " log verify --dir " + dir + " >/dev/null").code, 1);
  // --from inside the missing stretch: the records asked for are missing.
  const std::string inside =
      std::to_string(nlohmann::json::parse(v.out)["segment_list"][1]["first_seq"].get<uint64_t>());
  ShellResult in = Sh(ctl + " log dump --dir " + dir + " --from " + inside + " 2>&1 >/dev/null");
  EXPECT_EQ(in.code, 1) << in.out;
  EXPECT_NE(in.out.find("seqs " + inside + ".."), std::string::npos) << in.out;
  EXPECT_EQ(Sh(ctl + " log dump --help >/dev/null 2>&1").code, 0);
  // verify and stats read the whole log; --from twice is a mistake (a review).
  EXPECT_EQ(Sh(ctl + " log verify --dir " + dir + " --from 3 2>/dev/null").code, 2);
  EXPECT_EQ(Sh(ctl + " log dump --dir " + dir + " --from 3 --from 4 2>/dev/null").code, 2);
  for (const char* from : {"-1", "99999999999999999999", "''", "0", "12x"}) {
    ShellResult f = Sh(ctl + " log dump --dir " + dir + " --from " + from + " 2>&1");
    EXPECT_EQ(f.code, 2) << from << ": " << f.out;
    EXPECT_NE(f.out.find("--from"), std::string::npos) << from << ": " << f.out;
  }
}

}  // namespace

// A log of `keys.size()` records written through the library (SET key v), closed.
void WriteRecords(const std::string& dir, const std::vector<std::string>& keys,
                  uint64_t segment_bytes = 64ull << 20) {
  kvf::logstore::LogOptions o;
  o.dir = dir;
  o.preallocate = false;
  o.segment_bytes = segment_bytes;
  auto log = kvf::logstore::Log::Open(o);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  for (const std::string& k : keys) {
    kvf::ChangeRecord r;
    r.op = kvf::RecordOp::kIdempotent;
    r.flags = kvf::kNeedsReadback;
    r.origin = 7;
    r.key = k;
    r.args = {"SET", k, "v"};
    ASSERT_TRUE((*log)->Append(r).ok());
  }
  ASSERT_TRUE((*log)->Close().ok());
}

// dump --format json prints records as decode does: exact bytes where they
// are not UTF-8 (a review: k\xff and k\xfe both came out "k\ufffd"), flags
// by name, and the origin site.
TEST(CtlLog, JsonDumpKeepsTheBytesOfBinaryKeys) {
  kvf::logstore::testing::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  WriteRecords(dir, {"k\xff", "k\xfe"});
  ShellResult d = Sh(std::string(KVF_CTL_PATH) + " log dump --dir " + dir + " --format json");
  ASSERT_EQ(d.code, 0) << d.out;
  std::vector<nlohmann::json> recs;
  for (size_t pos = 0, nl; (nl = d.out.find('\n', pos)) != std::string::npos; pos = nl + 1)
    recs.push_back(nlohmann::json::parse(d.out.substr(pos, nl - pos)));
  ASSERT_EQ(recs.size(), 2u) << d.out;
  EXPECT_EQ(recs[0]["key_b64"], "a/8=");  // "k\xff"
  EXPECT_EQ(recs[1]["key_b64"], "a/4=");  // "k\xfe"
  EXPECT_EQ(recs[0]["args_b64"][1], "a/8=");
  EXPECT_EQ(recs[0]["flags"], nlohmann::json::array({"needs_readback"}));
  EXPECT_EQ(recs[0]["origin"], 7);
  EXPECT_EQ(recs[1]["seq"], 2);
}

// The newest segment created and never written (a crash right after a
// rotation): stats takes the last record from the newest segment that
// holds any (a review's said "last 0, records 0").
TEST(CtlLog, StatsLooksPastAnUnwrittenNewestSegment) {
  kvf::logstore::testing::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  WriteRecords(dir, {"a", "b", "c"});
  ShellResult v = Sh(std::string(KVF_CTL_PATH) + " log verify --dir " + dir + " --format json");
  ASSERT_EQ(v.code, 0) << v.out;
  const auto segs = nlohmann::json::parse(v.out)["segment_list"];
  ASSERT_FALSE(segs.empty());
  const uint64_t next = segs.back()["number"].get<uint64_t>() + 1;
  {
    std::ofstream f(dir + "/" + kvf::logstore::SegmentFileName(next), std::ios::binary);
    f << std::string(4096, '\0');
  }
  ShellResult s = Sh(std::string(KVF_CTL_PATH) + " log stats --dir " + dir + " --format json");
  ASSERT_EQ(s.code, 0) << s.out;
  const auto j = nlohmann::json::parse(s.out);
  EXPECT_EQ(j["last_seq"], 3) << s.out;
  EXPECT_EQ(j["records"], 3) << s.out;
}

// A cursor is the last seq its destination acknowledged: one before the
// oldest record kept (what it never acknowledged is gone) or past the
// newest (what it acknowledged is gone) is damage (a review's verify said
// OK of both).
TEST(CtlLog, VerifyChecksTheCursorsAgainstTheLog) {
  kvf::logstore::testing::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("key" + std::to_string(i));
  WriteRecords(dir, keys, 4096);
  const std::string verify = std::string(KVF_CTL_PATH) + " log verify --dir " + dir;
  // The oldest segment retired, as retention does.
  ShellResult before = Sh(verify + " --format json");
  ASSERT_EQ(before.code, 0) << before.out;
  const auto segs = nlohmann::json::parse(before.out)["segment_list"];
  ASSERT_GE(segs.size(), 3u) << before.out;
  ASSERT_EQ(std::remove((dir + "/" + kvf::logstore::SegmentFileName(segs[0]["number"])).c_str()), 0);
  const uint64_t oldest = segs[1]["first_seq"].get<uint64_t>();
  auto fs = kvf::logstore::NewPosixFileSystem(kvf::logstore::IoBackend::kPosix);
  ASSERT_TRUE(fs.ok());
  for (const auto& [seq, ok] :
       {std::pair<uint64_t, bool>{oldest - 1, true}, {200, true}, {oldest - 2, false}, {201, false}}) {
    SCOPED_TRACE(seq);
    {
      ASSERT_EQ(std::remove((dir + "/cursors").c_str()) == 0 || errno == ENOENT, true);
      kvf::logstore::CursorStore c(fs->get(), dir);
      ASSERT_TRUE(c.Advance("replica", seq).ok());
      ASSERT_TRUE(c.Persist().ok());
    }
    ShellResult v = Sh(verify + " 2>&1");
    EXPECT_EQ(v.code, ok ? 0 : 1) << v.out;
    EXPECT_EQ(v.out.find("CURSOR: cursor replica acknowledged seq") != std::string::npos, !ok) << v.out;
  }
}
