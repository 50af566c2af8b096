// The flow shards' record streams merged into one, in capture-time order, in
// front of the ambiguity tracker (DESIGN.md decision 3): connections writing
// one key may sit in different shards (capture workers), and the tracker
// must see their writes in the order they happened to pair them.
//
// Each shard hands over batches of records and watermarks: Progress(i, w)
// promises that shard i's later records are not older than w. A record
// leaves for the tracker once no shard can still produce an older one, and
// the tracker's window advances to the oldest watermark. A record older than
// that (a broken promise: frames out of time order, an unanswered write found
// at a close carrying its request's time) still goes through at once and is
// counted as late: a partner already released cannot be flagged then.
// A shard hands its batch over when it is full, or at a Progress while the
// merge waits for it; a shard whose hand-over is full waits (for a capture
// worker that means its queue fills and the dispatcher drops, counted).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/record_batch.h"
#include "resp/ambiguity.h"
#include "resp/script_cache.h"
#include "resp/sink.h"

namespace kvf::resp {

struct MergeOptions {
  size_t batch_records = 512;           // a shard hands its batch over at this size,
  size_t batch_bytes = 1u << 20;        // or this many bytes of records
  size_t max_batches = 64;              // per shard waiting for the merge; then the shard waits,
  size_t max_queued_bytes = 64u << 20;  // as it does past this many bytes (one batch always fits)
  // Called on the Run() thread whenever the merge has passed on all it can
  // and waits for the shards: where the tracker's downstream flushes its
  // output (capture's record printer), on the thread that writes it.
  std::function<void()> on_idle;
};

struct MergeStats {
  uint64_t records = 0;  // passed to the tracker
  uint64_t late = 0;     // older than the window the tracker had been advanced to
  // Deferred EVALSHAs (kDeferredScript) shipped as EVAL, and read back
  // because the script stayed unknown.
  uint64_t scripts_resolved = 0, scripts_unknown = 0;
  uint64_t shard_waits = 0;     // a shard found its hand-over full and waited
  uint64_t queued_batches = 0;  // waiting now, all shards
};

// Thread confinement: input(i), Progress(i, …) and Finish(i) on shard i's
// thread only; Run() on one merging thread; stats() anywhere.
class ShardMerge {
 public:
  // `tracker` (and its downstream) is used on the Run() thread only and must
  // outlive the merge. `scripts` (may be null; must outlive the merge) is the
  // cache the shards' connections share: an EVALSHA a shard deferred
  // (ConnectionOptions::defer_unknown_scripts) is looked up again when it
  // leaves, in capture-time order, after every shard has decoded what came
  // before it (a SCRIPT LOAD on another shard's connection included).
  ShardMerge(size_t shards, AmbiguityTracker* tracker, MergeOptions options = {},
             const ScriptCache* scripts = nullptr);
  ~ShardMerge();
  ShardMerge(const ShardMerge&) = delete;
  ShardMerge& operator=(const ShardMerge&) = delete;

  // Where shard i's connections emit their records.
  RecordSink* input(size_t i);
  // Shard i will emit no record older than `watermark_ns` from now on (its
  // pending records are handed over first). `request_lag_ns`: how late its
  // flow table saw requests captured (FlowTable::RequestLagNs); the window
  // widens for the most any shard saw.
  void Progress(size_t i, uint64_t watermark_ns, uint64_t request_lag_ns = 0);
  // Shard i will emit nothing more.
  void Finish(size_t i);

  // Merges until every shard finished, then flushes the tracker.
  void Run();

  MergeStats stats() const;

 private:
  struct Batch {
    RecordBatch records;
  };
  class Input;
  // Merge side, per shard.
  struct Cursor {
    std::unique_ptr<Batch> batch;
    size_t next = 0;
  };
  // Queues shard i's batch (null or empty: none) and raises its watermark;
  // waits while the shard's hand-over is full.
  void Hand(size_t i, std::unique_ptr<Batch> batch, uint64_t watermark, bool finish);
  std::unique_ptr<Batch> TakeSpare();

  // Passes record `i` of `b` to the tracker; a deferred EVALSHA as EVAL with
  // its body, or as a read-back of its key. `args` is scratch.
  void Pass(const RecordBatch& b, size_t i, std::vector<std::string_view>* args);

  AmbiguityTracker* tracker_;
  const ScriptCache* scripts_;
  MergeOptions opts_;
  uint64_t scripts_resolved_ = 0, scripts_unknown_ = 0;  // Run() thread only, then into stats_
  std::vector<std::unique_ptr<Input>> inputs_;

  mutable std::mutex mu_;
  std::condition_variable merge_cv_;  // the merge waits for batches or watermarks
  std::condition_variable shard_cv_;  // shards wait for room
  struct Shared {
    std::deque<std::unique_ptr<Batch>> queue;
    size_t queued_bytes = 0;
    uint64_t watermark = 0;  // of the last batch queued, or a later Progress
    bool finished = false;
  };
  std::vector<Shared> shared_;                 // guarded by mu_
  std::vector<std::unique_ptr<Batch>> spare_;  // emptied batches for reuse; guarded by mu_
  MergeStats stats_;                           // guarded by mu_
  std::atomic<bool> merge_waiting_{false};     // written under mu_; shards peek without it
  std::atomic<uint64_t> request_lag_ns_{0};    // the most of the shards' (Progress)
  uint64_t generation_ = 0;                    // counts hand-overs; guarded by mu_
};

}  // namespace kvf::resp
