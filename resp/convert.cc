// Per-command record production. Each handler reads the reply (the ground
// truth of what the server did) and emits the smallest set of records whose
// effect on the target equals the effect on the source. Anything whose effect
// cannot be read off the wire is shipped as an ordered command that also
// marks its keys for read-back.
#include "resp/convert.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "resp/renames.h"

namespace kvf::resp {

namespace {

enum class Rule : uint8_t {
  kDefault,  // ordered + read-back on the written keys
  kAsIs,     // the command itself is idempotent: ship it unchanged
  kSet,
  kSetex,
  kPsetex,
  kSetnx,
  kGetset,
  kGetdel,
  kGetex,
  kMset,
  kMsetnx,
  kIncr,
  kHincr,
  kHsetnx,
  kZincrby,
  kZadd,
  kExpire,
  kPexpire,
  kExpireat,
  kPexpireat,
  kPersist,
  kDel,
  kSpop,
  kZpop,
  kBzpop,
  kZmpop,
  kBzmpop,
  kLpop,
  kRpop,
  kBlpop,
  kBrpop,
  kLmpop,
  kBlmpop,
  kLmove,
  kBlmove,
  kRpoplpush,
  kBrpoplpush,
  kSmove,
  kXadd,
  kXtrim,
  kXreadgroup,
  kDatabase,
  kMove,
  kCopy,
  kRenamenx,
  kPfcount,
  kMigrate,
  kRestore,
  kExactKey,
  kDebugPopulate,
  kScript,
  kFunctionLoad,
  kExact,         // ordered, no read-back: the effect follows from the prior value + the arguments
  kPush,          // kExact; the reply tells whether the list was empty before (kCreatesKey)
  kEditReadback,  // ordered + read-back: APPEND, SETRANGE, LINSERT (what they leave is not on the wire)
};

const std::unordered_map<std::string_view, Rule>& Rules() {
  static const std::unordered_map<std::string_view, Rule> rules = {
      {"set", Rule::kSet},
      {"setex", Rule::kSetex},
      {"psetex", Rule::kPsetex},
      {"setnx", Rule::kSetnx},
      {"getset", Rule::kGetset},
      {"getdel", Rule::kGetdel},
      {"getex", Rule::kGetex},
      {"mset", Rule::kMset},
      {"msetnx", Rule::kMsetnx},
      {"incr", Rule::kIncr},
      {"decr", Rule::kIncr},
      {"incrby", Rule::kIncr},
      {"decrby", Rule::kIncr},
      {"incrbyfloat", Rule::kIncr},
      {"hincrby", Rule::kHincr},
      {"hincrbyfloat", Rule::kHincr},
      {"hsetnx", Rule::kHsetnx},
      {"zincrby", Rule::kZincrby},
      {"zadd", Rule::kZadd},
      {"expire", Rule::kExpire},
      {"pexpire", Rule::kPexpire},
      {"expireat", Rule::kExpireat},
      {"pexpireat", Rule::kPexpireat},
      {"persist", Rule::kPersist},
      {"del", Rule::kDel},
      {"unlink", Rule::kDel},
      {"spop", Rule::kSpop},
      {"zpopmin", Rule::kZpop},
      {"zpopmax", Rule::kZpop},
      {"bzpopmin", Rule::kBzpop},
      {"bzpopmax", Rule::kBzpop},
      {"zmpop", Rule::kZmpop},
      {"bzmpop", Rule::kBzmpop},
      {"lpop", Rule::kLpop},
      {"rpop", Rule::kRpop},
      {"blpop", Rule::kBlpop},
      {"brpop", Rule::kBrpop},
      {"lmpop", Rule::kLmpop},
      {"blmpop", Rule::kBlmpop},
      {"lmove", Rule::kLmove},
      {"blmove", Rule::kBlmove},
      {"rpoplpush", Rule::kRpoplpush},
      {"brpoplpush", Rule::kBrpoplpush},
      {"smove", Rule::kSmove},
      {"xadd", Rule::kXadd},
      {"xtrim", Rule::kXtrim},
      // Its key specs say read-only (Redis 7.0), but a delivery moves
      // entries into the group's pending list and makes the consumer.
      {"xreadgroup", Rule::kXreadgroup},
      {"flushdb", Rule::kDatabase},
      {"flushall", Rule::kDatabase},
      {"swapdb", Rule::kDatabase},
      {"move", Rule::kMove},
      {"copy", Rule::kCopy},
      {"renamenx", Rule::kRenamenx},
      // Not a write by COMMAND INFO, but a count over one key stores the
      // cardinality in the HyperLogLog's header when it was stale, and the
      // server propagates it to its own replicas: without it the replica's
      // bytes (DEBUG DIGEST-VALUE, GET) differ.
      {"pfcount", Rule::kPfcount},
      {"migrate", Rule::kMigrate},
      {"restore", Rule::kRestore},
      {"restore-asking", Rule::kRestore},
      // Not a write by COMMAND INFO (and refused unless enable-debug-command
      // allows it), but DEBUG POPULATE creates keys; test suites use it.
      // The connection passes only that subcommand on as a write.
      {"debug", Rule::kDebugPopulate},
      {"eval", Rule::kScript},
      {"evalsha", Rule::kScript},
      {"fcall", Rule::kScript},
      {"function|load", Rule::kFunctionLoad},
      {"function|restore", Rule::kFunctionLoad},
      // Single-key commands whose effect is a function of the key's prior
      // value and the arguments only: applied once, in order, to a replica
      // that holds the same prior value, they produce the same value. They
      // read no other key and nothing random, so no read-back is needed
      // unless a gap or an ambiguous order says the prior value may differ
      // (those flags are added by the connection and the ambiguity tracker).
      {"lpush", Rule::kPush},
      {"rpush", Rule::kPush},
      {"lpushx", Rule::kPush},
      {"rpushx", Rule::kPush},
      {"lset", Rule::kExact},
      {"lrem", Rule::kExact},
      // A stream's consumer groups: a function of the group's state and
      // the arguments ($ is the stream's last id then).
      {"xack", Rule::kExact},
      {"xgroup|create", Rule::kExactKey},
      {"xgroup|setid", Rule::kExactKey},
      {"xgroup|destroy", Rule::kExactKey},
      {"xgroup|createconsumer", Rule::kExactKey},
      {"xgroup|delconsumer", Rule::kExactKey},
      {"ltrim", Rule::kExact},
      // By score or rank range: what they remove is the prior value's to say
      // (a review: every sliding-window rate limiter's ZSET read back). Not
      // ZREMRANGEBYLEX: among members of different scores a name range is
      // unspecified, and a skiplist's random levels decide it (a review:
      // the same command on two copies of one 300-member ZSET removed
      // different members in 6 of 20 trials).
      {"zremrangebyscore", Rule::kExact},
      {"zremrangebyrank", Rule::kExact},
      {"bitfield", Rule::kExact},
      // Exact too on a replica that holds the same prior value, but the value
      // they leave is not on the wire (a length is): ordered and read back,
      // as the issue and DESIGN.md (decision 2) ask. A push or a pop is not
      // read back unless its list's prior value is unknown (resp/prior.h).
      {"append", Rule::kEditReadback},
      {"setrange", Rule::kEditReadback},
      {"linsert", Rule::kEditReadback},
      // Idempotent as sent: the result does not depend on how often or on
      // what state they are applied to, given the server accepted them.
      {"sadd", Rule::kAsIs},
      {"srem", Rule::kAsIs},
      {"hset", Rule::kAsIs},
      {"hmset", Rule::kAsIs},
      {"hdel", Rule::kAsIs},
      {"zrem", Rule::kAsIs},
      {"setbit", Rule::kAsIs},
      {"pfadd", Rule::kAsIs},
      {"xdel", Rule::kAsIs},
      {"geoadd", Rule::kZadd},
  };
  return rules;
}

// The rule of each command-table entry, by index, built once.
Rule RuleFor(const CommandSpec& spec) {
  static const std::vector<Rule> by_index = [] {
    std::vector<Rule> v(kCommandTableSize, Rule::kDefault);
    for (size_t i = 0; i < kCommandTableSize; ++i) {
      auto it = Rules().find(kCommandTable[i].name);
      if (it != Rules().end()) v[i] = it->second;
    }
    return v;
  }();
  const size_t i = TableIndex(&spec);
  if (i < by_index.size()) return by_index[i];
  auto it = Rules().find(spec.name);  // a spec from outside the table (tests)
  return it == Rules().end() ? Rule::kDefault : it->second;
}

bool ParseI64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool MulAdd(int64_t a, int64_t mul, int64_t add, int64_t* out) {
  int64_t m;
  if (__builtin_mul_overflow(a, mul, &m)) return false;
  return !__builtin_add_overflow(m, add, out);
}

// An absolute expiry in ms, `a * mul + add`, of an expiry the server took.
// It refuses one whose sum overflows on its own clock; the capture's clock
// is later, so a sum just short of INT64_MAX there may overflow here: it is
// INT64_MAX (a review counted such a PEXPIRE a bad shape).
bool ExpiryMs(int64_t a, int64_t mul, int64_t add, int64_t* out) {
  if (MulAdd(a, mul, add, out)) return true;
  int64_t m;
  if (__builtin_mul_overflow(a, mul, &m) || m < 0 || add < 0) return false;
  *out = INT64_MAX;
  return true;
}

bool IsNull(std::span<const Node> r) {
  return r.empty() || r[0].type == Type::kNull;
}
bool IsAggregate(const Node& n) {
  return n.type == Type::kArray || n.type == Type::kSet || n.type == Type::kMap || n.type == Type::kPush;
}
bool IsString(const Node& n) {
  return n.type == Type::kBulkString || n.type == Type::kSimpleString || n.type == Type::kVerbatim;
}
// Members, elements, keys and ids come as bulk strings: a status (+OK) in
// their place answers another request.
bool IsBulk(const Node& n) {
  return n.type == Type::kBulkString;
}
// A numeric result rendered as the text a command argument needs: an integer,
// a RESP3 double, or the bulk string RESP2 uses for floats. A status reply
// (+OK) is not one: seeing it means the pairing is off.
bool Scalar(const Node& n, std::string_view* out) {
  switch (n.type) {
    case Type::kInteger:
    case Type::kDouble:
    case Type::kBigNumber:
    case Type::kBulkString: *out = n.str; return true;
    default: return false;
  }
}

// The direct children of the aggregate at r[0], as sub-spans.
std::vector<std::span<const Node>> Children(std::span<const Node> r) {
  std::vector<std::span<const Node>> out;
  if (r.empty() || !IsAggregate(r[0])) return out;
  size_t i = 1;
  for (uint32_t c = 0; c < r[0].children && i < r.size(); ++c) {
    out.push_back(r.subspan(i, r[i].subtree));
    i += r[i].subtree;
  }
  return out;
}

// Members of a popped-with-scores reply: flat [m, s, m, s] or nested
// [[m, s], …] (RESP3 with COUNT). False when the shape is neither.
bool PoppedMembers(std::span<const Node> r, std::vector<std::string_view>* members) {
  if (IsNull(r)) return true;
  auto kids = Children(r);
  if (r.empty() || !IsAggregate(r[0])) return false;
  if (!kids.empty() && IsAggregate(kids[0][0])) {
    for (auto& k : kids) {
      auto pair = Children(k);
      if (pair.empty() || !IsBulk(pair[0][0])) return false;
      members->push_back(pair[0][0].str);
    }
    return true;
  }
  if (kids.size() % 2 != 0) return false;
  for (size_t i = 0; i < kids.size(); i += 2) {
    if (!IsBulk(kids[i][0])) return false;
    members->push_back(kids[i][0].str);
  }
  return true;
}

class Emitter {
 public:
  Emitter(const CommandSpec& spec, const ConvertContext& ctx, RecordSink* sink)
      : ctx_(ctx), sink_(sink), source_(SourceIdOf(spec)) {}

