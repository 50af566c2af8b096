// The Log: recovery, the producer side (seq assignment, framing into pending
// chunks), the I/O thread (writes, group commit, rotation, space policy),
// retention and cursors. LogReader lives in log_reader.cc.
#include "logstore/log.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "core/hlc.h"

namespace kvf::logstore {

namespace {

constexpr uint64_t kIndexStride = 64 << 10;   // one index entry per 64 KiB of segment
constexpr size_t kWriteBatchBytes = 1 << 20;  // the I/O thread wakes early at this much
constexpr const char* kRecyclePrefix = "recycle-";
// A small preallocated file released when the disk is full, so that the
// cursors can still be persisted (and retention can make progress).
constexpr const char* kReserveName = "reserve";
constexpr uint64_t kReserveBytes = 64 << 10;

uint64_t NowMs() {
  return HybridClock::SystemMs();
}

// Forwards to the user's reporter and keeps a copy for RecoveryInfo.
class TeeReporter : public Reporter {
 public:
  TeeReporter(Reporter* next, RecoveryInfo* info) : next_(next), info_(info) {}
  void Dropped(const DropReport& r) override {
    info_->drops.push_back(r);
    info_->dropped_bytes += r.bytes;
    if (next_ != nullptr) next_->Dropped(r);
  }

