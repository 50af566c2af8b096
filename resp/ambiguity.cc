// Ambiguity window: see ambiguity.h. The per-key table is a flat
// open-addressing hash table and the held records sit in a ring, with their
// strings in a byte ring, so the steady state allocates nothing per record.
#include "resp/ambiguity.h"

#include <algorithm>
#include <cstring>

// XXH3 inlined: keys are short and hashing them is on the per-record path.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvf::resp {

namespace {
constexpr size_t kInitialSlots = 1024;
constexpr size_t kInitialHeld = 256;
constexpr size_t kInitialRing = 64u << 10;

size_t NextPow2(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}
}  // namespace

AmbiguityTracker::AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options)
    : downstream_(downstream),
      opts_(options),
      held_(kInitialHeld),
      ring_(std::min(kInitialRing, NextPow2(std::max<size_t>(options.max_held_bytes, 1)))),
      slots_(kInitialSlots) {}

uint64_t AmbiguityTracker::MapKey(uint16_t db, std::string_view key) {
  // Not Xxh3(key, seed = db): XXH3 adds the seed without mixing for 1-3 byte
  // inputs, so ("k81", db 0) and ("k86", db 1) hashed alike. Mix the db in
  // with a bijective finalizer (splitmix64) instead.
  uint64_t h = XXH3_64bits(key.data(), key.size()) ^ (uint64_t{db} * 0x9e3779b97f4a7c15ull);
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

bool AmbiguityTracker::ForgetKey(uint64_t map_key, uint64_t id) {
  Slot* s = FindSlot(map_key);
  if (s == nullptr || s->last.latest.held_id != id) return false;
  EraseSlot(s);
  return true;
}

void AmbiguityTracker::RememberUnheld(uint64_t map_key, uint64_t capture_ns, uint64_t id) {
  const Slot* s = FindSlot(map_key);
  if (s == nullptr || s->last.latest.held_id != id) return;  // a later write owns the key
  unheld_.push_back(Unheld{map_key, capture_ns, id});
  if (unheld_.size() > opts_.max_held) {  // bounded like the held records
    const size_t before = used_;
    ForgetKey(unheld_.front().map_key, unheld_.front().id);
    unheld_.pop_front();
    stats_.keys_evicted += before - used_;
  }
}

void AmbiguityTracker::EnforceKeyCap() {
  // Every live key is the latest write of a held (or recently unheld)
  // record: releasing the oldest records early frees keys.
  while (used_ >= opts_.max_keys) {
    const size_t before = used_;
    if (!unheld_.empty()) {
      ForgetKey(unheld_.front().map_key, unheld_.front().id);
      unheld_.pop_front();
    } else if (held_count_ > 0) {
      ++stats_.forced_releases;
      ReleaseFront(/*window_closed=*/false);
    } else {
      break;
    }
    stats_.keys_evicted += before - used_;
  }
}

void AmbiguityTracker::GrowRing(size_t min_size) {
  const size_t max_ring = NextPow2(std::max<size_t>(opts_.max_held_bytes, 1));
  const size_t size = std::min(max_ring, std::max(ring_.size() * 2, NextPow2(min_size)));
  std::vector<char> bigger(size);
  const size_t old_mask = ring_.size() - 1;
  uint64_t at = 0;
  for (size_t i = 0; i < held_count_; ++i) {
    Held& h = HeldAt(i);
    std::memcpy(bigger.data() + at, ring_.data() + (h.offset & old_mask), h.bytes);
    h.offset = at;
    at += h.bytes;
  }
  ring_.swap(bigger);
  write_pos_ = at;
}

bool AmbiguityTracker::Reserve(size_t n, uint64_t* offset) {
  if (n > opts_.max_held_bytes) return false;
  for (;;) {
    if (held_count_ == 0) write_pos_ = 0;
    const size_t size = ring_.size();
    const size_t pos = write_pos_ & (size - 1);
    const uint64_t start = pos + n > size ? write_pos_ + (size - pos) : write_pos_;  // never wrap a record
    const uint64_t read = held_count_ == 0 ? write_pos_ : HeldAt(0).offset;
    // The ring is a power of two for masking; the cap itself is exact.
    if (start + n - read <= std::min(size, opts_.max_held_bytes)) {
      write_pos_ = start + n;
      *offset = start;
      return true;
    }
    if (size < opts_.max_held_bytes) {
      GrowRing(write_pos_ - read + n);
    } else {
      ++stats_.forced_releases;
      ReleaseFront(/*window_closed=*/false);
    }
  }
}

bool AmbiguityTracker::PushHeld(const RecordView& record, uint16_t flags, uint64_t connection_id) {
  size_t n = sizeof(uint32_t) * record.args.size() + record.key.size();
  for (std::string_view a : record.args) n += a.size();
  uint64_t off;
  if (record.args.size() > UINT32_MAX || n > UINT32_MAX || !Reserve(n, &off)) return false;
  char* p = ring_.data() + (off & (ring_.size() - 1));
  for (std::string_view a : record.args) {
    const uint32_t len = static_cast<uint32_t>(a.size());
    std::memcpy(p, &len, sizeof(len));
    p += sizeof(len);
  }
  if (!record.key.empty()) std::memcpy(p, record.key.data(), record.key.size());
  p += record.key.size();
  for (std::string_view a : record.args) {
    if (!a.empty()) std::memcpy(p, a.data(), a.size());
    p += a.size();
  }
  if (held_count_ == held_.size()) {
    std::vector<Held> bigger(held_.size() * 2);
    for (size_t i = 0; i < held_count_; ++i) bigger[i] = HeldAt(i);
    held_.swap(bigger);
    held_head_ = 0;
  }
  Held& h = HeldAt(held_count_);
  CopyRecordFields(record, &h);
  h.flags = flags;
  h.connection_id = connection_id;
  h.map_key = 0;
  h.offset = off;
  h.bytes = static_cast<uint32_t>(n);
  h.argc = static_cast<uint32_t>(record.args.size());
  h.key_len = static_cast<uint32_t>(record.key.size());
  ++held_count_;
  return true;
}

void AmbiguityTracker::ReleaseFront(bool window_closed) {
  const Held h = HeldAt(0);
  held_head_ = (held_head_ + 1) & (held_.size() - 1);
  --held_count_;
  // The key entry goes with the record whose window closed, unless a later
  // write of the key (still held) owns it now. A record pushed out early by
  // a cap keeps its entry for the rest of its window (as an unheld key), so
  // that a write of another connection in that window is still flagged.
  if (h.map_key != 0) {
    if (window_closed) {
      ForgetKey(h.map_key, first_held_id_);
    } else {
      RememberUnheld(h.map_key, h.capture_ns, first_held_id_);
    }
  }
  ++first_held_id_;
  // The bytes stay in place until the next PushHeld: the view is valid for
  // the downstream call.
  const char* p = ring_.data() + (h.offset & (ring_.size() - 1));
  const char* s = p + sizeof(uint32_t) * h.argc + h.key_len;
  release_args_.resize(h.argc);
  for (uint32_t i = 0; i < h.argc; ++i) {
    uint32_t len;
    std::memcpy(&len, p + sizeof(uint32_t) * i, sizeof(len));
    release_args_[i] = std::string_view(s, len);
    s += len;
  }
  RecordView v;
  CopyRecordFields(h, &v);
  v.key = std::string_view(p + sizeof(uint32_t) * h.argc, h.key_len);
  v.args = release_args_;
  downstream_->Emit(v, h.connection_id);
}

void AmbiguityTracker::Advance(uint64_t now_ns) {
  while (held_count_ > 0 && HeldAt(0).capture_ns + opts_.window_ns < now_ns) ReleaseFront();
  while (!unheld_.empty() && unheld_.front().capture_ns + opts_.window_ns < now_ns) {
    ForgetKey(unheld_.front().map_key, unheld_.front().id);
    unheld_.pop_front();
  }
}

void AmbiguityTracker::Flush() {
  while (held_count_ > 0) ReleaseFront();
  for (Slot& s : slots_) s.map_key = 0;
  used_ = 0;
  unheld_.clear();
  write_pos_ = 0;
}

void AmbiguityTracker::FlagPartner(const Write& w, uint64_t ts, uint16_t* flags) {
  const uint64_t d = ts > w.capture_ns ? ts - w.capture_ns : w.capture_ns - ts;
  if (d >= opts_.window_ns) return;
  constexpr uint16_t kBoth = kAmbiguousOrder | kNeedsReadback;
  if ((*flags & kAmbiguousOrder) == 0) ++stats_.ambiguous;
  *flags |= kBoth;
  if (w.held_id >= first_held_id_ && w.held_id - first_held_id_ < held_count_) {
    Held& p = HeldAt(w.held_id - first_held_id_);
    if ((p.flags & kAmbiguousOrder) == 0) ++stats_.ambiguous;
    p.flags |= kBoth;
  } else {
    ++stats_.late_partner;
  }
}

void AmbiguityTracker::Emit(const RecordView& record, uint64_t connection_id) {
  ++stats_.records;
  const uint64_t ts = record.capture_ns;
  Advance(ts > opts_.window_ns ? ts - opts_.window_ns : 0);
  uint16_t flags = record.flags;
  uint64_t k = 0;
  if (record.op != RecordOp::kDatabase) {
    k = MapKey(record.db, record.key);
    Slot* slot = FindSlot(k);
    if (slot == nullptr) {
      EnforceKeyCap();  // may release records: ids are taken after it
      slot = InsertSlot(k);
      slot->last = Last{Write{connection_id, ts, first_held_id_ + held_count_}, Write{}, false};
    } else {
      Last& l = slot->last;
      if (l.latest.connection_id != connection_id) {
        FlagPartner(l.latest, ts, &flags);
        l.other = l.latest;
        l.has_other = true;
      } else if (l.has_other) {
        FlagPartner(l.other, ts, &flags);
      }
      l.latest = Write{connection_id, ts, first_held_id_ + held_count_};
    }
  }
  const uint64_t id = first_held_id_ + held_count_;
  if (!PushHeld(record, flags, connection_id)) {
    // Too large to hold: release everything older (records leave in arrival
    // order), then pass this one through; its key is remembered for one
    // window so that later writes of the key are still flagged.
    ++stats_.forced_releases;
    while (held_count_ > 0) ReleaseFront(/*window_closed=*/false);
    RecordView v = record;
    v.flags = flags;
    ++first_held_id_;
    if (k != 0) RememberUnheld(k, ts, id);
    downstream_->Emit(v, connection_id);
    return;
  }
  HeldAt(held_count_ - 1).map_key = k;
  if (held_count_ > opts_.max_held) {
    ++stats_.forced_releases;
    ReleaseFront(/*window_closed=*/false);
  }
}

}  // namespace kvf::resp