  // Records are views of `key` and `args` (the request's and reply's bytes,
  // or locals of the caller): nothing is copied here.
  void Emit(RecordOp op, uint16_t extra_flags, std::string_view key,
            std::initializer_list<std::string_view> args, uint16_t db_override = 0xffff) {
    Send(op, extra_flags, key, std::span<const std::string_view>(args.begin(), args.size()), db_override);
  }
  void EmitArgs(RecordOp op, uint16_t extra_flags, std::string_view key,
                std::span<const std::string_view> args) {
    Send(op, extra_flags, key, args, 0xffff);
  }
  void Readback(std::string_view key, uint16_t db_override = 0xffff) {
    Send(RecordOp::kReadback, kNeedsReadback, key, {}, db_override);
  }
  size_t count() const { return count_; }

 private:
  void Send(RecordOp op, uint16_t extra_flags, std::string_view key, std::span<const std::string_view> args,
            uint16_t db_override) {
    RecordView r;
    r.capture_ns = ctx_.capture_ns;
    r.request_ns = ctx_.request_ns;
    r.db = db_override == 0xffff ? ctx_.db : db_override;
    r.op = op;
    r.flags = static_cast<uint16_t>(ctx_.flags | extra_flags);
    r.source = source_;
    r.fcall_db_names = ctx_.fcall_db_names;
    r.key = key;
    r.args = args;
    ++count_;
    sink_->Emit(r, ctx_.connection_id);
  }

  const ConvertContext& ctx_;
  RecordSink* sink_;
  uint8_t source_;
  size_t count_ = 0;
};

// Flags of an ordered record whose effect cannot be derived from the prior
// state and the arguments (scripts, multi-key reads, unknown commands).
constexpr uint16_t kOrderedFlags = kNeedsReadback;
// Flags of an ordered record that is exact given the same prior state.
constexpr uint16_t kExactFlags = 0;

// Ordered + read-back on every written key; keyless writes are database-wide.
// A learnt command (a module's, command_info.h) whose keys its specs could not
// find is ordered and flagged: nothing says what it touched.
ConvertOutcome Default(const CommandSpec& spec, std::span<const std::string_view> argv, Emitter& out) {
  std::vector<KeyRef> keys;
  const bool keys_known = FindKeys(spec, argv, &keys) || TableIndex(&spec) < kCommandTableSize;
  std::string_view first;
  bool have_first = false;
  for (const KeyRef& k : keys) {
    if (!(k.flags & kKeyRo)) {
      if (!have_first) {
        first = argv[k.arg];
        have_first = true;
        out.EmitArgs(RecordOp::kOrdered, kOrderedFlags, first, argv);
      } else if (argv[k.arg] != first) {
        out.Readback(argv[k.arg]);
      }
    }
  }
  if (!have_first) {
    // A command of the Redis table that can write, used in a form that
    // only reads (SORT or GEORADIUS without STORE): its keys are all
    // read-only, so nothing changed.
    if (!keys.empty() && TableIndex(&spec) < kCommandTableSize) return ConvertOutcome::kNoEffect;
    const bool database_wide = spec.Has(kCmdWrite) && keys_known;
    out.EmitArgs(database_wide ? RecordOp::kDatabase : RecordOp::kOrdered, database_wide ? 0 : kOrderedFlags,
                 {}, argv);
  }
  return ConvertOutcome::kRecorded;
}

// A relative expiry counts from when the server ran the write: between its
// request and its reply, which a slow command (DEBUG SLEEP, a long script,
// KEYS) may hold back for seconds on either side of it. It is counted from
// the reply (as ExpiryKeeper assumes), and read back when the two are more
// than kExpirySpanNs apart (a review: SET k v EX 1000 pipelined before
// DEBUG SLEEP 2 expired 2 s late on the replica, unflagged; so did another
// client's writes that the server read in the same pass).
constexpr uint64_t kExpirySpanNs = 1'000'000'000;
struct ExpiryBase {
  int64_t ms = 0;
  uint16_t flags = 0;  // kNeedsReadback when unsure
};
ExpiryBase ExpiryBaseOf(const ConvertContext& ctx) {
  const bool known = ctx.request_ns != 0 && ctx.request_ns != RecordView::kUnansweredRequest &&
                     ctx.request_ns <= ctx.capture_ns;
  return {
      static_cast<int64_t>(ctx.capture_ns / 1000000),
      static_cast<uint16_t>(known && ctx.capture_ns - ctx.request_ns > kExpirySpanNs ? kNeedsReadback : 0)};
}

// EX, PX, EXAT or PXAT.
bool IsExpiryOption(std::string_view o) {
  return EqualsIgnoreCase(o, "ex") || EqualsIgnoreCase(o, "px") || EqualsIgnoreCase(o, "exat") ||
         EqualsIgnoreCase(o, "pxat");
}

// EX or PX: counted from when the write ran.
bool IsRelativeExpiry(std::string_view o) {
  return EqualsIgnoreCase(o, "ex") || EqualsIgnoreCase(o, "px");
}

// Relative/absolute expiry option at argv[i] ("EX" 10 …) to an absolute ms.
// Returns 0 when argv[i] is not an expiry option, -1 when malformed, else 1.
int ExpiryOption(std::span<const std::string_view> argv, size_t i, int64_t now_ms, int64_t* abs_ms) {
  const std::string_view o = argv[i];
  int64_t mul = 0, base = 0;
  if (EqualsIgnoreCase(o, "ex")) {
    mul = 1000;
    base = now_ms;
  } else if (EqualsIgnoreCase(o, "px")) {
    mul = 1;
    base = now_ms;
  } else if (EqualsIgnoreCase(o, "exat")) {
    mul = 1000;
  } else if (EqualsIgnoreCase(o, "pxat")) {
    mul = 1;
  } else
    return 0;
  int64_t v;
  if (i + 1 >= argv.size() || !ParseI64(argv[i + 1], &v) || !ExpiryMs(v, mul, base, abs_ms)) return -1;
  return 1;
}

ConvertOutcome Set(std::span<const std::string_view> argv, std::span<const Node> reply,
                   const ConvertContext& ctx, Emitter& out, const CommandSpec& spec) {
  if (argv.size() < 3) return Default(spec, argv, out);
  bool nx = false, xx = false, get = false, keepttl = false;
  int64_t abs_ms = -1;
  // An expiry option may repeat (EX 100 EX 5): Redis keeps the last value
  // and parses only that one (t_string.c parseExtendedStringArgumentsOrReply).
  size_t expiry = 0;
  for (size_t i = 3; i < argv.size(); ++i) {
    if (IsExpiryOption(argv[i])) {
      if (i + 1 >= argv.size()) return Default(spec, argv, out);
      expiry = i++;
      continue;
    }
    if (EqualsIgnoreCase(argv[i], "nx"))
      nx = true;
    else if (EqualsIgnoreCase(argv[i], "xx"))
      xx = true;
    else if (EqualsIgnoreCase(argv[i], "get"))
      get = true;
    else if (EqualsIgnoreCase(argv[i], "keepttl"))
      keepttl = true;
    else
      return Default(spec, argv, out);
  }
  uint16_t flags = 0;
  if (expiry != 0) {  // (off the plain SET's path)
    const ExpiryBase when = ExpiryBaseOf(ctx);
    if (ExpiryOption(argv, expiry, when.ms, &abs_ms) <= 0) return Default(spec, argv, out);
    if (IsRelativeExpiry(argv[expiry])) flags = when.flags;
  }
  bool applied;
  if (get) {
    applied = nx ? IsNull(reply) : xx ? !IsNull(reply) : true;
  } else {
    applied = !IsNull(reply);
  }
  if (!applied) return ConvertOutcome::kNoEffect;
  if (abs_ms >= 0) {
    const std::string at = std::to_string(abs_ms);
    out.Emit(RecordOp::kIdempotent, flags, argv[1], {"SET", argv[1], argv[2], "PXAT", at});
  } else if (keepttl) {
    out.Emit(RecordOp::kIdempotent, 0, argv[1], {"SET", argv[1], argv[2], "KEEPTTL"});
  } else {
    out.Emit(RecordOp::kIdempotent, 0, argv[1], {"SET", argv[1], argv[2]});
  }
  return ConvertOutcome::kRecorded;
}

void SetWithAbs(Emitter& out, std::string_view key, std::string_view value, int64_t abs_ms, uint16_t flags) {
  const std::string at = std::to_string(abs_ms);
  out.Emit(RecordOp::kIdempotent, flags, key, {"SET", key, value, "PXAT", at});
}

void Pexpireat(Emitter& out, std::string_view key, int64_t abs_ms, uint16_t flags = 0) {
  const std::string at = std::to_string(abs_ms);
  out.Emit(RecordOp::kIdempotent, flags, key, {"PEXPIREAT", key, at});
}

// LTRIM equivalent of popping `n` elements from the head (left) or tail.
void TrimPopped(Emitter& out, std::string_view key, bool left, size_t n) {
  if (n == 0) return;
  const std::string a = left ? std::to_string(n) : "0";
  const std::string b = left ? "-1" : std::to_string(-static_cast<int64_t>(n) - 1);
  out.Emit(RecordOp::kOrdered, kExactFlags, key, {"LTRIM", key, a, b});
}

bool ParseSide(std::string_view s, bool* left) {
  if (EqualsIgnoreCase(s, "left")) {
    *left = true;
    return true;
  }
  if (EqualsIgnoreCase(s, "right")) {
    *left = false;
    return true;
  }
  return false;
}

// A number as Redis replies one: an integer, a decimal (exponent allowed),
// or an infinity (ZINCRBY). A reply out of step can be any text, a password
// that CONFIG GET returned included: a record must not carry it.
bool IsNumber(std::string_view v) {
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) v.remove_prefix(1);
  if (EqualsIgnoreCase(v, "inf")) return true;
  size_t digits = 0, i = 0;
  for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) ++digits;
  if (i < v.size() && v[i] == '.') {
    for (++i; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) ++digits;
  }
  if (digits == 0) return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '-' || v[i] == '+')) ++i;
    const size_t start = i;
    for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) {
    }
    if (i == start) return false;
  }
  return i == v.size();
}

