// Bounded cache of Lua script bodies by SHA-1, learned from the requests of
// captured `SCRIPT LOAD`, `EVAL` and `EVAL_RO` (digest computed here: the
// body's own, whatever became of the request), so that an `EVALSHA` can be
// shipped as `EVAL` with the body: SCRIPT LOAD itself is not a write and
// never reaches the target.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvf::resp {

// SHA-1 of `data` as 40 lowercase hex digits (the form Redis returns).
std::string Sha1Hex(std::string_view data);

struct ScriptCacheOptions {
  size_t max_scripts = 4096;     // entries kept; the oldest learned is evicted first
  size_t max_bytes = 16u << 20;  // bytes of script bodies kept
};

// Thread-safe: one cache may be shared by the connections of every capture
// worker, so that a script loaded through one worker's connection names the
// body for an EVALSHA that another worker's connection decodes. One mutex
// guards the map; it is taken once per SCRIPT LOAD / EVAL / EVALSHA, never
// per packet, and SHA-1 is computed outside it.
class ScriptCache {
 public:
  explicit ScriptCache(ScriptCacheOptions options = {}) : opts_(options) {}

  // Remembers `body` under `sha` (any case; 40 hex digits, else ignored).
  // A body larger than max_bytes is not kept.
  void Learn(std::string_view sha, std::string_view body);
  // Remembers `body` under its computed SHA-1 (what EVAL makes the server cache).
  void LearnBody(std::string_view body) { Learn(Sha1Hex(body), body); }
  // The body of `sha` (any case), or null. The body is immutable and stays
  // valid for as long as the caller holds the pointer, even if it is evicted
  // meanwhile (the bounds count only bodies still in the cache).
  std::shared_ptr<const std::string> Find(std::string_view sha) const;

  size_t size() const;
  size_t bytes() const;
  uint64_t evictions() const;

  // A function library is held back (it may call MIGRATE, or its code
  // cannot be read): an FCALL may run it, so none is shipped while one may
  // be loaded. Noted at its request, as bodies are learned (an FCALL
  // answered first may run it); its fate settles it: the server took it,
  // or may have (no reply came), and FCALLs to that server are held back
  // until its FUNCTION FLUSH; or it never ran (refused, DISCARDed…) (a
  // review: a refused FUNCTION RESTORE stopped every later FCALL from being
  // shipped, and the writes of those without keys were lost). Servers are
  // told apart by ConnectionOptions::server_key.
  void NoteLibraryRequested() { libraries_pending_.fetch_add(1, std::memory_order_relaxed); }
  void NoteLibrarySettled(bool loaded, uint64_t server) {
    if (loaded) {
      std::lock_guard<std::mutex> lock(mu_);
      library_servers_.insert(server);
      any_library_.store(true, std::memory_order_relaxed);
    }
    libraries_pending_.fetch_sub(1, std::memory_order_relaxed);
  }
  // FUNCTION FLUSH took every library of `server` away.
  void NoteFunctionsFlushed(uint64_t server) {
    std::lock_guard<std::mutex> lock(mu_);
    library_servers_.erase(server);
    any_library_.store(!library_servers_.empty(), std::memory_order_relaxed);
  }
  // Function names the libraries a server took register
  // (RegisteredFunctionNames), kept up to kMaxFunctionNames, in lower case:
  // Redis looks functions up in any case. An FCALL of another function ran
  // a library the capture never saw loaded.
  static constexpr size_t kMaxFunctionNames = 4096;
  void LearnFunctions(const std::vector<std::string>& names);
  bool FunctionKnown(std::string_view name) const;
  // Functions whose library names FLUSHDB, FLUSHALL or SWAPDB (`names`, the
  // bits of resp::DatabaseWideNames): an FCALL of one is database-wide, as
  // an EVAL of such a body is (DbsChangedBy). Learned when the library is
  // requested, so that an FCALL pipelined behind its FUNCTION LOAD is
  // ordered too (`every_fcall` only once the server took it); never forgotten (a REPLACE, a FUNCTION DELETE
  // or FLUSH before an FCALL taken later cannot be told from the FCALL's record): at worst an FCALL is
  // ordered it need not be. Kept up to kMaxFunctionNames; past that, every FCALL is (all bits). So is every
  // FCALL when `every_fcall`: the library registers a function whose name
  // is not a literal (a review: `redis.register_function(n, …)` with
  // `local n = 'wipe'`, and a SET racing its flush stayed on the replica).
  void LearnDatabaseWideFunctions(const std::vector<std::string>& names, uint8_t names_bits,
                                  bool every_fcall = false);
  uint8_t DatabaseWideNamesOf(std::string_view function) const {
    if (!any_db_wide_function_.load(std::memory_order_relaxed)) return 0;
    return DatabaseWideNamesSlow(function);
  }
  bool library_held_back(uint64_t server) const {
    if (libraries_pending_.load(std::memory_order_relaxed) > 0) return true;
    if (!any_library_.load(std::memory_order_relaxed)) return false;
    std::lock_guard<std::mutex> lock(mu_);
    return library_servers_.count(server) != 0;
  }

 private:
  // 40 lowercase hex digits, or false.
  static bool Normalize(std::string_view sha, std::array<char, 40>* out);
  uint8_t DatabaseWideNamesSlow(std::string_view function) const;

  const ScriptCacheOptions opts_;
  mutable std::mutex mu_;
  // Guarded by mu_:
  std::unordered_map<std::string, std::shared_ptr<const std::string>> bodies_;  // lowercase sha -> body
  std::deque<std::string> order_;                                               // shas, oldest first
  size_t bytes_ = 0;
  uint64_t evictions_ = 0;
  std::set<uint64_t> library_servers_;            // holding a library held back; guarded by mu_
  std::set<std::string, std::less<>> functions_;  // LearnFunctions; guarded by mu_
  // LearnDatabaseWideFunctions, lower case; guarded by mu_.
  std::map<std::string, uint8_t, std::less<>> db_wide_functions_;
  // Bits every FCALL gets: of functions not kept (the map was full), and of
  // libraries with a function named by no literal; guarded by mu_.
  uint8_t db_wide_overflow_ = 0;
  std::atomic<bool> any_db_wide_function_{false};
  std::atomic<bool> any_library_{false};  // library_servers_ is not empty
  std::atomic<int64_t> libraries_pending_{0};
};

}  // namespace kvf::resp
