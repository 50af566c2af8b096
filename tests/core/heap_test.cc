// KeepFreedHeapMemory: a large block freed and allocated again comes back
// without faulting its pages in anew (glibc's defaults unmap it on free).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>

#include "core/heap.h"
#include "core/huge_pages.h"

namespace kvf {
namespace {

long MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

// Allocates, touches and frees `bytes`; the minor page faults that took.
long FaultsToUse(size_t bytes) {
  const long before = MinorFaults();
  char* p = static_cast<char*>(std::malloc(bytes));
  std::memset(p, 1, bytes);
  asm volatile("" : : "r"(p) : "memory");  // the stores happen
  std::free(p);
  return MinorFaults() - before;
}

TEST(Heap, AFreedLargeBlockIsReusedWithoutFaultingItsPagesAgain) {
  if (huge_pages::kOff) GTEST_SKIP() << "built with AddressSanitizer, whose allocator is not glibc's";
  KeepFreedHeapMemory();
  constexpr size_t kBlock = 16 << 20;  // 4096 pages of 4 KiB
  FaultsToUse(kBlock);
  EXPECT_LT(FaultsToUse(kBlock), 256) << "the block was given back to the kernel and faulted in again";
}

}  // namespace
}  // namespace kvf