 private:
  Reporter* next_;
  RecoveryInfo* info_;
};

}  // namespace

Log::Log(LogOptions options, std::unique_ptr<FileSystem> owned_fs, FileSystem* fs)
    : options_(std::move(options)), owned_fs_(std::move(owned_fs)), fs_(fs), cursors_(fs, options_.dir) {}

Log::~Log() {
  (void)Close();
}

std::string Log::PathOf(uint64_t segment) const {
  return options_.dir + "/" + SegmentFileName(segment);
}

std::string Log::RecyclePath(uint64_t n) const {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%s%016llx.seg", kRecyclePrefix, static_cast<unsigned long long>(n));
  return options_.dir + "/" + buf;
}

Result<std::unique_ptr<Log>> Log::Open(LogOptions options) {
  if (options.dir.empty()) return InvalidArgument("log: dir is empty");
  if (options.segment_bytes < kSegmentHeaderSize + kRecordHeaderSize + 1024) {
    return InvalidArgument("log: segment_bytes too small");
  }
  std::unique_ptr<FileSystem> owned;
  FileSystem* fs = options.fs;
  if (fs == nullptr) {
    auto posix = NewPosixFileSystem(options.io);
    if (!posix.ok()) return posix.status();
    owned = std::move(*posix);
    fs = owned.get();
  }
  std::unique_ptr<Log> log(new Log(std::move(options), std::move(owned), fs));
  log->stats_.io_backend = std::string(log->fs_->backend_name());
  log->eventfd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (log->eventfd_ < 0) return Status::FromErrno(errno, "eventfd");
  KVF_RETURN_IF_ERROR(log->Recover());
  log->last_sync_ = std::chrono::steady_clock::now();
  log->io_thread_ = std::thread([l = log.get()] { l->IoLoop(); });
  return log;
}

// ---- recovery ----

Status Log::Recover() {
  KVF_RETURN_IF_ERROR(fs_->CreateDir(options_.dir));
  auto names = fs_->ListDir(options_.dir);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> numbers;
  for (const auto& name : *names) {
    uint64_t n;
    if (ParseSegmentFileName(name, &n)) {
      numbers.push_back(n);
    } else if (name.rfind(kRecyclePrefix, 0) == 0) {
      recycle_pool_.push_back(options_.dir + "/" + name);
      // The next name past the highest in use, not past how many there
      // are: a name of the pool reused renamed a retired segment over a
      // pooled file, and the writer failed for good when it took that
      // file (a review).
      const std::string_view hex = std::string_view(name).substr(std::strlen(kRecyclePrefix), 16);
      uint64_t n = 0;
      const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), n, 16);
      recycle_counter_ = std::max(recycle_counter_, ec == std::errc() ? n : uint64_t{0});
    } else if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
      (void)fs_->Remove(options_.dir + "/" + name);  // an interrupted atomic write
    }
  }
  std::sort(numbers.begin(), numbers.end());
  TeeReporter reporter(options_.reporter, &recovery_);

  std::vector<Segment> segs;
  std::vector<bool> header_ok, zeroed;
  for (uint64_t n : numbers) {
    Segment s;
    s.number = n;
    auto f = fs_->OpenReadable(PathOf(n));
    if (!f.ok()) return f.status();
    uint8_t buf[kSegmentHeaderSize];
    auto got = (*f)->Read(0, sizeof(buf), buf);
    if (!got.ok()) return got.status();
    SegmentHeader h;
    Status hs = DecodeSegmentHeader(ByteSpan(buf, *got), &h);
    if (hs.ok() && h.segment != n) hs = Corruption("segment number differs from the file name");
    if (hs.ok()) {
      s.first_seq = h.first_seq;
      s.created_ms = h.created_ms;
    } else {
      // An all-zero (or empty) header is a segment whose creator died before
      // writing it: nothing was lost, so nothing is reported.
      bool unwritten = true;
      for (size_t i = 0; i < *got; ++i) unwritten = unwritten && buf[i] == 0;
      if (!unwritten) {
        DropReport r;
        r.segment = n;
        r.bytes = std::min<uint64_t>(*got, kSegmentHeaderSize);
        r.reason = "segment header: " + hs.message();
        reporter.Dropped(r);
      }
      s.created_ms = NowMs();
    }
    segs.push_back(s);
    header_ok.push_back(hs.ok());
    zeroed.push_back(!hs.ok() && std::all_of(buf, buf + *got, [](uint8_t b) { return b == 0; }));
  }
  // Which segments to scan record by record: the tail (the last one, and
  // earlier ones while the later one gives no seq to anchor on, e.g. a file
  // a crashed start-up created but never wrote) and any with a bad header.
  std::vector<bool> tail(segs.size(), false), scanned(segs.size(), false);
  for (size_t i = segs.size(); i-- > 0;) {
    tail[i] = true;
    if (header_ok[i] && segs[i].first_seq > 0) break;
  }
  auto scan = [&](size_t i) -> Status {
    Segment& s = segs[i];
    const std::string path = PathOf(s.number);
    auto f = fs_->OpenReadable(path);
    if (!f.ok()) return f.status();
    auto size = (*f)->Size();
    if (!size.ok()) return size.status();
    SegmentScanner sc(f->get(), s.number, kSegmentHeaderSize, s.first_seq, &reporter);
    sc.SetLimit(*size, 0, /*final=*/true);
    RecordView rv;
    uint64_t last_index = 0;
    while (sc.Next(&rv)) {
      if (s.first_seq == 0) s.first_seq = rv.seq;
      if (s.index.empty() || rv.offset - last_index >= kIndexStride) {
        s.index.emplace_back(rv.seq, rv.offset);
        last_index = rv.offset;
      }
      s.last_seq = rv.seq;
      if (tail[i]) ++recovery_.tail_records;
    }
    if (!sc.status().ok()) return sc.status();
    s.end_offset = sc.end_offset();
    if (sc.torn_tail() && tail[i]) {
      // Cut the torn bytes so nothing after the valid prefix can be misread.
      KVF_RETURN_IF_ERROR(fs_->Truncate(path, s.end_offset));
      recovery_.truncated_bytes += *size - s.end_offset;
    }
    if (tail[i]) {
      // Counted durable below, so made durable here: a run that died
      // before its fsync left its records in the page cache, where this
      // scan read them; a power loss after this run acknowledged later
      // records lost them, under a cursor already past them (a review).
      WritableOptions wo;
      wo.truncate = false;
      auto w = fs_->OpenWritable(path, wo);
      if (!w.ok()) return w.status();
      KVF_RETURN_IF_ERROR((*w)->Sync());
      KVF_RETURN_IF_ERROR((*w)->Close());
    }
    if (zeroed[i] && s.first_seq > 0) {
      // Zeroed, not unwritten: records follow it.
      DropReport r;
      r.segment = s.number;
      r.bytes = kSegmentHeaderSize;
      r.reason = "segment header: zeroed, though records follow it";
      reporter.Dropped(r);
    }
    if (s.last_seq == 0 && s.first_seq > 0) s.last_seq = s.first_seq - 1;  // empty
    scanned[i] = true;
    return Status::Ok();
  };
  for (size_t i = 0; i < segs.size(); ++i) {
    if (tail[i] || !header_ok[i]) KVF_RETURN_IF_ERROR(scan(i));
  }
  // Older segments (not scanned) end where the next one begins.
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    if (scanned[i]) continue;
    if (segs[i + 1].first_seq > 0) {
      segs[i].last_seq = segs[i + 1].first_seq - 1;
    } else {
      segs[i].last_known = false;
    }
  }
  // Trailing segments that hold nothing and cannot even say where they
  // start (a start-up killed before its header was written) go to the
  // recycle pool.
  while (!segs.empty() && !header_ok[segs.size() - 1] && segs.back().first_seq == 0) {
    const std::string to = RecyclePath(++recycle_counter_);
    KVF_RETURN_IF_ERROR(fs_->Rename(PathOf(segs.back().number), to));
    recycle_pool_.push_back(to);
    segs.pop_back();
    header_ok.pop_back();
    zeroed.pop_back();
  }
  // (The truncations and renames above, before anything is acknowledged.)
  KVF_RETURN_IF_ERROR(fs_->SyncDir(options_.dir));
  uint64_t high = 0;
  for (const auto& s : segs) {
    if (s.last_known) high = std::max(high, s.last_seq);
    if (s.first_seq > 0) high = std::max(high, s.first_seq - 1);
  }
  next_seq_ = high + 1;
  recovery_.segments = segs.size();
  for (const auto& s : segs) {
    if (s.first_seq > 0 && s.last_seq >= s.first_seq) {
      recovery_.first_seq = s.first_seq;
      break;
    }
  }
  recovery_.last_seq = high;

  {
    WritableOptions wo;
    wo.truncate = false;
    wo.preallocate = kReserveBytes;
    auto reserve = fs_->OpenWritable(options_.dir + "/" + kReserveName, wo);
    (void)reserve;  // without it a full disk may stop cursor persistence; not fatal
  }
  Status cs = cursors_.Load();
  if (!cs.ok()) {
    DropReport r;
    r.reason = "cursors file: " + cs.message() + " (starting every destination from 0)";
    reporter.Dropped(r);
  }

  // No other thread runs yet; mu_ is taken only by the helpers called here.
  for (auto& s : segs) segments_.push_back(std::move(s));
  // A fresh segment for this run: never append to a file a crashed run wrote.
  const uint64_t number = numbers.empty() ? 1 : numbers.back() + 1;
  const uint64_t now = NowMs();
  KVF_RETURN_IF_ERROR(OpenSegmentFile(number, /*at_open=*/true));
  std::string header(kSegmentHeaderSize + kRecordHeaderSize, '\0');  // header + zero trailer
  SegmentHeader h{number, next_seq_, now, options_.origin};
  EncodeSegmentHeader(h, reinterpret_cast<uint8_t*>(header.data()));
  KVF_RETURN_IF_ERROR(file_->AppendAndSync(AsBytes(header)));
  file_->Rewind(kRecordHeaderSize);
  Segment s;
  s.number = number;
  s.first_seq = next_seq_;
  s.last_seq = 0;
  s.created_ms = now;
  s.end_offset = kSegmentHeaderSize;
  segments_.push_back(s);
  cur_segment_ = number;
  cur_segment_bytes_ = kSegmentHeaderSize;
  cur_segment_created_ms_ = now;
  written_segment_ = number;
  written_end_ = kSegmentHeaderSize;
  written_seq_ = next_seq_ - 1;
  durable_seq_.store(next_seq_ - 1, std::memory_order_release);
  return Status::Ok();
}

