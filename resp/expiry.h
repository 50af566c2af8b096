// Keeps a key's expiry with the writes that keep it.
//
// A write that modifies a key in place (INCR, shipped as SET … KEEPTTL;
// APPEND; HSET; LPUSH; …) keeps the key's time to live on the source. On a
// replica that applies it after that time has passed (a replay lag longer
// than the time the key had left, or a capture decoded later), the key has
// already expired there, and the write creates it again with no expiry: a
// key the source no longer holds, kept forever (the fixed-window rate
// limiter, INCR plus EXPIRE NX, would leave one per window). This stage,
// after the ambiguity tracker (so it sees records in the order the replica
// applies them), remembers the absolute expiry that records set (SET … PXAT,
// PEXPIREAT, as the converter writes every relative or absolute expiry), and
// after a write that keeps an expiry of a key whose expiry it knows and that
// had not passed when the write ran, emits `PEXPIREAT key at`: a no-op on a
// replica in time, the key's removal on one that is late.
//
// It forgets what it cannot be sure of, so that it never gives a key an
// expiry the source's key does not have: a key any other record names
// (DEL, RENAME, a removal that may empty it), a key read back, a key named
// by a record whose db is a guess (in every db),
// everything on a database-wide record, on a record after a gap (the lost
// bytes may have changed any key) and on any script (it may write keys it
// does not declare).
// Keys whose expiry was set before the capture started are not known: their
// writes are shipped as before. At most max_keys keys are remembered
// (expiries that passed are dropped first; then new keys are not taken).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "resp/command_table.h"
#include "resp/sink.h"

namespace kvf::resp {

struct ExpiryOptions {
  size_t max_keys = 1u << 20;
  // Capture times were shifted (decode --rebase-time) but the absolute
  // expiries clients gave were not: whether one passed before a write
  // cannot be told, so no expiry counts as passed, and a write that may
  // come after its key's expiry is read back (and the expiry restored).
  bool shifted_clock = false;
  // How far behind the source a replica may apply records. A PERSIST, or an
  // expiry moved later, of a key whose expiry was due within this of the
  // write is read back: a replica that applies it after the old expiry
  // passed no longer holds the key. (decode --rebase-time makes the time
  // between a record and now count too: apply_at_ms.)
  int64_t lag_budget_ms = 60'000;
  // When the records will be applied, if known (decode: now, on the
  // capture's clock): a record is then at least that far behind.
  int64_t apply_at_ms = 0;
  // How much later than it reached the server a request may have been
  // captured: a mirror delaying the client's direction (decode and capture:
  // their --reorder-window-ms hold, widened as the ambiguity window is).
  int64_t request_slack_ms = 0;
};

struct ExpiryStats {
  uint64_t restored = 0;     // PEXPIREAT records emitted after a write that keeps the expiry
  uint64_t doubted = 0;      // writes flagged for read-back: their key's expiry is not sure
  uint64_t doubted_all = 0;  // events that put every expiry known in doubt (scripts without keys, gaps…)
  uint64_t untracked = 0;    // expiries not remembered: max_keys reached
  // Of the writes doubted, those whose key's expiry may be one turned away
  // (untracked): the write cannot be followed by it.
  uint64_t doubted_untracked = 0;
};

class ExpiryKeeper : public RecordSink {
 public:
  explicit ExpiryKeeper(RecordSink* downstream, ExpiryOptions options = {});

  void Emit(const RecordView& record, uint64_t connection_id) override;
  void EmitBatch(const RecordBatch& batch, size_t begin, size_t end) override;

  const ExpiryStats& stats() const { return stats_; }
  size_t tracked_keys() const { return expiry_ms_.size(); }