// A stream entry id: ms-seq.
bool IsStreamId(std::string_view v) {
  const size_t dash = v.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash + 1 == v.size()) return false;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != dash && (v[i] < '0' || v[i] > '9')) return false;
  }
  return true;
}

// Whether `key`, named by a reply, is one of the request's keys (a blocking
// pop says which list it served): otherwise the reply answers another request.
bool IsRequestKey(const CommandSpec& spec, std::span<const std::string_view> argv, std::string_view key) {
  std::vector<KeyRef> keys;
  FindKeys(spec, argv, &keys);
  return std::any_of(keys.begin(), keys.end(), [&](const KeyRef& k) { return argv[k.arg] == key; });
}

// Rules whose records carry strings of the reply (members, elements, keys
// the reply names), not only of the request.
bool CopiesReplyStrings(Rule rule) {
  switch (rule) {
    case Rule::kSpop:
    case Rule::kZpop:
    case Rule::kBzpop:
    case Rule::kZmpop:
    case Rule::kBzmpop:
    case Rule::kBlpop:
    case Rule::kBrpop:
    case Rule::kLmpop:
    case Rule::kBlmpop:
    case Rule::kLmove:
    case Rule::kBlmove:
    case Rule::kRpoplpush:
    case Rule::kBrpoplpush:
    case Rule::kXreadgroup: return true;
    default: return false;
  }
}

// [key, [elements…]] (LMPOP) or [key, [[member, score]…]] (ZMPOP) replies.
bool KeyAndList(std::span<const Node> reply, std::string_view* key, std::span<const Node>* list) {
  auto kids = Children(reply);
  if (kids.size() != 2 || !IsBulk(kids[0][0]) || !IsAggregate(kids[1][0])) return false;
  *key = kids[0][0].str;
  *list = kids[1];
  return true;
}

// DEBUG POPULATE count [prefix [size]] (redis 7.0 debug.c): keys
// "<prefix>:<i>" (prefix "key", a C string; the name cut to 127 bytes) for
// i < count, each set to "value:<i>" (with a size: cut or padded with zero
// bytes to it) unless it exists. Emits one SET … NX per key with `flags`;
// returns how many, or -1 for arguments the server refuses or a size no
// value can have. More than `max_bytes` of values (an unanswered request
// that may never have run, or text read out of step) emits nothing.
int64_t Populate(std::span<const std::string_view> argv, Emitter& out, uint16_t flags,
                 uint64_t max_bytes = UINT64_MAX) {
  constexpr int64_t kMaxValue = int64_t{512} << 20;  // proto-max-bulk-len's default
  int64_t count = 0, size = 0;
  if (argv.size() < 3 || argv.size() > 5 || !ParseI64(argv[2], &count) || count < 0) return -1;
  if (argv.size() == 5 && (!ParseI64(argv[4], &size) || size < 0 || size > kMaxValue)) return -1;
  if (static_cast<uint64_t>(count) > max_bytes / static_cast<uint64_t>(std::max<int64_t>(size, 32))) return 0;
  std::string_view prefix = argv.size() >= 4 ? argv[3] : std::string_view("key");
  prefix = prefix.substr(0, prefix.find('\0'));
  std::string key, value;
  for (int64_t i = 0; i < count; ++i) {
    key.assign(prefix).append(":").append(std::to_string(i));
    if (key.size() > 127) key.resize(127);
    value = "value:" + std::to_string(i);
    if (size > 0) value.resize(static_cast<size_t>(size), '\0');
    out.Emit(RecordOp::kOrdered, flags, key, {"SET", key, value, "NX"});
  }
  return count;
}

ConvertOutcome BadShape(const CommandSpec& spec, std::span<const std::string_view> argv,
                        const ConvertContext& ctx, RecordSink* sink) {
  ReadbackWrite(spec, argv, ctx, sink);
  return ConvertOutcome::kBadShape;
}

}  // namespace

bool ParseDb(std::string_view s, uint16_t* out) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > UINT16_MAX) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

bool RecordHasKey(const RecordView& r) {
  if (!r.key.empty()) return true;
  if (r.op == RecordOp::kDatabase || r.op == RecordOp::kHold) return false;
  if (r.args.empty()) return r.op == RecordOp::kReadback;  // a read-back names its key
  const CommandSpec* spec = LookupCommand(r.args);
  std::vector<KeyRef> keys;
  if (spec == nullptr || !FindKeys(*spec, r.args, &keys)) return false;
  return std::any_of(keys.begin(), keys.end(), [&](const KeyRef& k) { return r.args[k.arg].empty(); });
}

bool IsScriptCall(const CommandSpec& spec) {
  return RuleFor(spec) == Rule::kScript;
}

bool ConvertsAsWrite(const CommandSpec& spec) {
  return spec.Has(kCmdWrite) || IsScriptCall(spec) || CommandName(spec) == "pfcount";
}

namespace {
// Ids of the commands that may produce records: the generated table's,
// fixed at first use; then those learnt (--command-info) or made by tests,
// as they come (under the lock: a module's commands only).
struct SourceIds {
  std::vector<uint8_t> by_index;          // kCommandTable index -> id
  std::vector<const CommandSpec*> by_id;  // id -> spec; by_id[0] is nullptr
  std::mutex mu;                          // guards others, and by_id past the table's
  std::unordered_map<const CommandSpec*, uint8_t> others;
};

bool MayRecord(const CommandSpec& s) {
  const std::string_view name = CommandName(s);
  return ConvertsAsWrite(s) || name == "debug" || name == "replicaof" || name == "slaveof";
}

SourceIds& Sources() {
  static SourceIds* const ids = [] {
    auto* t = new SourceIds;  // never freed: records may name it until the end
    t->by_index.assign(kCommandTableSize, 0);
    t->by_id.reserve(256);
    t->by_id.push_back(nullptr);
    for (size_t i = 0; i < kCommandTableSize && t->by_id.size() < 256; ++i) {
      if (!MayRecord(kCommandTable[i])) continue;
      t->by_index[i] = static_cast<uint8_t>(t->by_id.size());
      t->by_id.push_back(&kCommandTable[i]);
    }
    return t;
  }();
  return *ids;
}
}  // namespace

