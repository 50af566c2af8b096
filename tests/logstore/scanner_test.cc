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

// A client's value may hold bytes framed as a record of this segment. When
// the record holding it is damaged (a torn write zeroed its last page), the
// scan goes on after the damaged record's length, not into its bytes (a
// review: the search found a FLUSHALL framed inside a SET's value and
// accepted it as the next record).
TEST(SegmentScanner, AFramedRecordInsideADamagedRecordIsNeverTakenForOne) {
  ChangeRecord flushall;
  flushall.op = RecordOp::kDatabase;
  flushall.args = {"FLUSHALL"};
  std::string forged_payload, forged;
  EncodeChangePayload(flushall, &forged_payload);
  AppendFramedRecord(&forged, kChangeType, 1, 5, 0, forged_payload);
  for (const bool real_after : {false, true}) {
    SCOPED_TRACE(real_after);
    std::vector<uint64_t> offs;
    std::string img = BuildSegment(1, 1, 3, &offs);
    ChangeRecord set = testing::MakeRecord(4);
    set.args[2] = forged + std::string(8192, 'x');
    std::string payload;
    EncodeChangePayload(set, &payload);
    const size_t at = img.size();
    AppendFramedRecord(&img, kChangeType, 1, 4, set.hlc.packed(), payload);
    std::fill(img.end() - 4096, img.end(), '\0');  // its last page never written
    const size_t real_at = img.size();
    if (real_after) {
      const ChangeRecord r = testing::MakeRecord(5);
      std::string p;
      EncodeChangePayload(r, &p);
      AppendFramedRecord(&img, kChangeType, 1, 5, r.hlc.packed(), p);
    }
    MemFileSystem fs;
    *fs.MutableContents("/x") = img;
    auto f = fs.OpenReadable("/x");
    CollectingReporter reporter;
    SegmentScanner sc(f->get(), 1, kSegmentHeaderSize, 1, &reporter);
    sc.SetLimit(img.size(), 0, true);
    RecordView rv;
    std::vector<uint64_t> offsets;
    while (sc.Next(&rv)) offsets.push_back(rv.offset);
    std::vector<uint64_t> want = {offs[0], offs[1], offs[2]};
    if (real_after) want.push_back(real_at);
    EXPECT_EQ(offsets, want);
    ASSERT_FALSE(reporter.reports.empty());
    EXPECT_EQ(reporter.reports[0].offset, at);
    EXPECT_EQ(sc.torn_tail(), !real_after);
  }
}

// A crafted file of headers that each claim megabytes and fail their
// checksum: the search for the next record does bounded work and reports
// the rest as damage (a review's 8 MiB such segment kept verify busy for
// hours).
TEST(SegmentScanner, TheSearchAfterDamageDoesBoundedWork) {
  std::string img = BuildSegment(1, 1, 2, nullptr);
  std::string fake(kRecordHeaderSize, '\0');
  StoreLE<uint32_t>(reinterpret_cast<uint8_t*>(fake.data()), 0xdeadbeef);  // never the checksum
  StoreLE<uint32_t>(reinterpret_cast<uint8_t*>(fake.data()) + 4, 4u << 20);
  StoreLE<uint32_t>(reinterpret_cast<uint8_t*>(fake.data()) + 12, 1);  // this segment
  StoreLE<uint64_t>(reinterpret_cast<uint8_t*>(fake.data()) + 16, 3);  // the next seq
  fake[8] = static_cast<char>(kChangeType);
  while (img.size() < (8u << 20)) img += fake;
  Scan s = ScanImage(img, 1, 1);
  EXPECT_EQ(s.seqs, Range(1, 2));
  EXPECT_TRUE(s.torn);
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
