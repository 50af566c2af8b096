// SegmentScanner on crafted segment images: where the log ends (zeros,
// recycled stale records), torn tails, skippable types, live limits.
#include "logstore/segment_scanner.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace kvf::logstore {
namespace {

using testing::BuildSegment;

struct Scan {
  std::vector<uint64_t> seqs;
  CollectingReporter reporter;
  uint64_t end = 0;
  bool torn = false;
};

Scan ScanImage(const std::string& image, uint64_t segment, uint64_t first_seq, uint64_t expected_last = 0) {
  MemFileSystem fs;
  *fs.MutableContents("/x") = image;
  auto f = fs.OpenReadable("/x");
  Scan out;
  SegmentScanner sc(f->get(), segment, kSegmentHeaderSize, first_seq, &out.reporter);
  sc.SetLimit(image.size(), expected_last, true);
  RecordView rv;
  while (sc.Next(&rv)) out.seqs.push_back(rv.seq);
  EXPECT_TRUE(sc.status().ok());
  out.end = sc.end_offset();
  out.torn = sc.torn_tail();
  return out;
}

std::vector<uint64_t> Range(uint64_t a, uint64_t b) {
  std::vector<uint64_t> v;
  for (uint64_t i = a; i <= b; ++i) v.push_back(i);
  return v;
}

TEST(SegmentScanner, ZeroedTailIsTheEndOfTheLog) {
  std::string img = BuildSegment(3, 10, 5, nullptr);
  const size_t end = img.size();
  img.resize(end + 100000, '\0');  // fallocate'd space
  Scan s = ScanImage(img, 3, 10);
  EXPECT_EQ(s.seqs, Range(10, 14));
  EXPECT_TRUE(s.reporter.reports.empty());
  EXPECT_EQ(s.end, end);
  EXPECT_FALSE(s.torn);
}

TEST(SegmentScanner, StaleRecordsOfARecycledFileEndTheLog) {
  // The file held segment 2 (seqs 1..40); segment 7 reuses it and wrote 3 records.
  std::string old_img = BuildSegment(2, 1, 40, nullptr);
  std::string fresh = BuildSegment(7, 100, 3, nullptr);
  std::string img = old_img;
  // As the writer does: records, then a zero record header as end marker.
  img.replace(0, fresh.size() + kRecordHeaderSize, fresh + std::string(kRecordHeaderSize, '\0'));
  Scan s = ScanImage(img, 7, 100);
  EXPECT_EQ(s.seqs, Range(100, 102));
  EXPECT_EQ(s.end, fresh.size());
  EXPECT_TRUE(s.reporter.reports.empty());
  EXPECT_FALSE(s.torn);
  // Without the marker (a torn write), the cut-through stale bytes are
  // reported as a torn tail and are still never read as data.
  img = old_img;
  img.replace(0, fresh.size(), fresh);
  s = ScanImage(img, 7, 100);
  EXPECT_EQ(s.seqs, Range(100, 102));
  for (const auto& r : s.reporter.reports) EXPECT_TRUE(r.torn_tail);
}

TEST(SegmentScanner, TornTailIsReportedWithItsSize) {
  std::vector<uint64_t> offs;
  std::string img = BuildSegment(1, 1, 4, &offs);
  const size_t cut = offs[3] + 10;
  img.resize(cut);
  Scan s = ScanImage(img, 1, 1);
  EXPECT_EQ(s.seqs, Range(1, 3));
  EXPECT_TRUE(s.torn);
  ASSERT_EQ(s.reporter.reports.size(), 1u);
  EXPECT_EQ(s.reporter.reports[0].offset, offs[3]);
  EXPECT_EQ(s.reporter.reports[0].bytes, 10u);
  EXPECT_TRUE(s.reporter.reports[0].torn_tail);
  EXPECT_EQ(s.end, offs[3]);
}

TEST(SegmentScanner, ExpectedLastSeqStopsWithoutReadingTheTail) {
  std::string img = BuildSegment(1, 1, 4, nullptr);
  img += std::string(100, '\x55');  // garbage after the known end
  Scan s = ScanImage(img, 1, 1, /*expected_last=*/4);
  EXPECT_EQ(s.seqs, Range(1, 4));
  EXPECT_TRUE(s.reporter.reports.empty());
}

TEST(SegmentScanner, SkippableTypesAreSilentUnknownTypesReported) {
  std::string img = BuildSegment(1, 1, 1, nullptr);
  AppendFramedRecord(&img, kSafeToSkipBit | 5, 1, 2, 0, "future optional");
  AppendFramedRecord(&img, 6, 1, 3, 0, "future required");
  std::string payload;
  EncodeChangePayload(testing::MakeRecord(4), &payload);
  AppendFramedRecord(&img, kChangeType, 1, 4, 0, payload);
  Scan s = ScanImage(img, 1, 1);
  EXPECT_EQ(s.seqs, (std::vector<uint64_t>{1, 4}));
  ASSERT_EQ(s.reporter.reports.size(), 1u);
  EXPECT_EQ(s.reporter.reports[0].first_seq, 3u);
  EXPECT_NE(s.reporter.reports[0].reason.find("unknown record type 6"), std::string::npos);
}

TEST(SegmentScanner, LiveLimitCanBeExtended) {
  std::vector<uint64_t> offs;
  const std::string img = BuildSegment(1, 1, 6, &offs);
  MemFileSystem fs;
  *fs.MutableContents("/x") = img;
  auto f = fs.OpenReadable("/x");
  CollectingReporter rep;
  SegmentScanner sc(f->get(), 1, kSegmentHeaderSize, 1, &rep);
  sc.SetLimit(offs[3], 0, /*final=*/false);
  RecordView rv;
  std::vector<uint64_t> seen;
  while (sc.Next(&rv)) seen.push_back(rv.seq);
  EXPECT_EQ(seen, Range(1, 3));
  sc.SetLimit(img.size(), 0, false);
  while (sc.Next(&rv)) seen.push_back(rv.seq);
  EXPECT_EQ(seen, Range(1, 6));
  EXPECT_TRUE(rep.reports.empty());
}

}  // namespace
}  // namespace kvf::logstore
