// The small file interface the log does all its I/O through (leveldb Env
// style): a POSIX implementation (pwritev + fdatasync), an io_uring one
// (linked write + fdatasync, probed at start), and an in-memory one for tests
// that can also simulate a crash (unsynced bytes lost) and a full disk.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace kvf::logstore {

// Appends at a moving offset. Not thread-safe: one owner thread.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of `data` at the current offset and advances it. Short
  // writes are retried internally; an error leaves the offset unspecified.
  virtual Status Append(ByteSpan data) = 0;
  // Makes every byte appended so far durable (fdatasync semantics).
  virtual Status Sync() = 0;
  // Append + Sync; io_uring submits both linked in one system call.
  virtual Status AppendAndSync(ByteSpan data) {
    KVF_RETURN_IF_ERROR(Append(data));
    return Sync();
  }
  virtual Status Close() = 0;
  virtual uint64_t offset() const = 0;
  // Moves the append offset back by `bytes` (<= offset()): the next Append
  // overwrites them. The log uses it to write a zero trailer after its
  // records that the next write replaces (see log_format.h).
  virtual void Rewind(uint64_t bytes) = 0;
};

// Positional reads; safe to call from several threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `n` bytes at `offset` into `dst`; returns the count (short
  // only at end of file).
  virtual Result<size_t> Read(uint64_t offset, size_t n, uint8_t* dst) const = 0;
  virtual Result<uint64_t> Size() const = 0;
};

struct WritableOptions {
  bool truncate = true;       // false: keep the old bytes (recycled segment)
  uint64_t start_offset = 0;  // where Append starts writing
  uint64_t preallocate = 0;   // fallocate this many bytes (size grows, zeros)
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                             const WritableOptions& opts) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, unsorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual Status CreateDir(const std::string& dir) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  virtual Status Truncate(const std::string& path, uint64_t size) = 0;
  // Bytes the file occupies on disk (st_blocks), for the disk budget.
  virtual Result<uint64_t> AllocatedBytes(const std::string& path) = 0;
  // Makes renames/creations/removals in `dir` durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Human-readable name of the write path ("io_uring", "pwritev", "memory").
  virtual std::string_view backend_name() const = 0;

  // Writes `data` to a temp file, syncs it, renames it over `path` and syncs
  // the directory: after a crash `path` holds the old or the new bytes.
  Status WriteFileAtomic(const std::string& dir, const std::string& name, std::string_view data);
  // Reads a whole (small) file.
  Result<std::string> ReadWholeFile(const std::string& path);
};

enum class IoBackend { kAuto, kUring, kPosix };

// What the kernel's io_uring offers, as probed at start.
struct UringProbe {
  bool available = false;
  std::string detail;  // what is missing, or the features found
};
UringProbe ProbeUring();

// kAuto uses io_uring when ProbeUring() says it is usable, else POSIX; kUring
// fails with Unsupported (and the probe's message) when it is not.
Result<std::unique_ptr<FileSystem>> NewPosixFileSystem(IoBackend backend);

// In-memory file system. Thread-safe. Crash() drops every byte not covered
// by a Sync() (and files/renames are immediately "durable").
class MemFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                     const WritableOptions& opts) override;
  Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Status CreateDir(const std::string& dir) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status Truncate(const std::string& path, uint64_t size) override;
  Result<uint64_t> AllocatedBytes(const std::string& path) override;
  Status SyncDir(const std::string&) override { return Status::Ok(); }
  std::string_view backend_name() const override { return "memory"; }

  // Test hooks.
  void Crash();
  // Total bytes all files may hold; beyond it writes fail with ENOSPC.
  void SetCapacity(uint64_t bytes);
  // Direct access to a file's bytes (creating it if absent).
  std::string* MutableContents(const std::string& path);
  // Every Sync() fails with `err` (0: sync works again).
  void SetSyncError(int err);

  struct File {
    std::string data;     // what reads see
    std::string durable;  // what survives Crash(): data as of the last Sync()
  };

 private:
  friend class MemWritableFile;
  friend class MemReadableFile;
  uint64_t TotalBytesLocked() const;

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<File>> files_;
  uint64_t capacity_ = UINT64_MAX;
  int sync_error_ = 0;
};

}  // namespace kvf::logstore