 private:
  // A key's expiry as the records set it: somewhere in [lo, hi] (a relative
  // expiry is counted from the reply's capture; the server counted from
  // when it ran the command). Not sure: something since may have changed
  // it (a removal that may have emptied the key, a script, a gap…).
  struct Known {
    int64_t lo, hi;
    bool sure;
    // Since then an ordered removal that may have emptied the key (LTRIM…,
    // undoubted): the key has this expiry, or is gone and any later write
    // made it anew without one. Not restored; a write that keeps it is read
    // back only if the expiry may pass within what a replica may lag.
    bool maybe_gone = false;
    // When it was set (the keeper's event count): an event that put every
    // expiry in doubt after it (DoubtAll) makes it unsure without a pass
    // over the table (Sure).
    uint64_t since = 0;
  };
  // (db, key) -> Known: open addressing over a power-of-two array at most
  // half full. A key is held as its 128-bit hash (XXH3), not its bytes: a
  // collision (the odds of a UUID's) is all that could give one key
  // another's expiry; the db is beside it, so SWAPDB only relabels.
  class Table {
   public:
    Table() : slots_(kInitial) {}
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Known* Find(uint16_t db, std::string_view key);
    // Inserts or updates; with `only_update`, a key not held is left out.
    // Returns the entry, or null when left out.
    Known* Put(uint16_t db, std::string_view key, const Known& k, bool only_update = false);
    void Erase(uint16_t db, std::string_view key);
    // Calls fn(db, known) for every entry; fn may change both (not the key).
    template <typename Fn>
    void ForEach(Fn fn) {
      for (Slot& s : slots_) {
        if (s.used) fn(s.db, s.known);
      }
    }
    // Removes the entries pred(db, known) picks; the table shrinks to fit
    // what is left (a FLUSHDB between test cases then costs what the table
    // holds, not the most it ever held).
    template <typename Pred>
    void EraseIf(Pred pred) {
      std::vector<Slot> keep;
      for (const Slot& s : slots_) {
        if (s.used && !pred(s.db, s.known)) keep.push_back(s);
      }
      size_t capacity = kInitial;
      while (capacity < 2 * keep.size()) capacity *= 2;  // (as Put grows it)
      Rebuild(std::min(capacity, slots_.size()), keep);
    }
    void Clear() { Rebuild(kInitial, {}); }
    // Entries in `db`.
    size_t CountIn(uint16_t db) const { return db < per_db_.size() ? per_db_[db] : 0; }
    // Entries of `a` and `b` trade dbs (SWAPDB), and become unsure.
    void Swap(uint16_t a, uint16_t b);

   private:
    static constexpr size_t kInitial = 1024;
    struct Slot {
      uint64_t h1 = 0, h2 = 0;
      Known known{};
      uint16_t db = 0;
      bool used = false;
    };

   public:
    struct Hashed {
      uint64_t h1 = 0, h2 = 0;
    };
    static Hashed HashOf(std::string_view key);
    // Fetches the slot of `h` into the cache ahead of its lookup.
    void Prefetch(const Hashed& h) const { __builtin_prefetch(&slots_[h.h1 & (slots_.size() - 1)]); }
    // Until ClearHint, lookups of exactly `key` (the same bytes, by address)
    // use `h` instead of hashing it again.
    void SetHint(std::string_view key, const Hashed& h) {
      hint_key_ = key;
      hint_ = h;
      has_hint_ = true;
    }
    void ClearHint() { has_hint_ = false; }

