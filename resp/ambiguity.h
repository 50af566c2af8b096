// Cross-connection ambiguity detection (DESIGN.md decision 3): two writes to
// the same (db, key) from different connections cannot be ordered from the
// wire when they may have run at the same time, so both records are flagged
// kAmbiguousOrder | kNeedsReadback. A write ran somewhere between its
// request's capture and its reply's (RecordView::request_ns, capture_ns);
// two writes are ambiguous when those spans come closer than a window. (A
// reply queued behind a large one leaves tens of milliseconds after its write
// ran: the order of replies is not the order of writes.) Sits between the
// connections of one flow shard and the next stage, holding each record for
// the window plus max_span_ns. A longer span (a bulk load's requests wait in
// the server's socket backlog for tens of milliseconds) is checked in full
// against the keys the table still remembers: keys are kept longer while
// such spans come, and only a span reaching back past a key the table
// dropped is flagged for its length alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/huge_pages.h"
#include "resp/sink.h"

namespace kvf::resp {

struct AmbiguityOptions {
  uint64_t window_ns = 1'000'000;  // spans (request to reply) closer than this are ambiguous
  // Records are held this much longer than the window, so that a later
  // write whose span reaches back this far still finds its partner held
  // and flags it. A longer span is checked against the key table, whose
  // entries are kept longer while such spans come (twice the longest seen
  // plus the window, up to max_retain_ns, within max_keys); one reaching
  // back past an entry the table dropped, or longer than max_retain_ns, is
  // flagged whatever else wrote its key.
  uint64_t max_span_ns = 5'000'000;
  uint64_t max_retain_ns = 10'000'000'000;
  // Until a caller drives the window (Advance), records move it by their own
  // times less this much: one may be taken this much later than records
  // captured after it (the flow table holds a segment up to peer_hold_ns
  // for the other direction's bytes) and must still find its partner held.
  uint64_t late_arrival_ns = 2'000'000;
  // Writes of different fields of one key (HSET k f v, ZADD k score m,
  // SADD k m, one field each) are not ordered against each other, only
  // against the key's other writes and their own field's. They commute
  // unless the key expires between them, which nothing on the wire shows
  // (a review: HSET f1 run before the expiry and answered late, HSET f2
  // after it; the replica kept f1). Off by default: for keys that never
  // carry a TTL (leaderboards, counters), where it spares a read-back of
  // the whole key per concurrent write.
  bool fields_commute = false;
  // A mirror that delays the client's direction captures each request late,
  // and the span that starts there is too short: the window widens by the
  // delay the flow table measured (Advance's request_lag_ns), a quarter
  // more (the measure is a lower bound: the ACK it starts from may follow
  // the bytes by the server's turn), up to this. Decode and capture set it
  // from the flow table's hold (peer_hold_ns); 0: never widened.
  uint64_t max_request_slack_ns = 0;
  size_t max_keys = 1u << 20;         // (db, key) entries remembered (then records leave early)
  size_t max_held = 1u << 18;         // records held back while their window is open
  size_t max_held_bytes = 64u << 20;  // bytes of those records (keys, arguments)
};

// The dbs a database-wide record changes the keys of: FLUSHDB its own,
// FLUSHALL every one, SWAPDB a b those two (every one when malformed). A
// FUNCTION LOAD, DELETE, FLUSH or RESTORE changes no db's keys but the
// server's function libraries, which two of them from different connections
// may leave in either order (a review: two FUNCTION LOAD REPLACEs answered
// the other way round left the replica the older library).
struct DbSet {
  bool all = false;
  bool swap = false;       // SWAPDB
  bool functions = false;  // FUNCTION …: the libraries, no db (all false, n 0)
  uint16_t dbs[2] = {0, 0};
  size_t n = 0;
  bool Touches(uint16_t db) const { return all || (n > 0 && dbs[0] == db) || (n > 1 && dbs[1] == db); }
  bool Meets(const DbSet& o) const {
    if (functions || o.functions) return functions && o.functions;  // FLUSHALL keeps the functions
    if (all || o.all) return true;                                  // every set touches some db
    for (size_t k = 0; k < n; ++k) {
      if (o.Touches(dbs[k])) return true;
    }
    return false;
  }
};
// False for a record that is not database-wide. A script's record (`EVAL
// body …`, as a known EVALSHA is shipped too) is database-wide besides its
// key writes when its body names FLUSHDB (its db, every db if it names
// SELECT), FLUSHALL or SWAPDB (every db): a shipped script names each
// command it calls as a literal (ScriptCallsMigrate), so one that does not
// name them never runs them (a review: a key-less EVAL that ran FLUSHDB
// was not ordered against another connection's SET, and the replica kept
// the key). Ordering every key-less script so made harmless traffic 7×
// slower to decode. An FCALL's record is so when its connection learned
// that the function's library names them (RecordView::fcall_db_names; a
// function whose library the capture never saw is not: see docs/resp.md).
bool DbsChangedBy(const RecordView& r, DbSet* out);
// What a script body may change database-wide (see DbsChangedBy), run from
// `db`.
bool ScriptDbsChanged(std::string_view body, uint16_t db, DbSet* out);
// The database-wide commands Lua code (a script's body, a function
// library) names, as bits; 0: none.
enum : uint8_t { kNamesFlushdb = 1, kNamesFlushall = 2, kNamesSwapdb = 4, kNamesSelect = 8 };
uint8_t DatabaseWideNames(std::string_view code);
// What code naming `names` may change database-wide, run from `db`; false
// when it flushes and swaps nothing.
bool DbsChangedByNames(uint8_t names, uint16_t db, DbSet* out);

struct AmbiguityStats {
  uint64_t records = 0;
  uint64_t ambiguous = 0;     // records flagged
  uint64_t long_spans = 0;    // of which flagged for a span the table could not check
  uint64_t long_checked = 0;  // spans longer than max_span_ns checked against the table
  // Partner record already released unflagged: a cap hit, or a span longer
  // than max_span_ns (the later record, read back after both, suffices).
  uint64_t late_partner = 0;
  // A database-wide write unanswered for longer than max_retain_ns: the
  // records after its request were released without waiting for it.
  uint64_t holds_expired = 0;
  uint64_t keys_evicted = 0;     // entries dropped by the key cap before their window closed
  uint64_t forced_releases = 0;  // records released early by the hold caps
  // What the window was widened by for a mirror's delay (request_lag_ns).
  uint64_t request_slack_ns = 0;
  // Key writes that came after the window had passed them, reaching back
  // past an entry the table dropped: flagged, as a partner may be gone.
  uint64_t late_unchecked = 0;
};

// Where a caller advances the window inside a batch (TakeBatch): before
// record `before`, to `now_ns`, with the mirror's delay of requests measured
// by then (FlowTable::RequestLagNs).
struct WindowAdvance {
  size_t before = 0;
  uint64_t now_ns = 0;
  uint64_t request_lag_ns = 0;
};

// Thread confinement: one thread (the shard's). Records leave in the order
// they arrived, each once its own window has closed. Held records stay in
// record batches (core/record_batch.h): a batch handed over whole (TakeBatch)
// is held where it is, and records passed one by one are copied into an open
// batch, so the steady state allocates nothing per record.
class AmbiguityTracker : public RecordSink {
 public:
  // `downstream` must outlive the tracker.
  AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options = {});

