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
  uint64_t window_ns = 1'000'000;  // replies closer than this are ambiguous
  size_t max_keys = 1u << 20;      // (db, key) entries remembered
  size_t max_held = 1u << 16;      // records held back while their window is open
};

struct AmbiguityStats {
  uint64_t records = 0;
  uint64_t ambiguous = 0;        // records flagged
  uint64_t late_partner = 0;     // partner record already released unflagged (cap hit)
  uint64_t keys_evicted = 0;     // entries dropped by the key cap before their window closed
  uint64_t forced_releases = 0;  // records released early by the hold cap
};

// Thread confinement: one thread (the shard's). Records leave in the order
// they arrived.
class AmbiguityTracker : public RecordSink {
 public:
  // `downstream` must outlive the tracker.
  AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options = {});

  void Emit(ChangeRecord&& record, uint64_t connection_id) override;
  // Releases every record whose window closed before `now_ns` (capture time).
  void Advance(uint64_t now_ns);
  // Releases everything held (end of capture).
  void Flush();

  const AmbiguityStats& stats() const { return stats_; }
  size_t held() const { return held_count_; }
  size_t tracked_keys() const { return used_; }

 private:
  struct Held {
    ChangeRecord record;
    uint64_t connection_id;
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
  void FlagPartner(const Write& w, ChangeRecord* record);
  void ReleaseFront();
  Held& HeldAt(size_t i) { return held_[(held_head_ + i) & (held_.size() - 1)]; }
  void PushHeld(ChangeRecord&& record, uint64_t connection_id);
  // 64-bit hash of (db, key), never 0. Two keys with the same hash share an
  // entry: that can add a flag or (rarely: ~n²/2⁶⁵ for n live keys) hide one.
  static uint64_t MapKey(const ChangeRecord& r);
  Slot* FindSlot(uint64_t map_key);
  Slot* InsertSlot(uint64_t map_key);  // map_key must be absent
  void EraseSlot(Slot* slot);
  // Drops key_order_.front() and, if it is still that key's latest write, the key.
  void PopKeyOrder(bool count_eviction);

  RecordSink* downstream_;
  AmbiguityOptions opts_;
  AmbiguityStats stats_;
  // Records held back, a ring whose size is a power of two (no allocation
  // per record once grown).
  std::vector<Held> held_;
  size_t held_head_ = 0;
  size_t held_count_ = 0;
  uint64_t first_held_id_ = 0;  // id of the oldest held record
  std::vector<Slot> slots_;     // size a power of two, at most half full
  size_t used_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> key_order_;  // (map key, capture_ns) in arrival order
};

}  // namespace kvf::resp
