// Flags an in-place edit of a key whose prior value the replica may not hold.
//
// Pushes, pops (shipped as LTRIM), LSET, LREM, LTRIM, BITFIELD, a rotation,
// consumer-group commands, PFCOUNT's…: ordered records that are exact only
// on a replica holding the key's value as it was before them. A key that
// existed before the capture started (every key of a live source) is not
// known to hold that value there: DESIGN.md decision 2 ships such an edit
// ("LPUSH on unknown lists") ordered *and* marked for read-back.
//
// This stage, after the ambiguity tracker and the expiry keeper (so that it
// sees records in the order the replica applies them, with their doubts),
// keeps the set of keys whose value the records establish: a key a record
// asks to read back (the read-back ships its whole value), and a list a push
// created (kCreatesKey: the reply said it was empty, and a DEL before the
// push makes the replica's list the same whatever it held). The first
// in-place edit of any other key is flagged kNeedsReadback | kUnknownPrior,
// and the key is known from then on: one read-back per key, not one per
// operation. Records that change a known key as they are shipped (edits,
// idempotent writes, expiries, removals) leave it known: the replica
// changes it alike.
//
// It forgets what it cannot be sure of: everything after a gap (the lost
// bytes may have changed any key), after a database-wide write whose db is a
// guess, and after a script that may swap dbs unseen (an EVAL naming SWAPDB,
// any FCALL); a key named by a record whose db is a guess (in every db).
// SWAPDB relabels its two dbs. At most max_keys keys are known; when that
// many are, it forgets them all and starts over (counted as untracked): a
// key still edited is read back once more, not each time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "resp/sink.h"

namespace kvf::resp {

struct PriorOptions {
  size_t max_keys = 1u << 20;
};

struct PriorStats {
  uint64_t flagged = 0;    // edits flagged kUnknownPrior
  uint64_t forgotten = 0;  // events that made every key unknown (gaps, scripts…)
  uint64_t untracked = 0;  // times max_keys were known and all were forgotten
};

class PriorKeeper : public RecordSink {
 public:
  explicit PriorKeeper(RecordSink* downstream, PriorOptions options = {});

  void Emit(const RecordView& record, uint64_t connection_id) override;
  void EmitBatch(const RecordBatch& batch, size_t begin, size_t end) override;

  const PriorStats& stats() const { return stats_; }
  size_t known_keys() const { return size_; }

 private:
  // (db, key) held as the db's current label and the key's 128-bit hash
  // (XXH3); a collision (the odds of a UUID's) is all that could make one
  // key pass for another. Open addressing, linear probing, at most half
  // full; a slot is in use only when its epoch is the table's, so that
  // forgetting everything is one increment.
  struct Slot {
    uint64_t h1 = 0, h2 = 0;
    uint32_t epoch = 0;
    uint16_t label = 0;
  };
  struct Hashed {
    uint64_t h1, h2;
  };
  static Hashed HashOf(std::string_view key);
  // What `r` asks of the table; true if `r` must be flagged.
  bool Note(const RecordView& r);
  uint16_t Label(uint16_t db);
  bool Contains(uint16_t label, const Hashed& h) const;
  void Insert(uint16_t label, const Hashed& h);
  void Erase(uint16_t label, const Hashed& h);
  void ForgetAll();
  void Grow();

  RecordSink* downstream_;
  PriorOptions opts_;
  PriorStats stats_;
  std::vector<Slot> slots_;
  size_t size_ = 0;
  uint32_t epoch_ = 1;
  // db -> label of its keys in the table (SWAPDB exchanges two).
  std::vector<uint16_t> labels_;
  // The labels of keys held (since the last ForgetAll): a key forgotten in
  // every db is looked for under these only, however many dbs there are.
  std::vector<uint16_t> used_labels_;
  std::vector<bool> label_used_;
  std::vector<std::string_view> args_;  // EmitBatch's views
};

}  // namespace kvf::resp