namespace detail {
const uint8_t* const g_source_ids = Sources().by_index.data();

uint8_t SourceIdOfOther(const CommandSpec& spec) {
  SourceIds& ids = Sources();
  std::lock_guard<std::mutex> lock(ids.mu);
  const auto it = ids.others.find(&spec);
  if (it != ids.others.end()) return it->second;
  const uint8_t id = ids.by_id.size() < 256 ? static_cast<uint8_t>(ids.by_id.size()) : 0;
  if (id != 0) ids.by_id.push_back(&spec);
  ids.others.emplace(&spec, id);
  return id;
}
}  // namespace detail

const CommandSpec* SourceSpec(uint8_t id) {
  SourceIds& ids = Sources();
  std::lock_guard<std::mutex> lock(ids.mu);
  return id < ids.by_id.size() ? ids.by_id[id] : nullptr;
}

bool IsFcall(const CommandSpec& spec) {
  return CommandName(spec) == "fcall";
}

bool IsLibraryLoad(std::span<const std::string_view> argv) {
  return argv.size() >= 2 && EqualsIgnoreCase(argv[0], "FUNCTION") &&
         (EqualsIgnoreCase(argv[1], "LOAD") || EqualsIgnoreCase(argv[1], "RESTORE"));
}

namespace {

bool LuaWordByte(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// True when `word` occurs in `code` as a whole word, in any case.
bool HasWordAnyCase(std::string_view code, std::string_view word) {
  for (size_t from = 0; from + word.size() <= code.size(); ++from) {
    if ((code[from] | 0x20) != (word[0] | 0x20)) continue;  // most bytes of a script body
    if (!EqualsIgnoreCase(code.substr(from, word.size()), word)) continue;
    const bool starts = from == 0 || !LuaWordByte(code[from - 1]);
    const bool ends = from + word.size() == code.size() || !LuaWordByte(code[from + word.size()]);
    if (starts && ends) return true;
  }
  return false;
}

// A Lua 5.1 token, as far as the MIGRATE check needs one: names, strings
// (their quotes kept; `plain` when free of escapes) and operators, the
// comparison operators apart from `=`. Comments and spaces are dropped.
struct LuaToken {
  enum Kind : uint8_t { kName, kString, kOp } kind;
  std::string_view text;
  bool plain = true;
};

// The level of a long bracket `[==[` at `i` (-1: none).
int LongBracket(std::string_view code, size_t i) {
  if (i >= code.size() || code[i] != '[') return -1;
  size_t j = i + 1;
  while (j < code.size() && code[j] == '=') ++j;
  return j < code.size() && code[j] == '[' ? static_cast<int>(j - i - 1) : -1;
}

// Splits `code` into tokens; false for a body that does not lex (an
// unclosed string or comment: Redis refuses it, nothing to ship).
bool LuaTokens(std::string_view code, std::vector<LuaToken>* out) {
  size_t i = 0;
  auto long_end = [&](size_t from, int level) {
    const std::string close = "]" + std::string(static_cast<size_t>(level), '=') + "]";
    const size_t e = code.find(close, from);
    return e == std::string_view::npos ? e : e + close.size();
  };
  while (i < code.size()) {
    const char c = code[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++i;
    } else if (code.substr(i, 2) == "--") {
      const int level = LongBracket(code, i + 2);
      if (level >= 0) {
        i = long_end(i + 2, level);
        if (i == std::string_view::npos) return false;
      } else {
        // (Lua 5.1 ends a line, and so a comment, at \n or \r.)
        const size_t nl = code.find_first_of("\r\n", i);
        i = nl == std::string_view::npos ? code.size() : nl + 1;
      }
    } else if (LuaWordByte(c) && !(c >= '0' && c <= '9')) {
      size_t j = i;
      while (j < code.size() && LuaWordByte(code[j])) ++j;
      out->push_back({LuaToken::kName, code.substr(i, j - i)});
      i = j;
    } else if (c == '\'' || c == '"') {
      size_t j = i + 1;
      bool plain = true;
      while (j < code.size() && code[j] != c && code[j] != '\n') {
        if (code[j] == '\\') {
          plain = false;
          ++j;
        }
        ++j;
      }
      if (j >= code.size() || code[j] != c) return false;
      out->push_back({LuaToken::kString, code.substr(i, j + 1 - i), plain});
      i = j + 1;
    } else if (const int level = LongBracket(code, i); level >= 0) {
      const size_t e = long_end(i, level);
      if (e == std::string_view::npos) return false;
      out->push_back({LuaToken::kString, code.substr(i, e - i)});
      i = e;
    } else {
      // Two-character operators that hold a `=`, so that a lone `=` is an
      // assignment; everything else (numbers included) one byte at a time.
      const size_t n = i + 1 < code.size() && code[i + 1] == '=' && std::strchr("=~<>", c) != nullptr ? 2 : 1;
      out->push_back({LuaToken::kOp, code.substr(i, n)});
      i += n;
    }
  }
  return true;
}

bool IsOp(const std::vector<LuaToken>& t, size_t i, std::string_view op) {
  return i < t.size() && t[i].kind == LuaToken::kOp && t[i].text == op;
}

// A call at token `i` (right after `redis.call` or a name for it) whose
// first argument is a plain string literal and nothing more: `('GET', …)`,
// `('GET')`, or the string-argument form `'PING'`.
bool LiteralCall(const std::vector<LuaToken>& t, size_t i) {
  if (i < t.size() && t[i].kind == LuaToken::kString) return t[i].plain;
  return IsOp(t, i, "(") && i + 1 < t.size() && t[i + 1].kind == LuaToken::kString && t[i + 1].plain &&
         (IsOp(t, i + 2, ",") || IsOp(t, i + 2, ")"));
}

// The text of a string token: between its quotes, or its long brackets
// (less the newline right after the opening, as Lua drops it).
std::string_view StringText(const LuaToken& t) {
  if (t.text.size() >= 2 && (t.text[0] == '\'' || t.text[0] == '"'))
    return t.text.substr(1, t.text.size() - 2);
  const int level = LongBracket(t.text, 0);
  if (level < 0) return {};
  const size_t open = static_cast<size_t>(level) + 2;
  std::string_view inner = t.text.substr(open, t.text.size() - 2 * open);
  if (!inner.empty() && inner[0] == '\n') inner.remove_prefix(1);
  return inner;
}

}  // namespace

std::vector<std::string> RegisteredFunctionNames(std::string_view library, bool* complete) {
  bool all = true;  // every registration named by a plain literal
  // (The shebang line, "#!lua name=lib", is no Lua.)
  if (library.substr(0, 2) == "#!") {
    const size_t nl = library.find('\n');
    library = nl == std::string_view::npos ? std::string_view() : library.substr(nl + 1);
  }
  std::vector<LuaToken> t;
  std::vector<std::string> names;
  if (!LuaTokens(library, &t)) {
    if (complete != nullptr) *complete = false;
    return names;
  }
  auto add = [&](size_t i) {
    // The whole expression, not the start of one ('fn' .. 'A', a review's:
    // `fn` was taken for a name the library registered, and an FCALL of it
    // went untold).
    if (i >= t.size() || t[i].kind != LuaToken::kString || !t[i].plain ||
        (!IsOp(t, i + 1, ",") && !IsOp(t, i + 1, ")") && !IsOp(t, i + 1, "}") && !IsOp(t, i + 1, ";"))) {
      all = false;
      return false;
    }
    const std::string_view name = StringText(t[i]);
    if (name.empty() || name.size() > 256 || !std::all_of(name.begin(), name.end(), LuaWordByte)) {
      all = false;
      return false;
    }
    names.emplace_back(name);
    return true;
  };
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind != LuaToken::kName || t[i].text != "register_function") continue;
    size_t j = i + 1;
    if (IsOp(t, j, "(")) ++j;
    if (!IsOp(t, j, "{")) {
      add(j);
      continue;
    }
    // A table: its function_name field, at its own level.
    int depth = 0;
    bool named = false;
    for (size_t k = j; k < t.size(); ++k) {
      if (IsOp(t, k, "{")) ++depth;
      if (IsOp(t, k, "}") && --depth == 0) break;
      if (depth == 1 && t[k].kind == LuaToken::kName && t[k].text == "function_name" && IsOp(t, k + 1, "="))
        named = add(k + 2) || named;
    }
    if (!named) all = false;
  }
  if (complete != nullptr) *complete = all;
  return names;
}

// A body naming a command the source renamed, by its old or new name: on a
// replica, whose records carry the commands' own names and which so has no
// renames, it would run otherwise (a review: `redis.pcall('FLUSHALL')`,
// harmless on a source that disabled FLUSHALL, emptied the replica).
bool NamesARenamedCommand(std::string_view code) {
  if (!HaveCommandRenames()) return false;
  const std::vector<std::string>& names = RenamedNames();
  return std::any_of(names.begin(), names.end(),
                     [&](const std::string& name) { return HasWordAnyCase(code, name); });
}

namespace {
bool ScriptCallsMigrateUncached(std::string_view code);
}  // namespace