  void Emit(const RecordView& record, uint64_t connection_id) override;
  // Takes every record of `batch` as Emit would, in order, calling
  // Advance(now, lag) before record `before` for each of `advances`
  // (ascending `before`; those equal to the size come after the last record).
  // The records are held without a copy: `batch` is left empty (it receives
  // a spare batch's capacity), its flags set as the records are flagged.
  void TakeBatch(RecordBatch* batch, std::span<const WindowAdvance> advances = {});
  // Releases every record whose window closed before `now_ns` (capture time).
  // Once called, the caller drives the window: records taken no longer
  // advance it by their own times (the caller knows what is still to come:
  // data a flow table holds, a shard's watermark). `request_lag_ns`: how
  // late the mirror may capture requests (FlowTable::RequestLagNs); the
  // window widens for it (max_request_slack_ns), and never narrows again.
  void Advance(uint64_t now_ns, uint64_t request_lag_ns = 0);
  // Releases everything held (end of capture) and forgets every key.
  void Flush();

  const AmbiguityStats& stats() const { return stats_; }
  size_t held() const { return held_count_; }
  size_t held_bytes() const { return held_bytes_; }
  // Keys in the table, including those whose window has closed and that a
  // later insert will clear out (never more than max_keys).
  size_t tracked_keys() const { return used_; }
  // How long a key's latest write is remembered now (see max_span_ns).
  uint64_t retain_ns() const { return retain_ns_; }

