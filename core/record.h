// The change record: the unit the whole pipeline moves, from RESP pairing
// through the log and the WAN to the replayer. In-memory representation only;
// logstore/log_format.h and ship/wire_format.h own the bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/hlc.h"

namespace kvf {

using SiteId = uint16_t;

// What the replayer does with a record.
enum class RecordOp : uint8_t {
  // `args` is a complete Redis command (name first) whose effect does not
  // depend on the target's prior state of `key` (SET … KEEPTTL, HSET, ZADD,
  // PEXPIREAT, DEL, XADD with an explicit id, …). Safe to apply twice.
  kIdempotent = 1,
  // `args` is a command whose effect depends on prior state (LPUSH, LTRIM,
  // APPEND, LINSERT, EVAL, SORT … STORE): applied exactly once, in order. It
  // is exact on a target that holds the same prior state of `key`; it comes
  // with kNeedsReadback when the effect cannot be derived from that state and
  // the arguments (scripts, commands that read other keys, random effects) or
  // when the prior state may differ (after a gap, an ambiguous order).
  kOrdered = 2,
  // No command: the value of `key` must be read from the source Redis and
  // shipped (after a gap, an ambiguous order, or an unknowable effect).
  kReadback = 3,
  // Database-wide operations; `args` carries the command (FLUSHDB [ASYNC],
  // FLUSHALL, SWAPDB a b). `key` is empty.
  kDatabase = 4,
  // Not a change: a connection tells the ambiguity tracker that a
  // database-wide write it sent is not answered yet (args {"HOLD"}, from
  // request_ns) or no longer ({"RELEASE"}), so that other connections' key
  // writes within its span are still held when its reply comes
  // (resp/ambiguity.h). The tracker consumes it: it is never stored,
  // shipped or printed, and the log refuses it.
  kHold = 5,
};

enum RecordFlags : uint16_t {
  kFlagNone = 0,
  kNeedsReadback = 1u << 0,   // the key's value must be re-read from the source
  kAfterGap = 1u << 1,        // the connection lost bytes before this record
  kAmbiguousOrder = 1u << 2,  // another connection wrote the key within the window
  kInTransaction = 1u << 3,   // part of a MULTI/EXEC that applied atomically
  kUnknownDb = 1u << 4,       // db could not be proven (mid-stream join)
  // An in-place edit (a push, a pop, LSET…) of a key whose value before it
  // the capture never established: the key existed before the capture, or
  // what it held was lost since (resp/prior.h).
  kUnknownPrior = 1u << 5,
  // A fact, not a doubt: the reply proved the key was empty before this
  // record (LPUSH/RPUSH answered with the number of elements it pushed),
  // so its value after the record is exactly what the record says.
  kCreatesKey = 1u << 6,
};
// Flags that state facts rather than doubts: a record carrying only these
// is not "flagged".
inline constexpr uint16_t kFactFlags = kInTransaction | kCreatesKey;

struct ChangeRecord {
  uint64_t seq = 0;         // dense, assigned by the origin's log
  Hlc hlc;                  // origin's hybrid clock at capture
  uint64_t capture_ns = 0;  // capture timestamp of the reply (CLOCK_REALTIME)
  SiteId origin = 0;        // site whose clients wrote it (loop prevention)
  uint16_t db = 0;          // Redis logical database
  RecordOp op = RecordOp::kIdempotent;
  uint16_t flags = kFlagNone;
  std::string key;                // the key this record orders and conflicts on
  std::vector<std::string> args;  // command to apply, name first (see RecordOp)

  bool HasFlag(RecordFlags f) const { return (flags & f) != 0; }
  // Bytes the record occupies in memory, for queue caps.
  size_t ApproxBytes() const;

  friend bool operator==(const ChangeRecord&, const ChangeRecord&) = default;
};

// A change record whose strings live elsewhere (a parser's buffer, an arena):
// what a producer hands to the next stage without copying. Valid only for the
// duration of the call that receives it; ToRecord() makes an owning copy.
struct RecordView {
  uint64_t seq = 0;
  Hlc hlc;
  uint64_t capture_ns = 0;
  // Capture time of the request (0: not known, as capture_ns). The write ran
  // between the two; a reply held up behind a large one (or a slow reader)
  // is captured long after. kUnansweredRequest: the write's reply was never
  // seen, so it may also have run after capture_ns. Not stored: only the
  // ambiguity window uses it.
  static constexpr uint64_t kUnansweredRequest = UINT64_MAX;
  uint64_t request_ns = 0;
  SiteId origin = 0;
  uint16_t db = 0;
  RecordOp op = RecordOp::kIdempotent;
  uint16_t flags = kFlagNone;
  // The captured command the record came from (resp::SourceIdOf; 0: none),
  // for counts per command. Not stored or shipped.
  uint8_t source = 0;
  // An FCALL record: what the function's library names of FLUSHDB,
  // FLUSHALL, SWAPDB and SELECT (resp::DatabaseWideNames bits, 0: none),
  // as its connection knew the library. The record may then change whole
  // dbs (resp::DbsChangedBy). Not stored or shipped.
  uint8_t fcall_db_names = 0;
  std::string_view key;
  std::span<const std::string_view> args;

  bool HasFlag(RecordFlags f) const { return (flags & f) != 0; }
  ChangeRecord ToRecord() const;
  // A view of `r`; `arg_views` receives the argument views and must outlive
  // the result (as must `r`).
  static RecordView Of(const ChangeRecord& r, std::vector<std::string_view>* arg_views);
};

// Copies the fixed fields (all but key and args) between record forms that
// name them alike: ChangeRecord, RecordView, and the compact entries that
// stages keep.
template <typename From, typename To>
void CopyRecordFields(const From& from, To* to) {
  to->seq = from.seq;
  to->hlc = from.hlc;
  to->capture_ns = from.capture_ns;
  to->origin = from.origin;
  to->db = from.db;
  to->op = from.op;
  to->flags = from.flags;
}

std::string_view RecordOpName(RecordOp op);

}  // namespace kvf
