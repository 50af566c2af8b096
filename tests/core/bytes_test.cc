#include "core/bytes.h"

#include <limits>

#include <gtest/gtest.h>

#include "core/record.h"

namespace kvf {
namespace {

TEST(Bytes, FixedLittleEndian) {
  std::string s;
  AppendLE<uint32_t>(&s, 0x11223344u);
  AppendLE<uint16_t>(&s, 0xaabbu);
  ASSERT_EQ(s.size(), 6u);
  EXPECT_EQ(static_cast<uint8_t>(s[0]), 0x44);
  EXPECT_EQ(static_cast<uint8_t>(s[3]), 0x11);
  ByteReader r(s);
  uint32_t a;
  uint16_t b;
  uint64_t c;
  ASSERT_TRUE(r.ReadLE(&a));
  ASSERT_TRUE(r.ReadLE(&b));
  EXPECT_EQ(a, 0x11223344u);
  EXPECT_EQ(b, 0xaabbu);
  EXPECT_FALSE(r.ReadLE(&c));
}

TEST(Bytes, VarintRoundTripAndLengths) {
  const uint64_t values[] = {
      0, 1, 127, 128, 300, 16383, 16384, (1ull << 32) - 1, 1ull << 63, std::numeric_limits<uint64_t>::max()};
  std::string s;
  for (uint64_t v : values) AppendVarint(&s, v);
  ByteReader r(s);
  for (uint64_t v : values) {
    uint64_t got = 0;
    ASSERT_TRUE(r.ReadVarint(&got));
    EXPECT_EQ(got, v);
  }
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(VarintLength(127), 1u);
  EXPECT_EQ(VarintLength(128), 2u);
  EXPECT_EQ(VarintLength(std::numeric_limits<uint64_t>::max()), 10u);
}

TEST(Bytes, VarintRejectsTruncatedAndOverlong) {
  std::string truncated = "\x80\x80";
  uint64_t v = 99;
  ByteReader r1(truncated);
  EXPECT_FALSE(r1.ReadVarint(&v));
  EXPECT_EQ(v, 99u);
  std::string overlong(10, '\xff');
  overlong.push_back('\x01');
  ByteReader r2(overlong);
  EXPECT_FALSE(r2.ReadVarint(&v));
}

TEST(Bytes, LengthPrefixedHonoursCap) {
  std::string s;
  AppendLengthPrefixed(&s, "payload");
  std::string_view out;
  ByteReader r(s);
  EXPECT_FALSE(r.ReadLengthPrefixed(&out, 3));
  EXPECT_EQ(r.remaining(), s.size());  // a refused read consumes nothing
  EXPECT_TRUE(r.ReadLengthPrefixed(&out, 100));
  EXPECT_EQ(out, "payload");
}

TEST(ChangeRecord, EqualityAndFlags) {
  ChangeRecord a;
  a.seq = 7;
  a.key = "k";
  a.args = {"SET", "k", "v"};
  a.flags = kNeedsReadback | kAfterGap;
  ChangeRecord b = a;
  EXPECT_EQ(a, b);
  EXPECT_TRUE(a.HasFlag(kAfterGap));
  EXPECT_FALSE(a.HasFlag(kAmbiguousOrder));
  b.args[2] = "w";
  EXPECT_NE(a, b);
  EXPECT_GT(a.ApproxBytes(), sizeof(ChangeRecord));
  EXPECT_EQ(RecordOpName(RecordOp::kOrdered), "ordered");
}

}  // namespace
}  // namespace kvf
