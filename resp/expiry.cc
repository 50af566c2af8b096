// Expiries kept with the writes that keep them: see expiry.h.
#include "resp/expiry.h"

#include <algorithm>
#include <span>
#include <array>
#include <charconv>

#include "resp/ambiguity.h"
#include "resp/convert.h"

// XXH3 inlined: keys are short and hashing them is on the per-record path.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvf::resp {

namespace {

// Commands that change a key in place and can neither remove it nor give it
// a new expiry: the key keeps its time to live (or, on a replica where it
// already expired, is created again without one). Names as records carry
// them: the converter's (SET … KEEPTTL for the INCR family, HSET, ZADD) and
// the client's own for the commands shipped as sent.
constexpr std::array<std::string_view, 23> kKeepsExpiry = {
    "APPEND",  "SETRANGE", "SETBIT", "BITFIELD", "LPUSH",  "RPUSH",      "LPUSHX", "RPUSHX",
    "LINSERT", "LSET",     "SADD",   "HSET",     "HMSET",  "HSETNX",     "ZADD",   "GEOADD",
    "PFADD",   "XADD",     "XDEL",   "XACK",     "XGROUP", "XREADGROUP", "XCLAIM",
};

// RESTORE key ms payload REPLACE ABSTTL, as the converter writes a RESTORE:
// the key made anew, with that expiry (0: none).
bool IsRestoreAbs(std::string_view command, size_t argc) {
  return argc == 6 && EqualsIgnoreCase(command, "RESTORE");
}

// Ordered removals of members, one key each (the list pops are shipped as
// LTRIM): they keep the key's expiry, unless they empty the key, which then
// goes with its expiry. Applied to a replica that holds the same value they
// empty it there too, and a key whose value the capture did not establish
// is read back after them (PriorKeeper flags ordered records only: an
// idempotent SREM, ZREM or HDEL of a key from before the capture may leave
// the replica's differing value, so those still put the expiry in doubt; a
// review kept such a set forever on the replica).
constexpr std::array<std::string_view, 4> kMayEmpty = {"LREM", "LTRIM", "ZREMRANGEBYSCORE",
                                                       "ZREMRANGEBYRANK"};

// `command` is one of `names` (any case).
bool OneOf(std::string_view command, std::span<const std::string_view> names) {
  return std::any_of(names.begin(), names.end(),
                     [&](std::string_view c) { return EqualsIgnoreCase(command, c); });
}

bool ParseMs(std::string_view s, int64_t* out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// SET key value PXAT ms, as the converter writes a SET with an expiry.
bool IsSetPxat(std::string_view command, size_t argc) {
  return argc == 5 && EqualsIgnoreCase(command, "SET");
}

// True when a record of this shape may set an expiry (what the fast path,
// with nothing remembered, must not skip).
bool MaySetExpiry(std::string_view command, size_t argc) {
  return IsSetPxat(command, argc) || IsRestoreAbs(command, argc) ||
         (argc == 3 && EqualsIgnoreCase(command, "PEXPIREAT"));
}

}  // namespace

ExpiryKeeper::ExpiryKeeper(RecordSink* downstream, ExpiryOptions options)
    : downstream_(downstream), opts_(options) {}

ExpiryKeeper::Table::Hashed ExpiryKeeper::Table::HashOf(std::string_view key) {
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  return Hashed{h.low64, h.high64};
}

ExpiryKeeper::Table::Slot* ExpiryKeeper::Table::Probe(uint16_t db, uint64_t h1, uint64_t h2, bool* found) {
  const size_t mask = slots_.size() - 1;
  for (size_t i = h1 & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (!s.used) {
      *found = false;
      return &s;
    }
    if (s.h1 == h1 && s.h2 == h2 && s.db == db) {
      *found = true;
      return &s;
    }
  }
}

ExpiryKeeper::Known* ExpiryKeeper::Table::Find(uint16_t db, std::string_view key) {
  if (size_ == 0) return nullptr;
  const Hashed h = Hash(key);
  bool found;
  Slot* s = Probe(db, h.h1, h.h2, &found);
  return found ? &s->known : nullptr;
}

ExpiryKeeper::Known* ExpiryKeeper::Table::Put(uint16_t db, std::string_view key, const Known& k,
                                              bool only_update) {
  const Hashed h = Hash(key);
  bool found;
  Slot* s = Probe(db, h.h1, h.h2, &found);
  if (found) {
    s->known = k;
    return &s->known;
  }
  if (only_update) return nullptr;
  if (2 * (size_ + 1) > slots_.size()) {
    std::vector<Slot> all;
    all.reserve(size_);
    for (const Slot& x : slots_) {
      if (x.used) all.push_back(x);
    }
    Rebuild(slots_.size() * 2, all);
    s = Probe(db, h.h1, h.h2, &found);
  }
  *s = Slot{h.h1, h.h2, k, db, true};
  ++size_;
  Count(db, +1);
  return &s->known;
}

void ExpiryKeeper::Table::Count(uint16_t db, int delta) {
  if (db >= per_db_.size()) per_db_.resize(db + 1u, 0);
  per_db_[db] += static_cast<size_t>(delta);  // (wraps to subtract)
}

void ExpiryKeeper::Table::Swap(uint16_t a, uint16_t b) {
  for (Slot& s : slots_) {
    if (!s.used || (s.db != a && s.db != b)) continue;
    s.db = s.db == a ? b : a;
    s.known.sure = false;
  }
  const size_t in_a = CountIn(a), in_b = CountIn(b);
  Count(a, static_cast<int>(in_b) - static_cast<int>(in_a));
  Count(b, static_cast<int>(in_a) - static_cast<int>(in_b));
}

void ExpiryKeeper::Table::Erase(uint16_t db, std::string_view key) {
  if (size_ == 0) return;
  const Hashed h = Hash(key);
  bool found;
  Slot* s = Probe(db, h.h1, h.h2, &found);
  if (!found) return;
  const size_t mask = slots_.size() - 1;
  size_t hole = static_cast<size_t>(s - slots_.data());
  Count(s->db, -1);
  slots_[hole] = Slot{};
  --size_;
  // Backward shift: later members of the probe run move into the hole, so
  // that lookups never stop early.
  for (size_t i = (hole + 1) & mask; slots_[i].used; i = (i + 1) & mask) {
    const size_t home = slots_[i].h1 & mask;
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      slots_[hole] = slots_[i];
      slots_[i] = Slot{};
      hole = i;
    }
  }
}

