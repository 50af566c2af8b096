// Per-destination cursors: the highest seq each destination acknowledged.
// Kept in memory, persisted on request as one small file written to a temp
// name, fsync'd and renamed over "cursors", so a crash leaves the old or the
// new set, never a mix. A cursor only moves forward.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "core/status.h"
#include "logstore/file.h"

namespace kvf::logstore {

// File format ("cursors" in the log directory), text so operators can read it:
//   kvferry-cursors 1\n
//   <destination> <seq>\n          (one per destination, names without spaces)
//   crc32c <8 hex digits>\n        (masked CRC32C of every byte before this line)
class CursorStore {
 public:
  static constexpr const char* kFileName = "cursors";

  // `fs` must outlive the store.
  CursorStore(FileSystem* fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}

  // Loads the persisted cursors; a missing file is an empty set, a damaged
  // one is Corruption (the caller decides; starting from 0 is always safe).
  Status Load();
  // Raises `dest`'s cursor to `seq` (lower values are ignored). Thread-safe.
  // InvalidArgument for names with whitespace or empty names.
  Status Advance(const std::string& dest, uint64_t seq);
  // Writes the current set durably (no-op if nothing changed).
  Status Persist();

  std::map<std::string, uint64_t> Snapshot() const;
  // Lowest cursor over all destinations; UINT64_MAX when there are none.
  uint64_t Min() const;

  static std::string Encode(const std::map<std::string, uint64_t>& cursors);
  static Status Decode(std::string_view bytes, std::map<std::string, uint64_t>* out);

 private:
  FileSystem* fs_;
  std::string dir_;
  std::mutex persist_mu_;  // serialises Persist() so an older set never lands last
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> cursors_;
  bool dirty_ = false;
};

}  // namespace kvf::logstore