// ---- producers ----

Status Log::WaitForSpaceLocked(std::unique_lock<std::mutex>& lock, size_t bytes) {
  space_cv_.wait(lock, [&] {
    return !error_.ok() || stop_ || pending_bytes_ == 0 ||
           pending_bytes_ + bytes <= options_.max_pending_bytes;
  });
  if (!error_.ok()) return error_;
  if (stop_) return Status(StatusCode::kAborted, "log is closed");
  return Status::Ok();
}

void Log::StartSegmentLocked(uint64_t now_ms) {
  ++cur_segment_;
  Segment s;
  s.number = cur_segment_;
  s.first_seq = next_seq_;
  s.created_ms = now_ms;
  segments_.push_back(s);
  Chunk c;
  c.segment = cur_segment_;
  c.new_segment = true;
  c.bytes.resize(kSegmentHeaderSize);
  SegmentHeader h{cur_segment_, next_seq_, now_ms, options_.origin};
  EncodeSegmentHeader(h, reinterpret_cast<uint8_t*>(c.bytes.data()));
  pending_.push_back(std::move(c));
  pending_bytes_ += kSegmentHeaderSize;
  cur_segment_bytes_ = kSegmentHeaderSize;
  cur_segment_records_ = 0;
  cur_segment_created_ms_ = now_ms;
  last_index_offset_ = 0;
  rotate_requested_ = false;
}

