// Heap settings for processes that move large records: glibc's malloc, left
// to its defaults, gives memory back to the kernel as soon as it is freed
// (the top of the heap past 128 KiB, and every block it mapped), so a stage
// that fills and frees multi-megabyte buffers over and over (parser buffers
// and record batches holding 20 KB values) faults every page of them in
// again each time.
#pragma once

namespace kvf {

// Keeps up to 64 MiB of freed memory at the top of the heap, and maps only
// blocks of 32 MiB and more on their own. Call once at the start of main(),
// before any thread starts.
void KeepFreedHeapMemory();

}  // namespace kvf