void ExpiryKeeper::Table::Rebuild(size_t capacity, const std::vector<Slot>& entries) {
  slots_.assign(capacity, Slot{});
  size_ = 0;
  per_db_.clear();
  const size_t mask = capacity - 1;
  for (const Slot& e : entries) {
    size_t i = e.h1 & mask;
    while (slots_[i].used) i = (i + 1) & mask;
    slots_[i] = e;
    ++size_;
    Count(e.db, +1);
  }
}

void ExpiryKeeper::Erase(uint16_t db, std::string_view key) {
  expiry_ms_.Erase(db, key);
}

void ExpiryKeeper::EraseOrDoubt(const RecordView& r, std::string_view key) {
  // A record in doubt itself (its order against another connection's
  // write) may not have come last: what it removed may still be there.
  if ((r.flags & (kNeedsReadback | kAmbiguousOrder)) != 0) {
    Doubt(r.db, key);
  } else {
    Erase(r.db, key);
  }
}

void ExpiryKeeper::Doubt(uint16_t db, std::string_view key) {
  if (Known* k = expiry_ms_.Find(db, key)) k->sure = false;
}

void ExpiryKeeper::DoubtKey(const RecordView& r, std::string_view key) {
  if ((r.flags & kUnknownDb) == 0) {
    Doubt(r.db, key);
    return;
  }
  // The db is a guess: the key may be any db's.
  for (uint16_t db : dbs_) Doubt(db, key);
}