void Log::AppendLocked(std::string_view payload, uint64_t hlc) {
  const uint64_t framed = kRecordHeaderSize + payload.size();
  if (cur_segment_records_ > 0 &&
      (rotate_requested_ || cur_segment_bytes_ + framed + kRecordHeaderSize > options_.segment_bytes)) {
    StartSegmentLocked(NowMs());
  }
  const uint64_t seq = next_seq_++;
  if (pending_.empty() || pending_.back().segment != cur_segment_) {
    Chunk c;
    c.segment = cur_segment_;
    pending_.push_back(std::move(c));
  }
  Chunk& c = pending_.back();
  Segment& seg = segments_.back();
  if (seg.index.empty() || cur_segment_bytes_ - last_index_offset_ >= kIndexStride) {
    seg.index.emplace_back(seq, cur_segment_bytes_);
    last_index_offset_ = cur_segment_bytes_;
  }
  AppendFramedRecord(&c.bytes, kChangeType, cur_segment_, seq, hlc, payload);
  c.last_seq = seq;
  seg.last_seq = seq;
  cur_segment_bytes_ += framed;
  ++cur_segment_records_;
  pending_bytes_ += framed;
  ++stats_.appended_records;
  stats_.appended_bytes += framed;
}

bool Log::IoShouldWakeLocked() const {
  if (stop_ || sync_requested_seq_ > durable_seq_.load(std::memory_order_relaxed)) return true;
  if (pending_.empty()) return false;
  if (io_idle_) return true;  // first record after a quiet spell: write (and sync) it now
  switch (options_.sync_mode) {
    case SyncMode::kPerBatch: return true;
    case SyncMode::kEveryBytes:
      return pending_bytes_ >= std::min<uint64_t>(options_.sync_every_bytes, kWriteBatchBytes);
    default: return pending_bytes_ >= kWriteBatchBytes;
  }
}

Result<uint64_t> Log::Append(const ChangeRecord& record) {
  return AppendBatch(std::span(&record, 1));
}

Result<uint64_t> Log::AppendBatch(std::span<const ChangeRecord> records) {
  if (records.empty()) return InvalidArgument("log: empty batch");
  thread_local std::string scratch;
  thread_local std::vector<size_t> ends;
  scratch.clear();
  ends.clear();
  for (const auto& r : records) {
    // A record the reader would refuse (a pipeline marker, kHold) never
    // reaches the disk.
    if (r.op < RecordOp::kIdempotent || r.op > RecordOp::kDatabase)
      return InvalidArgument("log: bad record op");
    const size_t before = scratch.size();
    EncodeChangePayload(r, &scratch);
    if (scratch.size() - before > kMaxRecordPayload) return ResourceExhausted("log: record over 16 MiB");
    ends.push_back(scratch.size());
  }
  std::unique_lock<std::mutex> lock(mu_);
  KVF_RETURN_IF_ERROR(WaitForSpaceLocked(lock, scratch.size() + records.size() * kRecordHeaderSize));
  const uint64_t first = next_seq_;
  size_t at = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    AppendLocked(std::string_view(scratch).substr(at, ends[i] - at), records[i].hlc.packed());
    at = ends[i];
  }
  if (io_sleeping_ && IoShouldWakeLocked()) io_cv_.notify_one();
  return first;
}

