// An allocator for the large tables and buffers of the record path (the
// ambiguity tracker's key table, record batches): a large block is mapped
// on its own, aligned to 2 MiB and advised to use transparent huge
// pages, so that filling it takes one page fault per 2 MiB instead of one
// per 4 KiB. Smaller blocks come from the ordinary heap. Stateless: any two
// instances are equal, and a container's memory may be freed by a copy.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace kvf {

namespace huge_pages {

inline constexpr size_t kPage = size_t{2} << 20;
// By default blocks from one huge page up are mapped, rounded up to whole
// huge pages: rounding wastes less than half of any block (the kernel may
// back a touched huge page whole), so containers of which a stage holds many
// (record batches) cost at most twice what they use. A single table that
// doubles its way to many megabytes may start lower (kTableThreshold): it
// then faults a few huge pages on the way instead of thousands of small ones.
inline constexpr size_t kDefaultThreshold = kPage;
inline constexpr size_t kTableThreshold = size_t{256} << 10;
// Under AddressSanitizer everything stays on the heap, where overruns are
// caught.
#if defined(__SANITIZE_ADDRESS__)
#define KVF_HUGE_PAGES_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVF_HUGE_PAGES_OFF 1
#endif
#endif
#ifdef KVF_HUGE_PAGES_OFF
inline constexpr bool kOff = true;
#else
inline constexpr bool kOff = false;
#endif

// The mapping that holds `bytes` (a multiple of kPage), aligned to kPage, or
// nullptr. The kernel may still give small pages (THP off, or no huge page
// free): the memory is usable either way.
inline void* Map(size_t bytes) {
  void* m = mmap(nullptr, bytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = (base + kPage - 1) & ~(kPage - 1);
  if (aligned > base) munmap(m, aligned - base);
  const uintptr_t end = base + bytes + kPage;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - aligned - bytes);
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

inline size_t Rounded(size_t bytes) {
  return (bytes + kPage - 1) & ~(kPage - 1);
}

}  // namespace huge_pages

// Blocks of `kMinBytes` and more are mapped.
template <typename T, size_t kMinBytes = huge_pages::kDefaultThreshold>
class HugePageAllocator {
 public:
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = HugePageAllocator<U, kMinBytes>;
  };

  HugePageAllocator() noexcept = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U, kMinBytes>&) noexcept {
  }  // NOLINT: rebinding converts implicitly

  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (!Mapped(bytes)) return std::allocator<T>().allocate(n);
    void* p = huge_pages::Map(huge_pages::Rounded(bytes));
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (!Mapped(bytes)) {
      std::allocator<T>().deallocate(p, n);
      return;
    }
    munmap(p, huge_pages::Rounded(bytes));
  }

  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) noexcept { return true; }

 private:
  static bool Mapped(size_t bytes) { return !huge_pages::kOff && bytes >= kMinBytes; }
};

template <typename T, size_t kMinBytes = huge_pages::kDefaultThreshold>
using HugePageVector = std::vector<T, HugePageAllocator<T, kMinBytes>>;
using HugePageString = std::basic_string<char, std::char_traits<char>, HugePageAllocator<char>>;

}  // namespace kvf
