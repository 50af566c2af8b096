// Cross-connection ambiguity detection (DESIGN.md decision 3): two writes to
// the same (db, key) from different connections whose replies were captured
// less than a window apart cannot be ordered from the wire, so both records
// are flagged kAmbiguousOrder | kNeedsReadback. Sits between the connections
// of one flow shard and the next stage, holding each record for one window.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "resp/sink.h"

namespace kvf::resp {

struct AmbiguityOptions {
  uint64_t window_ns = 1'000'000;     // replies closer than this are ambiguous
  size_t max_keys = 1u << 20;         // (db, key) entries remembered (then records leave early)
  size_t max_held = 1u << 16;         // records held back while their window is open
  size_t max_held_bytes = 64u << 20;  // bytes of those records (keys, arguments)
};

struct AmbiguityStats {
  uint64_t records = 0;
  uint64_t ambiguous = 0;        // records flagged
  uint64_t late_partner = 0;     // partner record already released unflagged (cap hit)
  uint64_t keys_evicted = 0;     // entries dropped by the key cap before their window closed
  uint64_t forced_releases = 0;  // records released early by the hold caps
};

// Thread confinement: one thread (the shard's). Records leave in the order
// they arrived. A held record's strings are copied into one byte ring, so the
// steady state allocates nothing per record.
class AmbiguityTracker : public RecordSink {
 public:
  // `downstream` must outlive the tracker.
  AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options = {});

  void Emit(const RecordView& record, uint64_t connection_id) override;
  // Releases every record whose window closed before `now_ns` (capture time).
  void Advance(uint64_t now_ns);
  // Releases everything held (end of capture).
  void Flush();

  const AmbiguityStats& stats() const { return stats_; }
  size_t held() const { return held_count_; }
  size_t held_bytes() const { return held_count_ == 0 ? 0 : write_pos_ - HeldAt(0).offset; }
  size_t tracked_keys() const { return used_; }

 private:
  // A held record: its fixed fields, and where its strings sit in ring_:
  // argc uint32 lengths, then the key bytes, then the argument bytes.
  struct Held {
    uint64_t capture_ns;
    Hlc hlc;
    uint64_t seq;
    uint64_t connection_id;
    uint64_t map_key;  // MapKey of (db, key); 0 for database records
    uint64_t offset;   // monotonic position in ring_ (modulo its size)
    uint32_t bytes;
    uint32_t argc;
    uint32_t key_len;
    SiteId origin;
    uint16_t db;
    uint16_t flags;
    RecordOp op;
  };
  struct Write {
    uint64_t connection_id;
    uint64_t capture_ns;
    uint64_t held_id;  // id of the record in held_ (ids grow by one per record)
  };
  // The latest write of a key, and the latest by any other connection.
  struct Last {
    Write latest;
    Write other;
    bool has_other;
  };
  // Open-addressing slot (linear probing); map_key 0 marks an empty slot.
  struct Slot {
    uint64_t map_key;
    Last last;
  };
  void FlagPartner(const Write& w, uint64_t ts, uint16_t* flags);
  // Emits the oldest held record. `window_closed` false: a cap pushed it out
  // early, and its key stays known until its window closes (RememberUnheld).
  void ReleaseFront(bool window_closed = true);
  // Keeps `map_key` for one window after record `id` left unheld, if `id` is
  // still the key's latest write. Bounded by max_held entries.
  void RememberUnheld(uint64_t map_key, uint64_t capture_ns, uint64_t id);
  Held& HeldAt(size_t i) { return held_[(held_head_ + i) & (held_.size() - 1)]; }
  const Held& HeldAt(size_t i) const { return held_[(held_head_ + i) & (held_.size() - 1)]; }
  // Copies `record` into the ring; false when it cannot be held (larger than
  // the byte cap allows).
  bool PushHeld(const RecordView& record, uint16_t flags, uint64_t connection_id);
  // Space for `n` contiguous bytes in ring_, releasing or growing as needed;
  // returns the monotonic offset. False: `n` can never fit.
  bool Reserve(size_t n, uint64_t* offset);
  void GrowRing(size_t min_size);
  // 64-bit hash of (db, key), never 0. Two keys with the same hash share an
  // entry: that can add a flag or (rarely: ~n²/2⁶⁵ for n live keys) hide one.
  static uint64_t MapKey(uint16_t db, std::string_view key);
  Slot* FindSlot(uint64_t map_key);
  Slot* InsertSlot(uint64_t map_key);  // map_key must be absent
  void EraseSlot(Slot* slot);
  // Forgets `map_key` if its latest write is record `id` (which is leaving).
  // True if an entry was erased.
  bool ForgetKey(uint64_t map_key, uint64_t id);
  // Makes room for one more key under max_keys (releases the oldest records).
  void EnforceKeyCap();

  RecordSink* downstream_;
  AmbiguityOptions opts_;
  AmbiguityStats stats_;
  // Records held back, a ring whose size is a power of two (no allocation
  // per record once grown).
  std::vector<Held> held_;
  size_t held_head_ = 0;
  size_t held_count_ = 0;
  uint64_t first_held_id_ = 0;                  // id of the oldest held record
  std::vector<char> ring_;                      // held records' strings; size a power of two
  uint64_t write_pos_ = 0;                      // monotonic; ring_[write_pos_ % size] is next
  std::vector<std::string_view> release_args_;  // scratch for ReleaseFront
  std::vector<Slot> slots_;                     // size a power of two, at most half full
  size_t used_ = 0;
  // Keys of records that left before their window closed (too large for the
  // ring, or pushed out by a cap), kept for the rest of the window so that
  // later writes to the key are still flagged.
  struct Unheld {
    uint64_t map_key;
    uint64_t capture_ns;
    uint64_t id;
  };
  std::deque<Unheld> unheld_;
};

}  // namespace kvf::resp
