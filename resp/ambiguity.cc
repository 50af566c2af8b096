// Ambiguity window: see ambiguity.h. The per-key table is a flat
// open-addressing hash table and the held records sit in a ring, so the
// steady state allocates nothing per record.
#include "resp/ambiguity.h"

#include "core/checksum.h"

namespace kvf::resp {

namespace {
constexpr size_t kInitialSlots = 1024;
constexpr size_t kInitialHeld = 256;
}  // namespace

AmbiguityTracker::AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options)
    : downstream_(downstream), opts_(options), held_(kInitialHeld), slots_(kInitialSlots) {}

uint64_t AmbiguityTracker::MapKey(const ChangeRecord& r) {
  // Not Xxh3(key, seed = db): XXH3 adds the seed without mixing for 1-3 byte
  // inputs, so ("k81", db 0) and ("k86", db 1) hashed alike. Mix the db in
  // with a bijective finalizer (splitmix64) instead.
  uint64_t h = Xxh3(r.key) ^ (uint64_t{r.db} * 0x9e3779b97f4a7c15ull);
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

AmbiguityTracker::Slot* AmbiguityTracker::FindSlot(uint64_t map_key) {
  const size_t mask = slots_.size() - 1;
  for (size_t i = map_key & mask;; i = (i + 1) & mask) {
    if (slots_[i].map_key == map_key) return &slots_[i];
    if (slots_[i].map_key == 0) return nullptr;
  }
}

AmbiguityTracker::Slot* AmbiguityTracker::InsertSlot(uint64_t map_key) {
  if (2 * (used_ + 1) > slots_.size()) {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.map_key == 0) continue;
      size_t i = s.map_key & mask;
      while (slots_[i].map_key != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  const size_t mask = slots_.size() - 1;
  size_t i = map_key & mask;
  while (slots_[i].map_key != 0) i = (i + 1) & mask;
  slots_[i].map_key = map_key;
  ++used_;
  return &slots_[i];
}

void AmbiguityTracker::EraseSlot(Slot* slot) {
  // Backward-shift deletion: pull later members of the probe run into the
  // hole so that lookups never stop early.
  const size_t mask = slots_.size() - 1;
  size_t hole = static_cast<size_t>(slot - slots_.data());
  for (size_t i = (hole + 1) & mask; slots_[i].map_key != 0; i = (i + 1) & mask) {
    const size_t home = slots_[i].map_key & mask;
    // Move slot i into the hole when its home is not in (hole, i] cyclically.
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      slots_[hole] = slots_[i];
      hole = i;
    }
  }
  slots_[hole].map_key = 0;
  --used_;
}

void AmbiguityTracker::PopKeyOrder(bool count_eviction) {
  Slot* s = FindSlot(key_order_.front().first);
  if (s != nullptr && s->last.latest.capture_ns == key_order_.front().second) {
    EraseSlot(s);
    if (count_eviction) ++stats_.keys_evicted;
  }
  key_order_.pop_front();
}

void AmbiguityTracker::PushHeld(ChangeRecord&& record, uint64_t connection_id) {
  if (held_count_ == held_.size()) {
    std::vector<Held> bigger(held_.size() * 2);
    for (size_t i = 0; i < held_count_; ++i) bigger[i] = std::move(HeldAt(i));
    held_.swap(bigger);
    held_head_ = 0;
  }
  Held& h = HeldAt(held_count_);
  h.record = std::move(record);
  h.connection_id = connection_id;
  ++held_count_;
}

void AmbiguityTracker::ReleaseFront() {
  Held& h = HeldAt(0);
  held_head_ = (held_head_ + 1) & (held_.size() - 1);
  --held_count_;
  ++first_held_id_;
  downstream_->Emit(std::move(h.record), h.connection_id);
}

void AmbiguityTracker::Advance(uint64_t now_ns) {
  while (held_count_ > 0 && HeldAt(0).record.capture_ns + opts_.window_ns < now_ns) ReleaseFront();
  while (!key_order_.empty() && key_order_.front().second + opts_.window_ns < now_ns) PopKeyOrder(false);
}

void AmbiguityTracker::Flush() {
  while (held_count_ > 0) ReleaseFront();
  for (Slot& s : slots_) s.map_key = 0;
  used_ = 0;
  key_order_.clear();
}

void AmbiguityTracker::FlagPartner(const Write& w, ChangeRecord* record) {
  const uint64_t ts = record->capture_ns;
  const uint64_t d = ts > w.capture_ns ? ts - w.capture_ns : w.capture_ns - ts;
  if (d >= opts_.window_ns) return;
  constexpr uint16_t kBoth = kAmbiguousOrder | kNeedsReadback;
  if (!record->HasFlag(kAmbiguousOrder)) ++stats_.ambiguous;
  record->flags |= kBoth;
  if (w.held_id >= first_held_id_ && w.held_id - first_held_id_ < held_count_) {
    ChangeRecord& p = HeldAt(w.held_id - first_held_id_).record;
    if (!p.HasFlag(kAmbiguousOrder)) ++stats_.ambiguous;
    p.flags |= kBoth;
  } else {
    ++stats_.late_partner;
  }
}

void AmbiguityTracker::Emit(ChangeRecord&& record, uint64_t connection_id) {
  ++stats_.records;
  const uint64_t ts = record.capture_ns;
  Advance(ts > opts_.window_ns ? ts - opts_.window_ns : 0);
  const uint64_t id = first_held_id_ + held_count_;
  if (record.op != RecordOp::kDatabase) {
    const uint64_t k = MapKey(record);
    Slot* slot = FindSlot(k);
    if (slot != nullptr) {
      Last& l = slot->last;
      const Write w{connection_id, ts, id};
      if (l.latest.connection_id != connection_id) {
        FlagPartner(l.latest, &record);
        l.other = l.latest;
        l.has_other = true;
      } else if (l.has_other) {
        FlagPartner(l.other, &record);
      }
      l.latest = w;
      key_order_.emplace_back(k, ts);
    } else {
      while (used_ >= opts_.max_keys && !key_order_.empty()) PopKeyOrder(true);
      key_order_.emplace_back(k, ts);
      InsertSlot(k)->last = Last{Write{connection_id, ts, id}, Write{}, false};
    }
  }
  // Updates of hot keys add entries too.
  while (key_order_.size() > 2 * opts_.max_keys) PopKeyOrder(true);
  PushHeld(std::move(record), connection_id);
  if (held_count_ > opts_.max_held) {
    ++stats_.forced_releases;
    ReleaseFront();
  }
}

}  // namespace kvf::resp