uint64_t Log::written_seq() const {
  std::lock_guard<std::mutex> l(mu_);
  return written_seq_;
}

Status Log::Sync() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = next_seq_ - 1;
  if (durable_seq_.load() >= target) return error_;
  sync_requested_seq_ = std::max(sync_requested_seq_, target);
  io_cv_.notify_one();
  progress_cv_.wait(lock, [&] { return durable_seq_.load() >= target || !error_.ok() || closed_; });
  if (!error_.ok()) return error_;
  if (durable_seq_.load() < target) return Status(StatusCode::kAborted, "log closed before sync");
  return Status::Ok();
}

Status Log::WaitDurable(uint64_t seq, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool ok =
      progress_cv_.wait_for(lock, timeout, [&] { return durable_seq_.load() >= seq || !error_.ok(); });
  if (!error_.ok()) return error_;
  if (!ok) return Unavailable("timed out waiting for durability");
  return Status::Ok();
}

Status Log::Close() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return error_;
    stop_ = true;
  }
  io_cv_.notify_all();
  space_cv_.notify_all();
  if (io_thread_.joinable()) io_thread_.join();
  Status s;
  if (file_) s = file_->Close();
  file_.reset();
  Status cs = PersistCursors();
  {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    if (error_.ok() && !s.ok()) error_ = s;
    if (error_.ok() && !cs.ok()) error_ = cs;
    s = error_;
  }
  progress_cv_.notify_all();
  if (eventfd_ >= 0) ::close(eventfd_);
  eventfd_ = -1;
  return s;
}

// ---- I/O thread ----

Status Log::OpenSegmentFile(uint64_t number, bool at_open) {
  const std::string path = PathOf(number);
  {
    std::lock_guard<std::mutex> l(mu_);
    active_segment_ = number;
  }
  for (;;) {
    std::string from;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!recycle_pool_.empty()) {
        from = recycle_pool_.front();
        recycle_pool_.pop_front();
      }
    }
    Status s;
    if (!from.empty()) {
      s = fs_->Rename(from, path);
      if (s.sys_errno() == ENOENT) continue;  // gone from the pool (removed by hand): the next
      if (s.ok()) {
        WritableOptions wo;
        wo.truncate = false;
        auto f = fs_->OpenWritable(path, wo);
        if (!f.ok()) return f.status();
        file_ = std::move(*f);
        std::lock_guard<std::mutex> l(mu_);
        ++stats_.segments_recycled;
        return fs_->SyncDir(options_.dir);
      }
      return s;
    }
    if (options_.disk_budget_bytes != 0 &&
        DiskBytes() + options_.segment_bytes > options_.disk_budget_bytes) {
      s = ResourceExhausted("log: disk budget exhausted");
    } else {
      WritableOptions wo;
      wo.preallocate = options_.preallocate ? options_.segment_bytes : 0;
      auto f = fs_->OpenWritable(path, wo);
      if (f.ok()) {
        file_ = std::move(*f);
        {
          std::lock_guard<std::mutex> l(mu_);
          ++stats_.segments_created;
        }
        return fs_->SyncDir(options_.dir);
      }
      s = f.status();
      (void)fs_->Remove(path);
    }
    const bool full =
        s.code() == StatusCode::kResourceExhausted || s.sys_errno() == ENOSPC || s.sys_errno() == EDQUOT;
    if (!full) return s;
    // Out of space: retire what retention allows, then apply the policy.
    auto retired = RunRetention();
    if (retired.ok() && *retired > 0) continue;
    if (options_.full_policy == FullPolicy::kDropOldest && DropOldestSegment().ok()) continue;
    if (at_open) return s;
    std::unique_lock<std::mutex> lock(mu_);
    ++stats_.disk_full_waits;
    stats_.error = "waiting for disk space: " + s.ToString();
    if (stop_) return s;
    io_cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (stop_) return s;
    stats_.error.clear();
  }
}

