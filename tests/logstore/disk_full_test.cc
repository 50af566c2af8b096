// Disk full on a real, small file system: a size-capped tmpfs this test
// mounts itself (root only). Both policies must behave as specified and
// nothing durable may be lost; `block` must recover when space returns.
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "logstore/log.h"
#include "logstore/verify.h"
#include "test_util.h"

namespace kvf::logstore {
namespace {

using namespace std::chrono_literals;
using testing::MakeRecord;

class SmallTmpfs {
 public:
  explicit SmallTmpfs(const std::string& dir) : dir_(dir) {
    mounted_ = ::mount("kvft-logstore", dir.c_str(), "tmpfs", 0, "size=3m") == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

LogOptions TmpfsOptions(const std::string& dir, FullPolicy policy) {
  LogOptions o;
  o.dir = dir + "/log";
  o.segment_bytes = 512 << 10;
  o.sync_every_ms = 2;
  o.full_policy = policy;
  o.recycle_keep = 0;
  o.max_pending_bytes = 256 << 10;
  return o;
}

void CheckDense(Log* log, uint64_t last, uint64_t* first_out) {
  auto reader = log->NewReader(1, false, nullptr);
  ChangeRecord r;
  uint64_t expect = 0;
  while (reader->Next(&r)) {
    if (expect == 0) *first_out = r.seq;
    if (expect != 0) {
      ASSERT_EQ(r.seq, expect);
    }
    ChangeRecord want = MakeRecord(r.seq, 200);
    want.seq = r.seq;
    ASSERT_EQ(r, want);
    expect = r.seq + 1;
  }
  ASSERT_TRUE(reader->status().ok());
  ASSERT_EQ(expect, last + 1);
}

TEST(DiskFull, BlockPolicyWaitsForSpaceAndRecovers) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: mounts a size-capped tmpfs";
  testing::TempDir tmp;
  SmallTmpfs fs(tmp.path());
  ASSERT_TRUE(fs.mounted()) << "mount tmpfs failed";
  LogOptions o = TmpfsOptions(tmp.path(), FullPolicy::kBlock);
  auto log = Log::Open(o);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE((*log)->AdvanceCursor("d", 0).ok());
  constexpr uint64_t kTotal = 40000;  // ~9 MiB of records for a 3 MiB disk
  std::atomic<uint64_t> appended{0};
  std::thread producer([&] {
    for (uint64_t i = 1; i <= kTotal; ++i) {
      auto s = (*log)->Append(MakeRecord(i, 200));
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      ASSERT_EQ(*s, i);
      appended = i;
    }
  });
  // The disk fills: the writer waits, the producer is held back.
  for (int i = 0; i < 500 && (*log)->Stats().disk_full_waits == 0; ++i) std::this_thread::sleep_for(10ms);
  const LogStats full = (*log)->Stats();
  EXPECT_GT(full.disk_full_waits, 0u);
  EXPECT_LT(appended.load(), kTotal);
  std::this_thread::sleep_for(100ms);
  const uint64_t stalled_at = (*log)->durable_seq();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ((*log)->durable_seq(), stalled_at);  // nothing moves while full
  uint64_t first = 0;
  CheckDense(log->get(), (*log)->written_seq(), &first);  // what was written is intact
  EXPECT_EQ(first, 1u);
  // Space returns as the destination ships: the writer resumes by itself.
  for (int i = 0; i < 3000 && (*log)->durable_seq() < kTotal; ++i) {
    ASSERT_TRUE((*log)->AdvanceCursor("d", (*log)->durable_seq()).ok());
    std::this_thread::sleep_for(5ms);
  }
  producer.join();
  ASSERT_TRUE((*log)->Sync().ok());
  EXPECT_EQ((*log)->durable_seq(), kTotal);
  ASSERT_TRUE((*log)->AdvanceCursor("d", kTotal).ok());  // shipped everything
  EXPECT_TRUE((*log)->Stats().dropped_unshipped.empty());
  Status cs = (*log)->Close();
  ASSERT_TRUE(cs.ok()) << cs.ToString();
  auto again = Log::Open(o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->recovery().last_seq, kTotal);
  CheckDense(again->get(), kTotal, &first);
  EXPECT_GT(first, 1u);  // retention removed what "d" had shipped
}

TEST(DiskFull, DropOldestKeepsWritingAndCountsWhatWasLost) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: mounts a size-capped tmpfs";
  testing::TempDir tmp;
  SmallTmpfs fs(tmp.path());
  ASSERT_TRUE(fs.mounted());
  LogOptions o = TmpfsOptions(tmp.path(), FullPolicy::kDropOldest);
  auto log = Log::Open(o);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_TRUE((*log)->AdvanceCursor("slow", 0).ok());
  constexpr uint64_t kTotal = 40000;
  for (uint64_t i = 1; i <= kTotal; ++i) ASSERT_EQ(*(*log)->Append(MakeRecord(i, 200)), i);
  ASSERT_TRUE((*log)->Sync().ok());
  EXPECT_EQ((*log)->durable_seq(), kTotal);
  uint64_t first = 0;
  CheckDense(log->get(), kTotal, &first);
  EXPECT_GT(first, 1u);
  // Exactly what is gone was counted as dropped before "slow" shipped it.
  EXPECT_EQ((*log)->Stats().dropped_unshipped.at("slow"), first - 1);
  Status cs = (*log)->Close();
  ASSERT_TRUE(cs.ok()) << cs.ToString();
  const uint64_t dropped_before =
      (*log)->Stats().dropped_unshipped.at("slow");  // Close may drop to save cursors
  auto again = Log::Open(o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->recovery().last_seq, kTotal);
  auto fsys = NewPosixFileSystem(IoBackend::kPosix);
  auto sum = InspectLog(fsys->get(), o.dir, true);
  ASSERT_TRUE(sum.ok());
  EXPECT_TRUE(sum->ok());
  EXPECT_EQ(sum->last_seq, kTotal);
  // Opening needs a fresh segment on a full disk: the policy may drop again.
  const auto after = (*again)->Stats().dropped_unshipped;
  const uint64_t dropped_at_open = after.count("slow") ? after.at("slow") : 0;
  EXPECT_EQ(dropped_before + dropped_at_open, sum->first_seq - 1);
}

}  // namespace
}  // namespace kvf::logstore
