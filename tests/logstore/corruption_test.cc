// Damage at every byte of a small log (flip, truncate, shrink, zero,
// duplicate a block): recovery plus a reader must drop exactly the damaged
// records, report them, keep everything else, and the writer must resume at
// the right seq.
#include <gtest/gtest.h>

#include <set>

#include "logstore/log.h"
#include "test_util.h"

namespace kvf::logstore {
namespace {

using testing::BuildSegment;
using testing::MakeRecord;

constexpr int kRecords = 8;

struct Outcome {
  std::vector<uint64_t> seqs;
  CollectingReporter recovery;  // what recovery at open reported
  CollectingReporter reader;    // what the reader reported while reading
  uint64_t resumed_seq = 0;
  bool content_ok = true;
};

// Puts `image` as segment 1 of a fresh in-memory log, opens it (recovery),
// reads everything back and appends one record.
Outcome Recover(const std::string& image, const std::string& segment2 = "") {
  MemFileSystem fs;
  *fs.MutableContents("/log/" + SegmentFileName(1)) = image;
  if (!segment2.empty()) *fs.MutableContents("/log/" + SegmentFileName(2)) = segment2;
  Outcome out;
  LogOptions o;
  o.dir = "/log";
  o.fs = &fs;
  o.segment_bytes = 1 << 16;
  o.sync_mode = SyncMode::kPerBatch;
  o.reporter = &out.recovery;
  auto log = Log::Open(o);
  EXPECT_TRUE(log.ok()) << log.status().ToString();
  if (!log.ok()) return out;
  auto reader = (*log)->NewReader(1, false, &out.reader);
  ChangeRecord r;
  while (reader->Next(&r)) {
    out.seqs.push_back(r.seq);
    ChangeRecord want = MakeRecord(r.seq);
    want.seq = r.seq;
    if (!(r == want)) out.content_ok = false;
  }
  EXPECT_TRUE(reader->status().ok());
  auto seq = (*log)->Append(MakeRecord(1000));
  EXPECT_TRUE(seq.ok());
  out.resumed_seq = seq.ok() ? *seq : 0;
  EXPECT_TRUE((*log)->Close().ok());
  return out;
}

std::vector<uint64_t> AllBut(const std::set<uint64_t>& dropped, int n = kRecords) {
  std::vector<uint64_t> v;
  for (uint64_t s = 1; s <= static_cast<uint64_t>(n); ++s) {
    if (!dropped.count(s)) v.push_back(s);
  }
  return v;
}

class Corruption : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = BuildSegment(1, 1, kRecords, &offsets_);
    offsets_.push_back(image_.size());  // end of the last record
  }
  // Index of the record containing byte `i` (i >= header).
  int RecordAt(size_t i) const {
    for (int k = 0; k < kRecords; ++k) {
      if (i < offsets_[k + 1]) return k;
    }
    return kRecords;
  }
  std::string image_;
  std::vector<uint64_t> offsets_;
};

TEST_F(Corruption, CleanLogRecoversEverything) {
  Outcome o = Recover(image_);
  EXPECT_EQ(o.seqs, AllBut({}));
  EXPECT_TRUE(o.recovery.reports.empty());
  EXPECT_EQ(o.resumed_seq, kRecords + 1u);
  EXPECT_TRUE(o.content_ok);
}

TEST_F(Corruption, FlipEveryByte) {
  for (size_t i = 0; i < image_.size(); ++i) {
    SCOPED_TRACE("flip at " + std::to_string(i));
    std::string img = image_;
    img[i] ^= 0x01;
    Outcome o = Recover(img);
    EXPECT_TRUE(o.content_ok);
    ASSERT_FALSE(o.recovery.reports.empty());
    if (i < kSegmentHeaderSize) {
      // Damaged segment header: reported; records are still verified one by one.
      EXPECT_EQ(o.seqs, AllBut({}));
      EXPECT_NE(o.recovery.reports[0].reason.find("segment header"), std::string::npos);
      EXPECT_EQ(o.resumed_seq, kRecords + 1u);
      continue;
    }
    const int k = RecordAt(i);
    const uint64_t seq = k + 1;
    EXPECT_EQ(o.seqs, AllBut({seq}));
    ASSERT_EQ(o.recovery.reports.size(), 1u);
    const DropReport& r = o.recovery.reports[0];
    EXPECT_EQ(r.offset, offsets_[k]);
    EXPECT_EQ(r.bytes, offsets_[k + 1] - offsets_[k]);
    if (k + 1 < kRecords) {
      EXPECT_FALSE(r.torn_tail);
      EXPECT_EQ(r.first_seq, seq);
      EXPECT_EQ(r.last_seq, seq);
      EXPECT_EQ(o.resumed_seq, kRecords + 1u);
      // The damage stays on disk (it is not the tail): readers report it too.
      ASSERT_EQ(o.reader.reports.size(), 1u);
      EXPECT_EQ(o.reader.reports[0].bytes, r.bytes);
      EXPECT_EQ(o.reader.reports[0].first_seq, seq);
    } else {
      EXPECT_TRUE(o.reader.reports.empty());  // the torn tail was cut off
      EXPECT_TRUE(r.torn_tail);
      EXPECT_EQ(o.resumed_seq, static_cast<uint64_t>(kRecords));  // the torn seq is reused
    }
  }
}