uint64_t Log::DiskBytes() const {
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& s : segments_) {
      if (s.number <= written_segment_) paths.push_back(PathOf(s.number));
    }
    for (const auto& p : recycle_pool_) paths.push_back(p);
  }
  uint64_t total = 0;
  for (const auto& p : paths) {
    auto n = fs_->AllocatedBytes(p);
    if (n.ok()) total += *n;
  }
  return total;
}

Status Log::DropOldestSegment() {
  std::lock_guard<std::mutex> rl(retention_mu_);
  Segment victim;
  std::string to;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (segments_.empty() || segments_.front().number >= active_segment_) {
      return NotFound("no sealed segment to drop");
    }
    victim = segments_.front();
    segments_.pop_front();
    for (const auto& [dest, cursor] : cursors_.Snapshot()) {
      const uint64_t from = std::max(cursor + 1, victim.first_seq);
      if (victim.last_known && victim.last_seq >= from)
        stats_.dropped_unshipped[dest] += victim.last_seq - from + 1;
    }
    ++stats_.segments_deleted;
    to = RecyclePath(++recycle_counter_);
  }
  // The dropped file is reused for the segment being opened: no new space.
  KVF_RETURN_IF_ERROR(fs_->Rename(PathOf(victim.number), to));
  std::lock_guard<std::mutex> l(mu_);
  recycle_pool_.push_back(to);
  return Status::Ok();
}

Result<int> Log::RunRetention() {
  std::lock_guard<std::mutex> rl(retention_mu_);
  const uint64_t now = NowMs();
  const uint64_t min_cursor = cursors_.Min();
  // No destination registered yet: nothing has been shipped, keep everything.
  if (min_cursor == UINT64_MAX) return 0;
  int retired = 0;
  for (;;) {
    Segment victim;
    std::string to;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (segments_.size() <= 1) break;
      const Segment& s = segments_.front();
      // Only sealed segments: the one being written (or opened) stays.
      if (s.number >= active_segment_ || !s.last_known) break;
      if (s.last_seq > min_cursor) break;
      if (now < s.created_ms + options_.retention_ms) break;
      victim = s;
      segments_.pop_front();
      ++stats_.segments_deleted;
      if (options_.preallocate && recycle_pool_.size() < options_.recycle_keep) {
        to = RecyclePath(++recycle_counter_);
      }
    }
    Status st = to.empty() ? fs_->Remove(PathOf(victim.number)) : fs_->Rename(PathOf(victim.number), to);
    if (!st.ok()) return st;
    if (!to.empty()) {
      std::lock_guard<std::mutex> l(mu_);
      recycle_pool_.push_back(to);
    }
    ++retired;
  }
  if (retired > 0) KVF_RETURN_IF_ERROR(fs_->SyncDir(options_.dir));
  return retired;
}

void Log::PublishDurable(uint64_t seq) {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.syncs;
    if (seq <= durable_seq_.load()) return;
    durable_seq_.store(seq, std::memory_order_release);
  }
  // Signal the eventfd and the callback before waking waiters, so whoever
  // WaitDurable() released can already see both.
  const uint64_t one = 1;
  if (eventfd_ >= 0) (void)!::write(eventfd_, &one, sizeof(one));
  if (options_.on_durable) options_.on_durable(seq);
  progress_cv_.notify_all();
}

Status Log::SyncAndPublish() {
  KVF_RETURN_IF_ERROR(file_->Sync());
  last_sync_ = std::chrono::steady_clock::now();
  unsynced_bytes_ = 0;
  if (unsynced_seq_ != 0) PublishDurable(unsynced_seq_);
  unsynced_seq_ = 0;
  return Status::Ok();
}

