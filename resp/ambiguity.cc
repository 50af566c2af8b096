// Ambiguity window: see ambiguity.h. The per-key table is a flat
// open-addressing hash table whose entries expire by time (a stale entry is
// overwritten or dropped at the next rebuild, never erased one by one), and
// held records stay in the record batches they came in, so a record costs
// one table probe and, when it leaves, a place in a run handed downstream.
#include "resp/ambiguity.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "resp/command_table.h"
#include "resp/convert.h"

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
// The most a mirror's delay of the requests widens the window by (decode and
// capture allow 1.25 × their hold, at most 1.25 s).
constexpr uint64_t kMaxRequestSlackNs = uint64_t{60} * 1'000'000'000;
}  // namespace

AmbiguityTracker::AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options)
    : downstream_(downstream), opts_(options), slots_(kInitialSlots) {
  opts_.max_keys = std::max<size_t>(opts_.max_keys, 1);
  opts_.max_span_ns = std::min<uint64_t>(opts_.max_span_ns, uint64_t{3600} * 1'000'000'000);  // fits Write
  // Spans of up to max_retain_ns plus max_span_ns fit Write's microseconds.
  opts_.max_retain_ns =
      std::clamp<uint64_t>(opts_.max_retain_ns, opts_.max_span_ns, uint64_t{600} * 1'000'000'000);
  // (Not bounded by max_span_ns: a review's mirror delayed requests by 20
  // ms, and a window widened by 5 ms only left a race unflagged.)
  opts_.max_request_slack_ns = std::min(opts_.max_request_slack_ns, kMaxRequestSlackNs);
  window_ns_ = opts_.window_ns;
  retain_ns_ = HoldNs();
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
  if (spare_slots_.size() == size) {
    std::fill(spare_slots_.begin(), spare_slots_.end(), Slot{});
  } else {
    spare_slots_.clear();  // so that resize zeroes each slot once, and copies none
    spare_slots_.resize(size);
  }
  spare_slots_.swap(slots_);
  const size_t mask = size - 1;
  used_ = 0;
  for (const Slot& s : spare_slots_) {
    if (s.map_key == 0) continue;
    if (!keep(s)) {
      Dropped(s);
      continue;
    }
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
  while (used_ > target && retain_ns_ > HoldNs()) {
    // Keys kept for long spans give way first, the oldest first.
    retain_ns_ = std::max(HoldNs(), retain_ns_ / 2);
    Rebuild(slots_.size(), [&](const Slot& s) { return !Stale(s); });
  }
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
      Dropped(slots_[i]);
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
    size_t run = begin;  // of records to hand over (markers stay behind)
    while (i < c.end && more(c, i)) {
      if (c.batch.op(i) == RecordOp::kHold) [[unlikely]] {
        if (run < i) downstream_->EmitBatch(c.batch, run, i);
        run = i + 1;
      }
      bytes += c.batch.record_bytes(i++);
    }
    if (i == begin) return;
    c.next = i;
    held_count_ -= i - begin;
    held_bytes_ -= bytes;
    if (run < i) downstream_->EmitBatch(c.batch, run, i);
    if (i < c.end) return;
  }
}

void AmbiguityTracker::ReleaseEarly(size_t n) {
  stats_.forced_releases += std::min(n, held_count_);
  if (n > 0 && held_count_ > 0) BreakHolds();
  ReleaseWhile([&](const Chunk&, size_t) { return n > 0 && n-- > 0; });
}

void AmbiguityTracker::Advance(uint64_t now_ns, uint64_t request_lag_ns) {
  driven_ = true;
  const uint64_t slack = std::min(request_lag_ns + request_lag_ns / 4, opts_.max_request_slack_ns);
  if (slack > stats_.request_slack_ns) [[unlikely]] {
    stats_.request_slack_ns = slack;
    window_ns_ = opts_.window_ns + slack;
    retain_ns_ = std::max(retain_ns_, HoldNs());
  }
  ReleaseBefore(now_ns);
}

void AmbiguityTracker::ReleaseBefore(uint64_t now_ns) {
  horizon_ = std::max(horizon_, now_ns);
  // Long spans have stopped coming for a while: keys go back to the plain
  // retention (a later long span reaching back past them is flagged).
  if (retain_ns_ > HoldNs() && horizon_ > last_long_ns_ + 4 * retain_ns_) retain_ns_ = HoldNs();
  // Held as long as a later write may still come within the window of it
  // (its span reaching back up to max_span_ns), so that both are flagged,
  // and while a database-wide write whose span may reach it waits.
  const uint64_t until = std::min(now_ns, HoldFloor());
  ReleaseWhile([&](const Chunk& c, size_t i) { return c.batch.capture_ns(i) + HoldNs() < until; });
}

uint64_t AmbiguityTracker::HoldFloor() {
  uint64_t floor = UINT64_MAX;
  for (size_t k = 0; k < holds_.size();) {
    if (holds_[k].from_ns + opts_.max_retain_ns < horizon_) {
      ++stats_.holds_expired;
      holds_[k] = holds_.back();
      holds_.pop_back();
      continue;
    }
    floor = std::min(floor, holds_[k].from_ns);
    ++k;
  }
  return floor;
}

void AmbiguityTracker::TakeHold(const RecordBatch& b, size_t i) {
  const uint64_t conn = b.connection_id(i);
  auto it = std::find_if(holds_.begin(), holds_.end(), [&](const Hold& h) { return h.connection == conn; });
  if (b.first_arg(i) != "HOLD") {
    if (it != holds_.end()) {
      *it = holds_.back();
      holds_.pop_back();
    }
    return;
  }
  const uint64_t from = b.request_ns(i);
  // Records its span may meet have already left if the window was advanced
  // past them: they are released once the horizon passes their time plus
  // HoldNs(), and the earliest it may meet came a window before its request.
  const bool intact = horizon_ <= from + opts_.max_span_ns;
  if (it != holds_.end()) {
    // Another database-wide write of the connection (the one before was
    // answered): what broke the earlier hold may have reached this one.
    if (it->from_ns != from) *it = Hold{conn, from, intact && it->intact};
  } else if (holds_.size() < kMaxHolds) {
    holds_.push_back(Hold{conn, from, intact});
  }
}

bool AmbiguityTracker::HeldFor(const RecordBatch& b, size_t i) const {
  const uint64_t conn = b.connection_id(i);
  for (const Hold& h : holds_) {
    // (request_ns is rounded down to the microsecond.)
    if (h.connection == conn) return h.intact && h.from_ns <= b.request_ns(i) + 1000;
  }
  return false;
}

void AmbiguityTracker::Flush() {
  ReleaseWhile([](const Chunk&, size_t) { return true; });
  for (Slot& s : slots_) {
    if (s.map_key != 0) Dropped(s);
    s.map_key = 0;
  }
  used_ = 0;
  db_wide_.clear();
  all_dbs_ = Slot{};
  functions_ = Slot{};
  holds_.clear();
}

void AmbiguityTracker::FlagPartner(const Write& w, const Write& me, uint16_t* flags) {
  // Spans [request, reply] apart by the window or more: ordered.
  if (!Overlap(w, me)) return;
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
  return b.op(i) >= RecordOp::kDatabase ? 0 : MapKey(b.db(i), b.key(i));
}

AmbiguityTracker::Write AmbiguityTracker::WriteOf(const RecordBatch& b, size_t i, uint64_t id,
                                                  uint64_t* span_ns) const {
  const uint64_t ts = b.capture_ns(i);
  // A write whose reply was not seen (lost in a gap, under CLIENT REPLY
  // OFF, unanswered at a close) may run after its time: it counts as
  // running up to max_span_ns later.
  const uint64_t end = b.unanswered(i) ? ts + opts_.max_span_ns : ts;
  *span_ns = ts - b.request_ns(i);
  const uint64_t span = std::min(*span_ns, opts_.max_retain_ns) + (end - ts);
  return Write{end, static_cast<uint32_t>(b.connection_id(i)), static_cast<uint32_t>(id),
               static_cast<uint32_t>(span / 1000)};
}

bool AmbiguityTracker::LongSpanUnchecked(const Write& w, uint64_t span_ns) {
  // Keys are kept long enough for the next span twice as long, so that
  // spans growing with a backlog stay checked.
  retain_ns_ = std::max(retain_ns_, std::min(opts_.max_retain_ns, 2 * span_ns + window_ns_));
  last_long_ns_ = std::max(last_long_ns_, w.capture_ns);
  // A write of another connection whose span comes within the window of
  // this one was taken after dropped_upto_, so its key's entry is intact.
  if (span_ns <= opts_.max_retain_ns && w.request_ns() > dropped_upto_ + window_ns_) {
    ++stats_.long_checked;
    return false;
  }
  ++stats_.long_spans;
  return true;
}

bool DbsChangedBy(const RecordView& r, DbSet* out) {
  *out = DbSet{};
  if (r.op == RecordOp::kOrdered && r.args.size() >= 2) {
    if (EqualsIgnoreCase(r.args[0], "EVAL")) return ScriptDbsChanged(r.args[1], r.db, out);
    if (r.fcall_db_names != 0 && EqualsIgnoreCase(r.args[0], "FCALL"))
      return DbsChangedByNames(r.fcall_db_names, r.db, out);
    return false;
  }
  if (r.op != RecordOp::kDatabase || r.args.empty()) return false;
  if (EqualsIgnoreCase(r.args[0], "FLUSHALL")) {
    out->all = true;
  } else if (EqualsIgnoreCase(r.args[0], "FLUSHDB")) {
    out->dbs[out->n++] = r.db;
  } else if (EqualsIgnoreCase(r.args[0], "SWAPDB")) {
    out->swap = true;
    if (r.args.size() == 3 && ParseDb(r.args[1], &out->dbs[0]) && ParseDb(r.args[2], &out->dbs[1])) {
      out->n = 2;
    } else {
      out->all = true;
    }
  } else if (EqualsIgnoreCase(r.args[0], "FUNCTION")) {
    out->functions = true;
  } else {
    return false;
  }
  return true;
}

uint8_t DatabaseWideNames(std::string_view body) {
  uint8_t names = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = static_cast<char>(body[i] | 0x20);
    if (c != 'f' && c != 's') continue;
    const std::string_view rest = body.substr(i);
    if (c == 'f' && rest.size() >= 7 && EqualsIgnoreCase(rest.substr(0, 5), "flush")) {
      if (EqualsIgnoreCase(rest.substr(5, 2), "db")) names |= kNamesFlushdb;
      if (rest.size() >= 8 && EqualsIgnoreCase(rest.substr(5, 3), "all")) names |= kNamesFlushall;
    } else if (c == 's' && rest.size() >= 6) {
      if (EqualsIgnoreCase(rest.substr(0, 6), "swapdb")) names |= kNamesSwapdb;
      if (EqualsIgnoreCase(rest.substr(0, 6), "select")) names |= kNamesSelect;
    }
  }
  return names;
}

bool ScriptDbsChanged(std::string_view body, uint16_t db, DbSet* out) {
  *out = DbSet{};
  uint8_t names;
  if (body.size() < 512) {
    names = DatabaseWideNames(body);
  } else {
    // Once per body, per thread: every EVAL carries it (ScriptCallsMigrate).
    struct Entry {
      uint64_t low = 0, high = 0, size = 0;
      uint8_t names = 0;
      bool valid = false;
    };
    thread_local std::array<Entry, 256> memo;
    const XXH128_hash_t h = XXH3_128bits(body.data(), body.size());
    Entry& e = memo[h.low64 & (memo.size() - 1)];
    if (!e.valid || e.low != h.low64 || e.high != h.high64 || e.size != body.size())
      e = Entry{h.low64, h.high64, body.size(), DatabaseWideNames(body), true};
    names = e.names;
  }
  return DbsChangedByNames(names, db, out);
}

bool DbsChangedByNames(uint8_t names, uint16_t db, DbSet* out) {
  *out = DbSet{};
  if ((names & (kNamesFlushdb | kNamesFlushall | kNamesSwapdb)) == 0) return false;
  out->swap = (names & kNamesSwapdb) != 0;
  if ((names & (kNamesFlushall | kNamesSwapdb | kNamesSelect)) != 0) {
    out->all = true;  // a swap's dbs, a flush after a SELECT: not told
  } else {
    out->dbs[out->n++] = db;
  }
  return true;
}

bool AmbiguityTracker::DbsOf(const RecordBatch& b, size_t i, DbSet* out) {
  const RecordOp op = b.op(i);
  if (op == RecordOp::kOrdered) {
    const std::string_view first = b.first_arg(i);
    if (!EqualsIgnoreCase(first, "EVAL") && (b.fcall_db_names(i) == 0 || !EqualsIgnoreCase(first, "FCALL")))
      return false;
  } else if (op != RecordOp::kDatabase) {
    return false;
  }
  return DbsChangedBy(b.Get(i, &db_wide_args_), out);
}

void AmbiguityTracker::TakeDatabaseWide(RecordBatch& b, size_t i, const DbSet& mine, const Write& w) {
  uint16_t my_flags = b.flags(i);
  // Held writes of other connections it comes within the window of: key
  // writes in the dbs it touches, and database-wide writes of those dbs
  // (two SWAPDBs applied the other way round leave the dbs permuted
  // otherwise: both are flagged, a read-back of the dbs). Newest first,
  // down to an answered record that ended too long before it began: the
  // records before that one came at most max_late_ns_ out of order (an
  // unanswered one carries its request's time and counts max_span_ns
  // more), so none of them meets it. Not every record held: while a hold
  // keeps hundreds of thousands, a flood of FLUSHDBs each walking them all
  // took seconds (found by a review).
  const uint64_t reach = window_ns_ + opts_.max_span_ns + max_late_ns_;
  bool walked = false;
  for (auto c = chunks_.rbegin(); c != chunks_.rend() && !walked; ++c) {
    for (size_t j = c->end; j-- > c->next;) {
      if (!c->batch.unanswered(j) && c->batch.capture_ns(j) + reach < w.request_ns()) {
        walked = true;
        break;
      }
      if ((&c->batch == &b && j == i) || c->batch.op(j) == RecordOp::kHold) continue;
      DbSet theirs;
      const bool wide = DbsOf(c->batch, j, &theirs);
      if (wide ? !theirs.Meets(mine) : !mine.Touches(c->batch.db(j))) continue;
      uint64_t span_ns;
      const Write x = WriteOf(c->batch, j, 0, &span_ns);
      if (x.connection == w.connection || !Overlap(x, w)) continue;
      uint16_t flags = c->batch.flags(j);
      MarkAmbiguous(&flags);
      c->batch.AddFlags(j, flags);
      if (wide) MarkAmbiguous(&my_flags);
    }
  }
  // Database-wide writes already released that it comes within the window of.
  bool met = mine.functions ? MeetsDatabaseWide(functions_, w) : MeetsDatabaseWide(all_dbs_, w);
  for (size_t k = 0; k < db_wide_.size() && !met; ++k)
    met = mine.Touches(static_cast<uint16_t>(k)) && MeetsDatabaseWide(db_wide_[k], w);
  if (met) MarkAmbiguous(&my_flags);
  b.AddFlags(i, my_flags);
  // And the key writes still to come: the latest per db, and the latest by
  // another connection than that one's (a key write of the latest's own
  // connection, its span long, must still meet another connection's).
  auto keep = [&](Slot* slot) {
    if (slot->map_key == 0) {
      slot->map_key = 1;
      slot->latest = w;
      slot->has_other = false;
    } else {
      Update(slot, w);
    }
  };
  if (mine.functions || mine.all) {
    keep(mine.functions ? &functions_ : &all_dbs_);
    return;
  }
  for (size_t k = 0; k < mine.n; ++k) {
    if (db_wide_.size() <= mine.dbs[k]) db_wide_.resize(size_t{mine.dbs[k]} + 1, Slot{});
    keep(&db_wide_[mine.dbs[k]]);
  }
}

bool AmbiguityTracker::MeetsDatabaseWide(const Slot& d, const Write& w) const {
  if (d.map_key == 0) return false;
  return (d.latest.connection != w.connection && Overlap(d.latest, w)) ||
         (d.has_other && d.other.connection != w.connection && Overlap(d.other, w));
}

void AmbiguityTracker::CheckDatabaseWide(uint16_t db, const Write& w, uint16_t* flags) {
  if (MeetsDatabaseWide(all_dbs_, w) || (db < db_wide_.size() && MeetsDatabaseWide(db_wide_[db], w)))
    MarkAmbiguous(flags);
}

bool AmbiguityTracker::FieldOf(const RecordBatch& b, size_t i, std::string_view* field) {
  // HSET/HMSET k f v, ZADD k score m (a ZINCRBY's record too), SADD k m:
  // two of them of different fields, in either order, leave the same key
  // (they create it alike, keep its expiry alike, never remove it).
  const std::string_view cmd = b.first_arg(i);
  if (cmd.size() != 4 && cmd.size() != 5) return false;
  const char c0 = static_cast<char>(cmd[0] | 0x20);
  if (c0 != 'h' && c0 != 'z' && c0 != 's') return false;
  size_t at = 0, argc = 0;  // where the field is, and how many arguments with one field
  if (EqualsIgnoreCase(cmd, "HSET") || EqualsIgnoreCase(cmd, "HMSET")) {
    at = 2, argc = 4;
  } else if (EqualsIgnoreCase(cmd, "ZADD")) {
    at = 3, argc = 4;
  } else if (EqualsIgnoreCase(cmd, "SADD")) {
    at = 2, argc = 3;
  } else {
    return false;
  }
  const RecordView v = b.Get(i, &field_args_);
  if (v.args.size() != argc) return false;
  *field = v.args[at];
  return true;
}

uint64_t AmbiguityTracker::KeyWritesOf(uint64_t map_key) {
  uint64_t h = map_key ^ 0x5851f42d4c957f2dull;
  h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h == 0 ? 1 : h;
}

uint64_t AmbiguityTracker::FieldKey(uint64_t map_key, std::string_view field) {
  uint64_t h = XXH3_64bits_withSeed(field.data(), field.size(), map_key);
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  return h == 0 ? 1 : h;
}

AmbiguityTracker::Slot* AmbiguityTracker::NewSlot(uint64_t map_key, const Write& w) {
  Slot* slot = InsertSlot(map_key);
  slot->latest = w;
  slot->has_other = false;
  slot->fields = false;
  return slot;
}

AmbiguityTracker::Slot* AmbiguityTracker::FindOrInsertSlot(uint64_t map_key, const Write& first) {
  if (Slot* slot = FindSlot(map_key); slot != nullptr) return slot;
  return NewSlot(map_key, first);
}

void AmbiguityTracker::Check(const Slot& slot, const Write& w, uint16_t* flags) {
  // Of the two, those another connection wrote: the latest is the partner
  // that comes closest, unless this record is out of time order and the
  // latest lies wholly after it.
  const Write* latest = slot.latest.connection != w.connection ? &slot.latest : nullptr;
  const Write* other = slot.has_other && slot.other.connection != w.connection ? &slot.other : nullptr;
  if (latest != nullptr) FlagPartner(*latest, w, flags);
  if (other != nullptr && (latest == nullptr || w.capture_ns < latest->capture_ns))
    FlagPartner(*other, w, flags);
  // Taken after a later write of another connection, it is applied after
  // that one though it ran before it (or with it).
  if ((latest != nullptr && latest->capture_ns > w.capture_ns) ||
      (other != nullptr && other->capture_ns > w.capture_ns))
    MarkAmbiguous(flags);
}

void AmbiguityTracker::Update(Slot* slot, const Write& w) {
  // Records may come out of time order (a reply the flow table held for its
  // request, a read-back stamped with its request's time): an older one
  // does not displace a newer latest write.
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

void AmbiguityTracker::TakeKeyWrite(uint64_t k, const Write& w, uint16_t* flags) {
  bool fields = false;
  if (Slot* slot = FindSlot(k); slot == nullptr) {
    NewSlot(k, w);
  } else {
    Check(*slot, w, flags);
    Update(slot, w);
    fields = slot->fields;
  }
  // A key with field writes: its key writes are kept apart too, for them.
  if (fields) Update(FindOrInsertSlot(KeyWritesOf(k), w), w);
}

void AmbiguityTracker::TakeFieldWrite(uint64_t k, std::string_view field, const Write& w, uint16_t* flags) {
  // A write of one field (member) commutes with another connection's write
  // of another field: it meets that one's key writes (kept apart once a
  // field write came) and the writes of its own field. The key's slot still
  // takes it, for the key writes to come.
  Slot* slot = FindSlot(k);
  if (slot == nullptr) {
    slot = NewSlot(k, w);
    slot->fields = true;
  } else if (!slot->fields) {
    // What the slot holds so far are key writes.
    Check(*slot, w, flags);
    const Slot key_writes = *slot;
    slot->fields = true;
    Update(slot, w);
    // (An entry left from before the slot was dropped takes both too.)
    Slot* kw = FindOrInsertSlot(KeyWritesOf(k), key_writes.latest);
    if (key_writes.has_other) Update(kw, key_writes.other);
    Update(kw, key_writes.latest);
  } else {
    Update(slot, w);
    if (const Slot* kw = FindSlot(KeyWritesOf(k)); kw != nullptr) Check(*kw, w, flags);
  }
  const uint64_t fk = FieldKey(k, field);
  if (Slot* fs = FindSlot(fk); fs == nullptr) {
    NewSlot(fk, w);
  } else {
    Check(*fs, w, flags);
    Update(fs, w);
  }
}

void AmbiguityTracker::Take(Chunk& c, size_t i, uint64_t k) {
  const bool marker = c.batch.op(i) == RecordOp::kHold;
  if (!marker) ++stats_.records;
  const uint64_t ts = c.batch.capture_ns(i);
  if (!driven_) {
    const uint64_t lag = window_ns_ + opts_.late_arrival_ns;
    ReleaseBefore(ts > lag ? ts - lag : 0);
  }
  // How far out of capture order records come (TakeDatabaseWide).
  if (ts > newest_ns_) {
    newest_ns_ = ts;
  } else if (newest_ns_ - ts > max_late_ns_ && !c.batch.unanswered(i)) [[unlikely]] {
    max_late_ns_ = std::min(newest_ns_ - ts, opts_.max_retain_ns);
  }
  const uint64_t id = next_id_;
  DbSet wide;
  const RecordOp op = c.batch.op(i);
  const bool changes_dbs =
      (op == RecordOp::kDatabase || op == RecordOp::kOrdered) && DbsOf(c.batch, i, &wide);
  if (changes_dbs || op == RecordOp::kDatabase) {
    uint64_t span_ns;
    Write w = WriteOf(c.batch, i, id, &span_ns);
    if (span_ns > opts_.max_span_ns) {
      // Its whole span, so that every held key write in it is flagged (a
      // FLUSHALL pipelined behind a large reply ran long before its reply).
      w.span_us = static_cast<uint32_t>(std::min<uint64_t>(UINT32_MAX, span_ns / 1000));
      if (HeldFor(c.batch, i)) {
        // Its connection told of it (kHold): the records its span meets
        // are all still held.
        ++stats_.long_checked;
      } else {
        // Key writes already released within it are not flagged: the
        // record says so (a database-wide read-back).
        uint16_t flags = c.batch.flags(i);
        ++stats_.long_spans;
        MarkAmbiguous(&flags);
        c.batch.AddFlags(i, flags);
      }
    }
    if (changes_dbs) TakeDatabaseWide(c.batch, i, wide, w);
  } else if (marker) [[unlikely]] {
    TakeHold(c.batch, i);
  }
  if (k != 0) {
    uint16_t flags = c.batch.flags(i);
    uint64_t span_ns;
    const Write w = WriteOf(c.batch, i, id, &span_ns);
    if (span_ns > opts_.max_span_ns && LongSpanUnchecked(w, span_ns)) {
      MarkAmbiguous(&flags);
    } else if (ts + opts_.late_arrival_ns < horizon_ && w.request_ns() <= dropped_upto_ + window_ns_)
        [[unlikely]] {
      // Later than the window had been advanced to (a capture worker's
      // record behind data its flow table held, merged after other
      // workers' newer ones), and reaching back past an entry the table
      // has dropped: a partner there is gone, unflagged, and this record is
      // read back after it. A review: two workers' SETs of one key, the
      // older shipped last, unflagged, and the replica kept its value.
      ++stats_.late_unchecked;
      MarkAmbiguous(&flags);
    }
    if (!db_wide_.empty() || all_dbs_.map_key != 0) CheckDatabaseWide(c.batch.db(i), w, &flags);
    // The slot keeps the key's latest write (by time) and the latest by a
    // connection other than its writer's. Compared by the records' own
    // times, not the horizon, which a merge's watermark may have moved past
    // them (Stale() only decides what memory may be reused: a slot found is
    // intact).
    std::string_view field;
    if (!opts_.fields_commute || !FieldOf(c.batch, i, &field)) [[likely]] {
      TakeKeyWrite(k, w, &flags);  // may release records early, none of c's from i on
    } else {
      TakeFieldWrite(k, field, w, &flags);
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
    BreakHolds();
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

void AmbiguityTracker::TakeBatch(RecordBatch* batch, std::span<const WindowAdvance> advances) {
  if (batch->empty()) {
    for (const WindowAdvance& a : advances) Advance(a.now_ns, a.request_lag_ns);
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
    for (; a < advances.size() && advances[a].before <= i; ++a)
      Advance(advances[a].now_ns, advances[a].request_lag_ns);
    const uint64_t k = keys[i % kAhead];
    if (i + kAhead < n) prefetch(i + kAhead);
    Take(c, i, k);
  }
  for (; a < advances.size(); ++a) Advance(advances[a].now_ns, advances[a].request_lag_ns);
}

SwapReadbacks::SwapReadbacks(RecordSink* downstream, AmbiguityOptions options)
    : downstream_(downstream),
      // The two records' replies come at most this far apart when their
      // spans come within the window (spans of max_span_ns at most).
      // (The window may widen by max_request_slack_ns.)
      near_ns_(options.window_ns + std::min(options.max_request_slack_ns, kMaxRequestSlackNs) +
               2 * options.max_span_ns),
      // Kept longer: records may come out of time order by the tracker's
      // slack for late arrivals.
      keep_ns_(near_ns_ + options.late_arrival_ns),
      // A flagged write's span may reach back this far (the tracker checks
      // spans of up to max_retain_ns): swaps are kept for it.
      keep_swaps_ns_(keep_ns_ + std::max(options.max_retain_ns, options.max_span_ns)) {}

bool SwapReadbacks::Relevant(RecordOp op, uint16_t flags, std::string_view first_arg) {
  if (op == RecordOp::kDatabase) return EqualsIgnoreCase(first_arg, "SWAPDB");
  // Any record whose key is read back (its order against another
  // connection's, a MOVE's or COPY's target, an expiry in doubt): its key
  // may have been swapped on.
  return (flags & (kAmbiguousOrder | kNeedsReadback)) != 0;
}

void SwapReadbacks::Prune(uint64_t now_ns) {
  const uint64_t cut = now_ns > keep_swaps_ns_ ? now_ns - keep_swaps_ns_ : 0;
  while (!swaps_.empty() && swaps_.front().capture_ns < cut) Forget();
  while (!flagged_.empty() && flagged_.front().capture_ns < cut) flagged_.pop_front();
}

void SwapReadbacks::Readback(const RecordView& after, uint16_t db, std::string_view key,
                             uint64_t connection_id) {
  RecordView v;
  CopyRecordFields(after, &v);
  v.source = after.source;
  v.request_ns = after.request_ns;
  v.db = db;
  v.op = RecordOp::kReadback;
  v.flags = kNeedsReadback;
  v.key = key;
  v.args = {};
  ++added_;
  downstream_->Emit(v, connection_id);
}

bool SwapReadbacks::Near(uint64_t t_lo, uint64_t t_hi, uint64_t lo, uint64_t hi) const {
  return t_hi + near_ns_ >= lo && t_lo <= hi + near_ns_;
}

void SwapReadbacks::Forget() {
  forgotten_upto_ = std::max(forgotten_upto_, swaps_.front().capture_ns);
  swaps_.pop_front();
}

void SwapReadbacks::Closure(uint16_t db, uint64_t lo, uint64_t hi, std::vector<uint16_t>* dbs) const {
  // Swaps near the span [lo, hi] may have run in any order: a key of `db`
  // may sit in any db a chain of them reaches (SWAPDB 0 1, then SWAPDB 1 2).
  dbs->assign(1, db);
  auto has = [&](uint16_t d) { return std::find(dbs->begin(), dbs->end(), d) != dbs->end(); };
  for (bool grew = true; grew;) {
    grew = false;
    // Newest first: swaps come in time order but for records taken late,
    // so past one older than the span by more than that, none is near.
    for (auto it = swaps_.rbegin(); it != swaps_.rend(); ++it) {
      const Swap& s = *it;
      if (s.capture_ns + near_ns_ + keep_ns_ < lo) {
        if (s.late) continue;
        break;
      }
      if (!Near(s.request_ns, s.capture_ns, lo, hi) || has(s.a) == has(s.b)) continue;
      dbs->push_back(has(s.a) ? s.b : s.a);
      grew = true;
    }
  }
  // A swap forgotten (the cap, or older than any checked span) may be near
  // it: if a db it may sit in was ever swapped, read it back in every db
  // ever swapped.
  if (forgotten_upto_ != 0 && forgotten_upto_ + near_ns_ >= lo &&
      std::any_of(dbs->begin(), dbs->end(), [&](uint16_t d) {
        return std::binary_search(swapped_dbs_.begin(), swapped_dbs_.end(), d);
      })) {
    for (const uint16_t d : swapped_dbs_) {
      if (std::find(dbs->begin(), dbs->end(), d) == dbs->end()) dbs->push_back(d);
    }
  }
}

void SwapReadbacks::Note(const RecordView& r, uint64_t connection_id) {
  Prune(r.capture_ns);
  if (r.op == RecordOp::kDatabase) {
    DbSet d;
    if (!DbsChangedBy(r, &d) || !d.swap || d.n != 2 || d.dbs[0] == d.dbs[1]) return;
    const uint16_t a = d.dbs[0], b = d.dbs[1];
    // Bounded: the oldest go first (only a long span reaches back to them).
    if (swaps_.size() >= kMaxSwaps) Forget();
    const uint64_t request_ns = RequestNs(r);
    swaps_.push_back(Swap{a, b, request_ns, r.capture_ns, r.capture_ns + keep_ns_ < newest_swap_ns_});
    newest_swap_ns_ = std::max(newest_swap_ns_, r.capture_ns);
    for (const uint16_t db : {a, b}) {
      const auto at = std::lower_bound(swapped_dbs_.begin(), swapped_dbs_.end(), db);
      if (at == swapped_dbs_.end() || *at != db) swapped_dbs_.insert(at, db);
    }
    // Flagged keys near it (it ran anywhere in its span): read back in every
    // db they may now sit in. Newest first; flagged records come in time
    // order but for those taken late.
    for (auto it = flagged_.rbegin(); it != flagged_.rend(); ++it) {
      Flagged& f = *it;
      if (f.capture_ns + near_ns_ + keep_ns_ < request_ns) {
        if (f.late) continue;  // (a review missed a key flagged before one taken late)
        break;
      }
      if (!Near(request_ns, r.capture_ns, f.request_ns, f.capture_ns)) continue;
      // f.done is closed under the swaps kept before this one: only a swap
      // between a db in it and one outside can reach further. (Computing
      // the closure again for every swap of a storm took minutes: 5,000
      // SWAPDBs among 25,000 flagged writes, 182 s, found by a review.)
      auto in_done = [&](uint16_t d) { return std::find(f.done.begin(), f.done.end(), d) != f.done.end(); };
      if (in_done(a) == in_done(b)) continue;
      Closure(f.db, f.request_ns, f.capture_ns, &dbs_);
      for (uint16_t db : dbs_) {
        if (std::find(f.done.begin(), f.done.end(), db) != f.done.end()) continue;
        Readback(r, db, f.key, connection_id);
        f.done.push_back(db);
      }
    }
    return;
  }
  const uint64_t request_ns = RequestNs(r);
  Closure(r.db, request_ns, r.capture_ns, &dbs_);
  for (size_t i = 1; i < dbs_.size(); ++i) Readback(r, dbs_[i], r.key, connection_id);
  if (flagged_.size() >= kMaxFlagged) flagged_.pop_front();
  flagged_.push_back(Flagged{r.db, std::string(r.key), request_ns, r.capture_ns, dbs_,
                             r.capture_ns + keep_ns_ < newest_flagged_ns_});
  newest_flagged_ns_ = std::max(newest_flagged_ns_, r.capture_ns);
}

void SwapReadbacks::Emit(const RecordView& record, uint64_t connection_id) {
  downstream_->Emit(record, connection_id);
  if (Relevant(record.op, record.flags, record.args.empty() ? std::string_view() : record.args[0]))
    Note(record, connection_id);
}

void SwapReadbacks::EmitBatch(const RecordBatch& batch, size_t begin, size_t end) {
  size_t run = begin;
  for (size_t i = begin; i < end; ++i) {
    if (!Relevant(batch.op(i), batch.flags(i), batch.first_arg(i))) continue;
    downstream_->EmitBatch(batch, run, i + 1);
    run = i + 1;
    Note(batch.Get(i, &args_), batch.connection_id(i));
  }
  if (run < end) downstream_->EmitBatch(batch, run, end);
}

}  // namespace kvf::resp
