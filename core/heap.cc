#include "core/heap.h"

#include <malloc.h>

namespace kvf {

void KeepFreedHeapMemory() {
  // Setting either stops glibc from moving both itself; the mapping
  // threshold is the largest it would move to on its own.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

}  // namespace kvf