void ExpiryKeeper::DoubtAll() {
  if (expiry_ms_.empty()) return;
  doubted_all_at_ = ++events_;
  ++stats_.doubted_all;
}

void ExpiryKeeper::DoubtKeysOf(const RecordView& r) {
  DoubtKey(r, r.key);
  if (r.args.empty()) {
    // A read-back is of its key alone; a keyless record whose keys are not
    // named (a script's) may have touched any.
    if (r.op != RecordOp::kReadback || !RecordHasKey(r)) DoubtAll();
    return;
  }
  const CommandSpec* spec = LookupCommand(r.args);
  keys_.clear();
  DbSet d;
  const bool script = spec != nullptr && IsScriptCall(*spec);
  const bool database_wide = script && DbsChangedBy(r, &d);
  if (spec == nullptr || !FindKeys(*spec, r.args, &keys_) || (script && keys_.empty()) || database_wide) {
    // An unknown command, a script that declares no keys, or one that may
    // flush or swap dbs (whose expiries the keeper then cannot follow): any key.
    DoubtAll();
    if (d.swap && !refused_bits_.empty()) refused_any_db_ = true;
    return;
  }
  for (const KeyRef& k : keys_) DoubtKey(r, r.args[k.arg]);
}

void ExpiryKeeper::CarryExpiry(const RecordView& r) {
  // A review: SET a 1 PX 1500, RENAME a b, INCR b, replayed late: the
  // RENAME found a gone, and the INCR's SET b 2 KEEPTTL made b anew for
  // good, unflagged, though b had expired on the source.
  if ((r.flags & kUnknownDb) != 0 || r.args.size() < 3) return;
  const std::string_view command = r.args[0];
  const bool move = EqualsIgnoreCase(command, "MOVE");
  if (!move && !EqualsIgnoreCase(command, "RENAME") && !EqualsIgnoreCase(command, "RENAMENX") &&
      !EqualsIgnoreCase(command, "COPY"))
    return;
  const Known* from = expiry_ms_.Find(r.db, r.args[1]);
  if (from == nullptr) return;
  uint16_t db = r.db;
  std::string_view key = r.args[2];
  if (move) {
    key = r.args[1];
    if (!ParseDb(r.args[2], &db)) return;
  } else if (EqualsIgnoreCase(command, "COPY")) {
    for (size_t i = 3; i + 1 < r.args.size(); ++i) {
      if (EqualsIgnoreCase(r.args[i], "DB") && !ParseDb(r.args[i + 1], &db)) return;
    }
  }
  Known carried{from->lo, from->hi, false, from->maybe_gone};
  carried.since = ++events_;
  if (expiry_ms_.Put(db, key, carried, /*only_update=*/expiry_ms_.size() >= opts_.max_keys) == nullptr) {
    ++stats_.untracked;
    Refuse(db, key, carried.hi);
    return;
  }
  if (std::find(dbs_.begin(), dbs_.end(), db) == dbs_.end()) dbs_.push_back(db);
}

void ExpiryKeeper::NoteDatabaseWide(const RecordView& r) {
  DbSet d;
  if (NothingKnown() || !DbsChangedBy(r, &d) || d.functions) return;
  if (!refused_bits_.empty() && d.swap) {
    if (d.all) refused_any_db_ = true;
    for (size_t i = 0; i < d.n && !d.all; ++i) {
      const auto at = std::lower_bound(refused_swapped_.begin(), refused_swapped_.end(), d.dbs[i]);
      if (at == refused_swapped_.end() || *at != d.dbs[i]) refused_swapped_.insert(at, d.dbs[i]);
    }
  }
  if (expiry_ms_.empty()) return;
  // (A pass over the table only when the dbs it changes hold expiries: a
  // review's 2,000 FLUSHDBs of another db beside 500,000 kept took 28 s.)
  const auto holds = [&](uint16_t db) { return expiry_ms_.CountIn(db) > 0; };
  if (!d.swap && d.all) {
    expiry_ms_.Clear();  // FLUSHALL: every key gone
    dbs_.clear();
  } else if (!d.swap) {
    if (std::any_of(dbs_.begin(), dbs_.end(), [&](uint16_t db) { return d.Touches(db) && holds(db); }))
      expiry_ms_.EraseIf([&](uint16_t db, const Known&) { return d.Touches(db); });  // FLUSHDB
  } else if (d.all) {
    DoubtAll();  // a SWAPDB of dbs not told
  } else {
    // The keys of both dbs change places, expiries with them; in doubt, as
    // the swap may race writes of other connections.
    const uint16_t a = d.dbs[0], b = d.dbs[1];
    if (!holds(a) && !holds(b)) return;
    expiry_ms_.Swap(a, b);
    for (uint16_t db : {a, b}) {
      if (std::find(dbs_.begin(), dbs_.end(), db) == dbs_.end()) dbs_.push_back(db);
    }
    ++stats_.doubted_all;
  }
}

