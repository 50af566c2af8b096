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

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
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
  // passed no longer holds the key. (decode sets it from the time between
  // the capture and now.)
  int64_t lag_budget_ms = 60'000;
  // When the records will be applied, if known (decode: now, on the
  // capture's clock): a record is then at least that far behind.
  int64_t apply_at_ms = 0;
};

struct ExpiryStats {
  uint64_t restored = 0;     // PEXPIREAT records emitted after a write that keeps the expiry
  uint64_t doubted = 0;      // writes flagged for read-back: their key's expiry is not sure
  uint64_t doubted_all = 0;  // events that put every expiry known in doubt (scripts without keys, gaps…)
  uint64_t untracked = 0;    // expiries not remembered: max_keys reached
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
  };
  struct Verdict {
    int64_t restore_at_ms = -1;  // the expiry to restore after the record, or -1
    bool doubt = false;          // read the record's key back
  };
  // Updates what is known from `r` and says what to add.
  Verdict Note(const RecordView& r);
  void EmitRestore(const RecordView& r, uint64_t connection_id, int64_t at_ms);
  const std::string& MapKey(uint16_t db, std::string_view key);
  void Remember(const RecordView& r, int64_t at_ms);
  void Erase(uint16_t db, std::string_view key);
  void Doubt(uint16_t db, std::string_view key);
  // `key` as named by `r`: in its db, or (a guessed db) in every db.
  void DoubtKey(const RecordView& r, std::string_view key);
  void DoubtKeysOf(const RecordView& r);
  void DoubtWhere(const std::function<bool(uint16_t)>& in_db);
  void NoteDatabaseWide(const RecordView& r);

  RecordSink* downstream_;
  ExpiryOptions opts_;
  ExpiryStats stats_;
  std::unordered_map<std::string, Known> expiry_ms_;  // db (2 bytes) + key -> expiry
  std::vector<uint16_t> dbs_;                         // the dbs of the keys remembered (or once remembered)
  std::string map_key_;
  std::vector<std::string_view> args_;
  std::vector<KeyRef> keys_;
};

}  // namespace kvf::resp