bool ScriptCallsMigrate(std::string_view code) {
  // Judged once per body, per thread (by its 128-bit hash, and the renames
  // it was judged under): BullMQ sends scripts of 50 KB thousands of times
  // a second, and lexing each took 1.6 ms (a review: decode six times
  // slower than the source ran them). Short bodies cost less to lex than
  // to look up.
  if (code.size() < 512) return ScriptCallsMigrateUncached(code);
  struct Entry {
    uint64_t low = 0, high = 0, generation = 0, size = 0;
    bool valid = false, calls = false;
  };
  thread_local std::array<Entry, 256> memo;
  const XXH128_hash_t h = XXH3_128bits(code.data(), code.size());
  Entry& e = memo[h.low64 & (memo.size() - 1)];
  const uint64_t generation = RenamesGeneration();
  if (e.valid && e.low == h.low64 && e.high == h.high64 && e.size == code.size() &&
      e.generation == generation)
    return e.calls;
  e = Entry{h.low64, h.high64, generation, code.size(), true, ScriptCallsMigrateUncached(code)};
  return e.calls;
}

namespace {
bool ScriptCallsMigrateUncached(std::string_view code) {
  // The word, not a part of one ("migrated:flag", "immigrate"), anywhere
  // (a comment too): a review found such scripts read back and their
  // keyless writes lost.
  if (HasWordAnyCase(code, "migrate")) return true;
  if (NamesARenamedCommand(code)) return true;  // MIGRATE's new name among them
  // A command whose name the body does not spell out may be MIGRATE
  // (`redis.call('MIG'..'RATE', …)`, `redis.call(ARGV[1], …)`,
  // `redis. pcall(…)`: reviews shipped a password that way). Read as Lua
  // tokens (so that strings and comments do not count): every `redis` must
  // be `redis.field`, a call's command name a plain string, or `redis.call`
  // given a name (`local rcall = redis.call`, as BullMQ's scripts do) every
  // use of which is such a call or an assignment; and nothing may reach the
  // globals or compile code another way.
  // (A function library's first line, `#!lua name=… `, is not Lua: a
  // library named `load` is no call of load.)
  if (code.starts_with("#!")) {
    const size_t nl = code.find('\n');
    code = nl == std::string_view::npos ? std::string_view() : code.substr(nl + 1);
  }
  std::vector<LuaToken> t;
  if (!LuaTokens(code, &t)) return true;
  std::vector<std::string_view> aliases;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind != LuaToken::kName) continue;
    const std::string_view name = t[i].text;
    for (std::string_view w : {"_G", "getfenv", "setfenv", "loadstring", "load", "dofile", "loadfile",
                               "rawget", "rawset", "require", "module", "setmetatable", "getmetatable"}) {
      if (name == w) return true;
    }
    if (name != "redis") continue;
    if (!IsOp(t, i + 1, ".") || i + 2 >= t.size() || t[i + 2].kind != LuaToken::kName) return true;
    const std::string_view field = t[i + 2].text;
    if ((field != "call" && field != "pcall") || LiteralCall(t, i + 3)) continue;
    // `local NAME = redis.call`: one name, one value, the expression ending
    // there (a review got past `local a, b = redis.call, 0` and
    // `{f = redis.call}`).
    const bool ends =
        i + 3 >= t.size() ||
        !(IsOp(t, i + 3, "(") || IsOp(t, i + 3, "{") || IsOp(t, i + 3, "[") || IsOp(t, i + 3, ".") ||
          IsOp(t, i + 3, ":") || IsOp(t, i + 3, ",") || t[i + 3].kind == LuaToken::kString);
    if (!ends || i < 3 || !IsOp(t, i - 1, "=") || t[i - 2].kind != LuaToken::kName ||
        t[i - 2].text == "redis" || t[i - 3].kind != LuaToken::kName || t[i - 3].text != "local")
      return true;
    if (std::find(aliases.begin(), aliases.end(), t[i - 2].text) == aliases.end())
      aliases.push_back(t[i - 2].text);
  }
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind != LuaToken::kName || std::find(aliases.begin(), aliases.end(), t[i].text) == aliases.end())
      continue;
    if (!IsOp(t, i + 1, "=") && !LiteralCall(t, i + 1)) return true;
  }
  return false;
}
}  // namespace

bool CallsMigrate(std::span<const std::string_view> argv) {
  if (argv.size() >= 2 && EqualsIgnoreCase(argv[0], "EVAL")) return ScriptCallsMigrate(argv[1]);
  if (!IsLibraryLoad(argv)) return false;
  // FUNCTION RESTORE's payload is serialised, its code maybe compressed:
  // what it calls cannot be read (a review shipped a library holding a
  // MIGRATE password this way).
  if (EqualsIgnoreCase(argv[1], "RESTORE")) return true;
  return argv.size() >= 3 && ScriptCallsMigrate(argv.back());
}

bool IsDatabaseWide(const CommandSpec& spec) {
  return RuleFor(spec) == Rule::kDatabase;
}

bool IsReadOnlyScriptCall(const CommandSpec& spec) {
  const std::string_view name = CommandName(spec);
  return name == "eval_ro" || name == "evalsha_ro" || name == "fcall_ro";
}

bool MayHaveWrittenDespite(const CommandSpec& spec, std::string_view error) {
  const Rule rule = RuleFor(spec);
  return (rule == Rule::kScript && error.substr(0, 8) != "NOSCRIPT") || rule == Rule::kMigrate;
}

namespace {
// Read-backs of the keys of `argv` (those in it) that `rule`'s command may
// write; true if any.
bool ReadbackWrittenKeys(Rule rule, const std::vector<KeyRef>& keys, std::span<const std::string_view> argv,
                         Emitter& out) {
  bool any = false;
  for (const KeyRef& k : keys) {
    if (k.arg >= argv.size() || ((k.flags & kKeyRo) && rule != Rule::kScript && rule != Rule::kXreadgroup))
      continue;
    out.Readback(argv[k.arg]);
    any = true;
  }
  return any;
}
}  // namespace

size_t ReadbackKeysOfCut(const CommandSpec& spec, std::span<const std::string_view> argv,
                         const ConvertContext& ctx, RecordSink* sink) {
  Emitter out(spec, ctx, sink);
  std::vector<KeyRef> keys;
  FindKeys(spec, argv, &keys);
  ReadbackWrittenKeys(RuleFor(spec), keys, argv, out);
  return out.count();
}

size_t ReadbackWrite(const CommandSpec& spec, std::span<const std::string_view> argv,
                     const ConvertContext& ctx, RecordSink* sink) {
  Emitter out(spec, ctx, sink);
  // The server refuses a wrong argument count without executing anything.
  const long argc = static_cast<long>(argv.size());
  if (spec.arity >= 0 ? argc != spec.arity : argc < -spec.arity) return 0;
  std::vector<KeyRef> keys;
  FindKeys(spec, argv, &keys);
  const Rule rule = RuleFor(spec);
  if (rule == Rule::kDebugPopulate) {
    // Unanswered (CLIENT REPLY OFF, lost): it ran, unless the server
    // refuses DEBUG (enable-debug-command), and names no key the table
    // knows. Its SET … NX records ship flagged, so that the read-back
    // settles each key either way (a review found such keys missing,
    // unflagged).
    // (At most 64 MiB of values: the count and size are unconfirmed.)
    if (argv.size() >= 2 && EqualsIgnoreCase(argv[1], "populate"))
      Populate(argv, out, kNeedsReadback, uint64_t{64} << 20);
    return out.count();
  }
  const bool any = ReadbackWrittenKeys(rule, keys, argv, out);
  // MOVE k db and COPY src dst DB n also write in another db.
  int64_t db;
  if (rule == Rule::kMove && argv.size() == 3 && ParseI64(argv[2], &db) && db >= 0 && db <= 0xfffe) {
    out.Readback(argv[1], static_cast<uint16_t>(db));
  }
  if (rule == Rule::kCopy) {
    for (size_t i = 3; i + 1 < argv.size(); ++i) {
      if (EqualsIgnoreCase(argv[i], "db") && ParseI64(argv[i + 1], &db) && db >= 0 && db <= 0xfffe)
        out.Readback(argv[2], static_cast<uint16_t>(db));
    }
  }
  if (!any && spec.Has(kCmdWrite) && spec.num_specs == 0 && !CallsMigrate(argv)) {
    // A keyless write with an unknown outcome (FLUSHDB, FLUSHALL, SWAPDB,
    // FUNCTION LOAD…): nothing to read back key by key; ship it
    // database-wide, flagged. A command that has keys but whose keys were
    // not found (MIGRATE with an empty KEYS list…) is never shipped as is:
    // the server refuses it, and its arguments may hold a password. Nor is
    // a library that may call MIGRATE (any FUNCTION RESTORE), as when
    // answered (kFunctionLoad; a review shipped one, password and all,
    // sent under CLIENT REPLY OFF); its connection holds FCALLs back.
    out.EmitArgs(RecordOp::kDatabase, kNeedsReadback, {}, argv);
  }
  return out.count();
}

