// Checksums for on-disk and on-wire framing. CRC32C (Castagnoli) is the
// project's record checksum: it has a hardware instruction on x86-64 (SSE4.2)
// and arm64, detects all burst errors up to 32 bits, and is what leveldb,
// rocksdb and iSCSI use, so known-answer vectors are easy to check. XXH3-64 is
// offered for hashing keys to streams and workers, where speed matters and
// error-detection guarantees do not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kvf {

// Extends `crc` (0 to start) over `data`. Uses SSE4.2 when the CPU has it.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(std::string_view s) {
  return Crc32c(0, s.data(), s.size());
}
// The portable table-driven implementation, exposed so tests compare both.
uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t n);
bool Crc32cHardwareAvailable();

// leveldb-style masking so a CRC stored next to the data it covers does not
// checksum to a trivially predictable value when the CRC itself is hashed.
inline uint32_t MaskCrc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}
inline uint32_t UnmaskCrc(uint32_t masked) {
  const uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

uint64_t Xxh3(const void* data, size_t n, uint64_t seed = 0);
inline uint64_t Xxh3(std::string_view s, uint64_t seed = 0) {
  return Xxh3(s.data(), s.size(), seed);
}

}  // namespace kvf