 private:
  // Held records, in batches. Record `i` of `batch` has id first_id + i (ids
  // grow by one per record taken); [next, end) are held, [end, size) not yet
  // taken (TakeBatch is still walking the batch).
  struct Chunk {
    RecordBatch batch;
    uint64_t first_id = 0;
    size_t next = 0;
    size_t end = 0;
    bool open = false;  // Emit appends to it
  };
  // 24 bytes, so that a slot fills one cache line. Ids are kept to their
  // low 32 bits: connections compare equal only 2^32 connections apart, and
  // a record id is made whole from the next one (FullId) while its record
  // can still be held (2^32 records back is far outside any window).
  struct Write {
    uint64_t capture_ns;  // of the reply (a read-back's: its time plus max_span_ns)
    uint32_t connection;  // low bits of the connection id
    uint32_t id;          // low bits of the record's id
    uint32_t span_us;     // the request came this long before the reply (at most max_retain_ns)
    uint64_t request_ns() const { return capture_ns - uint64_t{span_us} * 1000; }
  };
  // Open-addressing slot (linear probing); map_key 0 marks an empty slot.
  // The latest write of a key, and the latest by any other connection. A
  // slot whose latest write's window has closed is stale: it behaves as
  // absent and is cleared when the table is rebuilt (no erase per record).
  struct Slot {
    uint64_t map_key;
    Write latest;
    Write other;
    bool has_other;
    // The key has had field writes (FieldOf): its key writes are also kept
    // under KeyWritesOf(map_key), where field writes look for them.
    bool fields;
  };
  static_assert(sizeof(Slot) == 64);

