// InspectLog (kvferryctl log verify|stats): finds damage and gaps, and
// reads a healthy log as OK, without modifying anything.
#include "logstore/verify.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace kvf::logstore {
namespace {

using testing::BuildSegment;

TEST(InspectLog, HealthyLogIsOk) {
  MemFileSystem fs;
  *fs.MutableContents("/log/" + SegmentFileName(1)) = BuildSegment(1, 1, 5, nullptr);
  *fs.MutableContents("/log/" + SegmentFileName(2)) = BuildSegment(2, 6, 5, nullptr) + std::string(100, '\0');
  auto sum = InspectLog(&fs, "/log", true);
  ASSERT_TRUE(sum.ok());
  EXPECT_TRUE(sum->ok());
  EXPECT_EQ(sum->records, 10u);
  EXPECT_EQ(sum->first_seq, 1u);
  EXPECT_EQ(sum->last_seq, 10u);
  EXPECT_EQ(sum->contiguous_to, 10u);
  auto stats = InspectLog(&fs, "/log", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->last_seq, 10u);
  EXPECT_EQ(stats->records, 10u);
}

TEST(InspectLog, ReportsDamageAndGapsWithoutTouchingFiles) {
  MemFileSystem fs;
  std::vector<uint64_t> offs;
  std::string seg1 = BuildSegment(1, 1, 5, &offs);
  seg1[offs[2] + 35] ^= 1;  // seq 3
  *fs.MutableContents("/log/" + SegmentFileName(1)) = seg1;
  *fs.MutableContents("/log/" + SegmentFileName(2)) = BuildSegment(2, 9, 2, nullptr);  // 6..8 missing
  auto sum = InspectLog(&fs, "/log", true);
  ASSERT_TRUE(sum.ok());
  EXPECT_FALSE(sum->ok());
  ASSERT_EQ(sum->damage.size(), 1u);
  EXPECT_EQ(sum->damage[0].first_seq, 3u);
  ASSERT_EQ(sum->gaps.size(), 1u);
  EXPECT_EQ(sum->gaps[0], (std::pair<uint64_t, uint64_t>{6, 8}));
  EXPECT_EQ(sum->contiguous_to, 2u);
  EXPECT_EQ(*fs.MutableContents("/log/" + SegmentFileName(1)), seg1);  // read-only
}

// An all-zero header is a segment whose creator died before writing it,
// unless records follow it: then it was destroyed (a review saw OK).
TEST(InspectLog, AZeroedHeaderBeforeRecordsIsDamage) {
  MemFileSystem fs;
  *fs.MutableContents("/log/" + SegmentFileName(1)) = BuildSegment(1, 1, 5, nullptr);
  std::string seg2 = BuildSegment(2, 6, 5, nullptr);
  std::fill(seg2.begin(), seg2.begin() + kSegmentHeaderSize, '\0');
  *fs.MutableContents("/log/" + SegmentFileName(2)) = seg2;
  auto sum = InspectLog(&fs, "/log", true);
  ASSERT_TRUE(sum.ok());
  EXPECT_FALSE(sum->ok());
  ASSERT_EQ(sum->damage.size(), 1u);
  EXPECT_NE(sum->damage[0].reason.find("zeroed"), std::string::npos);
  EXPECT_EQ(sum->records, 10u);  // its records are still read
  // Unwritten (nothing follows): not damage.
  *fs.MutableContents("/log/" + SegmentFileName(3)) = std::string(kSegmentHeaderSize + 64, '\0');
  ASSERT_TRUE(fs.Remove("/log/" + SegmentFileName(2)).ok());
  sum = InspectLog(&fs, "/log", true);
  ASSERT_TRUE(sum.ok());
  EXPECT_TRUE(sum->ok());
}

}  // namespace
}  // namespace kvf::logstore