namespace {
// How far apart the capture's clock and the server's may put an expiry and
// a write: a relative expiry is counted from the reply's capture (the server
// counted from when it ran the command, a little earlier), and both are
// whole milliseconds.
constexpr int64_t kClockSlackMs = 2;
}  // namespace

// Whether an expiry passed before a write ran is judged from the write's
// request, which a mirror delaying the client's direction captures late, by
// up to ExpiryOptions::request_slack_ms (a review's INCR, captured 30 ms
// late, was judged to come after its key's expiry when it came before).
int64_t ExpiryKeeper::PassedSlackMs() const {
  return kClockSlackMs + opts_.request_slack_ms;
}

namespace {
// When the write ran, in ms: between its request and its reply.
int64_t RanFromMs(const RecordView& r) {
  const bool known = r.request_ns != 0 && r.request_ns != RecordView::kUnansweredRequest;
  return static_cast<int64_t>((known ? r.request_ns : r.capture_ns) / 1'000'000);
}
int64_t RanByMs(const RecordView& r) {
  return static_cast<int64_t>(r.capture_ns / 1'000'000);
}
}  // namespace

void ExpiryKeeper::Remember(const RecordView& r, int64_t at_ms) {
  const int64_t from_ms = RanFromMs(r);
  if (at_ms + PassedSlackMs() <= from_ms && !opts_.shifted_clock) {
    Erase(r.db, r.key);  // expired at once: the key is gone
    return;
  }
  if ((r.flags & kUnknownDb) != 0) {
    DoubtKey(r, r.key);  // whose key it is, is a guess
    return;
  }
  // A relative expiry was counted from the reply's capture; the server
  // counted from when it ran the command, as early as its request: the
  // expiry lies in [at - span, at].
  // Set by a record in doubt itself (its order against another
  // connection's write, a read-back): in doubt from the start.
  Known known{at_ms - (RanByMs(r) - from_ms), at_ms, (r.flags & (kNeedsReadback | kAmbiguousOrder)) == 0};
  known.since = ++events_;
  if (expiry_ms_.size() >= opts_.max_keys) {
    if (expiry_ms_.Put(r.db, r.key, known, /*only_update=*/true) != nullptr) return;
    // Full, and a new key. Expiries that passed are of no use any more (a
    // write after one ran on a key the source had removed): drop them, then
    // take no new keys (see refused_since_sweep_).
    const size_t spacing = std::max<size_t>(opts_.max_keys / 16, 1);
    if (!opts_.shifted_clock && (last_sweep_freed_ >= spacing || refused_since_sweep_ >= spacing)) {
      const size_t before = expiry_ms_.size();
      expiry_ms_.EraseIf([&](uint16_t, const Known& k) { return k.hi + PassedSlackMs() <= from_ms; });
      last_sweep_freed_ = before - expiry_ms_.size();
      refused_since_sweep_ = 0;
    }
    if (expiry_ms_.size() >= opts_.max_keys) {
      ++refused_since_sweep_;
      ++stats_.untracked;
      Refuse(r.db, r.key, known.hi);
      return;
    }
  }
  expiry_ms_.Put(r.db, r.key, known);
  if (std::find(dbs_.begin(), dbs_.end(), r.db) == dbs_.end()) dbs_.push_back(r.db);
}

