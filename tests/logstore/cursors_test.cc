// Cursor store: encoding, atomic persistence, monotonic advance, damage.
#include "logstore/cursors.h"

#include <gtest/gtest.h>

namespace kvf::logstore {
namespace {

TEST(CursorStore, PersistAndLoad) {
  MemFileSystem fs;
  CursorStore a(&fs, "/log");
  ASSERT_TRUE(a.Load().ok());  // missing file: empty
  EXPECT_EQ(a.Min(), UINT64_MAX);
  ASSERT_TRUE(a.Advance("site-b", 10).ok());
  ASSERT_TRUE(a.Advance("site-c", 7).ok());
  ASSERT_TRUE(a.Advance("site-b", 5).ok());  // never moves back
  EXPECT_EQ(a.Min(), 7u);
  ASSERT_TRUE(a.Persist().ok());
  CursorStore b(&fs, "/log");
  ASSERT_TRUE(b.Load().ok());
  EXPECT_EQ(b.Snapshot(), (std::map<std::string, uint64_t>{{"site-b", 10}, {"site-c", 7}}));
  EXPECT_FALSE(a.Advance("has space", 1).ok());
  EXPECT_FALSE(a.Advance("", 1).ok());
}

TEST(CursorStore, DamagedFileIsCorruption) {
  MemFileSystem fs;
  CursorStore a(&fs, "/log");
  ASSERT_TRUE(a.Advance("x", 123).ok());
  ASSERT_TRUE(a.Persist().ok());
  std::string* bytes = fs.MutableContents("/log/cursors");
  const std::string good = *bytes;
  for (size_t i = 0; i < good.size(); ++i) {
    *bytes = good;
    (*bytes)[i] ^= 0x04;
    CursorStore b(&fs, "/log");
    EXPECT_EQ(b.Load().code(), StatusCode::kCorruption) << i;
  }
  *bytes = good.substr(0, good.size() - 3);
  CursorStore c(&fs, "/log");
  EXPECT_FALSE(c.Load().ok());
}

TEST(CursorStore, EncodeDecodeRoundTrip) {
  std::map<std::string, uint64_t> m{{"a", 0}, {"dest-2", UINT64_MAX}, {"z", 42}};
  std::map<std::string, uint64_t> out;
  ASSERT_TRUE(CursorStore::Decode(CursorStore::Encode(m), &out).ok());
  EXPECT_EQ(out, m);
}

}  // namespace
}  // namespace kvf::logstore
