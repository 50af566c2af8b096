// HugePageAllocator: large blocks are mapped on 2 MiB boundaries; small and
// large ones hold what is written, across growth and copies.
#include "core/huge_pages.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace kvf {
namespace {

bool OnHugeBoundary(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % huge_pages::kPage == 0;
}

TEST(HugePages, LargeBlocksAreMappedOnHugePageBoundaries) {
  if (huge_pages::kOff) GTEST_SKIP() << "built with AddressSanitizer: every block stays on the heap";
  HugePageVector<uint64_t> v(1000);
  v.resize(huge_pages::kThreshold / sizeof(uint64_t));
  EXPECT_TRUE(OnHugeBoundary(v.data()));
  v.resize(3 * huge_pages::kPage / sizeof(uint64_t) + 5);  // not a multiple of a huge page
  EXPECT_TRUE(OnHugeBoundary(v.data()));
}

TEST(HugePages, ContentsSurviveGrowthCopiesAndShrinking) {
  HugePageVector<uint32_t> v;
  for (uint32_t i = 0; i < 3'000'000; ++i) v.push_back(i * 2654435761u);  // grows through both kinds
  HugePageVector<uint32_t> copy = v;
  for (uint32_t i = 0; i < v.size(); i += 997) ASSERT_EQ(copy[i], i * 2654435761u) << i;
  EXPECT_EQ(copy.back(), 2'999'999u * 2654435761u);
  copy.resize(10);
  copy.shrink_to_fit();  // frees the mapping, takes heap memory
  EXPECT_EQ(copy[9], 9u * 2654435761u);
  v.assign(v.size(), 0);
  EXPECT_EQ(v[123456], 0u);
}

TEST(HugePages, AnImpossibleSizeThrowsInsteadOfWrapping) {
  HugePageAllocator<uint64_t> a;
  EXPECT_THROW(a.allocate(SIZE_MAX / 4), std::bad_array_new_length);
  if (!huge_pages::kOff) {  // AddressSanitizer aborts on such a request instead
    HugePageAllocator<char> c;
    EXPECT_THROW(c.allocate(SIZE_MAX / 2), std::bad_alloc);  // too large to map
  }
}

}  // namespace
}  // namespace kvf