namespace {
constexpr uint64_t kRefusedBits = uint64_t{1} << 23;
}  // namespace

std::array<uint64_t, 2> ExpiryKeeper::RefusedBits(uint16_t db, std::string_view key) {
  const Table::Hashed h = Table::HashOf(key);
  const uint64_t d = uint64_t{db} * 0x9E3779B97F4A7C15ull;
  return {(h.h1 ^ d) & (kRefusedBits - 1), (h.h2 + d) & (kRefusedBits - 1)};
}

void ExpiryKeeper::Refuse(uint16_t db, std::string_view key, int64_t until_ms) {
  if (refused_bits_.empty()) {
    refused_bits_.assign(kRefusedBits / 64, 0);
    refused_until_ms_ = until_ms;
  }
  for (const uint64_t bit : RefusedBits(db, key)) refused_bits_[bit / 64] |= uint64_t{1} << (bit % 64);
  refused_until_ms_ = std::max(refused_until_ms_, until_ms);
}

bool ExpiryKeeper::MaybeRefused(uint16_t db, std::string_view key, int64_t from_ms) {
  if (refused_bits_.empty()) return false;
  if (!opts_.shifted_clock && refused_until_ms_ + PassedSlackMs() <= from_ms) {
    refused_bits_.clear();  // every expiry turned away had passed before this write
    refused_swapped_.clear();
    refused_any_db_ = false;
    return false;
  }
  if (refused_any_db_) return true;
  auto in = [&](uint16_t d) {
    for (const uint64_t bit : RefusedBits(d, key)) {
      if ((refused_bits_[bit / 64] & (uint64_t{1} << (bit % 64))) == 0) return false;
    }
    return true;
  };
  if (in(db)) return true;
  if (!std::binary_search(refused_swapped_.begin(), refused_swapped_.end(), db)) return false;
  return std::any_of(refused_swapped_.begin(), refused_swapped_.end(), in);
}

