#include "core/checksum.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

namespace kvf {
namespace {

// Known answers from RFC 3720 (iSCSI) appendix B.4 and the common check value.
TEST(Crc32c, KnownAnswerVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xe3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros), 0x8a9136aau);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones), 0x62a8ab43u);
  std::string inc(32, 0);
  for (int i = 0; i < 32; ++i) inc[i] = static_cast<char>(i);
  EXPECT_EQ(Crc32c(inc), 0x46dd794eu);
  std::string dec(32, 0);
  for (int i = 0; i < 32; ++i) dec[i] = static_cast<char>(31 - i);
  EXPECT_EQ(Crc32c(dec), 0x113fdb5cu);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32c, HardwareMatchesPortableAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string buf(300, 0);
  for (auto& c : buf) c = static_cast<char>(rng());
  for (size_t off = 0; off < 9; ++off) {
    for (size_t len = 0; off + len <= buf.size(); len += 7) {
      EXPECT_EQ(Crc32c(0, buf.data() + off, len), Crc32cPortable(0, buf.data() + off, len))
          << "off=" << off << " len=" << len;
    }
  }
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::string s = "hello, kvferry change log";
  uint32_t whole = Crc32c(s);
  uint32_t part = Crc32c(0, s.data(), 10);
  EXPECT_EQ(Crc32c(part, s.data() + 10, s.size() - 10), whole);
}

TEST(Crc32c, MaskRoundTrips) {
  for (uint32_t v : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    EXPECT_NE(MaskCrc(v), v);
    EXPECT_EQ(UnmaskCrc(MaskCrc(v)), v);
  }
}

TEST(Xxh3, KnownAnswerAndSeed) {
  // XXH3_64bits of the empty input with seed 0 (xxHash reference value).
  EXPECT_EQ(Xxh3(""), 0x2D06800538D394C2ull);
  EXPECT_NE(Xxh3("key:1"), Xxh3("key:1", 1));
  EXPECT_EQ(Xxh3("key:1"), Xxh3(std::string("key:1")));
}

}  // namespace
}  // namespace kvf