TEST_F(Corruption, TruncateAtEveryLength) {
  for (size_t len = 0; len < image_.size(); ++len) {
    SCOPED_TRACE("truncate to " + std::to_string(len));
    Outcome o = Recover(image_.substr(0, len));
    if (len < kSegmentHeaderSize) {
      EXPECT_TRUE(o.seqs.empty());
      EXPECT_EQ(o.resumed_seq, 1u);
      EXPECT_EQ(o.recovery.reports.size(), len == 0 ? 0u : 1u);  // the damaged segment header
      continue;
    }
    const int k = RecordAt(len);  // first record not complete
    std::vector<uint64_t> want;
    for (int j = 1; j <= k; ++j) want.push_back(j);
    EXPECT_EQ(o.seqs, want);
    EXPECT_EQ(o.resumed_seq, k + 1u);
    if (len == offsets_[k]) {
      EXPECT_TRUE(o.recovery.reports.empty());
    } else {
      ASSERT_EQ(o.recovery.reports.size(), 1u);
      EXPECT_TRUE(o.recovery.reports[0].torn_tail);
      EXPECT_EQ(o.recovery.reports[0].offset, offsets_[k]);
      EXPECT_GT(o.recovery.reports[0].bytes, 0u);
      EXPECT_EQ(o.recovery.reports[0].bytes, len - offsets_[k]);
    }
  }
}

TEST_F(Corruption, ShrinkAtEveryOffset) {
  constexpr size_t kCut = 7;
  for (size_t i = kSegmentHeaderSize; i + kCut <= image_.size(); ++i) {
    SCOPED_TRACE("cut 7 bytes at " + std::to_string(i));
    std::string img = image_;
    img.erase(i, kCut);
    std::set<uint64_t> dropped;
    for (int k = 0; k < kRecords; ++k) {
      if (offsets_[k] < i + kCut && offsets_[k + 1] > i) dropped.insert(k + 1);
    }
    Outcome o = Recover(img);
    EXPECT_TRUE(o.content_ok);
    EXPECT_EQ(o.seqs, AllBut(dropped));
    ASSERT_EQ(o.recovery.reports.size(), 1u);
    const DropReport& r = o.recovery.reports[0];
    if (*dropped.rbegin() < kRecords) {
      EXPECT_EQ(r.first_seq, *dropped.begin());
      EXPECT_EQ(r.last_seq, *dropped.rbegin());
      EXPECT_FALSE(r.torn_tail);
    } else {
      EXPECT_TRUE(r.torn_tail);
    }
  }
}

TEST_F(Corruption, ZeroedRecordInTheMiddle) {
  for (int k = 0; k + 1 < kRecords; ++k) {
    std::string img = image_;
    std::fill(img.begin() + offsets_[k], img.begin() + offsets_[k + 1], '\0');
    Outcome o = Recover(img);
    EXPECT_EQ(o.seqs, AllBut({static_cast<uint64_t>(k + 1)}));
    ASSERT_EQ(o.recovery.reports.size(), 1u);
    EXPECT_EQ(o.recovery.reports[0].bytes, offsets_[k + 1] - offsets_[k]);
    EXPECT_EQ(o.recovery.reports[0].first_seq, k + 1u);
  }
}

TEST_F(Corruption, DuplicatedBlocksAreDroppedNotReplayed) {
  for (int k = 0; k < kRecords; ++k) {
    for (int j = k + 1; j <= std::min(kRecords, k + 3); ++j) {
      SCOPED_TRACE("duplicate records [" + std::to_string(k) + "," + std::to_string(j) + ")");
      std::string img = image_;
      const std::string block = img.substr(offsets_[k], offsets_[j] - offsets_[k]);
      img.insert(offsets_[j], block);
      Outcome o = Recover(img);
      EXPECT_EQ(o.seqs, AllBut({}));
      ASSERT_EQ(o.recovery.reports.size(), 1u);
      EXPECT_EQ(o.recovery.reports[0].bytes, block.size());
      EXPECT_EQ(o.recovery.reports[0].first_seq, 0u);  // no seq lost
      EXPECT_EQ(o.resumed_seq, kRecords + 1u);
    }
  }
}

TEST_F(Corruption, DamageInAnOlderSegmentIsReportedByTheReader) {
  std::vector<uint64_t> offs2;
  const std::string seg2 = BuildSegment(2, kRecords + 1, 4, &offs2);
  std::string img = image_;
  img[offsets_[2] + 40] ^= 0x10;  // record seq 3, inside its payload
  Outcome o = Recover(img, seg2);
  EXPECT_EQ(o.seqs, AllBut({3}, kRecords + 4));
  EXPECT_TRUE(o.recovery.reports.empty());  // recovery scans only the tail segment
  ASSERT_EQ(o.reader.reports.size(), 1u);
  EXPECT_EQ(o.reader.reports[0].segment, 1u);
  EXPECT_EQ(o.reader.reports[0].first_seq, 3u);
  EXPECT_EQ(o.reader.reports[0].last_seq, 3u);
  EXPECT_EQ(o.resumed_seq, kRecords + 5u);
}

}  // namespace
}  // namespace kvf::logstore