ConvertOutcome ConvertWrite(const CommandSpec& spec, std::span<const std::string_view> argv,
                            std::span<const Node> reply, const ConvertContext& ctx, RecordSink* sink) {
  Emitter out(spec, ctx, sink);
  // The server refuses a wrong argument count, so a non-error reply to one
  // means the pairing is off.
  const long argc = static_cast<long>(argv.size());
  if (spec.arity >= 0 ? argc != spec.arity : argc < -spec.arity) return BadShape(spec, argv, ctx, sink);
  const Rule rule = RuleFor(spec);
  const uint64_t capture_ms = ctx.capture_ns / 1000000;
  const Node* root = reply.empty() ? nullptr : &reply[0];
  auto bad = [&] { return BadShape(spec, argv, ctx, sink); };
  int64_t n = 0;
  if ((ctx.flags & kAfterGap) != 0 && CopiesReplyStrings(rule)) [[unlikely]] {
    // Paired after a gap, the reply may answer another request: a record
    // must not carry its bytes (a review paired the reply of CONFIG GET
    // requirepass with an SPOP and shipped the password as a member). The
    // keys are read back.
    ReadbackWrite(spec, argv, ctx, sink);
    return ConvertOutcome::kRecorded;
  }
  switch (rule) {
    case Rule::kDefault: return Default(spec, argv, out);
    case Rule::kAsIs:
      // An integer (+OK for HMSET): an aggregate answers another request.
      if (argv.size() < 2 || root == nullptr || IsAggregate(*root)) return bad();
      out.EmitArgs(RecordOp::kIdempotent, 0, argv[1], argv);
      return ConvertOutcome::kRecorded;
    case Rule::kSet: return Set(argv, reply, ctx, out, spec);
    case Rule::kSetex:
    case Rule::kPsetex: {
      int64_t abs_ms;
      const ExpiryBase when = ExpiryBaseOf(ctx);
      if (argv.size() != 4 || !ParseI64(argv[2], &n) ||
          !ExpiryMs(n, rule == Rule::kSetex ? 1000 : 1, when.ms, &abs_ms))
        return bad();
      SetWithAbs(out, argv[1], argv[3], abs_ms, when.flags);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kSetnx:
    case Rule::kHsetnx:
      if (root == nullptr || root->type != Type::kInteger) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      if (rule == Rule::kSetnx) {
        if (argv.size() != 3) return bad();
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"SET", argv[1], argv[2]});
      } else {
        if (argv.size() != 4) return bad();
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"HSET", argv[1], argv[2], argv[3]});
      }
      return ConvertOutcome::kRecorded;
    case Rule::kGetset:
      if (argv.size() != 3 || (!IsNull(reply) && (root == nullptr || !IsString(*root)))) return bad();
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"SET", argv[1], argv[2]});
      return ConvertOutcome::kRecorded;
    case Rule::kGetdel:
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      if (root == nullptr || !IsString(*root)) return bad();
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"DEL", argv[1]});
      return ConvertOutcome::kRecorded;
    case Rule::kGetex: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      if (root == nullptr || !IsString(*root)) return bad();
      if (argv.size() < 3) return ConvertOutcome::kNoEffect;
      // PERSIST, or expiry options of one kind, each may repeat: the last
      // value counts, as for SET.
      size_t expiry = 0;
      for (size_t i = 2; i < argv.size(); ++i) {
        if (EqualsIgnoreCase(argv[i], "persist")) continue;
        if (!IsExpiryOption(argv[i]) || i + 1 >= argv.size()) return bad();
        expiry = i++;
      }
      if (expiry == 0) {
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"PERSIST", argv[1]});
        return ConvertOutcome::kRecorded;
      }
      int64_t abs_ms;
      const ExpiryBase when = ExpiryBaseOf(ctx);
      if (ExpiryOption(argv, expiry, when.ms, &abs_ms) <= 0) return bad();
      Pexpireat(out, argv[1], abs_ms, IsRelativeExpiry(argv[expiry]) ? when.flags : 0);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kMset:
    case Rule::kMsetnx:
      if (argv.size() < 3 || argv.size() % 2 != 1) return bad();
      if (rule == Rule::kMsetnx) {
        if (root == nullptr || root->type != Type::kInteger) return bad();
        if (root->integer == 0) return ConvertOutcome::kNoEffect;
      }
      for (size_t i = 1; i + 1 < argv.size(); i += 2) {
        out.Emit(RecordOp::kIdempotent, 0, argv[i], {"SET", argv[i], argv[i + 1]});
      }
      return ConvertOutcome::kRecorded;
    case Rule::kIncr: {
      std::string_view v;
      if (root == nullptr || !Scalar(*root, &v) || !IsNumber(v) || argv.size() < 2) return bad();
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"SET", argv[1], v, "KEEPTTL"});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kHincr: {
      std::string_view v;
      if (root == nullptr || !Scalar(*root, &v) || !IsNumber(v) || argv.size() != 4) return bad();
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"HSET", argv[1], argv[2], v});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kZincrby: {
      std::string_view v;
      if (root == nullptr || !Scalar(*root, &v) || !IsNumber(v) || argv.size() != 4) return bad();
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"ZADD", argv[1], v, argv[3]});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kZadd: {
      // ZADD/GEOADD key [NX|XX] [GT|LT] [CH] [INCR] …: conditional forms
      // depend on the target's state; INCR's reply is the new score.
      bool conditional = false, incr = false;
      size_t i = 2;
      for (; i < argv.size(); ++i) {
        const std::string_view o = argv[i];
        if (EqualsIgnoreCase(o, "nx") || EqualsIgnoreCase(o, "xx") || EqualsIgnoreCase(o, "gt") ||
            EqualsIgnoreCase(o, "lt"))
          conditional = true;
        else if (EqualsIgnoreCase(o, "incr"))
          incr = true;
        else if (!EqualsIgnoreCase(o, "ch"))
          break;
      }
      if (incr && rule == Rule::kZadd && std::string_view(spec.name) == "zadd") {
        if (IsNull(reply)) return ConvertOutcome::kNoEffect;
        std::string_view v;
        // (A number: a reply out of step may hold a password, a review.)
        if (root == nullptr || !Scalar(*root, &v) || !IsNumber(v) || i + 2 != argv.size()) return bad();
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"ZADD", argv[1], v, argv[i + 1]});
        return ConvertOutcome::kRecorded;
      }
      if (conditional) return Default(spec, argv, out);
      out.EmitArgs(RecordOp::kIdempotent, 0, argv[1], argv);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kExpire:
    case Rule::kPexpire:
    case Rule::kExpireat:
    case Rule::kPexpireat: {
      if (root == nullptr || root->type != Type::kInteger || argv.size() < 3) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      const int64_t mul = (rule == Rule::kExpire || rule == Rule::kExpireat) ? 1000 : 1;
      const bool relative = rule == Rule::kExpire || rule == Rule::kPexpire;
      const ExpiryBase when = relative ? ExpiryBaseOf(ctx) : ExpiryBase{};
      int64_t abs_ms;
      if (!ParseI64(argv[2], &n) || !ExpiryMs(n, mul, when.ms, &abs_ms)) return bad();
      if (relative && n <= 0) {
        // Expired as it was set: the server deleted the key and replicates
        // a DEL (expire.c checkAlreadyExpired). So does this record: a write
        // that keeps the expiry and makes the key anew right after must not
        // be followed by this one (a review: EXPIRE h 0; HSET h f 1 lost h).
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"DEL", argv[1]});
        return ConvertOutcome::kRecorded;
      }
      Pexpireat(out, argv[1], abs_ms, when.flags);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kPersist:
      if (root == nullptr || root->type != Type::kInteger) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"PERSIST", argv[1]});
      return ConvertOutcome::kRecorded;
    case Rule::kDel: {
      if (root == nullptr || root->type != Type::kInteger) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      const std::string_view name = (spec.name[0] == 'u') ? "UNLINK" : "DEL";
      for (size_t i = 1; i < argv.size(); ++i) out.Emit(RecordOp::kIdempotent, 0, argv[i], {name, argv[i]});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kSpop: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      std::vector<std::string_view> args = {"SREM", argv[1]};
      // SPOP key answers a member; SPOP key count an array (a set in RESP3).
      if ((argv.size() == 2) != IsBulk(*root)) return bad();
      if (IsBulk(*root)) {
        args.push_back(root->str);
      } else {
        auto kids = Children(reply);
        if (!IsAggregate(*root)) return bad();
        for (auto& k : kids) {
          if (!IsBulk(k[0])) return bad();
          args.push_back(k[0].str);
        }
      }
      if (args.size() == 2) return ConvertOutcome::kNoEffect;
      out.EmitArgs(RecordOp::kIdempotent, 0, argv[1], args);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kZpop: {
      std::vector<std::string_view> members;
      if (!PoppedMembers(reply, &members)) return bad();
      if (members.empty()) return ConvertOutcome::kNoEffect;
      if (argv.size() == 2 && members.size() > 1) return bad();  // no count: one member at most
      std::vector<std::string_view> args = {"ZREM", argv[1]};
      args.insert(args.end(), members.begin(), members.end());
      out.EmitArgs(RecordOp::kIdempotent, 0, argv[1], args);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kBzpop: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      auto kids = Children(reply);
      if (kids.size() != 3 || !IsBulk(kids[0][0]) || !IsBulk(kids[1][0]) ||
          !IsRequestKey(spec, argv, kids[0][0].str))
        return bad();
      out.Emit(RecordOp::kIdempotent, 0, kids[0][0].str, {"ZREM", kids[0][0].str, kids[1][0].str});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kZmpop:
    case Rule::kBzmpop: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      std::string_view key;
      std::span<const Node> list;
      std::vector<std::string_view> members;
      if (!KeyAndList(reply, &key, &list) || !IsRequestKey(spec, argv, key) || !PoppedMembers(list, &members))
        return bad();
      if (members.empty()) return ConvertOutcome::kNoEffect;
      std::vector<std::string_view> args = {"ZREM", key};
      args.insert(args.end(), members.begin(), members.end());
      out.EmitArgs(RecordOp::kIdempotent, 0, key, args);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kLpop:
    case Rule::kRpop: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      size_t count = 0;
      // LPOP key answers an element; LPOP key count an array.
      if (IsBulk(*root) && argv.size() == 2)
        count = 1;
      else if (root->type == Type::kArray && argv.size() == 3)
        count = root->children;
      else
        return bad();
      TrimPopped(out, argv[1], rule == Rule::kLpop, count);
      return count ? ConvertOutcome::kRecorded : ConvertOutcome::kNoEffect;
    }
    case Rule::kBlpop:
    case Rule::kBrpop: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      auto kids = Children(reply);
      if (kids.size() != 2 || !IsBulk(kids[0][0]) || !IsRequestKey(spec, argv, kids[0][0].str)) return bad();
      TrimPopped(out, kids[0][0].str, rule == Rule::kBlpop, 1);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kLmpop:
    case Rule::kBlmpop: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      // [BLMPOP timeout] numkeys key… LEFT|RIGHT [COUNT n]
      const size_t numidx = rule == Rule::kLmpop ? 1 : 2;
      if (argv.size() <= numidx || !ParseI64(argv[numidx], &n) || n <= 0 ||
          numidx + 1 + static_cast<size_t>(n) >= argv.size())
        return bad();
      bool left;
      if (!ParseSide(argv[numidx + 1 + static_cast<size_t>(n)], &left)) return bad();
      std::string_view key;
      std::span<const Node> list;
      if (!KeyAndList(reply, &key, &list) || !IsRequestKey(spec, argv, key)) return bad();
      TrimPopped(out, key, left, list[0].children);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kLmove:
    case Rule::kBlmove:
    case Rule::kRpoplpush:
    case Rule::kBrpoplpush: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      if (!IsBulk(*root) || argv.size() < 3) return bad();
      bool from_left = false, to_left = true;
      if (rule == Rule::kLmove || rule == Rule::kBlmove) {
        if (argv.size() < 5 || !ParseSide(argv[3], &from_left) || !ParseSide(argv[4], &to_left)) return bad();
      }
      if (argv[1] == argv[2]) {
        // A rotation of one list: as a trim and a push, a one-element list
        // would be deleted in between and lose its TTL. The move itself is
        // exact on the same prior list.
        out.Emit(RecordOp::kOrdered, kExactFlags, argv[1],
                 {"LMOVE", argv[1], argv[1], from_left ? "LEFT" : "RIGHT", to_left ? "LEFT" : "RIGHT"});
        return ConvertOutcome::kRecorded;
      }
      TrimPopped(out, argv[1], from_left, 1);
      out.Emit(RecordOp::kOrdered, kExactFlags, argv[2], {to_left ? "LPUSH" : "RPUSH", argv[2], root->str});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kSmove:
      if (root == nullptr || root->type != Type::kInteger || argv.size() != 4) return bad();
      // Onto the same set, SMOVE changes nothing (it answers whether the
      // member is there); as a removal and an add, a one-member set would be
      // deleted in between and lose its TTL.
      if (root->integer == 0 || argv[1] == argv[2]) return ConvertOutcome::kNoEffect;
      out.Emit(RecordOp::kIdempotent, 0, argv[1], {"SREM", argv[1], argv[3]});
      out.Emit(RecordOp::kIdempotent, 0, argv[2], {"SADD", argv[2], argv[3]});
      return ConvertOutcome::kRecorded;
    case Rule::kXadd: {
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      if (!IsBulk(*root) || !IsStreamId(root->str)) return bad();
      // XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT n]] id field value …, the
      // options in any order (redis-py sends NOMKSTREAM after MAXLEN).
      std::vector<std::string_view> args(argv.begin(), argv.end());
      size_t i = 2;
      bool trims = false, approx = false;
      while (i < args.size()) {
        if (EqualsIgnoreCase(args[i], "nomkstream")) {
          ++i;
        } else if (EqualsIgnoreCase(args[i], "maxlen") || EqualsIgnoreCase(args[i], "minid")) {
          trims = true;
          ++i;
          if (i < args.size() && (args[i] == "=" || args[i] == "~")) approx = args[i++] == "~";
          ++i;  // threshold
        } else if (EqualsIgnoreCase(args[i], "limit")) {
          i += 2;
        } else {
          break;
        }
      }
      if (i >= args.size()) return bad();
      args[i] = root->str;  // the id the server assigned
      if (approx) {
        // An approximate trim removes whole nodes of the stream's tree,
        // whose sizes are the server's own (stream-node-max-entries): ship
        // it ordered and read the stream back.
        out.EmitArgs(RecordOp::kOrdered, kOrderedFlags, argv[1], args);
      } else if (trims) {
        // An exact trim (MAXLEN n, MINID id) leaves the same entries on a
        // replica that held the same stream: ordered, exact.
        out.EmitArgs(RecordOp::kOrdered, kExactFlags, argv[1], args);
      } else {
        out.EmitArgs(RecordOp::kIdempotent, 0, argv[1], args);
      }
      return ConvertOutcome::kRecorded;
    }
    case Rule::kXtrim: {
      // XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT n], answered with the
      // number of entries removed: none, nothing changed.
      if (root == nullptr || root->type != Type::kInteger || argv.size() < 4) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      // (The options come in any order: LIMIT n MAXLEN ~ t is approximate too.)
      bool approx = false;
      for (size_t i = 2; i + 1 < argv.size(); ++i) {
        if (EqualsIgnoreCase(argv[i], "maxlen") || EqualsIgnoreCase(argv[i], "minid"))
          approx |= argv[i + 1] == "~";
      }
      out.EmitArgs(RecordOp::kOrdered, approx ? kOrderedFlags : kExactFlags, argv[1], argv);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kXreadgroup: {
      // Nil: nothing delivered (a timeout, or nothing new), and no consumer
      // made either.
      if (IsNull(reply)) return ConvertOutcome::kNoEffect;
      if (root == nullptr || !IsAggregate(*root)) return bad();
      // XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key… id…:
      // replayed in order on a replica whose group is in the same state, it
      // delivers the same entries to the same consumer (and makes the same
      // consumers: one only where something is served), so it is exact, one
      // record per stream (COUNT counts per stream; each record orders one
      // key), without BLOCK so that a replica never waits. The replica's
      // clock would time the deliveries: an XCLAIM of the ids delivered,
      // with TIME and JUSTID (no delivery counted), gives them the source's.
      // The options come in any order before STREAMS (GROUP among them).
      std::vector<std::string_view> head(argv.begin(), argv.begin() + 1);
      std::string_view group, consumer;
      bool noack = false;
      size_t streams = 0;
      for (size_t i = 1; i < argv.size(); ++i) {
        if (EqualsIgnoreCase(argv[i], "group") && i + 2 < argv.size()) {
          head.insert(head.end(), argv.begin() + static_cast<std::ptrdiff_t>(i),
                      argv.begin() + static_cast<std::ptrdiff_t>(i) + 3);
          group = argv[i + 1];
          consumer = argv[i + 2];
          i += 2;
        } else if (EqualsIgnoreCase(argv[i], "block") && i + 1 < argv.size()) {
          ++i;  // and its timeout
        } else if (EqualsIgnoreCase(argv[i], "count") && i + 1 < argv.size()) {
          head.push_back(argv[i]);
          head.push_back(argv[++i]);
        } else if (EqualsIgnoreCase(argv[i], "streams")) {
          streams = i;
          break;
        } else {
          noack = noack || EqualsIgnoreCase(argv[i], "noack");
          head.push_back(argv[i]);
        }
      }
      const size_t named = streams == 0 ? 0 : argv.size() - streams - 1;
      if (named == 0 || named % 2 != 0 || group.empty()) return bad();
      // The entries delivered, per stream: [[key, [[id, fields]…]]…], or a
      // map key → entries (RESP3).
      std::vector<std::pair<std::string_view, std::span<const Node>>> served;
      const auto kids = Children(reply);
      if (root->type == Type::kMap) {
        for (size_t i = 0; i + 1 < kids.size(); i += 2) {
          if (!IsString(kids[i][0]) || !IsAggregate(kids[i + 1][0])) return bad();
          served.emplace_back(kids[i][0].str, kids[i + 1]);
        }
      } else {
        for (const auto& kid : kids) {
          std::string_view key;
          std::span<const Node> list;
          if (!KeyAndList(kid, &key, &list)) return bad();
          served.emplace_back(key, list);
        }
      }
      const size_t n = named / 2;
      // The deliveries are timed from the reply. The server timed them when
      // it ran the command: a reply held back behind a large one (or one
      // naming thousands of streams, timed entry by entry) leaves long after,
      // and then the group is read back. So is a blocking read answered
      // late: it may have blocked until a write served it, just before its
      // reply, or found data at once and had its reply held back (a review).
      // And a read naming a stream twice: a `>` read that found nothing is
      // left out of the reply, so which reads delivered what is unknown.
      constexpr uint64_t kDeliverySpanNs = 5'000'000;
      bool late = ctx.request_ns != 0 && ctx.request_ns <= ctx.capture_ns &&
                  ctx.capture_ns - ctx.request_ns > kDeliverySpanNs;
      if (!late && n > 1) {
        std::vector<std::string_view> names(argv.begin() + static_cast<std::ptrdiff_t>(streams) + 1,
                                            argv.begin() + static_cast<std::ptrdiff_t>(streams + 1 + n));
        std::sort(names.begin(), names.end());
        late = std::adjacent_find(names.begin(), names.end()) != names.end();
      }
      const uint16_t flags = late ? kOrderedFlags : kExactFlags;
      std::vector<std::string_view> args, claim;
      std::string at;
      // Streams with something delivered come in the order they were named.
      size_t next_served = 0;
      for (size_t k = 0; k < n; ++k) {
        const std::string_view key = argv[streams + 1 + k];
        const std::string_view id = argv[streams + 1 + n + k];
        args = head;
        args.insert(args.end(), {"STREAMS", key, id});
        out.EmitArgs(RecordOp::kOrdered, flags, key, args);
        std::span<const Node> list;
        if (next_served < served.size() && served[next_served].first == key)
          list = served[next_served++].second;
        // NOACK leaves new entries unpending; a history read (any id but >)
        // redelivers pending ones, NOACK or not.
        if (noack && id == ">") continue;
        claim.assign({"XCLAIM", key, group, consumer, "0"});
        if (!list.empty()) {
          for (const auto& entry : Children(list)) {
            const auto parts = Children(entry);
            if (parts.empty() || !IsString(parts[0][0])) return bad();
            // (A history read names a deleted entry with nil fields: it
            // stays pending, where an XCLAIM would drop it.)
            if (parts.size() > 1 && IsNull(parts[1])) continue;
            claim.push_back(parts[0][0].str);
          }
        }
        if (claim.size() == 5) continue;
        if (at.empty()) at = std::to_string(capture_ms);
        claim.insert(claim.end(), {"TIME", at, "JUSTID"});
        out.EmitArgs(RecordOp::kOrdered, flags, key, claim);
      }
      return ConvertOutcome::kRecorded;
    }
    case Rule::kDatabase: out.EmitArgs(RecordOp::kDatabase, 0, {}, argv); return ConvertOutcome::kRecorded;
    case Rule::kMove: {
      if (root == nullptr || root->type != Type::kInteger || argv.size() != 3) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      if (!ParseI64(argv[2], &n) || n < 0 || n > 0xfffe) return bad();
      // Ordered MOVE (replays exactly on an exact replica) and a read-back of
      // the key in the target db (repairs it where the replica was not).
      out.EmitArgs(RecordOp::kOrdered, kOrderedFlags, argv[1], argv);
      out.Readback(argv[1], static_cast<uint16_t>(n));
      return ConvertOutcome::kRecorded;
    }
    case Rule::kCopy: {
      // COPY src dst [DB n] [REPLACE], answered 1 when it copied.
      if (root == nullptr || root->type != Type::kInteger || argv.size() < 3) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      int64_t db = ctx.db;
      for (size_t i = 3; i + 1 < argv.size(); ++i) {
        if (EqualsIgnoreCase(argv[i], "db") && (!ParseI64(argv[i + 1], &db) || db < 0 || db > 0xfffe))
          return bad();
      }
      if (db == ctx.db) return Default(spec, argv, out);
      // Another db: the command runs here (it reads src here) and writes
      // dst there. Like MOVE: ordered COPY on src, and a read-back of dst
      // in the target db (the record that repairs a replica that differs).
      out.EmitArgs(RecordOp::kOrdered, kOrderedFlags, argv[1], argv);
      out.Readback(argv[2], static_cast<uint16_t>(db));
      return ConvertOutcome::kRecorded;
    }
    case Rule::kRenamenx:
      if (root == nullptr || root->type != Type::kInteger) return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;  // the target existed: nothing renamed
      return Default(spec, argv, out);
    case Rule::kPfcount:
      // Several keys are merged into a scratch copy: nothing is stored.
      if (root == nullptr || root->type != Type::kInteger) return bad();
      if (argv.size() != 2) return ConvertOutcome::kNoEffect;
      out.EmitArgs(RecordOp::kOrdered, kExactFlags, argv[1], argv);
      return ConvertOutcome::kRecorded;
    case Rule::kDebugPopulate:
      if (root == nullptr || root->type != Type::kSimpleString) return bad();
      switch (Populate(argv, out, kExactFlags)) {
        case -1: return bad();
        case 0: return ConvertOutcome::kNoEffect;
        default: return ConvertOutcome::kRecorded;
      }
    case Rule::kMigrate:
      // Its arguments may hold a password: read the keys back instead.
      if (root != nullptr && root->type == Type::kSimpleString && root->str == "NOKEY") {
        return ConvertOutcome::kNoEffect;
      }
      ReadbackWrite(spec, argv, ctx, sink);
      return ConvertOutcome::kRecorded;
    case Rule::kRestore: {
      // RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f],
      // answered +OK: the key holds the payload's value with that expiry
      // (or, the expiry already passed, is gone). With REPLACE and the
      // expiry absolute it leaves the same on a replica whatever the key
      // held there, applied once or twice (RESTORE-ASKING, a cluster's
      // migration, likewise). IDLETIME and FREQ only feed eviction.
      if (root == nullptr || root->type != Type::kSimpleString || argv.size() < 4) return bad();
      bool absttl = false;
      for (size_t i = 4; i < argv.size(); ++i) {
        if (EqualsIgnoreCase(argv[i], "absttl")) {
          absttl = true;
        } else if (EqualsIgnoreCase(argv[i], "idletime") || EqualsIgnoreCase(argv[i], "freq")) {
          ++i;
        } else if (!EqualsIgnoreCase(argv[i], "replace")) {
          return bad();
        }
      }
      int64_t abs_ms = 0;
      if (!ParseI64(argv[2], &n) || n < 0) return bad();
      const ExpiryBase when = absttl || n == 0 ? ExpiryBase{} : ExpiryBaseOf(ctx);
      if (n != 0 && !MulAdd(n, 1, when.ms, &abs_ms)) {
        // Redis adds the ttl to its clock as it is, and the sum wraps: the
        // key counts as expired, and is gone (a review: RESTORE k
        // 9223372036854775807 … REPLACE, answered +OK, was taken for a reply
        // to another request).
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"DEL", argv[1]});
        return ConvertOutcome::kRecorded;
      }
      const std::string at = std::to_string(abs_ms);
      out.Emit(RecordOp::kIdempotent, when.flags, argv[1],
               {"RESTORE", argv[1], at, argv[3], "REPLACE", "ABSTTL"});
      return ConvertOutcome::kRecorded;
    }
    case Rule::kScript:
      // A script that calls MIGRATE is not shipped: its arguments or body
      // may hold the other server's password, and replayed it would move
      // the replica's keys to a third server (a review). Its keys are read
      // back, as MIGRATE's own are. So are FCALLs once a library was held
      // back for it (their arguments held its password: a review).
      if (CallsMigrate(argv) || (ctx.functions_held_back && IsFcall(spec))) {
        ReadbackWrite(spec, argv, ctx, sink);
        return ConvertOutcome::kRecorded;
      }
      return Default(spec, argv, out);
    case Rule::kExact:
      if (argv.size() < 2) return bad();
      out.EmitArgs(RecordOp::kOrdered, kExactFlags, argv[1], argv);
      return ConvertOutcome::kRecorded;
    case Rule::kPush:
      // The list's new length: 0 (LPUSHX/RPUSHX on no list) changed nothing;
      // exactly the number pushed means the list was empty before, so it
      // now holds exactly these elements.
      if (argv.size() < 3 || root == nullptr || root->type != Type::kInteger || root->integer < 0)
        return bad();
      if (root->integer == 0) return ConvertOutcome::kNoEffect;
      if (root->integer == static_cast<int64_t>(argv.size() - 2)) {
        // The whole list is known: preceded by DEL (a no-op on the source,
        // which held no list), the push leaves exactly these elements on a
        // replica whatever it held there (a stale key, or one a record with
        // a guessed db put there: a review).
        out.Emit(RecordOp::kIdempotent, 0, argv[1], {"DEL", argv[1]});
        out.EmitArgs(RecordOp::kOrdered, kCreatesKey, argv[1], argv);
      } else {
        out.EmitArgs(RecordOp::kOrdered, kExactFlags, argv[1], argv);
      }
      return ConvertOutcome::kRecorded;
    case Rule::kEditReadback:
      // LINSERT answers -1 (no pivot) or 0 (no list) when it changed nothing.
      if (argv.size() < 3 || root == nullptr || root->type != Type::kInteger) return bad();
      if (root->integer <= 0 && EqualsIgnoreCase(argv[0], "LINSERT")) return ConvertOutcome::kNoEffect;
      out.EmitArgs(RecordOp::kOrdered, kOrderedFlags, argv[1], argv);
      return ConvertOutcome::kRecorded;
    case Rule::kExactKey: {
      // As kExact, with the one key where the key specs say (XGROUP CREATE key …).
      std::vector<KeyRef> keys;
      FindKeys(spec, argv, &keys);
      if (keys.size() != 1) return bad();
      out.EmitArgs(RecordOp::kOrdered, kExactFlags, argv[keys[0].arg], argv);
      return ConvertOutcome::kRecorded;
    }
    case Rule::kFunctionLoad: {
      // FUNCTION LOAD [REPLACE] code, answered with the library name: ship
      // it with REPLACE so that applying it twice (or over an older version
      // of the library on the target) succeeds and leaves this code.
      if (root == nullptr || !IsString(*root) || argv.size() < 3) return bad();
      // Not a library that calls MIGRATE (see kScript): its FCALLs then fail
      // on the target, and their keys are read back.
      if (CallsMigrate(argv)) return ConvertOutcome::kRecorded;
      out.Emit(RecordOp::kDatabase, 0, {}, {"FUNCTION", "LOAD", "REPLACE", argv.back()});
      return ConvertOutcome::kRecorded;
    }
  }
  return Default(spec, argv, out);
}

}  // namespace kvf::resp
