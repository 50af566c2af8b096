// ShardMerge: see merge.h. Shards fill batches on their own threads and
// queue them under one mutex, once per batch or watermark; the merge thread
// works on the batches it took without the lock.
#include "resp/merge.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <utility>

#include "resp/convert.h"

namespace kvf::resp {

class ShardMerge::Input : public RecordSink {
 public:
  Input(ShardMerge* merge, size_t index) : merge_(merge), index_(index) {}

  void Emit(const RecordView& record, uint64_t connection_id) override {
    if (batch_ == nullptr) batch_ = merge_->TakeSpare();
    batch_->records.Add(record, connection_id);
    if (batch_->records.size() >= merge_->opts_.batch_records ||
        batch_->records.bytes() >= merge_->opts_.batch_bytes)
      Hand(false);
  }
  // The watermark covers the records not handed over yet, so it is
  // published with them: at once when there are none, else when the merge
  // waits or the batch is full (rather than a hand-over per slice of a few
  // records).
  void Progress(uint64_t watermark_ns) {
    watermark_ = std::max(watermark_, watermark_ns);
    if (batch_ == nullptr || batch_->records.empty() ||
        merge_->merge_waiting_.load(std::memory_order_relaxed))
      Hand(false);
  }
  void Hand(bool finish) { merge_->Hand(index_, std::move(batch_), watermark_, finish); }

 private:
  ShardMerge* merge_;
  size_t index_;
  std::unique_ptr<Batch> batch_;
  uint64_t watermark_ = 0;
};

ShardMerge::ShardMerge(size_t shards, AmbiguityTracker* tracker, MergeOptions options,
                       const ScriptCache* scripts)
    : tracker_(tracker), scripts_(scripts), opts_(options), shared_(shards) {
  opts_.batch_records = std::max<size_t>(opts_.batch_records, 1);
  opts_.max_batches = std::max<size_t>(opts_.max_batches, 1);
  for (size_t i = 0; i < shards; ++i) inputs_.push_back(std::make_unique<Input>(this, i));
}

ShardMerge::~ShardMerge() = default;

RecordSink* ShardMerge::input(size_t i) {
  return inputs_[i].get();
}

void ShardMerge::Progress(size_t i, uint64_t watermark_ns, uint64_t request_lag_ns) {
  uint64_t seen = request_lag_ns_.load(std::memory_order_relaxed);
  while (request_lag_ns > seen && !request_lag_ns_.compare_exchange_weak(seen, request_lag_ns)) {
  }
  inputs_[i]->Progress(watermark_ns);
}

void ShardMerge::Finish(size_t i) {
  inputs_[i]->Hand(true);
}

std::unique_ptr<ShardMerge::Batch> ShardMerge::TakeSpare() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!spare_.empty()) {
      std::unique_ptr<Batch> b = std::move(spare_.back());
      spare_.pop_back();
      return b;
    }
  }
  return std::make_unique<Batch>();
}

void ShardMerge::Hand(size_t i, std::unique_ptr<Batch> batch, uint64_t watermark, bool finish) {
  std::unique_lock<std::mutex> lock(mu_);
  Shared& s = shared_[i];
  if (batch != nullptr && !batch->records.empty()) {
    auto room = [&] {
      return s.queue.empty() ||
             (s.queue.size() < opts_.max_batches && s.queued_bytes < opts_.max_queued_bytes);
    };
    if (!room()) {
      ++stats_.shard_waits;
      shard_cv_.wait(lock, room);
    }
    s.queued_bytes += batch->records.bytes();
    s.queue.push_back(std::move(batch));
    ++stats_.queued_batches;
  } else if (batch != nullptr) {
    spare_.push_back(std::move(batch));
  }
  s.watermark = std::max(s.watermark, watermark);
  s.finished = s.finished || finish;
  ++generation_;
  if (merge_waiting_) merge_cv_.notify_one();
}

