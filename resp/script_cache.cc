// SHA-1 (FIPS 180-4; used only to name scripts as Redis does, not for
// security) and the bounded script-body cache.
#include "resp/script_cache.h"

#include <cctype>
#include <cstring>
#include <vector>

namespace kvf::resp {

namespace {

inline uint32_t Rol(uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

void Sha1Block(const unsigned char* p, uint32_t h[5]) {
  uint32_t w[80];
  for (int i = 0; i < 16; ++i) {
    w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) | (uint32_t{p[4 * i + 2]} << 8) |
           uint32_t{p[4 * i + 3]};
  }
  for (int i = 16; i < 80; ++i) w[i] = Rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; ++i) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5a827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ed9eba1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8f1bbcdc;
    } else {
      f = b ^ c ^ d;
      k = 0xca62c1d6;
    }
    const uint32_t t = Rol(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = Rol(b, 30);
    b = a;
    a = t;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

}  // namespace

std::string Sha1Hex(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  while (n >= 64) {
    Sha1Block(p, h);
    p += 64;
    n -= 64;
  }
  // Final block(s): the rest, 0x80, zeros, the bit length big-endian.
  unsigned char tail[128] = {};
  std::memcpy(tail, p, n);
  tail[n] = 0x80;
  const size_t blocks = n + 9 <= 64 ? 1 : 2;
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[blocks * 64 - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
  for (size_t b = 0; b < blocks; ++b) Sha1Block(tail + 64 * b, h);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(40, '0');
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 8; ++j) out[8 * i + j] = kHex[(h[i] >> (28 - 4 * j)) & 0xf];
  }
  return out;
}

bool ScriptCache::Normalize(std::string_view sha, std::array<char, 40>* out) {
  if (sha.size() != 40) return false;
  for (size_t i = 0; i < 40; ++i) {
    char c = sha[i];
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    (*out)[i] = c;
  }
  return true;
}

void ScriptCache::Learn(std::string_view sha, std::string_view body) {
  std::array<char, 40> norm;
  if (!Normalize(sha, &norm) || body.size() > opts_.max_bytes || opts_.max_scripts == 0) return;
  std::string key(norm.data(), norm.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (bodies_.count(key) != 0) return;  // same digest, same body
  }
  // Copy the body outside the lock; a racing Learn of the same digest wins.
  auto value = std::make_shared<const std::string>(body);
  std::lock_guard<std::mutex> lock(mu_);
  if (bodies_.count(key) != 0) return;
  while (!order_.empty() && (bodies_.size() >= opts_.max_scripts || bytes_ + body.size() > opts_.max_bytes)) {
    auto it = bodies_.find(order_.front());
    bytes_ -= it->second->size();
    bodies_.erase(it);
    order_.pop_front();
    ++evictions_;
  }
  bytes_ += body.size();
  order_.push_back(key);
  bodies_.emplace(std::move(key), std::move(value));
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

void ScriptCache::LearnFunctions(const std::vector<std::string>& names) {
  if (names.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& n : names) {
    if (functions_.size() >= kMaxFunctionNames) break;
    functions_.insert(Lower(n));
  }
}

void ScriptCache::LearnDatabaseWideFunctions(const std::vector<std::string>& names, uint8_t names_bits,
                                             bool every_fcall) {
  if (names_bits == 0 || (names.empty() && !every_fcall)) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (every_fcall) db_wide_overflow_ |= names_bits;
  for (const std::string& n : names) {
    std::string lower = Lower(n);
    auto it = db_wide_functions_.find(lower);
    if (it != db_wide_functions_.end()) {
      it->second |= names_bits;
    } else if (db_wide_functions_.size() < kMaxFunctionNames) {
      db_wide_functions_.emplace(std::move(lower), names_bits);
    } else {
      db_wide_overflow_ |= names_bits;
    }
  }
  any_db_wide_function_.store(true, std::memory_order_relaxed);
}

uint8_t ScriptCache::DatabaseWideNamesSlow(std::string_view function) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (function.size() > 256) return db_wide_overflow_;
  const auto it = db_wide_functions_.find(Lower(function));
  return db_wide_overflow_ | (it == db_wide_functions_.end() ? 0 : it->second);
}

bool ScriptCache::FunctionKnown(std::string_view name) const {
  if (name.size() > 256) return false;
  const std::string lower = Lower(name);
  std::lock_guard<std::mutex> lock(mu_);
  return functions_.count(lower) != 0;
}

std::shared_ptr<const std::string> ScriptCache::Find(std::string_view sha) const {
  std::array<char, 40> norm;
  if (!Normalize(sha, &norm)) return nullptr;
  const std::string key(norm.data(), norm.size());
  std::lock_guard<std::mutex> lock(mu_);
  auto it = bodies_.find(key);
  return it == bodies_.end() ? nullptr : it->second;
}

size_t ScriptCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bodies_.size();
}

size_t ScriptCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

uint64_t ScriptCache::evictions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evictions_;
}

}  // namespace kvf::resp
