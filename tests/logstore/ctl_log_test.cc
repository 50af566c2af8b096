// `kvferryctl log verify|stats|dump` on a log kvferry-logbench wrote: exit
// codes and machine-readable output, healthy and damaged.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

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
  for (const char* from : {"-1", "99999999999999999999", "''", "0", "12x"}) {
    ShellResult f = Sh(ctl + " log dump --dir " + dir + " --from " + from + " 2>&1");
    EXPECT_EQ(f.code, 2) << from << ": " << f.out;
    EXPECT_NE(f.out.find("--from"), std::string::npos) << from << ": " << f.out;
  }
}

}  // namespace