   private:
    Hashed Hash(std::string_view key) const {
      return has_hint_ && key.data() == hint_key_.data() && key.size() == hint_key_.size() ? hint_
                                                                                           : HashOf(key);
    }
    Slot* Probe(uint16_t db, uint64_t h1, uint64_t h2, bool* found);
    void Rebuild(size_t capacity, const std::vector<Slot>& entries);
    void Count(uint16_t db, int delta);
    std::vector<Slot> slots_;
    size_t size_ = 0;
    std::vector<size_t> per_db_;  // entries by db
    std::string_view hint_key_;
    Hashed hint_;
    bool has_hint_ = false;
  };
  struct Verdict {
    int64_t restore_at_ms = -1;  // the expiry to restore after the record, or -1
    bool doubt = false;          // read the record's key back
  };
  // Updates what is known from `r` and says what to add.
  Verdict Note(const RecordView& r);
  void EmitRestore(const RecordView& r, uint64_t connection_id, int64_t at_ms, bool doubt);
  // `r` as the verdict changes it: flagged, followed by its restored
  // expiry, or (SET … KEEPTTL) with the expiry in it.
  void EmitChanged(const RecordView& r, uint64_t connection_id, const Verdict& v);
  void Remember(const RecordView& r, int64_t at_ms);
  void Erase(uint16_t db, std::string_view key);
  void Doubt(uint16_t db, std::string_view key);
  void EraseOrDoubt(const RecordView& r, std::string_view key);
  // `key` as named by `r`: in its db, or (a guessed db) in every db.
  void DoubtKey(const RecordView& r, std::string_view key);
  void DoubtKeysOf(const RecordView& r);
  // RENAME, RENAMENX, COPY, MOVE: the key they make carries the source
  // key's expiry, in doubt (the record is read back).
  void CarryExpiry(const RecordView& r);
  // Every expiry known may have changed (a gap, a script that declares no
  // keys): in O(1), by the event count (Known::since).
  void DoubtAll();
  bool Sure(const Known& k) const { return k.sure && k.since > doubted_all_at_; }
  void NoteDatabaseWide(const RecordView& r);

  RecordSink* downstream_;
  ExpiryOptions opts_;
  ExpiryStats stats_;
  Table expiry_ms_;
  std::vector<uint16_t> dbs_;    // the dbs of the keys remembered (or once remembered)
  uint64_t events_ = 0;          // expiries set, and DoubtAll events
  uint64_t doubted_all_at_ = 0;  // the event count at the last DoubtAll
  // Full (max_keys), a new key sweeps out the expiries that passed: a pass
  // over the whole table, so not again until as many new keys were turned
  // away as the last sweep freed room for, or 1/16 of max_keys (a session
  // cache past the cap with hour-long expiries swept, freeing nothing, for
  // every new key: a review's decode took hours).
  size_t refused_since_sweep_ = 0;
  size_t last_sweep_freed_ = SIZE_MAX;
  // The keys whose expiry the full table turned away, as a Bloom filter of
  // (db, key) (1 MiB, two probes; empty until the first): a later write that
  // keeps the expiry of one of them, or moves it, is read back instead of
  // shipped as if the key had none (a review: past the cap, INCRs of keys
  // whose expiry was turned away made them anew without one on a replica
  // that applied them after the expiry: 21,424 keys that never went,
  // unflagged). Emptied once the latest expiry it holds has passed: a write
  // after that makes a key without one on the source too.
  void Refuse(uint16_t db, std::string_view key, int64_t until_ms);
  bool MaybeRefused(uint16_t db, std::string_view key, int64_t from_ms);
  static std::array<uint64_t, 2> RefusedBits(uint16_t db, std::string_view key);  // the filter's two
  std::vector<uint64_t> refused_bits_;
  int64_t refused_until_ms_ = 0;
  // SWAPDBs since the filter began move its keys to other dbs, which its
  // bits cannot follow: a key of one of these dbs is looked up under each
  // (every db, after a SWAPDB of dbs not told). A review's INCR, after a swap,
  // of a key whose expiry the full table had turned away went unflagged.
  std::vector<uint16_t> refused_swapped_;
  bool refused_any_db_ = false;
  bool NothingKnown() const { return expiry_ms_.empty() && refused_bits_.empty(); }
  // How long before a write's request an expiry must have passed for the
  // write to have come after it: the clocks' slack and a mirror's delay.
  int64_t PassedSlackMs() const;
  std::vector<std::string_view> args_;
  std::vector<KeyRef> keys_;
};

}  // namespace kvf::resp
