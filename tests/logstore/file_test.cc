// The file interface: in-memory crash semantics and capacity, and the POSIX
// and io_uring implementations on real files.
#include "logstore/file.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace kvf::logstore {
namespace {

using testing::TempDir;

TEST(MemFileSystem, CrashKeepsOnlySyncedBytes) {
  MemFileSystem fs;
  auto f = fs.OpenWritable("/d/a", WritableOptions{});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->AppendAndSync(AsBytes("durable")).ok());
  ASSERT_TRUE((*f)->Append(AsBytes("-lost")).ok());
  EXPECT_EQ(*fs.ReadWholeFile("/d/a"), "durable-lost");
  fs.Crash();
  EXPECT_EQ(*fs.ReadWholeFile("/d/a"), "durable");
  auto names = fs.ListDir("/d");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"a"});
}

TEST(MemFileSystem, CapacityGivesEnospc) {
  MemFileSystem fs;
  fs.SetCapacity(10);
  auto f = fs.OpenWritable("/d/a", WritableOptions{});
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE((*f)->Append(AsBytes("12345678")).ok());
  Status s = (*f)->Append(AsBytes("abc"));
  EXPECT_EQ(s.sys_errno(), ENOSPC) << s.ToString();
  WritableOptions pre;
  pre.preallocate = 100;
  EXPECT_EQ(fs.OpenWritable("/d/b", pre).status().sys_errno(), ENOSPC);
}

class PosixFiles : public ::testing::TestWithParam<IoBackend> {};

TEST_P(PosixFiles, WriteSyncReadRecycle) {
  auto fs = NewPosixFileSystem(GetParam());
  if (!fs.ok() && GetParam() == IoBackend::kUring)
    GTEST_SKIP() << "needs io_uring: " << fs.status().ToString();
  ASSERT_TRUE(fs.ok()) << fs.status().ToString();
  if (GetParam() == IoBackend::kUring) {
    EXPECT_EQ((*fs)->backend_name(), "io_uring");
  }
  TempDir dir;
  const std::string path = dir.path() + "/f";
  WritableOptions wo;
  wo.preallocate = 1 << 16;
  auto w = (*fs)->OpenWritable(path, wo);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string big(300000, 'x');  // larger than the preallocation: file grows
  ASSERT_TRUE((*w)->Append(AsBytes("hello ")).ok());
  ASSERT_TRUE((*w)->AppendAndSync(AsBytes(big)).ok());
  ASSERT_TRUE((*w)->Sync().ok());
  EXPECT_EQ((*w)->offset(), 6 + big.size());
  ASSERT_TRUE((*w)->Close().ok());
  auto r = (*fs)->OpenReadable(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*(*r)->Size(), 6 + big.size());
  uint8_t buf[6];
  EXPECT_EQ(*(*r)->Read(0, 6, buf), 6u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), 6), "hello ");
  // Reopen without truncation (a recycled file): old bytes after our writes stay.
  WritableOptions keep;
  keep.truncate = false;
  auto w2 = (*fs)->OpenWritable(path, keep);
  ASSERT_TRUE(w2.ok());
  ASSERT_TRUE((*w2)->AppendAndSync(AsBytes("HELLO")).ok());
  auto whole = (*fs)->ReadWholeFile(path);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->substr(0, 7), "HELLO x");
  EXPECT_EQ(whole->size(), 6 + big.size());
  auto alloc = (*fs)->AllocatedBytes(path);
  ASSERT_TRUE(alloc.ok());
  EXPECT_GE(*alloc, big.size());
  ASSERT_TRUE((*fs)->WriteFileAtomic(dir.path(), "atomic", "v1").ok());
  ASSERT_TRUE((*fs)->WriteFileAtomic(dir.path(), "atomic", "v2").ok());
  EXPECT_EQ(*(*fs)->ReadWholeFile(dir.path() + "/atomic"), "v2");
}

INSTANTIATE_TEST_SUITE_P(Backends, PosixFiles, ::testing::Values(IoBackend::kPosix, IoBackend::kUring));

TEST(UringProbe, ReportsWhatItFound) {
  const UringProbe p = ProbeUring();
  EXPECT_FALSE(p.detail.empty());
  if (p.available) {
    EXPECT_NE(p.detail.find("WRITE+FSYNC"), std::string::npos);
  }
}

}  // namespace
}  // namespace kvf::logstore
