#include "resp/prior.h"

#include <utility>

#include "resp/command_table.h"
#include "resp/convert.h"

// XXH3 inlined: keys are short and hashing them is on the per-record path.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvf::resp {
namespace {

constexpr size_t kInitialSlots = 1024;

// Flags that make a record's key known: the read-back ships its value, or
// the reply proved what it holds.
constexpr uint16_t kEstablishes = kNeedsReadback | kCreatesKey;

// A script that may exchange dbs where the keeper cannot see it: an EVAL
// whose body names SWAPDB, or a function (FCALL: its body is elsewhere).
bool MaySwapDbs(const RecordView& r) {
  if (r.args.empty()) return false;
  if (EqualsIgnoreCase(r.args[0], "FCALL")) return true;
  return r.args.size() >= 2 && EqualsIgnoreCase(r.args[0], "EVAL") && ContainsIgnoreCase(r.args[1], "swapdb");
}

}  // namespace

PriorKeeper::PriorKeeper(RecordSink* downstream, PriorOptions options)
    : downstream_(downstream), opts_(options), slots_(kInitialSlots) {}

PriorKeeper::Hashed PriorKeeper::HashOf(std::string_view key) {
  const XXH128_hash_t h = XXH3_128bits(key.data(), key.size());
  return {h.low64, h.high64};
}

uint16_t PriorKeeper::Label(uint16_t db) {
  if (db >= labels_.size()) {
    const size_t from = labels_.size();
    labels_.resize(size_t{db} + 1);
    for (size_t i = from; i < labels_.size(); ++i) labels_[i] = static_cast<uint16_t>(i);
  }
  return labels_[db];
}

bool PriorKeeper::Contains(uint16_t label, const Hashed& h) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = h.h1 & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.epoch != epoch_) return false;
    if (s.h1 == h.h1 && s.h2 == h.h2 && s.label == label) return true;
  }
}

void PriorKeeper::Insert(uint16_t label, const Hashed& h) {
  if (Contains(label, h)) return;
  if (size_ >= opts_.max_keys) {
    // Full (a long capture of many keys, most of them long gone): start
    // over. A key still edited is read back once more, not at every edit.
    ++stats_.untracked;
    ForgetAll();
  }
  if (2 * (size_ + 1) > slots_.size()) Grow();
  if (label >= label_used_.size()) label_used_.resize(size_t{label} + 1, false);
  if (!label_used_[label]) {
    label_used_[label] = true;
    used_labels_.push_back(label);
  }
  const size_t mask = slots_.size() - 1;
  size_t i = h.h1 & mask;
  while (slots_[i].epoch == epoch_) i = (i + 1) & mask;
  slots_[i] = Slot{h.h1, h.h2, epoch_, label};
  ++size_;
}

void PriorKeeper::Erase(uint16_t label, const Hashed& h) {
  const size_t mask = slots_.size() - 1;
  size_t hole = h.h1 & mask;
  for (;; hole = (hole + 1) & mask) {
    const Slot& s = slots_[hole];
    if (s.epoch != epoch_) return;
    if (s.h1 == h.h1 && s.h2 == h.h2 && s.label == label) break;
  }
  slots_[hole].epoch = 0;
  --size_;
  // Backward shift: later members of the probe run move into the hole, so
  // that lookups never stop early.
  for (size_t i = (hole + 1) & mask; slots_[i].epoch == epoch_; i = (i + 1) & mask) {
    const size_t home = slots_[i].h1 & mask;
    // Movable when its home is not in (hole, i], cyclically.
    const bool movable = hole <= i ? (home <= hole || home > i) : (home <= hole && home > i);
    if (!movable) continue;
    slots_[hole] = slots_[i];
    slots_[i].epoch = 0;
    hole = i;
  }
}

void PriorKeeper::ForgetAll() {
  ++stats_.forgotten;
  size_ = 0;
  for (uint16_t label : used_labels_) label_used_[label] = false;
  used_labels_.clear();
  if (++epoch_ == 0) {  // wrapped: no slot may look current
    for (Slot& s : slots_) s.epoch = 0;
    epoch_ = 1;
  }
}

void PriorKeeper::Grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.epoch != epoch_) continue;
    size_t i = s.h1 & mask;
    while (slots_[i].epoch == epoch_) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

bool PriorKeeper::Note(const RecordView& r) {
  // The bytes a gap lost may have changed any key; a script may have
  // exchanged dbs unseen (a review: SWAPDB inside an EVAL).
  if ((r.flags & kAfterGap) != 0 || MaySwapDbs(r)) ForgetAll();
  if (r.op == RecordOp::kDatabase) {
    // Applied in a guessed db, a FLUSHDB empties another db on the replica
    // than on the source (a review).
    if ((r.flags & kUnknownDb) != 0) {
      ForgetAll();
      return false;
    }
    // FLUSHDB and FLUSHALL empty a key on both sides alike: what was known
    // stays known. SWAPDB exchanges what two dbs hold.
    uint16_t a, b;
    if (r.args.size() == 3 && EqualsIgnoreCase(r.args[0], "SWAPDB") && ParseDb(r.args[1], &a) &&
        ParseDb(r.args[2], &b)) {
      const uint16_t la = Label(a), lb = Label(b);
      labels_[a] = lb;
      labels_[b] = la;
    }
    return false;
  }
  if (!RecordHasKey(r)) return false;
  const Hashed h = HashOf(r.key);
  if ((r.flags & kUnknownDb) != 0) {
    // Applied in a guessed db: the key in its true db misses this change.
    for (uint16_t label : used_labels_) Erase(label, h);
    return false;
  }
  const uint16_t label = Label(r.db);
  if (r.op == RecordOp::kReadback || (r.flags & kEstablishes) != 0) {
    Insert(label, h);
    return false;
  }
  if (r.op != RecordOp::kOrdered || Contains(label, h)) return false;
  Insert(label, h);  // read back: known from here
  ++stats_.flagged;
  return true;
}

void PriorKeeper::Emit(const RecordView& record, uint64_t connection_id) {
  if (!Note(record)) return downstream_->Emit(record, connection_id);
  RecordView flagged = record;
  flagged.flags |= kNeedsReadback | kUnknownPrior;
  downstream_->Emit(flagged, connection_id);
}

void PriorKeeper::EmitBatch(const RecordBatch& batch, size_t begin, size_t end) {
  // Bulk idempotent writes without flags (SET, HSET…) neither establish a
  // key nor need one: they pass on whole, unhashed.
  auto looked_at = [&](size_t i) {
    const RecordOp op = batch.op(i);
    return op != RecordOp::kIdempotent || (batch.flags(i) & (kEstablishes | kAfterGap | kUnknownDb)) != 0;
  };
  size_t run = begin;  // records passed on whole, up to i
  for (size_t i = begin; i < end; ++i) {
    if (!looked_at(i)) continue;
    const RecordView r = batch.Get(i, &args_);
    if (!Note(r)) continue;
    if (run < i) downstream_->EmitBatch(batch, run, i);
    run = i + 1;
    RecordView flagged = r;
    flagged.flags |= kNeedsReadback | kUnknownPrior;
    downstream_->Emit(flagged, batch.connection_id(i));
  }
  if (run < end) downstream_->EmitBatch(batch, run, end);
}

}  // namespace kvf::resp
