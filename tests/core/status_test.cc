#include "core/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace kvf {
namespace {

TEST(Status, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
}

TEST(Status, FromErrnoAcceptsBothSigns) {
  Status a = Status::FromErrno(ENOSPC, "append segment 3");
  Status b = Status::FromErrno(-ENOSPC, "append segment 3");
  EXPECT_EQ(a.code(), StatusCode::kIoError);
  EXPECT_EQ(a.sys_errno(), ENOSPC);
  EXPECT_EQ(b.sys_errno(), ENOSPC);
  EXPECT_EQ(a.ToString(), "I/O error: append segment 3: No space left on device");
}

Result<int> Half(int v) {
  if (v % 2) return InvalidArgument("odd");
  return v / 2;
}

Status UsesMacro(int v, int* out) {
  auto r = Half(v);
  KVF_RETURN_IF_ERROR(r.status());
  *out = *r;
  return Status::Ok();
}

TEST(Result, ValueOrError) {
  auto ok = Half(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 4);
  auto bad = Half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  int out = 0;
  EXPECT_TRUE(UsesMacro(10, &out).ok());
  EXPECT_EQ(out, 5);
  EXPECT_EQ(UsesMacro(7, &out).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvf
