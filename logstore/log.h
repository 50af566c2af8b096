// The change log: a directory of segments with one writer (any thread may
// Append; seq is assigned here, densely), group commit on a dedicated I/O
// thread, a durable watermark, recovery at open, readers that tail the log,
// per-destination cursors, retention and a disk budget. Public header of
// kvf_logstore.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/record.h"
#include "core/status.h"
#include "logstore/cursors.h"
#include "logstore/file.h"
#include "logstore/log_format.h"
#include "logstore/segment_scanner.h"

namespace kvf::logstore {

// When the I/O thread fdatasyncs (group commit).
enum class SyncMode {
  kEveryMs,     // at most every `sync_every_ms` while there is unsynced data
  kEveryBytes,  // once `sync_every_bytes` are unsynced, or sync_every_ms after the last sync
  kPerBatch,    // after every write the I/O thread does
  kNever,       // only on Sync()/Close() and segment rotation
};

// What happens when the disk budget (or the disk) is full.
enum class FullPolicy {
  kBlock,       // the writer waits for space; Append blocks once its buffer is full
  kDropOldest,  // delete the oldest segment even if not every destination shipped it
};

struct LogOptions {
  std::string dir;
  FileSystem* fs = nullptr;  // null: a POSIX file system with `io`, owned by the Log
  IoBackend io = IoBackend::kAuto;
  SiteId origin = 0;
  uint64_t segment_bytes = 64ull << 20;  // rotate before a segment (+ end marker) would exceed this
  uint64_t segment_max_age_ms = 0;       // also rotate segments older than this (0: off)
  bool preallocate = true;               // fallocate new segments to segment_bytes
  size_t recycle_keep = 4;               // retired segment files kept for reuse
  SyncMode sync_mode = SyncMode::kEveryMs;
  uint64_t sync_every_ms = 5;
  uint64_t sync_every_bytes = 1ull << 20;
  size_t max_pending_bytes = 64ull << 20;  // Append blocks while this much is unwritten
  uint64_t retention_ms = 0;               // keep shipped segments at least this long
  uint64_t cursor_persist_ms = 1000;       // the I/O thread persists changed cursors this often
  uint64_t disk_budget_bytes = 0;          // 0: only the disk itself limits
  FullPolicy full_policy = FullPolicy::kBlock;
  // Gets recovery's and readers' drop reports; must outlive the Log.
  Reporter* reporter = nullptr;
  // Called on the I/O thread after each durable advance; must not block.
  std::function<void(uint64_t durable_seq)> on_durable;
};

// What Open() found and did.
struct RecoveryInfo {
  uint64_t segments = 0;
  uint64_t first_seq = 0;  // lowest seq still in the log (0: empty)
  uint64_t last_seq = 0;   // highest recovered seq (0: empty)
  uint64_t tail_records = 0;
  uint64_t dropped_bytes = 0;
  uint64_t truncated_bytes = 0;  // torn tail cut off the last segment
  std::vector<DropReport> drops;
};

struct LogStats {
  uint64_t appended_seq = 0;  // last seq handed out
  uint64_t written_seq = 0;   // last seq written to the file (page cache)
  uint64_t durable_seq = 0;   // last seq covered by a completed fdatasync
  uint64_t appended_records = 0;
  uint64_t appended_bytes = 0;
  uint64_t syncs = 0;
  uint64_t segments = 0;
  uint64_t segments_created = 0;
  uint64_t segments_recycled = 0;
  uint64_t segments_deleted = 0;
  uint64_t disk_full_waits = 0;  // times the writer waited for space
  uint64_t disk_bytes = 0;
  std::map<std::string, uint64_t> dropped_unshipped;  // per destination (drop-oldest)
  std::string io_backend;
  std::string error;  // sticky writer error, empty when healthy
};

class LogReader;

// Thread-safe. Destroying the Log closes it (see Close()).
class Log {
 public:
  static Result<std::unique_ptr<Log>> Open(LogOptions options);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Appends one record (its seq field is ignored) and returns the seq it got.
  // Blocks while max_pending_bytes are waiting to be written. Fails with the
  // writer's sticky error, or ResourceExhausted for a record over the cap.
  Result<uint64_t> Append(const ChangeRecord& record);
  // Appends records in order with consecutive seqs; returns the first seq.
  Result<uint64_t> AppendBatch(std::span<const ChangeRecord> records);

  // Returns once everything appended before the call is durable.
  Status Sync();
  // Waits until `seq` is durable; Unavailable on timeout.
  Status WaitDurable(uint64_t seq, std::chrono::milliseconds timeout);
  uint64_t durable_seq() const { return durable_seq_.load(std::memory_order_acquire); }
  uint64_t written_seq() const;
  // Readable (eventfd counter) after every durable advance. Owned by the Log.
  int durable_eventfd() const { return eventfd_; }

  // Writes and syncs what is pending, stops the I/O thread, persists cursors.
  Status Close();

  // A reader from `from_seq`. `durable_only`: never returns a record before
  // it is durable. The Log must outlive its readers. `reporter` may be null.
  // Readers never block the writer; a reader that falls behind every cursor
  // (or behind kDropOldest) can find its segment retired under it, which it
  // sees as the end of that segment and a gap in the seqs it returns.
  std::unique_ptr<LogReader> NewReader(uint64_t from_seq, bool durable_only, Reporter* reporter);

  // Cursors: raised by destinations as they acknowledge; clamped to the
  // durable seq so a cursor is never ahead of what the log promises.
  Status AdvanceCursor(const std::string& dest, uint64_t seq);
  // Writes the cursors durably. On a full disk it frees a recycled file (or,
  // under kDropOldest, the oldest segment) and retries once.
  Status PersistCursors();
  std::map<std::string, uint64_t> Cursors() const { return cursors_.Snapshot(); }

  // Deletes (or keeps for recycling) sealed segments every cursor passed and
  // older than retention_ms; with no cursor at all nothing is deleted.
  // Returns how many were retired. Also runs on the I/O thread about once a
  // second and when the disk budget is reached.
  Result<int> RunRetention();

  const RecoveryInfo& recovery() const { return recovery_; }
  LogStats Stats() const;
  const std::string& dir() const { return options_.dir; }

 private:
  friend class LogReader;
  struct Segment {
    uint64_t number = 0;
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;   // last seq appended into it (0: none yet)
    bool last_known = true;  // false: recovered segment whose end was not derived
    uint64_t created_ms = 0;
    uint64_t end_offset = 0;                           // bytes written (sealed or active); 0: unknown
    std::vector<std::pair<uint64_t, uint64_t>> index;  // sparse (seq, offset)
  };
  struct Chunk {
    uint64_t segment = 0;
    bool new_segment = false;
    uint64_t last_seq = 0;  // 0: no record in this chunk (header only)
    std::string bytes;
  };
  // What a reader may see, taken under mu_.
  struct ReadView {
    std::vector<Segment> segments;  // on disk, oldest first (index not copied)
    uint64_t written_segment = 0;
    uint64_t written_end = 0;
    uint64_t visible_seq = 0;
  };

  Log(LogOptions options, std::unique_ptr<FileSystem> owned_fs, FileSystem* fs);
  Status Recover();
  std::string PathOf(uint64_t segment) const;
  std::string RecyclePath(uint64_t n) const;
  // Producer side, under mu_.
  Status WaitForSpaceLocked(std::unique_lock<std::mutex>& lock, size_t bytes);
  void AppendLocked(std::string_view payload, uint64_t hlc);
  void StartSegmentLocked(uint64_t now_ms);
  // I/O thread.
  void IoLoop();
  // Creates (or recycles) segment `number` into file_. Out of space: retires
  // by retention, then applies the FullPolicy; kBlock waits unless `at_open`.
  Status OpenSegmentFile(uint64_t number, bool at_open);
  Status SyncAndPublish();
  void PublishDurable(uint64_t seq);
  uint64_t DiskBytes() const;
  Status DropOldestSegment();
  ReadView Snapshot(bool durable_only) const;
  bool IoShouldWakeLocked() const;
  bool io_sleeping_ = false;
  bool io_idle_ = false;         // the I/O thread sleeps with nothing to write or sync
  uint64_t active_segment_ = 0;  // segment being written or opened; lower ones are sealed
  std::vector<std::pair<uint64_t, uint64_t>> IndexOf(uint64_t segment) const;
  bool WaitForMore(uint64_t after_seq, bool durable_only, std::chrono::milliseconds timeout) const;

  LogOptions options_;
  std::unique_ptr<FileSystem> owned_fs_;
  FileSystem* fs_ = nullptr;
  CursorStore cursors_;
  RecoveryInfo recovery_;
  int eventfd_ = -1;

  mutable std::mutex mu_;
  std::condition_variable io_cv_;                // wakes the I/O thread
  std::condition_variable space_cv_;             // wakes blocked producers
  mutable std::condition_variable progress_cv_;  // written/durable advanced
  std::deque<Segment> segments_;
  std::vector<Chunk> pending_;
  size_t pending_bytes_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t cur_segment_ = 0;
  uint64_t cur_segment_bytes_ = 0;
  uint64_t cur_segment_created_ms_ = 0;
  uint64_t cur_segment_records_ = 0;
  uint64_t last_index_offset_ = 0;
  bool rotate_requested_ = false;
  bool stop_ = false;
  uint64_t sync_requested_seq_ = 0;
  Status error_;
  uint64_t written_seq_ = 0;
  uint64_t written_segment_ = 0;
  uint64_t written_end_ = 0;
  std::atomic<uint64_t> durable_seq_{0};
  std::deque<std::string> recycle_pool_;  // paths of retired files ready for reuse
  uint64_t recycle_counter_ = 0;
  LogStats stats_;

  std::mutex retention_mu_;  // one retention pass at a time

  // I/O thread only.
  std::unique_ptr<WritableFile> file_;
  uint64_t unsynced_bytes_ = 0;
  uint64_t unsynced_seq_ = 0;  // last written seq not yet synced (0: none)
  std::chrono::steady_clock::time_point last_sync_;
  std::thread io_thread_;
  bool closed_ = false;
};

// Reads records in seq order from a live Log, or from a directory offline
// (OpenDir). Not thread-safe: one reader per consumer thread. Damage is sent
// to the reporter and skipped; the seqs it swallowed are the gap between
// consecutive records returned.
class LogReader {
 public:
  // Offline reader over a directory nothing is writing to.
  static Result<std::unique_ptr<LogReader>> OpenDir(FileSystem* fs, const std::string& dir, uint64_t from_seq,
                                                    Reporter* reporter);
  ~LogReader();

  // The next record; false when caught up (status() ok) or on an I/O error.
  bool Next(ChangeRecord* out);
  // Live readers: blocks until a record past the last returned one becomes
  // visible, or the timeout. Offline readers return false at once.
  bool WaitForMore(std::chrono::milliseconds timeout);
  const Status& status() const { return status_; }
  // The seq the next Next() looks for.
  uint64_t next_seq() const { return next_seq_; }

 private:
  friend class Log;
  LogReader(const Log* log, FileSystem* fs, std::string dir, uint64_t from_seq, bool durable_only,
            Reporter* reporter);
  bool OpenSegmentFor(const Log::ReadView& view);
  Log::ReadView View() const;
  uint64_t limit_ = 0;

  const Log* log_;  // null: offline
  FileSystem* fs_;
  std::string dir_;
  bool durable_only_;
  Reporter* reporter_;
  uint64_t next_seq_;
  Status status_;
  // Offline: the segment list, read once.
  std::vector<Log::Segment> offline_segments_;
  // Current segment.
  uint64_t segment_ = 0;
  std::unique_ptr<RandomAccessFile> file_;
  std::unique_ptr<SegmentScanner> scanner_;
  bool segment_complete_ = false;
  uint64_t visible_seq_ = 0;
  bool have_held_ = false;
  ChangeRecord held_;
};

}  // namespace kvf::logstore
