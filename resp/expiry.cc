// Expiries kept with the writes that keep them: see expiry.h.
#include "resp/expiry.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "resp/convert.h"

namespace kvf::resp {

namespace {

// Commands that change a key in place and can neither remove it nor give it
// a new expiry: the key keeps its time to live (or, on a replica where it
// already expired, is created again without one). Names as records carry
// them: the converter's (SET … KEEPTTL for the INCR family, HSET, ZADD) and
// the client's own for the commands shipped as sent.
constexpr std::array<std::string_view, 19> kKeepsExpiry = {
    "APPEND", "SETRANGE", "SETBIT", "BITFIELD", "LPUSH", "RPUSH",  "LPUSHX", "RPUSHX", "LINSERT", "LSET",
    "SADD",   "HSET",     "HMSET",  "HSETNX",   "ZADD",  "GEOADD", "PFADD",  "XADD",   "XDEL",
};

bool KeepsExpiry(std::string_view command) {
  for (std::string_view c : kKeepsExpiry) {
    if (EqualsIgnoreCase(command, c)) return true;
  }
  return false;
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
  return IsSetPxat(command, argc) || (argc == 3 && EqualsIgnoreCase(command, "PEXPIREAT"));
}

}  // namespace

ExpiryKeeper::ExpiryKeeper(RecordSink* downstream, ExpiryOptions options)
    : downstream_(downstream), opts_(options) {}

const std::string& ExpiryKeeper::MapKey(uint16_t db, std::string_view key) {
  map_key_.clear();
  map_key_.push_back(static_cast<char>(db >> 8));
  map_key_.push_back(static_cast<char>(db & 0xff));
  map_key_.append(key);
  return map_key_;
}

void ExpiryKeeper::Forget(uint16_t db, std::string_view key) {
  if (!expiry_ms_.empty()) expiry_ms_.erase(MapKey(db, key));
}

void ExpiryKeeper::ForgetKey(const RecordView& r, std::string_view key) {
  if ((r.flags & kUnknownDb) == 0) {
    Forget(r.db, key);
    return;
  }
  // The db is a guess: the key may be any db's.
  for (uint16_t db : dbs_) Forget(db, key);
}

void ExpiryKeeper::ForgetAll() {
  dbs_.clear();
  if (expiry_ms_.empty()) return;
  expiry_ms_.clear();
  ++stats_.forgotten;
}

void ExpiryKeeper::ForgetKeysOf(const RecordView& r) {
  ForgetKey(r, r.key);
  if (r.args.empty()) {
    // A read-back is of its key alone; a keyless record whose keys are not
    // named (a script's, unknown) may have touched any.
    if (r.op != RecordOp::kReadback || r.key.empty()) ForgetAll();
    return;
  }
  const CommandSpec* spec = LookupCommand(r.args);
  keys_.clear();
  if (spec == nullptr || !FindKeys(*spec, r.args, &keys_) || IsScriptCall(*spec)) {
    // A script may write keys it does not declare (Redis allows it outside
    // a cluster): a key kept with an expiry the source no longer has would
    // lose the key on the replica, which is worse than keeping one.
    ForgetAll();
    return;
  }
  for (const KeyRef& k : keys_) ForgetKey(r, r.args[k.arg]);
}

namespace {
// How far apart the capture's clock and the server's may put an expiry and
// a write: a relative expiry is counted from the reply's capture (the server
// counted from when it ran the command, a little earlier), and both are
// whole milliseconds.
constexpr int64_t kClockSlackMs = 2;

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
  if (at_ms <= from_ms && !opts_.shifted_clock) {
    Forget(r.db, r.key);  // expired at once: the key is gone
    return;
  }
  if ((r.flags & kUnknownDb) != 0) {
    ForgetKey(r, r.key);  // whose key it is, is a guess
    return;
  }
  const std::string& k = MapKey(r.db, r.key);
  auto it = expiry_ms_.find(k);
  if (it != expiry_ms_.end()) {
    it->second = at_ms;
    return;
  }
  if (expiry_ms_.size() >= opts_.max_keys) {
    // Expiries that passed are of no use any more (a write after one ran on
    // a key the source had removed): drop them, then take no new keys.
    if (!opts_.shifted_clock) std::erase_if(expiry_ms_, [&](const auto& e) { return e.second <= from_ms; });
    if (expiry_ms_.size() >= opts_.max_keys) {
      ++stats_.untracked;
      return;
    }
  }
  expiry_ms_.emplace(k, at_ms);
  if (std::find(dbs_.begin(), dbs_.end(), r.db) == dbs_.end()) dbs_.push_back(r.db);
}

ExpiryKeeper::Verdict ExpiryKeeper::Note(const RecordView& r) {
  if (r.op == RecordOp::kDatabase || (r.flags & kAfterGap) != 0) {
    ForgetAll();
    if (r.op == RecordOp::kDatabase) return {};
  }
  if (r.args.empty()) {
    ForgetKeysOf(r);
    return {};
  }
  const std::string_view command = r.args[0];
  if (expiry_ms_.empty() && !MaySetExpiry(command, r.args.size())) return {};
  int64_t at_ms;
  if (r.op != RecordOp::kReadback) {
    if (IsSetPxat(command, r.args.size()) && EqualsIgnoreCase(r.args[3], "PXAT") &&
        ParseMs(r.args[4], &at_ms)) {
      Remember(r, at_ms);
      return {};
    }
    if (r.args.size() == 3 && EqualsIgnoreCase(command, "PEXPIREAT") && ParseMs(r.args[2], &at_ms)) {
      Remember(r, at_ms);
      return {};
    }
    const bool keeps = KeepsExpiry(command) || (r.args.size() == 4 && EqualsIgnoreCase(command, "SET") &&
                                                EqualsIgnoreCase(r.args[3], "KEEPTTL"));
    if (keeps) {
      if (expiry_ms_.empty()) return {};
      const auto it = expiry_ms_.find(MapKey(r.db, r.key));
      if (it == expiry_ms_.end()) return {};
      if (it->second + kClockSlackMs <= RanFromMs(r) && !opts_.shifted_clock) {
        // The key had expired on the source before this write: the write
        // made a new key, without an expiry.
        expiry_ms_.erase(it);
        return {};
      }
      // Expired while the write was on its way (between its request and
      // its reply), or too close to either for the clocks to tell: which
      // came first is not known. The expiry is restored (right if the
      // write came first) and the key read back.
      return {it->second, it->second <= RanByMs(r) + kClockSlackMs};
    }
  }
  ForgetKeysOf(r);
  return {};
}

void ExpiryKeeper::EmitRestore(const RecordView& r, uint64_t connection_id, int64_t at_ms) {
  const std::string at = std::to_string(at_ms);
  const std::string_view args[] = {"PEXPIREAT", r.key, at};
  RecordView v = r;
  v.op = RecordOp::kIdempotent;
  // The write carries its own doubts; this record repeats only the context.
  v.flags = r.flags & static_cast<uint16_t>(~(kNeedsReadback | kAmbiguousOrder));
  v.args = args;
  ++stats_.restored;
  downstream_->Emit(v, connection_id);
}

void ExpiryKeeper::Emit(const RecordView& record, uint64_t connection_id) {
  const Verdict v = Note(record);
  if (v.doubt) {
    RecordView doubted = record;
    doubted.flags |= kNeedsReadback;
    ++stats_.doubted;
    downstream_->Emit(doubted, connection_id);
  } else {
    downstream_->Emit(record, connection_id);
  }
  if (v.restore_at_ms >= 0) EmitRestore(record, connection_id, v.restore_at_ms);
}

void ExpiryKeeper::EmitBatch(const RecordBatch& batch, size_t begin, size_t end) {
  size_t run = begin;  // records passed on whole, up to i
  for (size_t i = begin; i < end; ++i) {
    // With nothing remembered, only a record that may set an expiry needs a
    // look: bulk writes pass on whole.
    if (expiry_ms_.empty() && !MaySetExpiry(batch.first_arg(i), batch.argc(i))) continue;
    const Verdict v = Note(batch.Get(i, &args_));
    if (v.restore_at_ms < 0) continue;
    if (v.doubt) {
      if (run < i) downstream_->EmitBatch(batch, run, i);
      RecordView doubted = batch.Get(i, &args_);
      doubted.flags |= kNeedsReadback;
      ++stats_.doubted;
      downstream_->Emit(doubted, batch.connection_id(i));
    } else {
      downstream_->EmitBatch(batch, run, i + 1);
    }
    run = i + 1;
    EmitRestore(batch.Get(i, &args_), batch.connection_id(i), v.restore_at_ms);
  }
  if (run < end) downstream_->EmitBatch(batch, run, end);
}

}  // namespace kvf::resp
