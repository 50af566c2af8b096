// An allocator for large tables that grow by doubling (the ambiguity
// tracker's key table): a block of 256 KiB or more is mapped on its own,
// aligned to 2 MiB and advised to use transparent huge pages, so that a
// table doubling its way to tens of megabytes faults a few huge pages
// instead of thousands of small ones (about 6 % of a pipelined decode).
// Smaller blocks come from the heap. Rounding a block up to whole huge pages
// may waste most of a small one, so this is for a few large tables, not for
// containers a stage holds many of (those stay on the heap, which
// KeepFreedHeapMemory keeps from faulting again). Stateless: any two
// instances are equal.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace kvf {

namespace huge_pages {

inline constexpr size_t kPage = size_t{2} << 20;
inline constexpr size_t kThreshold = size_t{256} << 10;
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

inline size_t Rounded(size_t bytes) {
  return (bytes + kPage - 1) & ~(kPage - 1);
}

// A mapping of `bytes` (a multiple of kPage) aligned to kPage, or nullptr.
// The kernel may still back it with small pages (THP off, or no huge page
// free): the memory is usable either way.
inline void* Map(size_t bytes) {
  void* m = mmap(nullptr, bytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = Rounded(base);
  if (aligned > base) munmap(m, aligned - base);
  const uintptr_t end = base + bytes + kPage;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - aligned - bytes);
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

}  // namespace huge_pages

template <typename T>
class HugePageAllocator {
 public:
  using value_type = T;

  HugePageAllocator() noexcept = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT: rebinding converts implicitly

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
  static bool Mapped(size_t bytes) { return !huge_pages::kOff && bytes >= huge_pages::kThreshold; }
};

template <typename T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace kvf
