// Bounded cache of Lua script bodies by SHA-1, learned from captured
// `SCRIPT LOAD` (body from the request, digest from the reply) and `EVAL`
// (digest computed here), so that an `EVALSHA` can be shipped as `EVAL` with
// the body: SCRIPT LOAD itself is not a write and never reaches the target.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvf::resp {

// SHA-1 of `data` as 40 lowercase hex digits (the form Redis returns).
std::string Sha1Hex(std::string_view data);

struct ScriptCacheOptions {
  size_t max_scripts = 4096;     // entries kept; the oldest learned is evicted first
  size_t max_bytes = 16u << 20;  // bytes of script bodies kept
};

// Thread confinement: one thread (shared by the connections of one shard).
class ScriptCache {
 public:
  explicit ScriptCache(ScriptCacheOptions options = {}) : opts_(options) {}

  // Remembers `body` under `sha` (any case; 40 hex digits, else ignored).
  // A body larger than max_bytes is not kept.
  void Learn(std::string_view sha, std::string_view body);
  // Remembers `body` under its computed SHA-1 (what EVAL makes the server cache).
  void LearnBody(std::string_view body) { Learn(Sha1Hex(body), body); }
  // The body of `sha` (any case), or nullptr. Valid until the next Learn.
  const std::string* Find(std::string_view sha) const;

  size_t size() const { return bodies_.size(); }
  size_t bytes() const { return bytes_; }
  uint64_t evictions() const { return evictions_; }

 private:
  // 40 lowercase hex digits, or false.
  static bool Normalize(std::string_view sha, std::array<char, 40>* out);

  ScriptCacheOptions opts_;
  std::unordered_map<std::string, std::string> bodies_;  // lowercase sha -> body
  std::deque<std::string> order_;                        // shas, oldest first
  size_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace kvf::resp