  // Record `i` of `c` joins the held records: the window advances to its
  // time, its key is looked up and flagged, then the caps apply.
  // `map_key` is KeyOf(c.batch, i).
  void Take(Chunk& c, size_t i, uint64_t map_key);
  // The Write record `i` of `b` makes, as Take keeps it (its span cut to
  // max_retain_ns); `span_ns` is its whole span, request to reply.
  Write WriteOf(const RecordBatch& b, size_t i, uint64_t id, uint64_t* span_ns) const;
  // A key write whose span is longer than max_span_ns: keeps keys long
  // enough for the next such spans; true if this one reaches back past what
  // the table remembers (it must be flagged).
  bool LongSpanUnchecked(const Write& w, uint64_t span_ns);
  // Spans [request, reply] closer than the window: the order is unknown.
  bool Overlap(const Write& a, const Write& b) const {
    return a.request_ns() < b.capture_ns + window_ns_ && b.request_ns() < a.capture_ns + window_ns_;
  }
  // A database-wide record (FLUSHDB, FLUSHALL, SWAPDB, a script that may
  // run them): the key writes of
  // other connections in the dbs it touches whose spans come within the
  // window of its span are flagged, held ones now and later ones as they
  // are taken (db_wide_). `mine`: DbsOf the record.
  void TakeDatabaseWide(RecordBatch& b, size_t i, const DbSet& mine, const Write& w);
  // DbsChangedBy of record `i`, read only for what may be database-wide.
  bool DbsOf(const RecordBatch& b, size_t i, DbSet* out);
  // `w` comes within the window of one of the database-wide writes `d`
  // keeps that another connection made.
  bool MeetsDatabaseWide(const Slot& d, const Write& w) const;
  // The db-wide writes that a key write in `db` must be checked against.
  void CheckDatabaseWide(uint16_t db, const Write& w, uint16_t* flags);
  // A write of one field or member that commutes with writes of other
  // fields of its key (HSET k f v, ZADD k score m, SADD k m): its field.
  bool FieldOf(const RecordBatch& b, size_t i, std::string_view* field);
  // The entries of a key with field writes: its key writes alone, and the
  // writes of one field.
  static uint64_t KeyWritesOf(uint64_t map_key);
  static uint64_t FieldKey(uint64_t map_key, std::string_view field);
  Slot* NewSlot(uint64_t map_key, const Write& w);
  Slot* FindOrInsertSlot(uint64_t map_key, const Write& first);
  // The table's part of Take for a key write (KeyOf `k`), and for a write
  // of one field of it (fields_commute).
  void TakeKeyWrite(uint64_t k, const Write& w, uint16_t* flags);
  void TakeFieldWrite(uint64_t k, std::string_view field, const Write& w, uint16_t* flags);
  // Flags `w` (and its partner) against the writes `slot` holds.
  void Check(const Slot& slot, const Write& w, uint16_t* flags);
  // Makes `w` the slot's latest write (or other) if it is.
  static void Update(Slot* slot, const Write& w);
  // MapKey of record `i`, 0 for a database-wide record (no key).
  static uint64_t KeyOf(const RecordBatch& b, size_t i);
  // Flags `w` and the record `flags` belong to (written `me`) if their spans
  // come closer than the window.
  void FlagPartner(const Write& w, const Write& me, uint16_t* flags);
  // Adds kAmbiguousOrder | kNeedsReadback to `flags`, counting the record
  // the first time.
  void MarkAmbiguous(uint16_t* flags) {
    if ((*flags & kAmbiguousOrder) == 0) ++stats_.ambiguous;
    *flags |= kAmbiguousOrder | kNeedsReadback;
  }
  uint64_t FullId(uint32_t low) const {
    return next_id_ - static_cast<uint32_t>(static_cast<uint32_t>(next_id_) - low);
  }
  // A connection's database-wide write whose reply has not come (kHold):
  // records are held from its request (less the hold time) on, so that its
  // reply finds every key write its span meets still held. Not `intact`
  // once a cap released records early, or when records of its span had
  // already left when the hold came.
  struct Hold {
    uint64_t connection;
    uint64_t from_ns;
    bool intact;
  };
  static constexpr size_t kMaxHolds = 1024;
  void TakeHold(const RecordBatch& b, size_t i);
  // The time records are held back to (UINT64_MAX: none); holds older than
  // max_retain_ns expire.
  uint64_t HoldFloor();
  // The database-wide write `i` of `b` was held for from its request on: its
  // whole span is checked against the records held.
  bool HeldFor(const RecordBatch& b, size_t i) const;
  void BreakHolds() {
    for (Hold& h : holds_) h.intact = false;
  }
  // Releases held records from the front while `more(chunk, index)` says
  // so, handing each run of one batch downstream at once (kHold markers
  // stay behind).
  template <typename More>
  void ReleaseWhile(More more);
  // Releases the oldest `n` held records before their window closed (a cap).
  void ReleaseEarly(size_t n);
  Chunk& OpenChunk();
  Chunk& NewChunk();
  uint64_t FirstHeldId() const;
  void ReleaseBefore(uint64_t now_ns);
  // How long a record is held, and a key remembered when no long span came:
  // a later write whose span reaches back up to max_span_ns still finds it.
  uint64_t HoldNs() const { return window_ns_ + opts_.max_span_ns; }
  // Past its retention: the slot may be dropped (Dropped() when it is).
  bool Stale(const Slot& s) const { return s.latest.capture_ns + retain_ns_ < horizon_; }
  void Dropped(const Slot& s) { dropped_upto_ = std::max(dropped_upto_, s.latest.capture_ns); }
  // 64-bit hash of (db, key), never 0. Two keys with the same hash share an
  // entry: that can add a flag or (rarely: ~n²/2⁶⁵ for n live keys) hide one.
  static uint64_t MapKey(uint16_t db, std::string_view key);
  Slot* FindSlot(uint64_t map_key);
  // Adds an entry for `map_key` (absent), keeping the table under max_keys
  // and at most half full; may release records early (MakeRoom).
  Slot* InsertSlot(uint64_t map_key);
  // Rebuilds the table with `size` slots, keeping the entries `keep` accepts.
  template <typename Keep>
  void Rebuild(size_t size, Keep keep);
  // Brings the table below max_keys: drops stale entries, then (counted as
  // evictions) keys whose records already left early, then releases the
  // oldest records early and drops their keys.
  void MakeRoom();