ExpiryKeeper::Verdict ExpiryKeeper::Note(const RecordView& r) {
  if (r.op == RecordOp::kDatabase) {
    NoteDatabaseWide(r);
    return {};
  }
  // The bytes a gap lost may have changed any key's expiry.
  if ((r.flags & kAfterGap) != 0) DoubtAll();
  if (r.args.empty()) {
    DoubtKeysOf(r);
    return {};
  }
  const std::string_view command = r.args[0];
  if (NothingKnown() && !MaySetExpiry(command, r.args.size())) return {};
  if (r.op == RecordOp::kReadback) {
    DoubtKeysOf(r);
    return {};
  }
  const auto known = [&]() -> Known* {
    if ((r.flags & kUnknownDb) != 0) return nullptr;
    return expiry_ms_.Find(r.db, r.key);
  };
  const int64_t from_ms = RanFromMs(r), by_ms = RanByMs(r);
  // Passed before the write ran, whatever happened to it since.
  auto passed = [&](const Known& e) { return !opts_.shifted_clock && e.hi + PassedSlackMs() <= from_ms; };
  int64_t at_ms;
  const bool set_pxat =
      IsSetPxat(command, r.args.size()) && EqualsIgnoreCase(r.args[3], "PXAT") && ParseMs(r.args[4], &at_ms);
  const bool pexpireat =
      !set_pxat && r.args.size() == 3 && EqualsIgnoreCase(command, "PEXPIREAT") && ParseMs(r.args[2], &at_ms);
  if (set_pxat) {
    Remember(r, at_ms);  // a SET makes the key anew: nothing before matters
    return {};
  }
  if (IsRestoreAbs(command, r.args.size()) && EqualsIgnoreCase(r.args[5], "ABSTTL") &&
      ParseMs(r.args[2], &at_ms)) {
    // Made anew too: with that expiry, or none.
    if (at_ms > 0) {
      Remember(r, at_ms);
    } else {
      EraseOrDoubt(r, r.key);
    }
    return {};
  }
  if (pexpireat || (r.args.size() == 2 && EqualsIgnoreCase(command, "PERSIST"))) {
    // An expiry moved later, or removed: on a replica that applies it after
    // the key's old expiry passed, the key is gone already and stays gone,
    // while the source keeps it. Read back unless the old expiry is further
    // off than a replica may lag.
    Verdict v;
    if (const Known* e = known(); e != nullptr && !passed(*e)) {
      const bool later = !pexpireat || at_ms > e->lo;
      const int64_t lag_ms = std::max(opts_.lag_budget_ms, opts_.apply_at_ms - by_ms);
      v.doubt = later && (!Sure(*e) || e->lo <= by_ms + lag_ms);
    } else if (e == nullptr && (r.flags & kUnknownDb) == 0 && MaybeRefused(r.db, r.key, from_ms)) {
      v.doubt = true;
      ++stats_.doubted_untracked;
    }
    if (pexpireat) {
      Remember(r, at_ms);
    } else {
      EraseOrDoubt(r, r.key);
    }
    if (v.doubt) ++stats_.doubted;
    return v;
  }
  const bool keeps =
      OneOf(command, kKeepsExpiry) ||
      (r.args.size() == 4 && EqualsIgnoreCase(command, "SET") && EqualsIgnoreCase(r.args[3], "KEEPTTL"));
  if (!keeps) {
    if (r.args.size() == 3 && EqualsIgnoreCase(command, "SET")) {
      EraseOrDoubt(r, r.key);  // a plain SET: no expiry
    } else if (EqualsIgnoreCase(command, "DEL") || EqualsIgnoreCase(command, "UNLINK")) {
      keys_.clear();
      if (const CommandSpec* spec = LookupCommand(r.args);
          spec != nullptr && FindKeys(*spec, r.args, &keys_)) {
        for (const KeyRef& k : keys_) EraseOrDoubt(r, r.args[k.arg]);
      }
      DoubtKeysOf(r);  // (a guessed db: in every db)
    } else if (r.op == RecordOp::kOrdered && OneOf(command, kMayEmpty) &&
               (r.flags & (kNeedsReadback | kAmbiguousOrder)) == 0 && r.args.size() >= 2 &&
               r.args[1] == r.key) {
      if (Known* e = known()) e->maybe_gone = true;  // (a guessed db: known() is null)
      if ((r.flags & kUnknownDb) != 0) DoubtKeysOf(r);
    } else {
      DoubtKeysOf(r);
      CarryExpiry(r);
    }
    return {};
  }
  Known* e = known();
  if (e == nullptr) {
    // No expiry known, or one the full table turned away.
    if ((r.flags & kUnknownDb) != 0 || !MaybeRefused(r.db, r.key, from_ms)) return {};
    ++stats_.doubted;
    ++stats_.doubted_untracked;
    return Verdict{-1, true};
  }
  if (passed(*e)) {
    // The key had expired on the source before this write (or lost its
    // expiry): the write made or changed a key without one.
    Erase(r.db, r.key);
    return {};
  }
  Verdict v;
  if (!Sure(*e)) {
    // Something since may have changed the expiry: read the key back.
    v.doubt = true;
  } else if (e->maybe_gone) {
    // This expiry, or none (the key emptied, and made anew since): nothing
    // to restore, since the source's key may have none. A replica that
    // applies the write before the expiry may pass keeps what the source
    // keeps; one later may not.
    const int64_t lag_ms = std::max({opts_.lag_budget_ms, opts_.apply_at_ms - by_ms, kClockSlackMs});
    v.doubt = e->lo <= by_ms + lag_ms;
  } else {
    // Restored, and read back if it may have passed while the write was on
    // its way (between its request and its reply, or too close for the
    // clocks to tell).
    v.restore_at_ms = e->hi;
    v.doubt = e->lo <= by_ms + kClockSlackMs;
  }
  if (v.doubt) ++stats_.doubted;
  return v;
}

