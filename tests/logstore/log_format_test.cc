// Round trips and rejection tests for the segment header, record framing
// and the change-record payload codec (logstore/log_format.h).
#include "logstore/log_format.h"

#include <gtest/gtest.h>

#include <random>

#include "core/checksum.h"

namespace kvf::logstore {
namespace {

ChangeRecord Sample() {
  ChangeRecord r;
  r.hlc = Hlc::FromParts(1'700'000'000'123, 7);
  r.capture_ns = 1'700'000'000'123'456'789ull;
  r.origin = 3;
  r.db = 2;
  r.op = RecordOp::kIdempotent;
  r.flags = kNeedsReadback | kAfterGap;
  r.key = "user:42";
  r.args = {"SET", "user:42", "hello", "KEEPTTL"};
  return r;
}

ChangeRecord RoundTrip(const ChangeRecord& in) {
  std::string bytes;
  EncodeChangePayload(in, &bytes);
  ChangeRecord out;
  Status s = DecodeChangePayload(AsBytes(bytes), in.hlc, &out);
  EXPECT_TRUE(s.ok()) << s.ToString();
  out.seq = in.seq;
  return out;
}

TEST(ChangeCodec, RoundTripsTypicalRecord) {
  const ChangeRecord r = Sample();
  EXPECT_EQ(RoundTrip(r), r);
}

TEST(ChangeCodec, RoundTripsExtremes) {
  ChangeRecord r;
  r.op = RecordOp::kDatabase;
  r.origin = 0xffff;
  r.db = 0xffff;
  r.flags = 0xffff;
  r.hlc = Hlc::FromPacked(UINT64_MAX);
  r.capture_ns = 0;  // far below the HLC: delta wraps and must still round-trip
  EXPECT_EQ(RoundTrip(r), r);
  r.hlc = Hlc::FromPacked(0);
  r.capture_ns = UINT64_MAX;
  r.args = {"", std::string(1000, '\0'), std::string(70000, 'x')};
  r.key = std::string(300, '\xff');
  EXPECT_EQ(RoundTrip(r), r);
}

TEST(ChangeCodec, RandomRecordsRoundTrip) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    ChangeRecord r;
    r.hlc = Hlc::FromPacked(rng());
    r.capture_ns = rng();
    r.origin = static_cast<SiteId>(rng());
    r.db = static_cast<uint16_t>(rng() % 16);
    r.op = static_cast<RecordOp>(1 + rng() % 4);
    r.flags = static_cast<uint16_t>(rng());
    r.key.assign(rng() % 40, static_cast<char>(rng()));
    r.args.resize(rng() % 6);
    for (auto& a : r.args) a.assign(rng() % 200, static_cast<char>(rng()));
    ASSERT_EQ(RoundTrip(r), r) << i;
  }
}

TEST(ChangeCodec, TypicalRecordIsCompact) {
  std::string bytes;
  EncodeChangePayload(Sample(), &bytes);
  // 5 one-byte fields + ~4-byte capture delta + key/args with 1-byte lengths.
  EXPECT_LE(bytes.size(), 48u);
}

TEST(ChangeCodec, RejectsEveryTruncationAndTrailingBytes) {
  std::string bytes;
  EncodeChangePayload(Sample(), &bytes);
  ChangeRecord out;
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeChangePayload(AsBytes(std::string_view(bytes).substr(0, n)), Hlc(), &out).ok()) << n;
  }
  bytes.push_back('x');
  EXPECT_EQ(DecodeChangePayload(AsBytes(bytes), Hlc(), &out).code(), StatusCode::kCorruption);
}

TEST(ChangeCodec, RejectsBadOpAndHugeArgCount) {
  std::string bytes;
  ChangeRecord r = Sample();
  EncodeChangePayload(r, &bytes);
  ChangeRecord out;
  std::string bad = bytes;
  bad[2] = 9;  // op byte (origin and db are one byte each here)
  EXPECT_FALSE(DecodeChangePayload(AsBytes(bad), Hlc(), &out).ok());
  std::string many;
  r.args.clear();
  r.key.clear();
  EncodeChangePayload(r, &many);
  many.pop_back();
  AppendVarint(&many, uint64_t{1} << 40);  // argc far above what the bytes hold
  EXPECT_FALSE(DecodeChangePayload(AsBytes(many), Hlc(), &out).ok());
}

