// Little-endian fixed-width and LEB128 varint encoding, shared by every
// on-disk and on-wire format. Decoders are bounds-checked and never read past
// the span they are given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace kvf {

using ByteSpan = std::span<const uint8_t>;

inline ByteSpan AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsChars(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

template <typename T>
inline void StoreLE(uint8_t* dst, T v) {
  static_assert(std::is_unsigned_v<T>);
  for (size_t i = 0; i < sizeof(T); ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
}
template <typename T>
inline T LoadLE(const uint8_t* src) {
  static_assert(std::is_unsigned_v<T>);
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(src[i]) << (8 * i);
  return v;
}
template <typename T>
inline void AppendLE(std::string* dst, T v) {
  uint8_t buf[sizeof(T)];
  StoreLE(buf, v);
  dst->append(reinterpret_cast<const char*>(buf), sizeof(T));
}

inline constexpr size_t kMaxVarint64Bytes = 10;

// Appends `v` as an unsigned LEB128 varint (1..10 bytes).
inline void AppendVarint(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}
inline size_t VarintLength(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Reads values from the front of a byte span; every Read* returns false
// (leaving the output untouched) when the bytes are truncated or malformed.
class ByteReader {
 public:
  explicit ByteReader(ByteSpan bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  explicit ByteReader(std::string_view s) : ByteReader(AsBytes(s)) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* position() const { return p_; }

  template <typename T>
  bool ReadLE(T* out) {
    if (remaining() < sizeof(T)) return false;
    *out = LoadLE<T>(p_);
    p_ += sizeof(T);
    return true;
  }
  bool ReadVarint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0, i = 0; i < static_cast<int>(kMaxVarint64Bytes) && p_ + i < end_; ++i, shift += 7) {
      const uint8_t b = p_[i];
      if (i == 9 && b > 1) return false;  // would overflow 64 bits
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        p_ += i + 1;
        *out = v;
        return true;
      }
    }
    return false;
  }
  bool ReadBytes(size_t n, std::string_view* out) {
    if (remaining() < n) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  // A varint length followed by that many bytes, refused above `max_len`.
  bool ReadLengthPrefixed(std::string_view* out, uint64_t max_len) {
    const uint8_t* save = p_;
    uint64_t n = 0;
    if (!ReadVarint(&n) || n > max_len || !ReadBytes(static_cast<size_t>(n), out)) {
      p_ = save;
      return false;
    }
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

inline void AppendLengthPrefixed(std::string* dst, std::string_view s) {
  AppendVarint(dst, s.size());
  dst->append(s);
}

}  // namespace kvf