void ShardMerge::Run() {
  constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  const size_t n = shared_.size();
  std::vector<Cursor> cursors(n);
  // Per shard, as of the last look under the lock: its watermark (kNever
  // once it finished and everything it queued was taken).
  std::vector<uint64_t> watermark(n, 0);
  std::vector<std::string_view> args;
  uint64_t advanced = 0;  // the tracker's window was advanced to this
  uint64_t records = 0, late = 0;
  uint64_t seen_generation = 0;
  auto at = [](const Cursor& c) { return c.batch->records.capture_ns(c.next); };
  for (;;) {
    bool all_done = true;
    {
      // Take the next batch of every shard whose batch is used up.
      std::unique_lock<std::mutex> lock(mu_);
      stats_.records += records;
      stats_.late += late;
      stats_.scripts_resolved += std::exchange(scripts_resolved_, 0);
      stats_.scripts_unknown += std::exchange(scripts_unknown_, 0);
      records = late = 0;
      for (size_t i = 0; i < n; ++i) {
        Cursor& c = cursors[i];
        Shared& s = shared_[i];
        if (c.batch != nullptr && c.next >= c.batch->records.size()) {
          c.batch->records.Clear();
          spare_.push_back(std::move(c.batch));
        }
        if (c.batch == nullptr && !s.queue.empty()) {
          c.batch = std::move(s.queue.front());
          c.next = 0;
          s.queue.pop_front();
          s.queued_bytes -= c.batch->records.bytes();
          --stats_.queued_batches;
          shard_cv_.notify_all();
        }
        watermark[i] = s.finished && s.queue.empty() ? kNever : s.watermark;
        if (c.batch != nullptr || watermark[i] != kNever) all_done = false;
      }
      seen_generation = generation_;
    }
    if (all_done) break;
    // Pass on every record that no shard can still precede: the oldest next
    // record, while it is not newer than any other shard's bound (its next
    // record, or its watermark when it has none).
    bool exhausted = false;
    bool moved = false;
    while (!exhausted) {
      size_t best = n;
      uint64_t best_ts = 0;
      uint64_t limit = kNever;
      for (size_t i = 0; i < n; ++i) {
        const uint64_t b = cursors[i].batch != nullptr ? at(cursors[i]) : watermark[i];
        if (cursors[i].batch != nullptr && (best == n || b < best_ts)) {
          if (best != n) limit = std::min(limit, best_ts);
          best = i;
          best_ts = b;
        } else {
          limit = std::min(limit, b);
        }
      }
      if (best == n || best_ts > limit) break;
      Cursor& c = cursors[best];
      const bool marker = c.batch->records.op(c.next) == RecordOp::kHold;
      if (best_ts < advanced && !marker) ++late;
      Pass(c.batch->records, c.next, &args);
      if (!marker) ++records;
      moved = true;
      if (++c.next >= c.batch->records.size()) exhausted = true;  // take its next batch first
    }
    if (exhausted) continue;
    // Nothing older can come from any shard: the window advances to the
    // oldest bound.
    uint64_t bound = kNever;
    for (size_t i = 0; i < n; ++i)
      bound = std::min(bound, cursors[i].batch != nullptr ? at(cursors[i]) : watermark[i]);
    if (bound != kNever && bound > advanced) {
      advanced = bound;
      tracker_->Advance(bound, request_lag_ns_.load(std::memory_order_relaxed));
      moved = true;
    }
    if (moved) continue;
    if (opts_.on_idle) opts_.on_idle();
    std::unique_lock<std::mutex> lock(mu_);
    merge_waiting_.store(true, std::memory_order_relaxed);
    merge_cv_.wait(lock, [&] { return generation_ != seen_generation; });
    merge_waiting_.store(false, std::memory_order_relaxed);
  }
  tracker_->Flush();
  std::lock_guard<std::mutex> lock(mu_);
  stats_.records += records;
  stats_.late += late;
  stats_.scripts_resolved += std::exchange(scripts_resolved_, 0);
  stats_.scripts_unknown += std::exchange(scripts_unknown_, 0);
}

void ShardMerge::Pass(const RecordBatch& b, size_t i, std::vector<std::string_view>* args) {
  RecordView r = b.Get(i, args);
  if (scripts_ == nullptr || r.args.size() < 3 || r.args[0] != kDeferredScript ||
      (r.op != RecordOp::kOrdered && r.op != RecordOp::kDatabase)) {
    tracker_->Emit(r, b.connection_id(i));
    return;
  }
  // The body, alive until the tracker has copied the record.
  const std::shared_ptr<const std::string> body = scripts_->Find(r.args[1]);
  if (body != nullptr && !ScriptCallsMigrate(*body)) {
    ++scripts_resolved_;
    (*args)[0] = "EVAL";
    (*args)[1] = *body;
    tracker_->Emit(r, b.connection_id(i));
    return;
  }
  // As Connection does for a script it does not know (or one that calls
  // MIGRATE, which is never shipped): its key is read back (the others
  // already are); one without keys wrote nothing known.
  ++scripts_unknown_;
  if (!RecordHasKey(r)) return;
  r.op = RecordOp::kReadback;
  r.flags |= kNeedsReadback;
  r.args = {};
  tracker_->Emit(r, b.connection_id(i));
}

MergeStats ShardMerge::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace kvf::resp