TEST(SegmentHeader, RoundTripAndChecks) {
  SegmentHeader h{0x1234, 99, 1'700'000'000'000, 7};
  uint8_t buf[kSegmentHeaderSize];
  EncodeSegmentHeader(h, buf);
  EXPECT_EQ(LoadLE<uint32_t>(buf), kSegmentMagic);
  SegmentHeader out;
  ASSERT_TRUE(DecodeSegmentHeader(ByteSpan(buf, sizeof(buf)), &out).ok());
  EXPECT_EQ(out.segment, h.segment);
  EXPECT_EQ(out.first_seq, h.first_seq);
  EXPECT_EQ(out.created_ms, h.created_ms);
  EXPECT_EQ(out.origin, h.origin);
  for (size_t i = 0; i < kSegmentHeaderSize; ++i) {
    if (i >= 36 && i < 60) continue;  // reserved bytes are covered by the CRC too
    uint8_t copy[kSegmentHeaderSize];
    std::memcpy(copy, buf, sizeof(buf));
    copy[i] ^= 0x01;
    EXPECT_FALSE(DecodeSegmentHeader(ByteSpan(copy, sizeof(copy)), &out).ok()) << i;
  }
  EXPECT_FALSE(DecodeSegmentHeader(ByteSpan(buf, 63), &out).ok());
}

TEST(RecordFraming, LayoutMatchesTheSpec) {
  std::string framed;
  AppendFramedRecord(&framed, kChangeType, 0x100000005ull, 77, 0xabcdef, "payload");
  ASSERT_EQ(framed.size(), kRecordHeaderSize + 7);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(framed.data());
  const RecordHeader h = DecodeRecordHeader(p);
  EXPECT_EQ(h.length, 7u);
  EXPECT_EQ(h.type, kChangeType);
  EXPECT_EQ(h.segment_low, 5u);  // low 32 bits of the segment number
  EXPECT_EQ(h.seq, 77u);
  EXPECT_EQ(h.hlc, 0xabcdefu);
  EXPECT_TRUE(RecordChecksumOk(p, h));
  EXPECT_EQ(UnmaskCrc(h.masked_crc), Crc32c(0, p + 4, framed.size() - 4));
  for (size_t i = 0; i < framed.size(); ++i) {
    std::string copy = framed;
    copy[i] ^= 0x20;
    const uint8_t* q = reinterpret_cast<const uint8_t*>(copy.data());
    const RecordHeader ch = DecodeRecordHeader(q);
    if (ch.length != 7) continue;  // a length flip is caught by the bounds check instead
    EXPECT_FALSE(RecordChecksumOk(q, ch)) << i;
  }
}

TEST(SegmentFileName, FormatAndParse) {
  EXPECT_EQ(SegmentFileName(0x2a), "000000000000002a.seg");
  uint64_t n = 0;
  EXPECT_TRUE(ParseSegmentFileName("000000000000002a.seg", &n));
  EXPECT_EQ(n, 0x2au);
  EXPECT_FALSE(ParseSegmentFileName("000000000000002A.seg", &n));
  EXPECT_FALSE(ParseSegmentFileName("00000000000002a.seg", &n));
  EXPECT_FALSE(ParseSegmentFileName("000000000000002a.log", &n));
  EXPECT_FALSE(ParseSegmentFileName("recycle-000000000000002a.seg", &n));
}

}  // namespace
}  // namespace kvf::logstore

namespace kvf::logstore {
namespace {

std::string Hex(std::string_view s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    out += buf;
  }
  return out;
}

// The bytes shown in docs/log_format.md.
TEST(WorkedExample, MatchesDocsLogFormatMd) {
  std::string seg(kSegmentHeaderSize, '\0');
  EncodeSegmentHeader(SegmentHeader{1, 1, 1'700'000'000'000, 7}, reinterpret_cast<uint8_t*>(seg.data()));
  EXPECT_EQ(Hex(seg),
            "4b56464c010040000100000000000000"
            "0100000000000000"
            "0068e5cf8b010000"
            "07000000000000000000000000000000"
            "000000000000000000000000"
            "41a08f78");
  ChangeRecord r;
  r.hlc = Hlc::FromParts(1'700'000'000'000, 3);
  r.capture_ns = 1'700'000'000'000ull * 1'000'000 + 250'000;
  r.origin = 7;
  r.key = "k";
  r.args = {"SET", "k", "v"};
  std::string payload;
  EncodeChangePayload(r, &payload);
  EXPECT_EQ(Hex(payload), "07000100a0c21e016b0303534554016b0176");
  std::string rec;
  AppendFramedRecord(&rec, kChangeType, 1, 1, r.hlc.packed(), payload);
  EXPECT_EQ(Hex(rec),
            "46a21e5f120000000100000001000000"
            "01000000000000000300"
            "0068e5cf8b01"
            "07000100a0c21e016b0303534554016b"
            "0176");
}

}  // namespace
}  // namespace kvf::logstore