void Log::IoLoop() {
  using Clock = std::chrono::steady_clock;
  auto last_retention = Clock::now();
  auto last_cursor_persist = Clock::now();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    auto deadline = Clock::now() + std::chrono::milliseconds(100);
    const bool timed =
        options_.sync_mode == SyncMode::kEveryMs || options_.sync_mode == SyncMode::kEveryBytes;
    if (timed && (unsynced_seq_ != 0 || !pending_.empty())) {
      deadline = std::min(deadline, last_sync_ + std::chrono::milliseconds(options_.sync_every_ms));
    } else if (!pending_.empty()) {
      deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(2));
    }
    io_sleeping_ = true;
    io_idle_ = pending_.empty() && unsynced_seq_ == 0;
    io_cv_.wait_until(lock, deadline, [&] { return IoShouldWakeLocked(); });
    io_sleeping_ = false;
    if (!error_.ok()) {
      // Stopped by an I/O error: never write or fsync again (a later fsync
      // can succeed without the lost pages being on disk). Asleep until
      // closed: a Sync waiting keeps the wake-up condition true, and the
      // loop spun holding mu_, so that Sync never returned (a review).
      progress_cv_.notify_all();
      space_cv_.notify_all();
      io_cv_.wait(lock, [&] { return stop_; });
      break;
    }
    const auto now = Clock::now();
    if (options_.segment_max_age_ms != 0 && cur_segment_records_ > 0 &&
        NowMs() >= cur_segment_created_ms_ + options_.segment_max_age_ms) {
      rotate_requested_ = true;
    }
    std::vector<Chunk> chunks;
    chunks.swap(pending_);
    pending_bytes_ = 0;
    const bool stopping = stop_;
    const bool sync_requested = sync_requested_seq_ > durable_seq_.load();
    lock.unlock();
    space_cv_.notify_all();

    uint64_t batch_bytes = 0;
    for (const auto& c : chunks) batch_bytes += c.bytes.size();
    bool want_sync = stopping || sync_requested;
    switch (options_.sync_mode) {
      case SyncMode::kEveryMs:
        want_sync |= now >= last_sync_ + std::chrono::milliseconds(options_.sync_every_ms);
        break;
      case SyncMode::kEveryBytes:
        want_sync |= unsynced_bytes_ + batch_bytes >= options_.sync_every_bytes ||
                     now >= last_sync_ + std::chrono::milliseconds(options_.sync_every_ms);
        break;
      case SyncMode::kPerBatch: want_sync |= !chunks.empty(); break;
      case SyncMode::kNever: break;
    }
    Status s;
    bool synced = false;
    for (size_t i = 0; i < chunks.size() && s.ok(); ++i) {
      Chunk& c = chunks[i];
      if (c.new_segment) {
        // Seal the previous segment: durable before anything lands in the next.
        if (unsynced_bytes_ > 0) s = SyncAndPublish();
        if (s.ok()) s = file_->Close();
        if (s.ok()) {
          auto r = RunRetention();  // refill the recycle pool before opening
          if (!r.ok()) s = r.status();
        }
        if (s.ok()) s = OpenSegmentFile(c.segment, /*at_open=*/false);
        if (!s.ok()) break;
        std::lock_guard<std::mutex> l(mu_);
        written_segment_ = c.segment;
        written_end_ = 0;
      }
      const bool sync_now = want_sync && i + 1 == chunks.size();
      // A zero record header after the data marks the end even in a recycled
      // file; the next write starts on top of it.
      c.bytes.append(kRecordHeaderSize, '\0');
      s = sync_now ? file_->AppendAndSync(AsBytes(c.bytes)) : file_->Append(AsBytes(c.bytes));
      if (!s.ok()) break;
      file_->Rewind(kRecordHeaderSize);
      unsynced_bytes_ += c.bytes.size();
      if (c.last_seq != 0) unsynced_seq_ = c.last_seq;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (c.last_seq != 0) written_seq_ = c.last_seq;
        written_end_ = file_->offset();
        for (auto it = segments_.rbegin(); it != segments_.rend(); ++it) {
          if (it->number == c.segment) {
            it->end_offset = written_end_;
            break;
          }
        }
      }
      progress_cv_.notify_all();
      if (sync_now) {
        last_sync_ = Clock::now();
        unsynced_bytes_ = 0;
        if (unsynced_seq_ != 0) PublishDurable(unsynced_seq_);
        unsynced_seq_ = 0;
        synced = true;
      }
    }
    if (s.ok() && want_sync && !synced) {
      if (unsynced_bytes_ > 0 || unsynced_seq_ != 0) {
        s = SyncAndPublish();
      } else {
        last_sync_ = Clock::now();
      }
    }
    if (s.ok() && Clock::now() - last_retention > std::chrono::seconds(1)) {
      last_retention = Clock::now();
      auto r = RunRetention();
      if (!r.ok()) s = r.status();
    }
    if (s.ok() &&
        Clock::now() - last_cursor_persist > std::chrono::milliseconds(options_.cursor_persist_ms)) {
      last_cursor_persist = Clock::now();
      // A failure here is not the writer's: it is retried on the next tick.
      Status cs = PersistCursors();
      if (!cs.ok()) {
        std::lock_guard<std::mutex> l(mu_);
        stats_.error = "persisting cursors: " + cs.ToString();
      }
    }
    lock.lock();
    if (!s.ok() && error_.ok()) {
      // Sticky: after a failed write or fdatasync nothing more is accepted
      // (a failed fsync cannot be retried safely). Durable data is untouched.
      error_ = s;
      stats_.error = s.ToString();
      pending_.clear();
      pending_bytes_ = 0;
      space_cv_.notify_all();
      progress_cv_.notify_all();
    }
    if (stopping && (pending_.empty() || !error_.ok())) break;
  }
}

