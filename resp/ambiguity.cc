// Ambiguity window: see ambiguity.h. The per-key table is a flat
// open-addressing hash table whose entries expire by time (a stale entry is
// overwritten or dropped at the next rebuild, never erased one by one), and
// held records stay in the record batches they came in, so a record costs
// one table probe and, when it leaves, a place in a run handed downstream.
#include "resp/ambiguity.h"

#include <algorithm>
#include <cstring>

// XXH3 inlined: keys are short and hashing them is on the per-record path.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvf::resp {

namespace {
constexpr size_t kInitialSlots = 1024;
// An open batch (records passed one by one) is closed at this size, so that
// a partly released batch keeps little memory alive.
constexpr size_t kOpenChunkRecords = 1024;
constexpr size_t kOpenChunkBytes = 1u << 20;
constexpr size_t kMaxSpare = 4;
}  // namespace

AmbiguityTracker::AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options)
    : downstream_(downstream), opts_(options), slots_(kInitialSlots) {
  opts_.max_keys = std::max<size_t>(opts_.max_keys, 1);
  opts_.max_span_ns = std::min<uint64_t>(opts_.max_span_ns, uint64_t{3600} * 1'000'000'000);  // fits Write
}

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

template <typename Keep>
void AmbiguityTracker::Rebuild(size_t size, Keep keep) {
  // Into the spare table (no allocation, and no fresh pages to fault in,
  // once both have reached the size).
  spare_slots_.resize(size);
  std::fill(spare_slots_.begin(), spare_slots_.end(), Slot{});
  spare_slots_.swap(slots_);
  const size_t mask = size - 1;
  used_ = 0;
  for (const Slot& s : spare_slots_) {
    if (s.map_key == 0 || !keep(s)) continue;
    size_t i = s.map_key & mask;
    while (slots_[i].map_key != 0) i = (i + 1) & mask;
    slots_[i] = s;
    ++used_;
  }
}

void AmbiguityTracker::MakeRoom() {
  // Leave a quarter of the cap free, so that the rebuilds stay rare.
  const size_t target = std::min(opts_.max_keys - 1, opts_.max_keys - opts_.max_keys / 4);
  Rebuild(slots_.size(), [&](const Slot& s) { return !Stale(s); });
  size_t release = 0;
  while (used_ > target) {
    // Keys of records that already left (pushed out early, or passed
    // through) go first; then the oldest held records leave early, and
    // their keys with them: as many as keys are missing, doubled each round
    // (a key whose latest record is newer stays).
    const uint64_t first_held = FirstHeldId();
    const size_t before = used_;
    Rebuild(slots_.size(), [&](const Slot& s) { return FullId(s.latest.id) >= first_held; });
    stats_.keys_evicted += before - used_;
    if (used_ <= target || held_count_ == 0) break;
    release = release == 0 ? used_ - target : 2 * release;
    ReleaseEarly(std::min(release, held_count_));
  }
}

AmbiguityTracker::Slot* AmbiguityTracker::InsertSlot(uint64_t map_key) {
  const size_t mask = slots_.size() - 1;
  // `map_key` is absent, so a stale entry on its probe path can take it in
  // place: the probe runs of other keys stay unbroken.
  size_t i = map_key & mask;
  while (slots_[i].map_key != 0) {
    if (Stale(slots_[i])) {
      slots_[i].map_key = map_key;
      return &slots_[i];
    }
    i = (i + 1) & mask;
  }
  if (used_ >= opts_.max_keys || 2 * (used_ + 1) > slots_.size()) {
    if (used_ >= opts_.max_keys) {
      MakeRoom();
    } else {
      // Half full: clear the stale entries out, and double if the live ones
      // still fill more than a quarter of the table.
      Rebuild(slots_.size(), [&](const Slot& s) { return !Stale(s); });
      if (4 * (used_ + 1) > slots_.size()) Rebuild(slots_.size() * 2, [](const Slot&) { return true; });
    }
    return InsertSlot(map_key);
  }
  slots_[i].map_key = map_key;
  ++used_;
  return &slots_[i];
}

uint64_t AmbiguityTracker::FirstHeldId() const {
  for (const Chunk& c : chunks_) {
    if (c.next < c.end) return c.first_id + c.next;
  }
  return next_id_;
}

AmbiguityTracker::Chunk& AmbiguityTracker::NewChunk() {
  if (!chunks_.empty()) chunks_.back().open = false;
  Chunk& c = chunks_.emplace_back();
  if (!spare_.empty()) {
    c.batch.Swap(spare_.back());
    spare_.pop_back();
  }
  c.first_id = next_id_;
  return c;
}

AmbiguityTracker::Chunk& AmbiguityTracker::OpenChunk() {
  if (!chunks_.empty()) {
    Chunk& c = chunks_.back();
    if (c.open && c.batch.size() < kOpenChunkRecords && c.batch.bytes() < kOpenChunkBytes) return c;
  }
  Chunk& c = NewChunk();
  c.open = true;
  return c;
}

template <typename More>
void AmbiguityTracker::ReleaseWhile(More more) {
  while (held_count_ > 0) {
    // Chunks released to their end (and fully taken) go back to spare_.
    while (chunks_.front().next == chunks_.front().batch.size()) {
      Chunk& done = chunks_.front();
      if (spare_.size() < kMaxSpare) {
        done.batch.Clear();
        spare_.push_back(std::move(done.batch));
      }
      chunks_.pop_front();
    }
    Chunk& c = chunks_.front();
    const size_t begin = c.next;
    size_t i = begin;
    size_t bytes = 0;
    while (i < c.end && more(c, i)) bytes += c.batch.record_bytes(i++);
    if (i == begin) return;
    c.next = i;
    held_count_ -= i - begin;
    held_bytes_ -= bytes;
    downstream_->EmitBatch(c.batch, begin, i);
    if (i < c.end) return;
  }
}

void AmbiguityTracker::ReleaseEarly(size_t n) {
  stats_.forced_releases += std::min(n, held_count_);
  ReleaseWhile([&](const Chunk&, size_t) { return n > 0 && n-- > 0; });
}

void AmbiguityTracker::Advance(uint64_t now_ns) {
  driven_ = true;
  ReleaseBefore(now_ns);
}

void AmbiguityTracker::ReleaseBefore(uint64_t now_ns) {
  horizon_ = std::max(horizon_, now_ns);
  // Held as long as a later write may still come within the window of it
  // (its span reaching back up to max_span_ns), so that both are flagged.
  const uint64_t hold = opts_.window_ns + opts_.max_span_ns;
  ReleaseWhile([&](const Chunk& c, size_t i) { return c.batch.capture_ns(i) + hold < now_ns; });
}

void AmbiguityTracker::Flush() {
  ReleaseWhile([](const Chunk&, size_t) { return true; });
  for (Slot& s : slots_) s.map_key = 0;
  used_ = 0;
}

void AmbiguityTracker::FlagPartner(const Write& w, const Write& me, uint16_t* flags) {
  // Spans [request, reply] apart by the window or more: ordered.
  if (me.request_ns() >= w.capture_ns + opts_.window_ns || w.request_ns() >= me.capture_ns + opts_.window_ns)
    return;
  MarkAmbiguous(flags);
  // The partner is still held if no chunk has released past it: find its
  // chunk (ids ascend along the deque).
  const uint64_t id = FullId(w.id);
  auto it = std::upper_bound(chunks_.begin(), chunks_.end(), id,
                             [](uint64_t id, const Chunk& c) { return id < c.first_id; });
  if (it != chunks_.begin()) {
    Chunk& c = *(it - 1);
    const uint64_t i = id - c.first_id;
    if (i >= c.next && i < c.end) {
      uint16_t partner = c.batch.flags(i);
      MarkAmbiguous(&partner);
      c.batch.AddFlags(i, partner);
      return;
    }
  }
  ++stats_.late_partner;
}

uint64_t AmbiguityTracker::KeyOf(const RecordBatch& b, size_t i) {
  return b.op(i) == RecordOp::kDatabase ? 0 : MapKey(b.db(i), b.key(i));
}

void AmbiguityTracker::Take(Chunk& c, size_t i, uint64_t k) {
  ++stats_.records;
  const uint64_t ts = c.batch.capture_ns(i);
  if (!driven_) {
    const uint64_t lag = opts_.window_ns + opts_.late_arrival_ns;
    ReleaseBefore(ts > lag ? ts - lag : 0);
  }
  const uint64_t id = next_id_;
  if (k != 0) {
    uint16_t flags = c.batch.flags(i);
    // A span longer than keys are remembered may hide a partner: flagged.
    uint64_t request_ns = c.batch.request_ns(i);
    if (ts - request_ns > opts_.max_span_ns) {
      request_ns = ts - opts_.max_span_ns;
      ++stats_.long_spans;
      MarkAmbiguous(&flags);
    }
    // A write whose reply was not seen (lost in a gap, under CLIENT REPLY
    // OFF, unanswered at a close) may run after its time: it counts as
    // running up to max_span_ns later.
    const uint64_t end = c.batch.unanswered(i) ? ts + opts_.max_span_ns : ts;
    const Write w{end, static_cast<uint32_t>(c.batch.connection_id(i)), static_cast<uint32_t>(id),
                  static_cast<uint32_t>((end - request_ns) / 1000)};
    // The slot keeps the key's latest write (by time) and the latest by a
    // connection other than its writer's. Compared by the records' own
    // times, not the horizon, which a merge's watermark may have moved past
    // them (Stale() only decides what memory may be reused: a slot found is
    // intact).
    Slot* slot = FindSlot(k);
    if (slot == nullptr) {
      slot = InsertSlot(k);  // may release records early, none of c's from i on
      slot->latest = w;
      slot->has_other = false;
    } else {
      // Of the two, those another connection wrote: the latest is the
      // partner that comes closest, unless this record is out of time order
      // and the latest lies wholly after it.
      const Write* latest = slot->latest.connection != w.connection ? &slot->latest : nullptr;
      const Write* other = slot->has_other && slot->other.connection != w.connection ? &slot->other : nullptr;
      if (latest != nullptr) FlagPartner(*latest, w, &flags);
      if (other != nullptr && (latest == nullptr || w.capture_ns < latest->capture_ns))
        FlagPartner(*other, w, &flags);
      // Taken after a later write of another connection, it is applied
      // after that one though it ran before it (or with it).
      if ((latest != nullptr && latest->capture_ns > w.capture_ns) ||
          (other != nullptr && other->capture_ns > w.capture_ns))
        MarkAmbiguous(&flags);
      // Records may come out of time order (a reply the flow table held for
      // its request, a read-back stamped with its request's time): an older
      // one does not displace a newer latest write.
      if (w.capture_ns >= slot->latest.capture_ns) {
        if (w.connection != slot->latest.connection) {
          slot->other = slot->latest;
          slot->has_other = true;
        }
        slot->latest = w;
      } else if (w.connection != slot->latest.connection &&
                 (!slot->has_other || w.capture_ns >= slot->other.capture_ns)) {
        slot->other = w;
        slot->has_other = true;
      }
    }
    c.batch.AddFlags(i, flags);
  }
  ++next_id_;
  c.end = i + 1;
  ++held_count_;
  const size_t bytes = c.batch.record_bytes(i);
  held_bytes_ += bytes;
  if (bytes > opts_.max_held_bytes) {
    // Too large to hold: it leaves now, after everything older (records
    // leave in arrival order). Its key entry stays for its window, so a
    // later write of the key is still flagged.
    ++stats_.forced_releases;
    ReleaseWhile([](const Chunk&, size_t) { return true; });
    return;
  }
  while (held_count_ > opts_.max_held || held_bytes_ > opts_.max_held_bytes) ReleaseEarly(1);
}

void AmbiguityTracker::Emit(const RecordView& record, uint64_t connection_id) {
  Chunk& c = OpenChunk();
  c.batch.Add(record, connection_id);
  Take(c, c.batch.size() - 1, KeyOf(c.batch, c.batch.size() - 1));
}

void AmbiguityTracker::TakeBatch(RecordBatch* batch, std::span<const std::pair<size_t, uint64_t>> advances) {
  if (batch->empty()) {
    for (const auto& a : advances) Advance(a.second);
    return;
  }
  Chunk& c = NewChunk();
  c.batch.Swap(*batch);
  const size_t n = c.batch.size();
  // The table is larger than the first-level cache: each record's slot is
  // fetched kAhead records before it is used.
  constexpr size_t kAhead = 8;
  uint64_t keys[kAhead];
  auto prefetch = [&](size_t j) {
    const uint64_t k = KeyOf(c.batch, j);
    keys[j % kAhead] = k;
    __builtin_prefetch(&slots_[k & (slots_.size() - 1)]);
  };
  for (size_t j = 0; j < std::min(n, kAhead); ++j) prefetch(j);
  size_t a = 0;
  for (size_t i = 0; i < n; ++i) {
    for (; a < advances.size() && advances[a].first <= i; ++a) Advance(advances[a].second);
    const uint64_t k = keys[i % kAhead];
    if (i + kAhead < n) prefetch(i + kAhead);
    Take(c, i, k);
  }
  for (; a < advances.size(); ++a) Advance(advances[a].second);
}

}  // namespace kvf::resp