void ExpiryKeeper::EmitRestore(const RecordView& r, uint64_t connection_id, int64_t at_ms, bool doubt) {
  const std::string at = std::to_string(at_ms);
  const std::string_view args[] = {"PEXPIREAT", r.key, at};
  RecordView v = r;
  v.op = RecordOp::kIdempotent;
  // The write carries its own doubts; this record repeats only the context,
  // unless the expiry itself is in doubt: then the key is read back after
  // this record, not before it.
  v.flags = r.flags & static_cast<uint16_t>(~(kNeedsReadback | kAmbiguousOrder));
  if (doubt) v.flags |= kNeedsReadback;
  v.args = args;
  ++stats_.restored;
  downstream_->Emit(v, connection_id);
}

void ExpiryKeeper::EmitChanged(const RecordView& r, uint64_t connection_id, const Verdict& v) {
  RecordView w = r;
  if (v.doubt) w.flags |= kNeedsReadback;
  if (v.restore_at_ms >= 0 && r.args.size() == 4 && EqualsIgnoreCase(r.args[0], "SET") &&
      EqualsIgnoreCase(r.args[3], "KEEPTTL")) {
    // SET … KEEPTTL (the INCR family): the expiry goes in the same record.
    const std::string at = std::to_string(v.restore_at_ms);
    const std::string_view args[] = {"SET", r.args[1], r.args[2], "PXAT", at};
    w.args = args;
    ++stats_.restored;
    downstream_->Emit(w, connection_id);
    return;
  }
  downstream_->Emit(w, connection_id);
  if (v.restore_at_ms >= 0) EmitRestore(r, connection_id, v.restore_at_ms, v.doubt);
}

void ExpiryKeeper::Emit(const RecordView& record, uint64_t connection_id) {
  const Verdict v = Note(record);
  if (v.restore_at_ms < 0 && !v.doubt) {
    downstream_->Emit(record, connection_id);
    return;
  }
  EmitChanged(record, connection_id, v);
}

void ExpiryKeeper::EmitBatch(const RecordBatch& batch, size_t begin, size_t end) {
  // With nothing remembered, only a record that may set an expiry needs a
  // look: bulk writes pass on whole.
  auto looked_at = [&](size_t i) {
    return !NothingKnown() || MaySetExpiry(batch.first_arg(i), batch.argc(i));
  };
  // The table is larger than the cache: a record's key is hashed, and its
  // slot fetched, kAhead records before it is looked up.
  constexpr size_t kAhead = 8;
  Table::Hashed ahead[kAhead];
  bool hashed[kAhead] = {};
  auto prefetch = [&](size_t j) {
    hashed[j % kAhead] = looked_at(j);
    if (!hashed[j % kAhead]) return;
    ahead[j % kAhead] = Table::HashOf(batch.key(j));
    expiry_ms_.Prefetch(ahead[j % kAhead]);
  };
  for (size_t j = begin; j < std::min(end, begin + kAhead); ++j) prefetch(j);
  size_t run = begin;  // records passed on whole, up to i
  for (size_t i = begin; i < end; ++i) {
    const bool was_hashed = hashed[i % kAhead];
    const Table::Hashed h = ahead[i % kAhead];
    if (i + kAhead < end) prefetch(i + kAhead);
    if (!looked_at(i)) continue;
    const RecordView r = batch.Get(i, &args_);
    if (was_hashed) expiry_ms_.SetHint(r.key, h);
    const Verdict v = Note(r);
    expiry_ms_.ClearHint();
    if (v.restore_at_ms < 0 && !v.doubt) continue;
    if (run < i) downstream_->EmitBatch(batch, run, i);
    run = i + 1;
    EmitChanged(batch.Get(i, &args_), batch.connection_id(i), v);
  }
  if (run < end) downstream_->EmitBatch(batch, run, end);
}

}  // namespace kvf::resp