// ---- cursors, stats ----

Status Log::PersistCursors() {
  Status s = cursors_.Persist();
  if (s.sys_errno() != ENOSPC && s.sys_errno() != EDQUOT) return s;
  // The disk is full: give back the space reserved for exactly this.
  const std::string reserve = options_.dir + "/" + kReserveName;
  if (fs_->Remove(reserve).ok()) {
    s = cursors_.Persist();
    WritableOptions wo;
    wo.preallocate = kReserveBytes;
    (void)fs_->OpenWritable(reserve, wo);  // best effort: Open() retries
    if (s.ok()) return s;
  }
  bool have_spare;
  {
    std::lock_guard<std::mutex> l(mu_);
    have_spare = !recycle_pool_.empty();
  }
  if (!have_spare && options_.full_policy == FullPolicy::kDropOldest) (void)DropOldestSegment();
  std::string spare;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (recycle_pool_.empty()) return s;
    spare = recycle_pool_.back();
    recycle_pool_.pop_back();
  }
  KVF_RETURN_IF_ERROR(fs_->Remove(spare));
  return cursors_.Persist();
}

Status Log::AdvanceCursor(const std::string& dest, uint64_t seq) {
  return cursors_.Advance(dest, std::min(seq, durable_seq()));
}

LogStats Log::Stats() const {
  LogStats out;
  {
    std::lock_guard<std::mutex> l(mu_);
    out = stats_;
    out.appended_seq = next_seq_ - 1;
    out.written_seq = written_seq_;
    out.segments = segments_.size();
    if (!error_.ok()) out.error = error_.ToString();
  }
  out.durable_seq = durable_seq();
  out.disk_bytes = DiskBytes();
  return out;
}

// ---- reader support ----

Log::ReadView Log::Snapshot(bool durable_only) const {
  ReadView v;
  std::lock_guard<std::mutex> l(mu_);
  v.segments.reserve(segments_.size());
  for (const auto& s : segments_) {
    if (s.number > written_segment_) break;
    Segment c = s;
    c.index.clear();
    v.segments.push_back(std::move(c));
  }
  v.written_segment = written_segment_;
  v.written_end = written_end_;
  v.visible_seq = durable_only ? durable_seq_.load() : written_seq_;
  return v;
}

std::vector<std::pair<uint64_t, uint64_t>> Log::IndexOf(uint64_t segment) const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& s : segments_) {
    if (s.number == segment) return s.index;
  }
  return {};
}

bool Log::WaitForMore(uint64_t after_seq, bool durable_only, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return progress_cv_.wait_for(lock, timeout, [&] {
    const uint64_t visible = durable_only ? durable_seq_.load() : written_seq_;
    return visible > after_seq || !error_.ok() || closed_;
  });
}

std::unique_ptr<LogReader> Log::NewReader(uint64_t from_seq, bool durable_only, Reporter* reporter) {
  return std::unique_ptr<LogReader>(new LogReader(this, fs_, options_.dir, from_seq, durable_only, reporter));
}

}  // namespace kvf::logstore