  RecordSink* downstream_;
  AmbiguityOptions opts_;
  AmbiguityStats stats_;
  std::deque<Chunk> chunks_;
  std::vector<RecordBatch> spare_;  // emptied batches, capacity kept
  size_t held_count_ = 0;
  size_t held_bytes_ = 0;
  uint64_t next_id_ = 0;  // id of the next record taken
  uint64_t horizon_ = 0;  // the furthest the window was advanced to
  // The window: opts_.window_ns, widened for a mirror's delay of requests.
  uint64_t window_ns_ = 0;
  bool driven_ = false;  // Advance was called: records do not advance the window
  // Entries live this long after their latest write: the window plus
  // max_span_ns, longer while long spans come (LongSpanUnchecked).
  uint64_t retain_ns_ = 0;
  uint64_t last_long_ns_ = 0;  // capture time of the latest long span
  uint64_t newest_ns_ = 0;     // the latest capture time taken
  // The most an answered record was taken out of capture order (older than
  // newest_ns_ then), up to max_retain_ns.
  uint64_t max_late_ns_ = 0;
  // The latest write time of any entry dropped from the table: a span
  // reaching back to it (less the window) may miss a partner.
  uint64_t dropped_upto_ = 0;
  // The latest database-wide write per db it touched, and the latest
  // FLUSHALL; kept while a key write could still come within the window.
  // (Slots whose map_key is 1 when set, 0 when not.)
  std::vector<Slot> db_wide_;
  Slot all_dbs_{};
  Slot functions_{};  // the latest writes of the function libraries (FUNCTION LOAD…)
  std::vector<Hold> holds_;
  std::vector<std::string_view> db_wide_args_;
  std::vector<std::string_view> field_args_;
  HugePageVector<Slot> slots_;        // size a power of two, at most half full
  HugePageVector<Slot> spare_slots_;  // what Rebuild fills next
  size_t used_ = 0;
};

// After the tracker: a key write flagged for its order near a SWAPDB of
// its db may have run on either side of the swap, so its key may sit in
// either db on the source. The tracker flags the write, which reads the key
// back in its own db; this stage adds a read-back of the key in the other
// db, after whichever of the two records comes later (a read-back placed
// before the SWAPDB would be swapped away by it).
class SwapReadbacks : public RecordSink {
 public:
  SwapReadbacks(RecordSink* downstream, AmbiguityOptions options = {});
  void Emit(const RecordView& record, uint64_t connection_id) override;
  void EmitBatch(const RecordBatch& batch, size_t begin, size_t end) override;
  uint64_t added() const { return added_; }

 private:
  // Both lists are in time order within keep_ns_, but for records taken
  // later than that (`late`: one unanswered at its connection's close
  // carries its request's time, perhaps minutes old), which a newest-first
  // walk steps over instead of stopping at.
  struct Swap {
    uint16_t a, b;
    uint64_t request_ns;  // it ran somewhere in [request_ns, capture_ns]
    uint64_t capture_ns;
    bool late;
  };
  struct Flagged {
    uint16_t db;
    std::string key;
    uint64_t request_ns;
    uint64_t capture_ns;
    std::vector<uint16_t> done;  // dbs it is read back in (its own first)
    bool late;
  };
  // A record whose span is [t_lo, t_hi] may have run in the same window as
  // one whose span is [lo, hi].
  bool Near(uint64_t t_lo, uint64_t t_hi, uint64_t lo, uint64_t hi) const;
  // Its request's time when known (an unanswered write counts from its own).
  static uint64_t RequestNs(const RecordView& r) {
    return r.request_ns == 0 || r.request_ns > r.capture_ns ? r.capture_ns : r.request_ns;
  }
  void Closure(uint16_t db, uint64_t lo, uint64_t hi, std::vector<uint16_t>* dbs) const;
  // True if `r` needs a look (a SWAPDB, or a flagged key write).
  static bool Relevant(RecordOp op, uint16_t flags, std::string_view first_arg);
  void Note(const RecordView& r, uint64_t connection_id);
  void Readback(const RecordView& after, uint16_t db, std::string_view key, uint64_t connection_id);
  void Prune(uint64_t now_ns);
  void Forget();  // the oldest swap
  static constexpr size_t kMaxSwaps = 4096;
  // Flagged keys are kept as long as swaps (a SWAPDB answered long after its
  // request meets those its span covers), the oldest dropped past this.
  static constexpr size_t kMaxFlagged = 65536;

  RecordSink* downstream_;
  uint64_t near_ns_;
  uint64_t keep_ns_;
  uint64_t keep_swaps_ns_;
  std::vector<uint16_t> swapped_dbs_;  // every db a SWAPDB named, sorted
  uint64_t forgotten_upto_ = 0;        // the newest swap forgotten (0: none)
  std::deque<Swap> swaps_;
  std::deque<Flagged> flagged_;
  uint64_t newest_swap_ns_ = 0;     // the latest capture time among swaps_
  uint64_t newest_flagged_ns_ = 0;  // and among flagged_
  std::vector<std::string_view> args_;
  std::vector<uint16_t> dbs_;
  uint64_t added_ = 0;
};

}  // namespace kvf::resp
