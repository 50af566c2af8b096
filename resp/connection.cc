// Pairing state machine for one connection: see connection.h and docs/resp.md
// (section "Pairing") for the rules, in particular what happens after a gap.
#include "resp/connection.h"

#include <algorithm>
#include <iterator>
#include <optional>
#include <utility>
#include <cctype>
#include <charconv>

#include "resp/ambiguity.h"
#include "resp/client_list.h"
#include "resp/convert.h"
#include "resp/renames.h"

namespace kvf::resp {

namespace {

bool IsError(const Node& n) {
  return n.type == Type::kError || n.type == Type::kBulkError;
}

bool ParseI64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A RESP2 pub/sub message: *3 message channel payload, *4 pmessage pattern
// channel payload, *3 smessage channel payload.
bool IsPubSubMessage(std::span<const Node> reply) {
  if (reply.size() < 2 || reply[0].type != Type::kArray || reply[1].type != Type::kBulkString) return false;
  const std::string_view kind = reply[1].str;
  return (reply[0].children == 3 && (kind == "message" || kind == "smessage")) ||
         (reply[0].children == 4 && kind == "pmessage");
}

// The kind of a RESP2 (un)subscribe confirmation, *3 kind channel-or-nil
// count ("subscribe", "punsubscribe"…); empty for any other reply.
std::string_view ConfirmationKind(std::span<const Node> reply) {
  if (reply.size() != 4 || reply[0].type != Type::kArray || reply[0].children != 3 ||
      reply[1].type != Type::kBulkString || reply[3].type != Type::kInteger) {
    return {};
  }
  return reply[1].str;
}

// A RESP2 confirmation that leaves the connection subscribed: a
// (p|s)subscribe one with a count of at least 1.
bool IsSubscribeConfirmation(std::span<const Node> reply) {
  const std::string_view kind = ConfirmationKind(reply);
  return (kind == "subscribe" || kind == "psubscribe" || kind == "ssubscribe") && reply[3].integer >= 1;
}

bool IsReplayerName(std::string_view name) {
  return name.substr(0, 8) == "kvferry:";
}

constexpr size_t kReclaimSpans = 4096;
// Requests PredictSubscribed looks through at most.
constexpr size_t kMaxPredictScan = 1024;

enum class ScriptKind : uint8_t { kNone, kEval, kEvalsha };

[[gnu::always_inline]] inline ScriptKind ScriptKindOf(const CommandSpec* spec) {
  if (spec == nullptr || spec->name[0] != 'e') return ScriptKind::kNone;  // (per request: no guard)
  static const CommandSpec* const eval = LookupCommandName("eval");
  static const CommandSpec* const evalsha = LookupCommandName("evalsha");
  if (spec == eval) return ScriptKind::kEval;
  if (spec == evalsha) return ScriptKind::kEvalsha;
  return ScriptKind::kNone;
}

// An EVAL or EVALSHA whose body (its own, or the one `scripts` knows for
// the digest), or an FCALL whose library, may run FLUSHDB, FLUSHALL or
// SWAPDB: database-wide, as its record is (DbsChangedBy).
bool ScriptChangesDbs(const CommandSpec* spec, std::span<const std::string_view> args,
                      const ScriptCache& scripts) {
  if (spec->name[0] == 'f') [[unlikely]] {  // (per request: no guard)
    if (args.size() < 2 || !IsFcall(*spec)) return false;
    DbSet d;
    return DbsChangedByNames(scripts.DatabaseWideNamesOf(args[1]), 0, &d);
  }
  const ScriptKind kind = ScriptKindOf(spec);
  if (kind == ScriptKind::kNone || args.size() < 2) return false;
  DbSet d;
  if (kind == ScriptKind::kEval) return ScriptDbsChanged(args[1], 0, &d);
  const std::shared_ptr<const std::string> body = scripts.Find(args[1]);
  return body != nullptr && ScriptDbsChanged(*body, 0, &d);
}

// A refusal INFO commandstats counts under no command: Redis 7.0 counts a
// rejected call on the command it looked up, and finds none for a
// subcommand it does not know (CLIENT SETINFO, which node-redis and
// ioredis send on every connect, refused by 7.0: a review saw decode count
// it rejected under CLIENT where the server had no cmdstat_client). (An
// unknown command is counted under `unknown`, which no server row has.)
bool CountedNowhere(std::string_view error) {
  // ("ERR unknown subcommand or wrong number of arguments for 'GET'" is
  // what a subcommand that ran answers: a failed call, counted. A review.)
  return error.starts_with("ERR unknown subcommand '");
}

// EVAL or EVAL_RO: the server caches the body it names (OnRequest).
[[gnu::always_inline]] inline bool IsEvalOfABody(const CommandSpec* spec) {
  if (spec == nullptr || spec->name[0] != 'e') return false;  // (per request: no guard)
  static const CommandSpec* const eval = LookupCommandName("eval");
  static const CommandSpec* const eval_ro = LookupCommandName("eval_ro");
  return spec == eval || spec == eval_ro;
}

}  // namespace

std::string KeylessUnconfirmedNote(uint64_t n) {
  return std::to_string(n) +
         " database-wide write(s) (FLUSHDB, FLUSHALL, SWAPDB, FUNCTION…) were not shipped: no reply "
         "confirmed them, and their connections' requests were not proved in step there (after lost "
         "client bytes, on a connection joined mid-stream, where each may be text inside a value), or "
         "the server may have refused or never run them (while the connection was a subscriber or "
         "MONITOR; pipelined behind a blocking command never answered, or behind a CLIENT KILL that may "
         "have closed its own connection); if the source did run one, the "
         "replica differs until a consistency check";
}

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kApplied: return "applied";
    case Outcome::kNoEffect: return "no_effect";
    case Outcome::kRejected: return "rejected";
    case Outcome::kReadOnly: return "read_only";
    case Outcome::kUnpaired: return "unpaired";
    case Outcome::kReplayer: return "replayer";
    case Outcome::kScriptUnknown: return "script_unknown";
    case Outcome::kCount: break;
  }
  return "?";
}

namespace {
// Every counter, once: the sums, the differences and the names go by it.
struct StatField {
  const char* name;
  uint64_t ConnectionStats::*member;
};
constexpr StatField kStatFields[] = {
    {"requests", &ConnectionStats::requests},
    {"replies", &ConnectionStats::replies},
    {"reads", &ConnectionStats::reads},
    {"writes_applied", &ConnectionStats::writes_applied},
    {"writes_no_effect", &ConnectionStats::writes_no_effect},
    {"writes_rejected", &ConnectionStats::writes_rejected},
    {"writes_unacked", &ConnectionStats::writes_unacked},
    {"writes_cut", &ConnectionStats::writes_cut},
    {"replayer_writes", &ConnectionStats::replayer_writes},
    {"script_unknown", &ConnectionStats::script_unknown},
    {"script_unknown_keyless", &ConnectionStats::script_unknown_keyless},
    {"scripts_not_shipped", &ConnectionStats::scripts_not_shipped},
    {"libraries_held_back", &ConnectionStats::libraries_held_back},
    {"fcall_unknown_keyless", &ConnectionStats::fcall_unknown_keyless},
    {"scripts_failed_may_flush", &ConnectionStats::scripts_failed_may_flush},
    {"records", &ConnectionStats::records},
    {"transactions", &ConnectionStats::transactions},
    {"exec_aborted", &ConnectionStats::exec_aborted},
    {"watch_aborted", &ConnectionStats::watch_aborted},
    {"unpaired_replies", &ConnectionStats::unpaired_replies},
    {"unpaired_requests", &ConnectionStats::unpaired_requests},
    {"never_ran", &ConnectionStats::never_ran},
    {"connections_refused", &ConnectionStats::connections_refused},
    {"bad_shapes", &ConnectionStats::bad_shapes},
    {"unknown_commands", &ConnectionStats::unknown_commands},
    {"keyless_unconfirmed", &ConnectionStats::keyless_unconfirmed},
    {"subscriber_doubts", &ConnectionStats::subscriber_doubts},
    {"skipped_before_reset", &ConnectionStats::skipped_before_reset},
    {"pushes", &ConnectionStats::pushes},
    {"messages", &ConnectionStats::messages},
    {"replication_links", &ConnectionStats::replication_links},
    {"writes_oversized", &ConnectionStats::writes_oversized},
    {"oversized_lost", &ConnectionStats::oversized_lost},
    {"parse_errors", &ConnectionStats::parse_errors},
    {"gaps", &ConnectionStats::gaps},
    {"gap_bytes", &ConnectionStats::gap_bytes},
    {"gaps_in_values", &ConnectionStats::gaps_in_values},
    {"desyncs", &ConnectionStats::desyncs},
    {"overflows", &ConnectionStats::overflows},
    {"ignored_bytes", &ConnectionStats::ignored_bytes},
    {"tls_connections", &ConnectionStats::tls_connections},
    {"db_proven_by_server", &ConnectionStats::db_proven_by_server},
    {"became_replica", &ConnectionStats::became_replica},
    {"redirected", &ConnectionStats::redirected},
    {"lua_debug_sessions", &ConnectionStats::lua_debug_sessions},
    {"oom_refused", &ConnectionStats::oom_refused},
    {"shutdowns", &ConnectionStats::shutdowns},
};
static_assert(sizeof(ConnectionStats) == std::size(kStatFields) * sizeof(uint64_t),
              "a counter added to ConnectionStats is listed in kStatFields");
}  // namespace

ConnectionStats& ConnectionStats::operator+=(const ConnectionStats& o) {
  for (const StatField& f : kStatFields) this->*f.member += o.*f.member;
  return *this;
}

void ConnectionStats::AddGrowth(const ConnectionStats& now, const ConnectionStats& before) {
  for (const StatField& f : kStatFields) this->*f.member += now.*f.member - before.*f.member;
}

std::vector<std::pair<std::string, uint64_t>> ConnectionStats::Named() const {
  std::vector<std::pair<std::string, uint64_t>> named;
  named.reserve(std::size(kStatFields));
  for (const StatField& f : kStatFields) named.emplace_back(f.name, this->*f.member);
  return named;
}

namespace {
const CommandSpec* FunctionFlushSpec() {
  static const CommandSpec* const spec = LookupCommandName("function|flush");
  return spec;
}

size_t ArgBytes(std::span<const std::string_view> args) {
  size_t n = 0;
  for (std::string_view a : args) n += a.size();
  return n;
}
}  // namespace

Connection::Kind Connection::KindOf(const CommandSpec* spec) {
  if (spec == nullptr) return Kind::kPlain;
  static const std::vector<Kind> by_index = [] {
    std::vector<Kind> v(kCommandTableSize, Kind::kPlain);
    const std::pair<const char*, Kind> special[] = {
        {"auth", Kind::kAuth},
        {"multi", Kind::kMulti},
        {"exec", Kind::kExec},
        {"discard", Kind::kDiscard},
        {"select", Kind::kSelect},
        {"hello", Kind::kHello},
        {"reset", Kind::kReset},
        {"monitor", Kind::kMonitor},
        {"subscribe", Kind::kSubscribe},
        {"psubscribe", Kind::kSubscribe},
        {"ssubscribe", Kind::kSubscribe},
        {"unsubscribe", Kind::kUnsubscribe},
        {"punsubscribe", Kind::kUnsubscribe},
        {"sunsubscribe", Kind::kUnsubscribe},
        {"client|setname", Kind::kSetName},
        {"client|reply", Kind::kClientReply},
        {"script|load", Kind::kScriptLoad},
        {"sync", Kind::kSync},
        {"psync", Kind::kSync},
        {"replconf", Kind::kReplconf},
        {"quit", Kind::kQuit},
    };
    for (size_t i = 0; i < kCommandTableSize; ++i) {
      const CommandSpec& s = kCommandTable[i];
      if (ConvertsAsWrite(s)) v[i] = Kind::kWrite;
      for (const auto& [name, kind] : special) {
        if (std::string_view(s.name) == name) v[i] = kind;
      }
    }
    return v;
  }();
  const size_t i = TableIndex(spec);
  if (i < by_index.size()) return by_index[i];
  return spec->Has(kCmdWrite) ? Kind::kWrite : Kind::kPlain;  // a module's command (command_info.h)
}

Connection::Connection(RecordSink* sink, ConnectionOptions options)
    : sink_(sink),
      opts_(options),
      requests_(Parser::Mode::kRequest, options.request_limits),
      replies_(Parser::Mode::kReply, options.reply_limits) {
  // A read's reply is never looked into past its root: walk it only.
  // An inline client (telnet, nc, a health check) resyncs at its next
  // command after a gap or a join, as a multibulk one does.
  requests_.SetInlineCommandPredicate(
      [](std::string_view word) { return LookupCommandName(word) != nullptr; });
  replies_.SetSkimPredicate(
      [](const void* self) { return static_cast<const Connection*>(self)->NextReplyUnread(); }, this);
  no_unseen_multi_ = !opts_.joined_mid_stream;
  if (opts_.scripts == nullptr) own_scripts_ = std::make_unique<ScriptCache>();
  scripts_ = opts_.scripts != nullptr ? opts_.scripts : own_scripts_.get();
  if (opts_.joined_mid_stream) {
    // Nothing before the join is known: not the db, not the requests whose
    // replies are still to come. Start out of sync (see docs/resp.md).
    ForgetDb();
    subs_known_ = false;
    desync_ = true;
    requests_unsure_ = true;
    ++stats_.desyncs;
    requests_.OnGap();
    replies_.OnGap();
  }
}

std::span<const std::string_view> Connection::Args(const Pending& p) {
  argv_.clear();
  for (uint32_t i = 0; i < p.argc; ++i) {
    const auto& s = spans_[p.arg_begin + i];
    argv_.emplace_back(arena_.data() + s.first, s.second);
  }
  return argv_;
}

uint16_t Connection::FlagsFor(bool in_tx) {
  uint16_t f = 0;
  if (in_tx) f |= kInTransaction;
  if (!db_known_) f |= kUnknownDb;
  if (after_gap_left_ > 0) {
    f |= kAfterGap | kNeedsReadback;
    --after_gap_left_;
  }
  return f;
}

namespace {
// A TLS record header: content type (change_cipher_spec, alert, handshake,
// application_data), then version 3.x. No RESP message starts so: a request
// is an array or an inline command (never a control byte), a reply's first
// byte is a RESP type.
bool TlsRecordHeader(ByteSpan b, size_t at, size_t* record_len) {
  if (b.size() < at + 5 || b[at] < 0x14 || b[at] > 0x17 || b[at + 1] != 0x03 || b[at + 2] > 0x04)
    return false;
  *record_len = (size_t{b[at + 3]} << 8) | b[at + 4];
  return *record_len <= (1u << 14) + 2048;  // TLSCiphertext limit
}

// `at_start`: these are the first bytes of the direction. Otherwise (a
// capture that joined the connection, or lost its first bytes) they may be
// any part of a binary value: a record must fill the chunk exactly (one
// record per segment, as request/response TLS sends them), or a second
// record header must follow the first.
bool LooksLikeTls(ByteSpan b, bool at_start) {
  size_t len = 0;
  if (!TlsRecordHeader(b, 0, &len)) return false;
  if (at_start || 5 + len == b.size()) return true;  // or one record exactly filling the chunk
  size_t next = 0;
  return TlsRecordHeader(b, 5 + len, &next);
}
}  // namespace

void Connection::OnData(Direction dir, ByteSpan bytes, uint64_t capture_ns) {
  last_ts_ = capture_ns;
  if (dir == Direction::kClientToServer) {
    chunk_offset_ = client_offset_;
    client_offset_ += bytes.size();
  }
  Consume(dir, bytes, capture_ns);
  if (hold_watch_) [[unlikely]]
    UpdateHold(capture_ns);
  if (library_holds_ != 0) [[unlikely]]
    SyncLibraryHolds();
}

void Connection::Consume(Direction dir, ByteSpan bytes, uint64_t capture_ns) {
  if (!db_known_ && db_unknown_since_ns_ == 0) [[unlikely]]
    db_unknown_since_ns_ = capture_ns;
  bool& first = first_bytes_[static_cast<int>(dir)];
  if (first) {
    // A Redis with TLS on (tls-port) seen on the wire: the connection is
    // told apart and ignored instead of being read as garbled RESP.
    first = false;
    if (!encrypted_ && LooksLikeTls(bytes, !opts_.joined_mid_stream && !gap_seen_)) {
      encrypted_ = true;
      ++stats_.tls_connections;
    }
  }
  if (encrypted_) {
    stats_.ignored_bytes += bytes.size();
    return;
  }
  if (ignored_ && (dir == Direction::kServerToClient || requests_.ended())) {
    stats_.ignored_bytes += bytes.size();
    return;
  }
  Parser& parser = dir == Direction::kClientToServer ? requests_ : replies_;
  if (dir == Direction::kClientToServer && !(first_request_of_chunk_ && requests_.HasPartial())) {
    // (A chunk that goes on with a message begun at the start of a chunk
    // that completed no request is still that message's first chunk: a
    // request larger than a segment, or a client that sends a large value
    // with a send of its own, keeps where and when it began.)
    first_request_of_chunk_ = true;
    chunk_start_ = requests_.AtBoundary()   ? ChunkStart::kBoundary
                   : requests_.HasPartial() ? ChunkStart::kCut
                                            : ChunkStart::kSeeking;
    chunk_skipped_ = requests_.skipped_bytes();
    chunk_ts_ = capture_ns;
  }
  parser.Feed(bytes);
  for (;;) {
    const ParseStatus s = parser.Next();
    if (s == ParseStatus::kNeedMore) break;
    if (s == ParseStatus::kError) {
      ++stats_.parse_errors;
      parser.Resync();
      if (dir == Direction::kClientToServer) requests_unsure_ = true;
      EnterDesync();
      continue;
    }
    if (dir == Direction::kClientToServer) {
      std::span<const std::string_view> args = parser.args();
      if (HaveCommandRenames()) [[unlikely]]
        args = WithSourceCommandName(args, &renamed_args_);
      if (ignored_) {
        OnIgnoredRequest(args, capture_ns);
      } else {
        OnRequest(args, capture_ns);
      }
    } else {
      OnReply(parser.nodes(), capture_ns);
      if (ignored_) {
        // The rest of this chunk (and the replies from here on) is pub/sub
        // or MONITOR traffic.
        parser.OnGap();
        return;
      }
    }
  }
}

void Connection::OnFin(Direction dir, uint64_t peer_acked) {
  // A review: pooled connections closed by the server's idle `timeout`,
  // then a FLUSHALL sent on one (answered by a RST) emptied the replica.
  // By the FIN's acknowledgement, not by capture order: a mirror that
  // delays one direction puts the FIN before requests the server had read
  // (a second review lost 4 writes that ran), or after one it never got.
  // Requests the server had whole and left unanswered may have run.
  if (dir != Direction::kServerToClient) return;
  server_fin_acked_ = peer_acked != UINT64_MAX ? peer_acked : client_offset_;
  while (!pending_.empty() && pending_.back().chunk_offset >= server_fin_acked_) {
    if (pending_.back().kind != Kind::kIgnoreMark) ++stats_.never_ran;
    if (pending_.back().holds_library) SettleLibrary(false);
    pending_.pop_back();
  }
  if (hold_watch_) UpdateHold(last_ts_);
}

void Connection::OnGap(Direction dir, uint64_t missing) {
  if (dir == Direction::kClientToServer) client_offset_ += missing;
  ++stats_.gaps;
  stats_.gap_bytes += missing;
  gap_seen_ = true;
  if (encrypted_) return;
  if (dir == Direction::kClientToServer ? AbsorbRequestGap(missing) : AbsorbReplyGap(missing)) {
    // Inside one value: the connection stays in step, nothing else lost.
    ++stats_.gaps_in_values;
    Consume(dir, ByteSpan(), last_ts_);  // a message the gap ended, before any reply comes
    if (hold_watch_) [[unlikely]]
      UpdateHold(last_ts_);
    if (library_holds_ != 0) [[unlikely]]
      SyncLibraryHolds();
    return;
  }
  if (ignored_) {
    // Replies are not read; requests are (OnIgnoredRequest), and a write
    // the gap cuts is read back as there (a review lost a large SET cut on
    // a connection ignored after a subscriber's lost reply).
    if (dir == Direction::kClientToServer) {
      ReadBackCut();  // (out of step too: a false key, text inside a value, read back is harmless)
      requests_.OnGap();
      requests_unsure_ = true;
      ForgetDb();
      ForgetRequestTransaction();
    }
    return;
  }
  if (dir == Direction::kClientToServer) {
    ReadBackCut();  // (out of step too: a false key, text inside a value, read back is harmless)
    requests_.OnGap();
    requests_unsure_ = true;
    ForgetDb();  // a SELECT may have been lost
    ForgetRequestTransaction();
    reply_off_ = skip_next_ = false;
  } else {
    replies_.OnGap();
  }
  EnterDesync();
  if (hold_watch_) UpdateHold(last_ts_);
  if (library_holds_ != 0) [[unlikely]]
    SyncLibraryHolds();  // (a desync drops what is pending: it may have run)
}

bool Connection::AbsorbRequestGap(uint64_t missing) {
  if (desync_ || requests_unsure_ || ignored_) return false;
  const size_t at = requests_.GapInsideBulk(missing);
  if (at == Parser::kNoBulk) return false;
  if (at != Parser::kElidedBody) {
    // The value of a write (its keys read back once it is answered) or of
    // a read. Not the command's name, nor an argument of anything whose
    // arguments change the connection (SELECT, CLIENT REPLY, HELLO…) or a
    // container's subcommand: those lose what they did, as a gap does.
    std::span<const std::string_view> args = requests_.PartialArgs();
    if (at < 2 || args.size() + 1 != at) return false;
    if (HaveCommandRenames()) [[unlikely]]
      args = WithSourceCommandName(args, &renamed_args_);
    const CommandSpec* spec = LookupCommand(args);
    // A blocking command's arguments say whether it blocks (XREAD's BLOCK:
    // what is pipelined behind it may never run), MOVE's and COPY's which db
    // they write (a review: both lost unflagged once elided).
    if (spec == nullptr || spec->Has(kCmdBlocking)) return false;
    static const CommandSpec* const move = LookupCommandName("move");
    static const CommandSpec* const copy = LookupCommandName("copy");
    if (spec == move || spec == copy) return false;
    const Kind kind = KindOf(spec);
    if (kind == Kind::kWrite) {
      // A value, not a key: the write's keys are then read back. A
      // key-less write (SWAPDB, FUNCTION LOAD, EVAL … 0) is shipped whole or
      // not at all, and one whose keys move with its arguments (scripts,
      // numkeys, STORE) may hold keys past the hole; both take the path
      // below (a review lost a DEL whose second key a gap cut, unflagged).
      if (spec->num_specs == 0 || spec->Has(kCmdMovablekeys)) return false;
      for (size_t i = 0; i < spec->num_specs; ++i) {
        if (spec->specs[i].begin != KeyBegin::kIndex || spec->specs[i].find != KeyFind::kRange) return false;
      }
      std::vector<std::string_view> argv(args.begin(), args.end());
      argv.resize(requests_.PartialArgc());  // where its keys are follows from their count alone
      std::vector<KeyRef> keys;
      FindKeys(*spec, argv, &keys);
      if (keys.empty() ||
          std::any_of(keys.begin(), keys.end(), [&](const KeyRef& k) { return k.arg + 1 == at; }))
        return false;
    } else if (!(kind == Kind::kPlain && spec->Has(kCmdReadonly))) {
      return false;
    }
  }
  return requests_.AbsorbGap(missing);
}

bool Connection::AbsorbReplyGap(uint64_t missing) {
  // A reply's value: its elements still pair, and a write's keys are read
  // back (Handle, as for a value too large to hold). Only the answer of a
  // read, or of a write with keys to read back: a key-less write (a
  // review's EVAL … 0 whose answer lost bytes) is shipped whole instead,
  // through the path below.
  if (desync_ || ignored_ || pubsub_ || monitor_ || awaiting_reset_ || pending_.empty()) return false;
  const Pending& front = pending_.front();
  if (!NextReplyUnread()) {
    if (front.kind != Kind::kWrite || front.no_reply || front.confirm_only || front.spec == nullptr)
      return false;
    std::vector<KeyRef> keys;
    if (!FindKeys(*front.spec, Args(front), &keys) || keys.empty()) return false;
  }
  return replies_.AbsorbGap(missing);
}

void Connection::ReadBackCut() {
  // A request the gap cuts: its name and keys may have come whole before
  // the hole, the rest of a large value lost (a review lost such SETs, 0.3
  // to 1.5 MB on a lossy mirror, without a record naming their keys). The
  // keys that came whole are read back, whether it ran or not; keys in or
  // past the hole, and a key-less write, are as lost as a request wholly in
  // a hole.
  std::span<const std::string_view> args = requests_.PartialArgs();
  if (args.empty() || quit_) return;
  if (HaveCommandRenames()) [[unlikely]]
    args = WithSourceCommandName(args, &renamed_args_);
  const CommandSpec* spec = LookupCommand(args);
  if (spec == nullptr || KindOf(spec) != Kind::kWrite) return;
  if (replayer_) {
    ++stats_.replayer_writes;
    return;
  }
  // In the db of the requests before it, still waiting (read back after
  // this): a SELECT among them may run, or not (a guess: unknown_db). One
  // queued in a transaction counts at its EXEC, none at a DISCARD (a review:
  // MULTI SELECT 3 DISCARD, then the cut SET, was read back in db 3); the
  // cut request itself, queued too, runs after the queued SELECTs.
  uint16_t db = db_;
  bool db_known = db_known_;
  bool in_tx = in_multi_ || !multi_queue_.empty();
  std::optional<uint16_t> tx_db;
  auto follow = [&](const Pending& q) {
    if (MayChangeDb(q)) db_known = false;
    switch (q.kind) {
      case Kind::kMulti:
        in_tx = true;
        tx_db.reset();
        break;
      case Kind::kSelect:
        if (q.param < 0) break;
        if (in_tx) {
          tx_db = static_cast<uint16_t>(q.param);
        } else {
          db = static_cast<uint16_t>(q.param);
        }
        break;
      case Kind::kExec:
        if (tx_db) db = *tx_db;
        [[fallthrough]];
      case Kind::kDiscard:
        in_tx = false;
        tx_db.reset();
        break;
      case Kind::kReset:
        db = 0;
        in_tx = false;
        tx_db.reset();
        break;
      default: break;
    }
  };
  for (const Pending& q : multi_queue_) follow(q);
  for (const Pending& q : pending_) follow(q);
  if (in_tx && tx_db) db = *tx_db;
  ConvertContext ctx;
  ctx.db = db;
  ctx.capture_ns = last_ts_;
  ctx.request_ns = RecordView::kUnansweredRequest;  // it may run after the hole
  ctx.flags = static_cast<uint16_t>(kAfterGap | (db_known ? 0 : kUnknownDb));
  ctx.connection_id = opts_.connection_id;
  const size_t n = ReadbackKeysOfCut(*spec, args, ctx, sink_);
  stats_.records += n;
  if (n > 0) ++stats_.writes_cut;
}

void Connection::OnClose(CloseReason, uint64_t ts) {
  last_ts_ = std::max(last_ts_, ts);
  DropSubConfirms();
  // A transaction whose EXEC was sent may have run though its reply never
  // came (the client killed, or closed by the server's output limit while
  // the EXEC array was stuck behind a large reply; the capture stopped):
  // its queued writes are read back, before the requests after them.
  const auto exec =
      std::find_if(pending_.begin(), pending_.end(), [](const Pending& p) { return p.kind == Kind::kExec; });
  // Each in the db selected before it: a SELECT among them may have run
  // (the db after it is then a guess).
  // (No kAfterGap: nothing was lost before them.)
  // A transaction whose MULTI was only inferred from +QUEUED answers, and
  // that no EXEC ends, is dropped (DropInferredMulti reads back its script
  // calls).
  if (exec != pending_.end()) {
    for (const Pending& q : multi_queue_) ReadBack(q, false, 0);
  } else if (multi_inferred_) {
    // No EXEC sent: anything queued never ran (a review: a queued FLUSHDB
    // was shipped), but a script's +QUEUED may have been its own answer.
    DropInferredMulti();
  }
  if (exec == pending_.end() && !multi_inferred_) NeverLoaded(multi_queue_);  // no EXEC: never ran
  if (quit_answered_) {
    // Everything still pending was sent behind the QUIT: none of it ran.
    stats_.never_ran += pending_.size();
    NeverLoaded(pending_);
    pending_.clear();
  }
  // Behind a blocking command never answered, nothing ran: Redis reads no
  // more of a blocked client's requests, and drops them when it goes. Its
  // key-less writes are not shipped (a review: a FLUSHDB pipelined behind
  // a BLPOP, the client then closed, emptied the replica alone).
  // Likewise behind a CLIENT KILL that may have killed this connection
  // (answered, and nothing answered since): Redis closes a client that
  // kills itself after the reply (a review: CLIENT KILL SKIPME no ID <own>
  // + FLUSHDB emptied the replica).
  bool blocked = kill_answered_;
  if (silenced_shutdown_ns_ != 0 && last_reply_ts_ <= silenced_shutdown_ns_) [[unlikely]] {
    // A SHUTDOWN under CLIENT REPLY OFF or SKIP, and no reply since: the
    // server exited, and nothing after it ran (a review: a FLUSHALL behind
    // it was shipped).
    ++stats_.shutdowns;
    blocked = true;
  }
  for (const Pending& p : pending_) {
    ++stats_.unpaired_requests;
    if (blocked && p.kind == Kind::kWrite && KeylessShipped(p.spec)) {
      KeylessUnconfirmed(p.spec);
      continue;
    }
    // A SHUTDOWN never answered: the server exited, and nothing after it
    // ran (a review restarted a source so, and nothing was said).
    if (p.kind == Kind::kPlain && p.param == kShutdown && !p.out_of_step) [[unlikely]] {
      ++stats_.shutdowns;
      blocked = true;
      continue;
    }
    ReadBack(p, false, 0);
    // (A CLIENT KILL unanswered, or queued in an EXEC unanswered, may have
    // killed this connection: Redis stops answering, inside EXEC too, and
    // reads no more; a QUIT unanswered, read out of step, may be one.)
    if (p.blocks || p.kind == Kind::kQuit || p.kills ||
        (p.kind == Kind::kExec &&
         std::any_of(multi_queue_.begin(), multi_queue_.end(), [](const Pending& q) { return q.kills; })))
      blocked = true;
  }
  pending_.clear();
  multi_queue_.clear();  // read back above if an EXEC was sent; else never applied
  in_multi_ = false;
  multi_inferred_ = false;
  Reclaim();
  if (hold_watch_) UpdateHold(last_ts_);
  if (library_holds_ != 0) [[unlikely]]
    SyncLibraryHolds();  // (unanswered: may have run)
}

void Connection::UpdateHold(uint64_t ts) {
  // The earliest database-wide write waiting for its reply, from its
  // request; one in a transaction runs at its EXEC, so from the EXEC's
  // request once that is sent (as its record is timed). Requests wait in
  // the order they came, and those queued (answered +QUEUED) came first.
  uint64_t from = 0;
  bool waits_for_exec =
      std::any_of(multi_queue_.begin(), multi_queue_.end(), [](const Pending& p) { return p.database_wide; });
  for (const Pending& p : pending_) {
    if (p.kind == Kind::kExec && waits_for_exec) {
      from = p.ts;
      break;
    }
    if (p.kind == Kind::kExec || p.kind == Kind::kDiscard) {
      waits_for_exec = false;
    } else if (p.database_wide) {
      if (!p.queued) {
        from = p.ts;
        break;
      }
      waits_for_exec = true;
    }
  }
  hold_watch_ = from != 0 || waits_for_exec;
  if (from == hold_from_) return;
  hold_from_ = from;
  const std::string_view arg = from != 0 ? std::string_view("HOLD") : std::string_view("RELEASE");
  RecordView v;
  v.capture_ns = std::max(ts, from);
  v.request_ns = from != 0 ? from : v.capture_ns;
  v.op = RecordOp::kHold;
  v.args = std::span(&arg, 1);
  sink_->Emit(v, opts_.connection_id);
}

bool Connection::NextReplyUnread() const {
  // In step and in plain request/reply mode, the next reply answers the
  // oldest request; a read's (not CLIENT LIST or INFO) is used for its root
  // alone (an error or not). Anything else may look inside: a write, EXEC,
  // HELLO, a subscription, a desync looking for RESET or messages.
  if (desync_ || ignored_ || pubsub_ || awaiting_reset_ || pending_.empty()) return false;
  const Pending& front = pending_.front();
  return front.kind == Kind::kPlain && front.param == 0 && !front.no_reply && !front.confirm_only;
}

int64_t Connection::ClientInfoKind(const CommandSpec* spec, std::span<const std::string_view> args) {
  if (spec == nullptr) return 0;
  if (spec->name[0] == 'r' || spec->name[0] == 's') [[unlikely]] {
    static const CommandSpec* const replicaof = LookupCommandName("replicaof");
    static const CommandSpec* const slaveof = LookupCommandName("slaveof");
    if ((spec == replicaof || spec == slaveof) && args.size() == 3)
      return EqualsIgnoreCase(args[1], "no") && EqualsIgnoreCase(args[2], "one") ? kReplicaOfNoOne
                                                                                 : kReplicaOfMaster;
    static const CommandSpec* const shutdown = LookupCommandName("shutdown");
    if (spec == shutdown) {
      return std::none_of(args.begin() + 1, args.end(),
                          [](std::string_view a) { return EqualsIgnoreCase(a, "abort"); })
                 ? kShutdown
                 : 0;
    }
    static const CommandSpec* const script_debug = LookupCommandName("script|debug");
    if (spec == script_debug && args.size() == 3) {
      return EqualsIgnoreCase(args[2], "no")     ? kScriptDebugNo
             : EqualsIgnoreCase(args[2], "yes")  ? kScriptDebugYes
             : EqualsIgnoreCase(args[2], "sync") ? kScriptDebugSync
                                                 : 0;
    }
    return 0;
  }
  if (spec->name[0] != 'c') return 0;
  // Answered by a cluster node only (any other says "cluster support
  // disabled"). Not READONLY and READWRITE: Redis before 7.0 answered them
  // +OK anywhere (a review).
  if (std::string_view(spec->name).starts_with("cluster|")) return kClusterCommand;
  static const CommandSpec* const client_list = LookupCommandName("client|list");
  static const CommandSpec* const client_info = LookupCommandName("client|info");
  // A CLIENT LIST of every normal client (no ID, USER, ADDR… filter): its
  // reply names each one's db.
  if (spec == client_list && (args.size() == 2 || (args.size() == 4 && EqualsIgnoreCase(args[2], "type") &&
                                                   EqualsIgnoreCase(args[3], "normal"))))
    return kFullClientList;
  // CLIENT INFO: this connection's own line, db included.
  if (spec == client_info && args.size() == 2) return kOwnClientInfo;
  return 0;
}

void Connection::NoteRoleChange(const Pending& p, uint64_t ts, bool answered) {
  std::string master;
  if (p.param == kReplicaOfMaster) {
    ++stats_.became_replica;
    const std::span<const std::string_view> args = Args(p);
    master = args.size() == 3 ? std::string(args[1]) + ":" + std::string(args[2]) : "a master";
  }
  if (opts_.client_lists != nullptr) opts_.client_lists->OnRoleChange(master, ts, answered);
}

void Connection::NoteClientInfo(const Pending& p, const Node& reply, uint64_t ts, bool in_tx) {
  if (p.param == kClusterCommand) {
    if (!single_db_ && opts_.client_lists != nullptr && TableIndex(p.spec) < kCommandTableSize)
      opts_.client_lists->OnClusterNode(ts);
    return;
  }
  if (p.param >= kScriptDebugNo && p.param <= kScriptDebugSync) {
    // (Refused inside a transaction: "must be called outside a pipeline".)
    if (!in_tx && reply.type == Type::kSimpleString && reply.str == "OK") {
      lua_debug_ = p.param != kScriptDebugNo;
    }
    return;
  }
  if (p.param == kReplicaOfMaster || p.param == kReplicaOfNoOne) {
    // A replica told its own master again answers "+OK Already connected
    // to specified master": nothing changed (a review saw it reported as a
    // demotion). A master told NO ONE answers +OK, changing nothing, but
    // nothing on the wire tells.
    if (reply.type != Type::kSimpleString || (p.param == kReplicaOfMaster && reply.str != "OK")) return;
    NoteRoleChange(p, ts, true);
    return;
  }
  if (in_tx || reply.elided || (reply.type != Type::kBulkString && reply.type != Type::kVerbatim)) return;
  if (p.param == kOwnClientInfo) {
    // Paired in step, outside a transaction: the db this connection had
    // when the server ran it, which is where the request sits in the FIFO.
    // The server's word settles an unknown db, and corrects a wrong one.
    const ClientList own = ParseClientList(reply.str, {.max_entries = 1});
    if (own.entries.size() != 1 || own.skipped_lines != 0) return;
    if (db_known_ && db_ == own.entries[0].db) return;
    db_ = own.entries[0].db;
    KnowDb();
    ++stats_.db_proven_by_server;
    return;
  }
  // Any client's CLIENT LIST (a monitoring agent's, an operator's) tells
  // which db each listed one has selected; not kvferry's own (its resolver
  // publishes what it asked).
  if (opts_.client_lists != nullptr && !replayer_) opts_.client_lists->OnClientList(reply.str, p.ts, ts);
}

bool Connection::ProveDb(uint16_t db, uint64_t asked_ns, uint64_t answered_ns) {
  // (answered_ns: the caller's margin for the mirror's delay included.)
  if (db_known_) return false;
  // The answer must postdate whatever made the db unknown (bytes lost
  // before the first seen since are older than that), and nothing that
  // changes the db may be on its way: a SELECT, RESET or EXEC still
  // unanswered may have run before the server answered, and then the
  // answer is its db, not the one of the writes queued ahead of it. Out of
  // sync, or not reading replies, nothing is known of what is on its way.
  // What was captured after the answer ran after it: a connection sending
  // nothing but transactions always has one on its way (a review: a
  // redis-py transaction pipeline, kombu's QoS, never settled).
  if (db_unknown_since_ns_ == 0 || asked_ns < db_unknown_since_ns_) return false;
  if (desync_ || ignored_ || encrypted_ || awaiting_reset_ || reply_off_ || skip_next_) return false;
  if (((in_multi_ || !multi_queue_.empty()) && multi_ts_ <= answered_ns) ||
      (req_in_multi_ && req_multi_ts_ <= answered_ns))
    return false;
  for (const Pending& p : pending_) {
    if (p.ts <= answered_ns && (MayChangeDb(p) || p.kind == Kind::kMulti || p.kind == Kind::kIgnoreMark))
      return false;
  }
  db_ = db;
  KnowDb();
  ++stats_.db_proven_by_server;
  return true;
}

void Connection::EnterDesync() {
  if (!desync_) ++stats_.desyncs;
  desync_ = true;
  DropSubConfirms();
  no_unseen_multi_ = false;
  quiet_points_ = 0;
  subs_known_ = false;
  const bool marked = std::any_of(pending_.begin(), pending_.end(),
                                  [](const Pending& p) { return p.kind == Kind::kIgnoreMark; });
  if (pubsub_ || marked) {
    // Messages would now pair with requests (or may: IgnoreFromHere): stop
    // reading replies until a RESET, as for a subscription seen out of sync.
    pubsub_ = false;
    monitor_ = false;
    EnterIgnored();
    return;
  }
  // Still waiting for a +RESET: keep skipping up to it (MONITOR lines or
  // messages must not resync against requests), but its db is not proven.
  if (awaiting_reset_) ForgetDb();
  ReadBackWaiting();
}

void Connection::ReadBack(const Pending& p, bool ignoring, uint16_t extra_flags) {
  if (p.kind == Kind::kWrite) {
    if (ignoring) {
      UnansweredWhileIgnored(p.spec, Args(p), p.ts);
    } else {
      Unanswered(p, p.ts, extra_flags);
    }
  } else if (p.kind != Kind::kIgnoreMark) {
    // Counted per command as the server may have run it (a review: reads
    // unanswered at a close were missing from the lines INFO commandstats
    // counts).
    Observe(p.spec, Outcome::kUnpaired);
  }
  if (p.kind == Kind::kSelect) SelectUnanswered(p);  // if it (or an EXEC) ran
  if (p.kind == Kind::kReset) {
    // It may have run: db 0, or the one before it. A guess, either way.
    db_ = 0;
    ForgetDb();
  }
}

void Connection::ReadBackWaiting(bool ignoring) {
  // Requests still waiting may or may not have been executed, and their
  // replies can no longer be matched: read their keys back.
  // A SELECT among them may or may not have run: the db after it is a
  // guess (multi_queue_ is older: in order, it goes first).
  for (const Pending& p : multi_queue_) ReadBack(p, ignoring);
  for (const Pending& p : pending_) ReadBack(p, ignoring);
  pending_.clear();
  multi_queue_.clear();
  in_multi_ = false;
  multi_inferred_ = false;
  Reclaim();
}

void Connection::Unanswered(const Pending& p, uint64_t ts, uint16_t extra_flags) {
  // A key-less write parsed out of step may be text inside a value that a
  // resync after lost client bytes landed in (a review: 100-400 KB values
  // holding queued commands gave 60,907 FLUSHDBs on a lossy mirror, and the
  // replica lost every key): shipped, it would wipe or scramble the replica.
  // A key write found there is only read back (the source's value, whatever
  // it is); this has no key to read back. Counted instead, and reported.
  if (p.out_of_step && KeylessShipped(p.spec)) return KeylessUnconfirmed(p.spec);
  Unanswered(p.spec, Args(p), ts, extra_flags);
}

void Connection::KeylessUnconfirmed(const CommandSpec* spec) {
  ++stats_.writes_unacked;
  ++stats_.keyless_unconfirmed;
  Observe(spec, Outcome::kUnpaired);
}

void Connection::Unanswered(const CommandSpec* spec, std::span<const std::string_view> argv, uint64_t ts,
                            uint16_t extra_flags) {
  if (spec == nullptr) return;
  if (replayer_) {
    ++stats_.replayer_writes;
    Observe(spec, Outcome::kReplayer);
    return;
  }
  ++stats_.writes_unacked;
  Observe(spec, Outcome::kUnpaired);
  ConvertContext ctx;
  ctx.db = db_;
  ctx.capture_ns = ts;
  ctx.request_ns = RecordView::kUnansweredRequest;  // it may run after `ts`
  if (IsDatabaseWide(*spec) && last_ts_ > ts) [[unlikely]] {
    // Read back later than its request (at a close, out of step): it
    // leaves after the key writes of other connections answered since,
    // which it may have run before. Timed from its request (its EXEC's, if
    // queued: the hold's) to now, like a reply come now, so that those are
    // flagged (a review: a FLUSHDB whose client closed before its late
    // reply left them unflagged; its own flag names no key to read back).
    ctx.capture_ns = last_ts_;
    ctx.request_ns = std::clamp(hold_from_, ts, last_ts_);
  }
  ctx.flags = static_cast<uint16_t>(extra_flags | (db_known_ ? 0 : kUnknownDb));
  ctx.connection_id = opts_.connection_id;
  stats_.records += ReadbackWrite(*spec, argv, ctx, sink_);
}

void Connection::Reclaim() {
  if (pending_.empty() && multi_queue_.empty()) {
    arena_.clear();
    spans_.clear();
    // What a burst of large requests grew is given back once all are
    // answered: a connection idle in a pool for hours keeps little.
    if (arena_.capacity() > Parser::kKeepBytes) std::string().swap(arena_);
    if (spans_.capacity() > Parser::kKeepNodes) std::vector<std::pair<uint32_t, uint32_t>>().swap(spans_);
    return;
  }
  // Entries take their spans in arrival order and queued MULTI commands are
  // older than every pending one: the oldest live span is at a front.
  const uint32_t lo = multi_queue_.empty() ? pending_.front().arg_begin : multi_queue_.front().arg_begin;
  if (lo < kReclaimSpans || lo < spans_.size() / 2 || lo >= spans_.size()) return;
  const uint32_t byte_lo = spans_[lo].first;
  arena_.erase(0, byte_lo);
  spans_.erase(spans_.begin(), spans_.begin() + lo);
  for (auto& s : spans_) s.first -= byte_lo;
  for (Pending& p : pending_) p.arg_begin -= lo;
  for (Pending& p : multi_queue_) p.arg_begin -= lo;
}

void Connection::NoteUnknown(std::string_view name) {
  // Lower case, printable only: the name is printed on a terminal.
  std::string lower(name);
  for (char& ch : lower) {
    ch = ch < '!' || ch > '~' ? '?' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  if (std::find(unknown_names_.begin(), unknown_names_.end(), lower) != unknown_names_.end()) return;
  if (unknown_names_.size() >= kMaxUnknownNames) {
    unknown_names_more_ = true;
    return;
  }
  unknown_names_.push_back(std::move(lower));
}

bool Connection::ShowsClusterNode(const Pending& p, std::string_view error) {
  if (p.kind == Kind::kSelect) return error.find("not allowed in cluster mode") != std::string_view::npos;
  if (!IsRedirect(error) && !error.starts_with("CROSSSLOT ") && !error.starts_with("CLUSTERDOWN "))
    return false;
  // Only Redis's own commands: a script or a module may answer any error.
  return p.spec != nullptr && TableIndex(p.spec) < kCommandTableSize && !IsScriptCall(*p.spec);
}

void Connection::NoteRedirect(std::string_view error) {
  // "MOVED 3999 127.0.0.1:6381", "ASK 3999 127.0.0.1:6381".
  ++stats_.redirected;
  std::string target(error.substr(error.rfind(' ') + 1).substr(0, 300));
  for (char& ch : target) {
    if (ch < '!' || ch > '~') ch = '?';  // printed on a terminal
  }
  if (redirect_targets_.size() >= kMaxUnknownNames ||
      std::find(redirect_targets_.begin(), redirect_targets_.end(), target) != redirect_targets_.end())
    return;
  redirect_targets_.push_back(std::move(target));
}

void Connection::OnRequest(std::span<const std::string_view> args, uint64_t ts) {
  ++stats_.requests;
  if (args.empty()) return;
  if (quit_ || lua_session_ || chunk_offset_ >= server_fin_acked_) [[unlikely]] {
    // (From an EVAL under SCRIPT DEBUG on: LuaDebugRequest.)
    if (!quit_ && chunk_offset_ < server_fin_acked_) return LuaDebugRequest(args, ts);
    // Redis answered the QUIT (or closed: OnFin) and reads no more of this client's requests
    // (redis 7.0 processCommand: CLIENT_CLOSE_AFTER_REPLY, also inside MULTI
    // and under CLIENT REPLY OFF, where the connection then just hangs):
    // whatever the client pipelined after it never ran. A review found a
    // FLUSHALL sent behind a QUIT shipped, and the replica emptied.
    ++stats_.never_ran;
    return;
  }
  // Out of sync only (the check stays off the in-sync path). The chunk
  // began clean if it did not continue a cut message and nothing was
  // skipped since it began (a parse error and a resync inside it mean this
  // request did not begin where the chunk did).
  const bool first_of_chunk = first_request_of_chunk_;
  first_request_of_chunk_ = false;
  if (desync_ && first_of_chunk && chunk_start_ != ChunkStart::kCut &&
      requests_.skipped_bytes() == chunk_skipped_ && !replies_.HasPartial() && chunk_ts_ >= last_reply_ts_) {
    // A quiet point: the client starts a write, at a request boundary, after
    // the last answer. A client that waits for its answers has had every
    // earlier request answered by now. Out of sync, pairing resumes at the
    // second quiet point in a row that finds nothing pending, so that the
    // requests and answers between the two balanced: one quiet point is not
    // enough, because a capture that joins (or resumes after a gap) exactly
    // where a large value starts, a value whose bytes look like requests,
    // finds the same clean start; its text would then pair with the answers
    // and shift every pair after it. Requests still pending at a quiet point
    // were never answered in step (that text, or a client that does not
    // wait): their writes are read back, and the count starts over.
    if (!pending_.empty()) {
      // (Replies to them may still be on their way, from a client that does
      // not wait: the count starts from nothing, and an unpaired reply
      // starts it over again.)
      auto requests_waiting = [this] {
        return static_cast<uint64_t>(std::count_if(
            pending_.begin(), pending_.end(), [](const Pending& q) { return q.kind != Kind::kIgnoreMark; }));
      };
      const uint64_t waiting = requests_waiting();
      quiet_points_ = 0;
      const bool special = std::any_of(pending_.begin(), pending_.end(), [](const Pending& q) {
        return q.kind == Kind::kIgnoreMark || (q.kind == Kind::kReset && !q.no_reply);
      });
      if (!special) {
        ReadBackWaiting();
        stats_.unpaired_requests += waiting;
      } else {
        // A subscription may have started among them (messages would pair
        // with requests), or a RESET is on its way: as when a subscription
        // is seen out of step (a RESET and what follows it stay).
        EnterIgnored();
        stats_.unpaired_requests += waiting - requests_waiting();
        if (ignored_) {
          OnIgnoredRequest(args, ts);
          --stats_.requests;  // counted above
          return;
        }
      }
    } else if (++quiet_points_ >= 2) {
      // Replies from here on pair with requests from here on. Flag the next
      // writes in case a lost request is still pending.
      desync_ = false;
      ProveRequestsInStep();
      quiet_points_ = 0;
      after_gap_left_ = opts_.after_gap_records;
    }
  }
  if (requests_.empty_requests() != empty_requests_seen_) [[unlikely]] {
    // Redis resets the client after an empty request as after a command:
    // a CLIENT REPLY SKIP before it silenced nothing.
    empty_requests_seen_ = requests_.empty_requests();
    skip_next_ = false;
  }
  const bool skip_pending = skip_next_;
  const CommandSpec* spec = LookupCommand(args);
  Pending p{.kind = KindOf(spec),
            .no_reply = false,
            .out_of_step = desync_ && requests_unsure_,
            .blocks = !req_in_multi_ && BlocksClient(spec, args),  // nothing blocks inside MULTI
            .kills = KillsItself(spec, args),
            .spec = spec,
            .arg_begin = static_cast<uint32_t>(spans_.size()),
            .ts = ts,
            .seq = next_seq_++};
  if (opts_.announce_holds && spec != nullptr &&
      (IsDatabaseWide(*spec) || ((spec->name[0] == 'e' || spec->name[0] == 'f') &&
                                 ScriptChangesDbs(spec, args, *scripts_)))) [[unlikely]] {
    hold_watch_ = true;
    p.queued = req_in_multi_;
    p.database_wide = true;
  }
  // A request that may change the db while it is unknown: an answer from
  // the server settles it only if asked after this ran (ProveDb), whatever
  // becomes of its reply (one paired out of sync leaves the db unknown).
  // An EXEC of a transaction whose every queued command was parsed here,
  // none a SELECT or RESET, cannot change the db (param 1): connections
  // running a transaction every few ms would otherwise never settle.
  if (p.kind == Kind::kExec && req_in_multi_ && req_multi_keeps_db_ &&
      requests_.skipped_bytes() == multi_skipped_bytes_)
    p.param = 1;
  if (MayChangeDb(p) && !db_known_) [[unlikely]]
    db_unknown_since_ns_ = std::max(db_unknown_since_ns_, ts);
  // DEBUG POPULATE creates keys (convert.cc); no other DEBUG does.
  static const CommandSpec* const debug = LookupCommandName("debug");
  if (spec == debug && spec != nullptr && args.size() >= 2 && EqualsIgnoreCase(args[1], "populate"))
    p.kind = Kind::kWrite;
  // MULTI is refused in pub/sub mode; a transaction assumed open while it is
  // not only makes the (UN)SUBSCRIBEs after it count as uncertain.
  if (p.kind == Kind::kMulti && PredictSubscribed() != SubState::kYes && !req_in_multi_) {
    req_in_multi_ = true;
    req_multi_ts_ = ts;
    req_multi_keeps_db_ = true;
    multi_skipped_bytes_ = requests_.skipped_bytes();  // bytes skipped since may have held a SELECT
  }
  if ((p.kind == Kind::kSelect || p.kind == Kind::kReset) && req_in_multi_) req_multi_keeps_db_ = false;
  if ((p.kind == Kind::kExec || p.kind == Kind::kDiscard) && req_in_multi_) {
    req_in_multi_ = false;
    // A HELLO queued in the transaction switches the protocol when EXEC
    // runs it (optimistic, as outside MULTI); DISCARD drops it.
    const int queued = std::exchange(req_multi_protocol_, 0);
    if (p.kind == Kind::kExec && queued > 0 && !SwitchRequestProtocol(queued)) return IgnoreFromHere(ts);
  }
  // Under SCRIPT DEBUG YES or SYNC (answered, or asked), an EVAL may start
  // a Lua debugging session: the rest of the connection is then the
  // debugger's, and nothing pipelined behind the EVAL runs. The wire cannot
  // say for sure (a forked session writes its log lines ahead of replies
  // still buffered; a review shipped a FLUSHALL that never ran): from here
  // on nothing of the connection is shipped, its writes are read back.
  if (lua_debug_ && spec != nullptr && IsDebuggableEval(*spec)) [[unlikely]] {
    ++stats_.lua_debug_sessions;
    lua_session_ = true;
    IgnoreFromHere(ts, /*subscriber=*/false);
    return LuaDebugRequest(args, ts);
  }
  size_t keep = 0;  // arguments to store
  bool client_reply_on = false;
  switch (p.kind) {
    case Kind::kWrite: keep = args.size(); break;
    case Kind::kPlain: {
      // An unknown command (a module's?): its name, to report it if the
      // server accepts it.
      if (spec == nullptr && args[0].size() <= kMaxUnknownNameBytes) keep = 1;
      p.param = ClientInfoKind(spec, args);
      // REPLICAOF host port: the master, named when it is answered (a
      // host of at most 255 bytes, as a name).
      if (p.param == kReplicaOfMaster && args[1].size() <= 255 && args[2].size() <= 16) [[unlikely]]
        keep = 3;
      // (A NO clears only once answered +OK: one pipelined is refused.)
      if (p.param >= kScriptDebugYes && p.param <= kScriptDebugSync && !req_in_multi_) [[unlikely]]
        lua_debug_ = true;
      break;
    }
    case Kind::kSelect:
      if (args.size() != 2 || !ParseI64(args[1], &p.param) || p.param < 0 || p.param > 0xfffe) p.param = -1;
      break;
    case Kind::kHello: {
      p.param = 0;
      // "2" or "3" exactly: redis reads the version with string2ll (no
      // leading zero, no sign).
      if (args.size() >= 2) p.param = args[1] == "2" ? 2 : args[1] == "3" ? 3 : -1;
      // Options as redis 7.0 reads them: AUTH user password, SETNAME name
      // (printable, no space); anything else refuses the whole HELLO, which
      // then changes nothing (param -1).
      std::optional<std::string_view> name;
      for (size_t i = 2; p.param >= 0 && i < args.size(); ++i) {
        const size_t more = args.size() - 1 - i;
        if (EqualsIgnoreCase(args[i], "auth") && more >= 2) {
          i += 2;  // the password is never stored
        } else if (EqualsIgnoreCase(args[i], "setname") && more >= 1) {
          name = args[++i];
          if (std::any_of(name->begin(), name->end(), [](char ch) { return ch < '!' || ch > '~'; }))
            p.param = -1;
        } else {
          p.param = -1;
        }
      }
      if (p.param < 0) break;
      if (req_in_multi_) {
        // Queued: it runs (and switches the protocol) at EXEC, not now.
        if (p.param > 0) req_multi_protocol_ = static_cast<int>(p.param);
      } else if (p.param > 0 && !SwitchRequestProtocol(static_cast<int>(p.param))) {
        return IgnoreFromHere(ts);
      }
      if (name) {  // kept as the only argument
        spans_.emplace_back(static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(name->size()));
        p.argc = 1;
        arena_.append(*name);
      }
      break;
    }
    case Kind::kReset:
      // A CLIENT REPLY SKIP in force still silences RESET's own reply (Redis
      // clears only the flag for the command after it).
      reply_off_ = false;
      req_protocol_ = 2;
      req_in_multi_ = false;
      req_multi_protocol_ = 0;
      resp3_subs_ = false;
      last_sub_seq_ = p.seq;
      break;
    case Kind::kSubscribe:
    case Kind::kUnsubscribe:
      // (Channels past the element limit too: one confirmation each.)
      p.param = static_cast<int64_t>(args.size() - 1 + requests_.tail_elided());
      p.bare = p.param == 0;
      p.queued = req_in_multi_;
      if (spec->name[0] == 'p') p.family = Family::kPattern;  // psubscribe, punsubscribe
      if (std::string_view(spec->name) == "ssubscribe" || std::string_view(spec->name) == "sunsubscribe")
        p.family = Family::kShard;
      // RESP3: confirmed by pushes (inside MULTI it is answered +QUEUED).
      // RESP2: one reply per channel (one for a bare UNSUBSCRIBE).
      if (req_protocol_ == 3) {
        if (p.kind == Kind::kSubscribe) resp3_subs_ = true;
        if (!req_in_multi_) {
          p.no_reply = true;
          // Refused (an ACL's -NOPERM for a channel, -BUSY), it is answered
          // after all: unless that error is silenced, it is told apart from
          // the next request's reply by the confirmations it lacks.
          // (Its pushes come under CLIENT REPLY OFF or SKIP too, its refusal
          // does not.) Its channels are kept to match the pushes with.
          p.confirmed_by_push = p.kind == Kind::kSubscribe && p.param > 0;
          p.silenced = reply_off_ || skip_next_;
          if (p.confirmed_by_push && p.param <= 1024 && ArgBytes(args) <= (64u << 10)) keep = args.size();
          UnsubscribeUncounted(p);
        }
      } else {
        sub_seen_ = true;
        last_sub_seq_ = p.seq;
      }
      break;
    case Kind::kSetName:
      if (args.size() == 3)
        keep = 3;
      else
        p.kind = Kind::kPlain;
      break;
    case Kind::kScriptLoad:  // SCRIPT LOAD body (learned below)
      if (args.size() != 3) p.kind = Kind::kPlain;
      break;
    case Kind::kClientReply: {
      // Refused in RESP2 pub/sub mode: then it changes nothing, and is
      // answered (with an error) unless replies are off already.
      const bool off = args.size() == 3 && EqualsIgnoreCase(args[2], "off");
      const bool skip = args.size() == 3 && EqualsIgnoreCase(args[2], "skip");
      const bool on = args.size() == 3 && EqualsIgnoreCase(args[2], "on");
      if (off || skip || (on && (reply_off_ || skip_next_))) {
        // Queued in MULTI it takes effect inside EXEC: the EXEC array then
        // lacks the replies it silenced.
        if (req_in_multi_) return IgnoreFromHere(ts);
        const SubState sub = req_protocol_ == 2 ? PredictSubscribed() : SubState::kNo;
        if (sub == SubState::kMaybe) return IgnoreFromHere(ts);
        if (sub == SubState::kYes) break;
      }
      if (off) {
        reply_off_ = true;
        skip_next_ = false;  // a SKIP in force was for this request
        p.no_reply = true;
      } else if (skip) {
        if (!reply_off_) skip_next_ = true;
        p.no_reply = true;
      } else if (on) {
        reply_off_ = skip_next_ = false;
        client_reply_on = true;
      }
      break;
    }
    case Kind::kSync:
      // Refused inside MULTI (no-multi): answered with an error. PSYNC is
      // answered +FULLRESYNC or +CONTINUE, then the replication stream
      // follows (an RDB payload that is not RESP, then the writes the
      // server relays to the replica, as "replies"): the connection is the
      // replica's link from that answer on (Handle). SYNC is answered by
      // the RDB payload itself: its link starts once every request before
      // it is answered (DrainNoReply).
      // Until the RDB is ready the master sends the replica a bare newline
      // a second, before +FULLRESYNC too: skipped from now on (a valid
      // reply never starts with one, so the skip costs nothing else).
      if (req_in_multi_) {
        p.kind = Kind::kPlain;
      } else if (spec->name[0] == 's') {
        p.no_reply = true;
      } else {
        replies_.SkipNewlinesBetweenMessages(true);
        // PSYNC replid offset FAILOVER: FAILOVER TO's hand-over (param 1).
        p.param = args.size() > 3 && EqualsIgnoreCase(args[3], "failover") ? 1 : 0;
      }
      break;
    case Kind::kReplconf:
      // REPLCONF ACK and GETACK are never answered (with an odd argument
      // count; redis 7.0 replconfCommand), whoever sends them. A capture
      // that joined a replica's link after its PSYNC knows the link by its
      // ACKs (one a second).
      // (Queued in MULTI they are answered +QUEUED; a RESP2 subscriber is
      // refused them, with an error.) A replica's handshake announces the
      // port it listens on: its link then tells which server it is.
      for (size_t i = 1; i + 1 < args.size() && args.size() % 2 == 1 && !req_in_multi_; i += 2) {
        if (EqualsIgnoreCase(args[i], "listening-port")) {
          uint16_t port = 0;
          const auto [end, ec] =
              std::from_chars(args[i + 1].data(), args[i + 1].data() + args[i + 1].size(), port);
          announced_port_ = ec == std::errc() && end == args[i + 1].data() + args[i + 1].size() ? port : 0;
        } else if (EqualsIgnoreCase(args[i], "ip-address") && args[i + 1].size() <= 255) {
          announced_ip_.assign(args[i + 1]);
        }
      }
      if (args.size() >= 3 && args.size() % 2 == 1 &&
          (EqualsIgnoreCase(args[1], "ack") || EqualsIgnoreCase(args[1], "getack")) && !req_in_multi_) {
        const SubState sub = req_protocol_ == 2 ? PredictSubscribed() : SubState::kNo;
        if (sub == SubState::kMaybe) return IgnoreFromHere(ts);
        if (sub == SubState::kYes) break;
        if (opts_.joined_mid_stream && EqualsIgnoreCase(args[1], "ack")) {
          EnterReplicaLink();
          link_from_ack_ = true;
          return;
        }
        p.no_reply = true;
      }
      break;
    case Kind::kQuit:
      // Trusted here only in step: out of step, "QUIT" may be text inside a
      // value (its +OK, paired in step, settles it: Handle).
      if (!p.out_of_step) quit_ = true;
      break;
    default: break;  // AUTH: the password is never stored
  }
  if (requests_.elided()) {
    // An argument too large to hold came as an empty view (Parser::elided).
    if (p.kind == Kind::kWrite) {
      if (KeyElided(*spec, args)) {
        // A key too large to hold, or a key-less write (FUNCTION LOAD or
        // RESTORE of a huge payload) that could only be shipped whole; or
        // a key among arguments past the limit, skipped unread (an MSET or
        // a DEL of millions).
        ++stats_.oversized_lost;
        p.kind = Kind::kPlain;
        keep = 0;
      } else {
        p.elided = true;  // its keys are read back once it is acknowledged
      }
    } else if (p.kind == Kind::kScriptLoad || p.kind == Kind::kSetName) {
      p.kind = Kind::kPlain;  // an elided body or name must not be learned
      keep = 0;
    } else if (p.kind == Kind::kHello) {
      p.argc = 0;  // its protocol switch stands; its name (maybe elided) is not learned
    }
  }
  // A script body is learned from its request, not from its reply: Redis
  // may run another connection's EVALSHA of it in the same pass of its event
  // loop and answer that first (it puts each reply at the head of its write
  // list; a review: redis-py's register_script, a SCRIPT LOAD racing an
  // EVALSHA, whose key-less write was then lost). The digest is the body's
  // own: whatever becomes of this request, an EVALSHA of it that succeeds
  // ran this body. EVAL_RO caches its script too.
  if (p.kind == Kind::kScriptLoad) {
    scripts_->LearnBody(args[2]);
  } else if (args.size() >= 2 && !requests_.arg_elided(1) && IsEvalOfABody(spec)) [[unlikely]] {
    scripts_->LearnBody(args[1]);
  } else if (p.kind == Kind::kWrite && spec->name[0] == 'f' && IsLibraryLoad(args)) [[unlikely]] {
    if (CallsMigrate(args)) {
      scripts_->NoteLibraryRequested();  // (an FCALL answered first may run it)
      p.holds_library = true;
      ++library_holds_;
    }
    // A library that may flush or swap: its FCALLs are database-wide from
    // now on, pipelined behind it too (whatever becomes of it: see
    // ScriptCache::LearnDatabaseWideFunctions).
    if (args.size() >= 3 && !requests_.arg_elided(args.size() - 1)) {
      const uint8_t names = DatabaseWideNames(args.back());
      // (Its functions named by no literal make every FCALL database-wide,
      // but only once the server took it: HandleWrite. A review's refused
      // load made every FCALL of the capture so.)
      if (names != 0) scripts_->LearnDatabaseWideFunctions(RegisteredFunctionNames(args.back()), names);
    }
  }
  // A request Redis runs without replying (a RESP3 SUBSCRIBE, REPLCONF ACK)
  // uses up a pending SKIP all the same.
  if (p.no_reply && skip_pending && p.kind != Kind::kClientReply) skip_next_ = false;
  if (!p.no_reply && !client_reply_on && (reply_off_ || skip_next_)) {
    // RESP2 (un)subscribe confirmations are sent as pushes are, through
    // CLIENT REPLY OFF or SKIP (which the request still uses up); a refusal
    // (an ACL, no channel) is silenced like any reply.
    const bool sub = p.kind == Kind::kSubscribe || p.kind == Kind::kUnsubscribe;
    if (sub && req_in_multi_) {
      // Its confirmations come from a silenced EXEC: unpairable.
      return IgnoreFromHere(ts);
    }
    p.confirm_only = sub && (p.kind == Kind::kUnsubscribe || p.param > 0);
    p.no_reply = !p.confirm_only;
    skip_next_ = false;
  }
  if (keep > 0) {
    p.argc = static_cast<uint32_t>(keep);
    for (size_t i = 0; i < keep; ++i) {
      spans_.emplace_back(static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(args[i].size()));
      arena_.append(args[i]);
    }
  }
  p.chunk_offset = chunk_offset_;
  pending_.push_back(p);
  const size_t held_bytes =
      arena_.size() + pending_.size() * sizeof(Pending) + spans_.size() * sizeof(spans_[0]);
  if (pending_.size() > opts_.max_pending_requests || held_bytes > opts_.max_pending_bytes) {
    ++stats_.overflows;
    EnterDesync();
    return;
  }
  DrainNoReply();
}

bool Connection::SwitchRequestProtocol(int protocol) {
  if (protocol == 3 && req_protocol_ == 2) {
    // Refused in RESP2 pub/sub mode: the (UN)SUBSCRIBEs after it are then
    // still answered in RESP2.
    const SubState sub = PredictSubscribed();
    if (sub == SubState::kMaybe) return false;
    if (sub == SubState::kNo) req_protocol_ = 3;
  } else if (protocol == 2 && req_protocol_ == 3 && resp3_subs_) {
    // Back to RESP2, maybe still subscribed (RESP3 confirmations are pushes,
    // not counted): messages would now look like replies.
    return false;
  } else {
    req_protocol_ = protocol;
  }
  return true;
}

Connection::SubState Connection::PredictSubscribed() const {
  // RESP3 does not restrict a subscribed connection; counts not known fall
  // back to ignoring the connection once a subscription is confirmed.
  if (!sub_seen_ || !subs_known_ || req_protocol_ != 2) return SubState::kNo;
  // Nothing that changes the counts unanswered (or queued): they tell.
  const uint64_t oldest = !multi_queue_.empty() ? multi_queue_.front().seq
                          : !pending_.empty()   ? pending_.front().seq
                                                : next_seq_;
  if (last_sub_seq_ < oldest) return pubsub_ ? SubState::kYes : SubState::kNo;
  // Bounded work per request: a backlog this deep behind an unanswered
  // (UN)SUBSCRIBE is not told apart.
  if (multi_queue_.size() + pending_.size() > kMaxPredictScan) return SubState::kMaybe;
  // Bounds on each family's count once what is unanswered has run.
  uint64_t lo[3] = {sub_channels_, sub_patterns_, sub_shard_};
  uint64_t hi[3] = {sub_channels_, sub_patterns_, sub_shard_};
  auto apply = [&](const Pending& q, bool certain) {
    if (q.kind == Kind::kReset) {
      for (int f = 0; f < 3; ++f) lo[f] = hi[f] = 0;
      return;
    }
    if ((q.kind != Kind::kSubscribe && q.kind != Kind::kUnsubscribe) || q.no_reply) return;
    const int f = static_cast<int>(q.family);
    const uint64_t n = q.param > 0 ? static_cast<uint64_t>(q.param) : 0;  // confirmations still to come
    if (q.kind == Kind::kSubscribe) {
      // Never certain until confirmed: an ACL refuses a channel the user
      // may not use (Redis 7's acl-pubsub-default is resetchannels: a new
      // user may use none), silently under CLIENT REPLY OFF.
      hi[f] += n;
    } else if (q.bare) {
      lo[f] = 0;
      if (certain) hi[f] = 0;
    } else {
      lo[f] -= std::min(lo[f], n);
    }
  };
  // Queued commands run at an EXEC that may not come (or abort).
  for (const Pending& q : multi_queue_) apply(q, false);
  for (const Pending& q : pending_) apply(q, !q.queued);
  if (lo[0] + lo[1] + lo[2] > 0) return SubState::kYes;
  if (hi[0] + hi[1] + hi[2] == 0) return SubState::kNo;
  return SubState::kMaybe;
}

bool Connection::ConfirmsRequest(const Pending& p, std::span<const Node> reply) {
  static constexpr std::string_view kKinds[2][3] = {{"subscribe", "psubscribe", "ssubscribe"},
                                                    {"unsubscribe", "punsubscribe", "sunsubscribe"}};
  const std::string_view kind = ConfirmationKind(reply);
  return !kind.empty() && kind == kKinds[p.kind == Kind::kUnsubscribe ? 1 : 0][static_cast<int>(p.family)];
}

void Connection::IgnoreFromHere(uint64_t ts, bool subscriber) {
  if (subscriber) ++stats_.subscriber_doubts;
  skip_next_ = false;  // the request that leads here used up a CLIENT REPLY SKIP
  pending_.push_back(Pending{.kind = Kind::kIgnoreMark,
                             .no_reply = true,
                             .ts = ts,
                             .seq = next_seq_++,
                             .chunk_offset = chunk_offset_});
  DrainNoReply();
}

void Connection::ApplyReset() {
  // (+RESET does not say whether the inferred transaction was one.)
  if (multi_inferred_) DropInferredMulti();
  db_ = 0;
  KnowDb();
  in_multi_ = false;
  multi_inferred_ = false;
  no_unseen_multi_ = true;  // (until something is lost again: EnterDesync)
  NeverLoaded(multi_queue_);
  multi_queue_.clear();
  protocol_ = 2;
  SetSubscriptionsZero();
  replayer_ = false;  // RESET clears the connection's name
}

bool Connection::BlocksClient(const CommandSpec* spec, std::span<const std::string_view> args) {
  // May block its client until served: the table's blocking commands, but
  // XREAD and XREADGROUP only with BLOCK, and WAIT, which the table does not
  // flag (a review).
  if (spec == nullptr || args.empty()) return false;
  if (EqualsIgnoreCase(args[0], "WAIT") || EqualsIgnoreCase(args[0], "WAITAOF")) return true;
  if (!spec->Has(kCmdBlocking)) return false;
  if (!EqualsIgnoreCase(args[0], "XREAD") && !EqualsIgnoreCase(args[0], "XREADGROUP")) return true;
  return std::any_of(args.begin(), args.end(),
                     [](std::string_view a) { return EqualsIgnoreCase(a, "BLOCK"); });
}

void Connection::HelloDidNotSwitch(int asked, bool unauthenticated) {
  // The protocol stays, though the requests after the HELLO were read under
  // the one it asked for (a review: RESP3 SUBSCRIBEs taken for unanswered,
  // the replies after them paired one off). With a (UN)SUBSCRIBE waiting,
  // they are. (Not switched at all when refused as predicted: subscribed.)
  if (asked <= 0 || asked == protocol_) return;
  const auto waiting = [this](auto is) { return std::any_of(pending_.begin(), pending_.end(), is); };
  const bool another = waiting([](const Pending& q) { return q.kind == Kind::kHello; });
  if (!another && req_protocol_ == protocol_) return;
  if (!another) req_protocol_ = protocol_;
  const auto subscribe = std::find_if(pending_.begin(), pending_.end(), [](const Pending& q) {
    return q.kind == Kind::kSubscribe && !q.queued;
  });
  const bool leaves = std::any_of(subscribe, pending_.end(), [](const Pending& q) {
    return q.kind == Kind::kUnsubscribe || q.kind == Kind::kReset;
  });
  if (protocol_ == 2 && !unauthenticated && subscribe != pending_.end() && !leaves) {
    // Run in RESP2, the SUBSCRIBE put the connection in pub/sub mode, which
    // refuses every write after it: shipped from a desync, a review's
    // pipelined FLUSHALL emptied the replica. As for a subscription seen out
    // of step: replies are not read until a RESET, writes are read back, a
    // key-less one counted. (Not in RESP3, which takes writes while
    // subscribed; not after -NOAUTH, which refused the SUBSCRIBE too; nor
    // with an UNSUBSCRIBE or RESET behind it, which may end the mode: a
    // second review lost a FLUSHALL that ran so. Those resynchronise.)
    ++stats_.unpaired_replies;
    EnterIgnored();
  } else if (waiting([](const Pending& q) {
               return q.kind == Kind::kSubscribe || q.kind == Kind::kUnsubscribe;
             })) {
    ++stats_.unpaired_replies;
    EnterDesync();
  }
}

void Connection::ForgetRequestTransaction() {
  // The hole may have held the EXEC (or DISCARD) of the transaction the
  // requests had open: as the reply side, which starts from none at a
  // desync and learns one from a +QUEUED, assume none. Kept open, a review's
  // connection read a RESP3 SUBSCRIBE after a lost EXEC as queued and paired
  // every later reply one off, and shipped a FLUSHDB pipelined behind a
  // BLPOP that never returned (a command queued does not block).
  req_in_multi_ = false;
  req_multi_protocol_ = 0;
  req_multi_keeps_db_ = false;
}

void Connection::ProveRequestsInStep() {
  requests_unsure_ = false;
  for (Pending& q : pending_) q.out_of_step = false;
  for (Pending& q : multi_queue_) q.out_of_step = false;
}

void Connection::SetSubscriptionsZero() {
  pubsub_ = false;
  subs_known_ = true;
  sub_channels_ = sub_patterns_ = sub_shard_ = 0;
}

uint64_t* Connection::CountOf(Family f) {
  return f == Family::kChannel ? &sub_channels_ : f == Family::kPattern ? &sub_patterns_ : &sub_shard_;
}

void Connection::UnsubscribeUncounted(const Pending& p) {
  // Its pushes are not counted, so the counts are lost, unless it can only
  // have emptied its family (a bare UNSUBSCRIBE) or left it as it was (one
  // of a family with nothing subscribed), and nothing before it still to be
  // answered may change them (a review: a PUNSUBSCRIBE in RESP3 with
  // nothing subscribed made the connection ignored at a later RESP2
  // SUBSCRIBE, and the FLUSHDB it sent then was not shipped).
  uint64_t* count = CountOf(p.family);
  // (A RESET still to run ends pub/sub mode itself, later: a message may
  // come before it, which the mode still says to skip.)
  const bool counts_settled = std::none_of(pending_.begin(), pending_.end(), [](const Pending& q) {
    return q.kind == Kind::kSubscribe || q.kind == Kind::kUnsubscribe || q.kind == Kind::kReset ||
           q.kind == Kind::kIgnoreMark;
  });
  if (!subs_known_ || !counts_settled || p.kind == Kind::kSubscribe || (!p.bare && *count > 0)) {
    subs_known_ = false;
    return;
  }
  *count = 0;
  pubsub_ = sub_channels_ + sub_patterns_ + sub_shard_ > 0;
}

bool Connection::SubscribePush(std::span<const Node> push, Family* family, std::string_view* channel) {
  if (push.size() != 4 || push[0].children != 3 || push[1].type != Type::kBulkString ||
      push[2].type != Type::kBulkString)
    return false;
  const std::string_view kind = push[1].str;
  if (EqualsIgnoreCase(kind, "subscribe")) {
    *family = Family::kChannel;
  } else if (EqualsIgnoreCase(kind, "psubscribe")) {
    *family = Family::kPattern;
  } else if (EqualsIgnoreCase(kind, "ssubscribe")) {
    *family = Family::kShard;
  } else {
    return false;
  }
  *channel = push[2].str;
  return true;
}

void Connection::ConfirmSubscribe(std::span<const Node> push) {
  Family family;
  std::string_view channel;
  if (!SubscribePush(push, &family, &channel)) return;  // a message, an invalidation…
  // Confirmations come in the order of the requests and of their channels.
  // One that does not fit the oldest SUBSCRIBE shows it was refused, if
  // that refusal was silenced (a review: the push of a SUBSCRIBE sent
  // under CLIENT REPLY SKIP, whose pushes still come, was counted for the
  // next one, whose -NOPERM then paired with an INCRBY).
  while (!sub_confirms_.empty()) {
    SubConfirm& c = sub_confirms_.front();
    if (c.family == family && (c.channels.empty() || c.channels[c.next] == channel)) {
      if (c.silent && sub_confirms_.size() > 1) {
        // The SUBSCRIBE after a silenced one may have sent it, the silenced
        // one refused without a word (a review: its channels began with the
        // next one's): which is whose cannot be told.
        const SubConfirm& n = sub_confirms_[1];
        if (n.family == family && (n.channels.empty() || n.channels[n.next] == channel)) break;
      }
      ++c.next;
      if (--c.left == 0) {
        Observe(c.spec, Outcome::kReadOnly);
        sub_confirms_.pop_front();
      }
      return;
    }
    if (!c.silent || c.next > 0) break;
    Observe(c.spec, Outcome::kUnpaired);
    sub_confirms_.pop_front();
  }
  ++stats_.unpaired_replies;  // a confirmation nothing sent: out of step
  EnterDesync();
}

void Connection::DropSubConfirms() {
  for (const SubConfirm& c : sub_confirms_) Observe(c.spec, Outcome::kUnpaired);
  sub_confirms_.clear();
}

bool Connection::OnSubscriptionReply(Pending& front, std::span<const Node> reply) {
  // *3: kind, channel (nil for a bare UNSUBSCRIBE with none left), count.
  if (!subs_known_ || reply.size() != 4 || reply[0].type != Type::kArray || reply[0].children != 3 ||
      reply[1].type != Type::kBulkString || reply[3].type != Type::kInteger || reply[3].integer < 0) {
    return false;
  }
  uint64_t* count = CountOf(front.family);
  // A bare UNSUBSCRIBE answers once per subscription of its family, once
  // when there is none.
  if (front.param == 0) front.param = static_cast<int64_t>(std::max<uint64_t>(*count, 1));
  // Channels and patterns share one count in the replies.
  const uint64_t n = static_cast<uint64_t>(reply[3].integer);
  const uint64_t other = front.family == Family::kChannel   ? sub_patterns_
                         : front.family == Family::kPattern ? sub_channels_
                                                            : 0;
  if (n < other) return false;
  *count = n - other;
  --front.param;
  // Redis leaves pub/sub mode when no subscription of any family is left.
  pubsub_ = sub_channels_ + sub_patterns_ + sub_shard_ > 0;
  return true;
}

void Connection::SetSingleDb() {
  single_db_ = true;
  db_ = 0;
  if (!db_known_) ++stats_.db_proven_by_server;
  KnowDb();
}

void Connection::SelectUnanswered(const Pending& p) {
  // The server may have refused it (an index past its databases): the db
  // is a guess until a SELECT or RESET is answered.
  if (p.param < 0 || single_db_) return;  // malformed, or not db 0 on a cluster node: refused
  db_ = static_cast<uint16_t>(p.param);
  ForgetDb();
}

void Connection::TransactionRanUnpaired(std::span<const Pending> queue, uint64_t ts) {
  // In order: a queued SELECT moves the writes after it (a review: a lost
  // +OK of MULTI, then a SELECT queued in the transaction inferred from the
  // +QUEUEDs, left the db as before: every later write shipped in db 0).
  for (const Pending& q : queue) {
    if (q.kind == Kind::kWrite) Unanswered(q, ts, 0);
    if (q.kind == Kind::kSelect) SelectUnanswered(q);
  }
}

bool Connection::DrainOneNoReply() {
  const Pending p = pending_.front();
  pending_.pop_front();
  drained_silent_ = true;
  // Counted per command as the server ran it, unanswered (writes: where
  // they are read back). A review found silenced SELECTs, MULTIs and
  // CLIENT REPLYs missing from the counts. (A SYNC, and a SUBSCRIBE its
  // pushes confirm, are counted below.)
  if (p.kind != Kind::kWrite && p.kind != Kind::kIgnoreMark && p.kind != Kind::kSync && !p.confirmed_by_push)
    Observe(p.spec, Outcome::kUnpaired);
  // A silenced CLIENT KILL (CLIENT REPLY OFF or SKIP) may have killed
  // this connection, which then hangs: see OnClose.
  if (p.kills) kill_answered_ = true;
  switch (p.kind) {
    case Kind::kPlain:
      // A REPLICAOF whose reply was silenced: most likely done (a review
      // saw decode's account of roles end on the wrong one).
      if ((p.param == kReplicaOfMaster || p.param == kReplicaOfNoOne) && !desync_) [[unlikely]]
        NoteRoleChange(p, std::max(p.ts, last_ts_), false);  // it ran by now
      // So is a SCRIPT DEBUG YES or SYNC (refused only behind replies not
      // yet sent). A silenced NO may have been refused: it clears nothing.
      if (p.param >= kScriptDebugYes && p.param <= kScriptDebugSync && !desync_ && !in_multi_) [[unlikely]]
        lua_debug_ = true;
      // One not allowed in MULTI, queued: the EXEC aborts.
      if (in_multi_ && p.spec != nullptr && p.spec->Has(kCmdNoMulti)) [[unlikely]]
        multi_refused_ = true;
      // A SHUTDOWN silenced: most likely the server exited (OnClose).
      if (p.param == kShutdown && !desync_ && !in_multi_) [[unlikely]]
        silenced_shutdown_ns_ = std::max<uint64_t>({p.ts, last_reply_ts_, 1});  // (replies before it ran)
      break;
    case Kind::kWrite:
      if (pubsub_ && protocol_ == 2 && !desync_) {
        // RESP2 pub/sub mode refuses every write ("only (P|S)SUBSCRIBE /
        // (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed"), its error
        // silenced here. A review: a FLUSHALL so refused was shipped and
        // emptied the replica.
        ++stats_.writes_rejected;
        Observe(p.spec, Outcome::kRejected);
      } else if (in_multi_) {
        multi_queue_.push_back(p);
      } else if (MayHaveEnded() && KeylessShipped(p.spec)) {
        // Silenced behind a silenced CLIENT KILL that may have killed this
        // connection (which then hangs), or a silenced SHUTDOWN (the server
        // may have exited): key-less, it is not shipped.
        KeylessUnconfirmed(p.spec);
      } else {
        Unanswered(p, p.ts, desync_ ? kAfterGap : 0);
      }
      break;
    case Kind::kSelect:
      if (in_multi_) {
        multi_queue_.push_back(p);  // takes effect at EXEC, in order
      } else {
        SelectUnanswered(p);
      }
      break;
    case Kind::kMulti:
      in_multi_ = true;
      multi_ts_ = p.ts;
      multi_refused_ = false;
      break;
    case Kind::kReset:
      // Silenced by a CLIENT REPLY SKIP; it ran all the same (RESET is
      // never refused: no ACL check applies to it, NO_AUTH).
      ApplyReset();
      break;
    case Kind::kHello:
    case Kind::kSetName:
      if (in_multi_) {
        multi_queue_.push_back(p);
      } else if (p.kind == Kind::kHello) {
        ApplyHello(p);
      } else {
        SetNameSilenced(p);
      }
      break;
    case Kind::kIgnoreMark:
      monitor_ = false;
      EnterIgnored();
      break;
    case Kind::kSubscribe:
      if (p.confirmed_by_push && desync_) {
        Observe(p.spec, Outcome::kUnpaired);
      } else if (p.confirmed_by_push) {
        SubConfirm c{p.spec, p.family, p.silenced, static_cast<uint32_t>(p.param), 0, {}};
        if (p.argc == static_cast<uint32_t>(p.param) + 1) {
          const std::span<const std::string_view> args = Args(p);
          c.channels.assign(args.begin() + 1, args.end());
        }
        sub_confirms_.push_back(std::move(c));
        if (sub_confirms_.size() > kMaxSubConfirms) EnterDesync();  // (which forgets them)
      }
      break;
    case Kind::kSync:
      Observe(p.spec, Outcome::kReadOnly);  // as INFO commandstats counts it
      EnterReplicaLink();
      return false;    // the rest is the link's
    case Kind::kQuit:  // under CLIENT REPLY OFF: the connection hangs, its transaction never runs
      in_multi_ = false;
      multi_inferred_ = false;
      multi_queue_.clear();
      break;
    case Kind::kExec:
    case Kind::kDiscard: {
      // Queued commands run at EXEC in order, each in the db selected
      // before it; DISCARD runs none. A command Redis refuses at queueing
      // (unknown, a wrong argument count, one not allowed in MULTI) makes
      // the EXEC abort: none runs (a review shipped a FLUSHALL queued behind
      // a SHUTDOWN so). Behind a silenced CLIENT KILL of itself or SHUTDOWN,
      // a key-less one is counted, not shipped.
      // (An unknown command may be a module's that the server knows: the
      // transaction may have run; its key-less writes are counted.)
      auto refused_at_queueing = [](const Pending& q) {
        if (q.spec == nullptr) return false;
        const long argc = static_cast<long>(q.argc);
        return q.spec->Has(kCmdNoMulti) ||
               (q.kind == Kind::kWrite &&
                (q.spec->arity >= 0 ? argc != q.spec->arity : argc < -q.spec->arity));
      };
      const bool runs = p.kind == Kind::kExec && !std::exchange(multi_refused_, false) &&
                        std::none_of(multi_queue_.begin(), multi_queue_.end(), refused_at_queueing);
      const bool unsure = std::any_of(multi_queue_.begin(), multi_queue_.end(),
                                      [](const Pending& q) { return q.spec == nullptr; });
      if (!runs && p.kind == Kind::kExec) HelloDidNotSwitch(QueuedProtocol(multi_queue_), false);
      for (const Pending& q : multi_queue_) {
        if (!runs) break;
        if (q.kind == Kind::kWrite) {
          if ((MayHaveEnded() || unsure) && KeylessShipped(q.spec)) {
            KeylessUnconfirmed(q.spec);
          } else {
            Unanswered(q, p.ts, 0);
          }
        }
        if (q.kind == Kind::kSelect) SelectUnanswered(q);
        if (q.kind == Kind::kHello) ApplyHello(q);
        if (q.kind == Kind::kSetName) SetNameSilenced(q);
      }
      multi_queue_.clear();
      in_multi_ = false;
      multi_inferred_ = false;
      break;
    }
    default: break;
  }
  return true;
}

void Connection::DrainNoReply() {
  // (The loop's body apart: called after every reply, and seldom with
  // anything to drain.)
  while (!pending_.empty() && pending_.front().no_reply) {
    if (!DrainOneNoReply()) return;
  }
  if (multi_queue_.size() > opts_.max_pending_requests) {
    ++stats_.overflows;
    EnterDesync();
  }
  Reclaim();
}

void Connection::SetNameSilenced(const Pending& p) {
  // Silenced, it ran unless Redis refused the name (a space or a character
  // outside '!'..'~'). A review: a connection renamed from kvferry:x to app
  // under CLIENT REPLY OFF had its writes taken for a replayer's.
  // (Refused in RESP2 pub/sub mode too, its error silenced: a review.)
  if (pubsub_ && protocol_ == 2) return;
  const std::string_view name = Args(p)[2];
  if (std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '!' && ch <= '~'; }))
    replayer_ = IsReplayerName(name);
}

int Connection::QueuedProtocol(std::span<const Pending> queue) {
  int asked = 0;  // the last HELLO's: it wins
  for (const Pending& q : queue)
    if (q.kind == Kind::kHello && q.param > 0) asked = static_cast<int>(q.param);
  return asked;
}

void Connection::ApplyHello(const Pending& p) {
  // Answered without an error, or run silently, as the parse side assumed
  // (req_protocol_): later replies come in the protocol it chose. (Silently
  // refused, as with a wrong AUTH, it left the protocol as it was: the reply
  // shapes after it then resynchronise the connection, counted.)
  if (p.param < 0) return;  // refused (a bad version or option): changes nothing
  if (p.param > 0) protocol_ = static_cast<int>(p.param);
  if (p.argc == 1) replayer_ = IsReplayerName(Args(p)[0]);
}

void Connection::EnterIgnored() {
  // Requests already sent are answered among the messages, which are not
  // read: read back their writes. A RESET among them ends the mode again:
  // it and what follows it stay pending, and replies are skipped up to its
  // +RESET.
  size_t reset = 0;
  for (const Pending& p : pending_) {
    if (p.kind == Kind::kReset) break;
    ++reset;
  }
  if (reset == pending_.size()) {
    ignored_ = true;
    ReadBackWaiting(true);
    return;
  }
  // Queued commands are older (and run at an EXEC before the RESET, if
  // any); the RESET discards the transaction otherwise.
  for (const Pending& p : multi_queue_) ReadBack(p, true);
  multi_queue_.clear();
  in_multi_ = false;
  multi_inferred_ = false;
  for (size_t i = 0; i < reset; ++i) {
    ReadBack(pending_.front(), true);
    pending_.pop_front();
  }
  awaiting_reset_ = true;
  skipped_before_reset_ = 0;
}

bool Connection::KeyElided(const CommandSpec& spec, std::span<const std::string_view> args) const {
  // Key-less (here: EVAL … 0 too): shipped whole, or not at all.
  if (spec.num_specs == 0) return true;
  // Arguments past the element limit were skipped unread: a key among them,
  // or a script's (which may write keys it does not declare, and can be
  // shipped only whole: a review's EVAL lost its undeclared key unsaid).
  if (requests_.tail_elided() > 0 && (IsScriptCall(spec) || KeysMayLieBeyond(spec, args))) return true;
  std::vector<KeyRef> keys;
  FindKeys(spec, args, &keys);
  return keys.empty() ||
         std::any_of(keys.begin(), keys.end(), [&](const KeyRef& k) { return requests_.arg_elided(k.arg); });
}

void Connection::EnterReplicaLink() {
  ++stats_.replication_links;
  // What is still waiting (nothing, on a replica's link) cannot be paired.
  ReadBackWaiting(true);
  ignored_ = true;
  replica_link_ = true;
  monitor_ = awaiting_reset_ = false;
  // Replies are not read from here (OnData drops them; one being paired
  // now still holds the parser's nodes).
}

void Connection::OnIgnoredRequest(std::span<const std::string_view> args, uint64_t ts) {
  if (lua_session_) [[unlikely]] {
    ++stats_.requests;
    return LuaDebugRequest(args, ts);
  }
  const CommandSpec* spec = LookupCommand(args);
  const Kind kind = KindOf(spec);
  if (replica_link_) {
    // A replica sends only REPLCONF on its link. Anything else on a link
    // known only by an ACK means it was not one (a client that sent
    // REPLCONF ACK): pair again from here, out of sync, the reply parser
    // starting over. A link that PSYNC's answer proved stays one.
    if (kind == Kind::kReplconf || !link_from_ack_) {
      ++stats_.requests;
      first_request_of_chunk_ = false;  // consumed here: the next of its chunk is not the first
      return;
    }
    replica_link_ = link_from_ack_ = false;
    ignored_ = false;
    replies_.OnGap();
    EnterDesync();
    OnRequest(args, ts);
    return;
  }
  if (kind == Kind::kReset) {
    // RESET ends subscriber and MONITOR mode. Its +RESET comes after
    // whatever pub/sub or MONITOR output is still on its way: replies are
    // read again, skipped up to +RESET, and pairing resumes after it.
    ignored_ = false;
    awaiting_reset_ = true;
    skipped_before_reset_ = 0;
    replies_.OnGap();
    pending_.clear();
    OnRequest(args, ts);  // resets what RESET resets, and waits for its reply
    return;
  }
  ++stats_.requests;
  first_request_of_chunk_ = false;  // (a RESET after it in its chunk is not the first of a write)
  // A script body is learned from its request whatever becomes of it (see
  // OnRequest): a MONITOR client may SCRIPT LOAD, which touches no key (a
  // review: another connection's key-less EVALSHA of it was lost, taken for
  // one of a script loaded before the capture).
  if (kind == Kind::kScriptLoad && args.size() == 3 && !requests_.arg_elided(2)) [[unlikely]] {
    scripts_->LearnBody(args[2]);
  } else if (args.size() >= 2 && !requests_.arg_elided(1) && IsEvalOfABody(spec)) [[unlikely]] {
    scripts_->LearnBody(args[1]);
  }
  switch (kind) {
    case Kind::kSelect: {
      // Runs in MONITOR mode and after UNSUBSCRIBE down to no channel; its
      // reply is not read.
      Pending p{.kind = kind, .no_reply = true, .spec = spec, .param = -1, .ts = ts};
      int64_t db;
      if (args.size() == 2 && ParseI64(args[1], &db) && db >= 0 && db <= 0xfffe) p.param = db;
      SelectUnanswered(p);
      return;
    }
    case Kind::kSetName:
      // Loop prevention errs on the side of not capturing.
      if (args.size() == 3 && IsReplayerName(args[2])) replayer_ = true;
      return;
    case Kind::kWrite:
      if (requests_.elided() && KeyElided(*spec, args)) {
        ++stats_.oversized_lost;
        return;
      }
      break;
    default: return;
  }
  UnansweredWhileIgnored(spec, args, ts);
}

void Connection::UnansweredWhileIgnored(const CommandSpec* spec, std::span<const std::string_view> argv,
                                        uint64_t ts) {
  // Refused while the client is subscribed or in MONITOR mode (a MONITOR
  // client "can't interact with the keyspace"), discarded with a
  // transaction, or run; the replies are not read to tell, so the keys are
  // read back. A key-less write (FLUSHALL, SWAPDB…) cannot be read back,
  // and shipping one the server refused would wipe or scramble the
  // replica: it is counted, never shipped.
  if (KeylessShipped(spec)) return KeylessUnconfirmed(spec);
  Unanswered(spec, argv, ts, kAfterGap);
}

bool Connection::IsDebuggableEval(const CommandSpec& spec) {
  // EVAL and EVAL_RO (EVALSHA is refused: "Please use EVAL instead").
  static const CommandSpec* const eval = LookupCommandName("eval");
  static const CommandSpec* const eval_ro = LookupCommandName("eval_ro");
  return &spec == eval || &spec == eval_ro;
}

void Connection::LuaDebugRequest(std::span<const std::string_view> args, uint64_t ts) {
  // The request may be the debugger's or, if no session began, the
  // client's: `redis CMD …` (or `r`) runs CMD as the script would, anything
  // else runs as itself, or is a debugger command (step, print, list…),
  // which writes nothing. A write's keys are read back once every request
  // before it is answered (a review lost SCRIPT DEBUG SYNC's `redis set dk
  // v`); one whose keys cannot be told (a key-less write, Lua run by the
  // debugger's `eval`, a script declaring no keys) is counted, not shipped.
  if (args.empty()) return;
  std::span<const std::string_view> inner = args;
  if (args.size() >= 2 && (EqualsIgnoreCase(args[0], "redis") || EqualsIgnoreCase(args[0], "r")))
    inner = args.subspan(1);
  static const CommandSpec* const eval = LookupCommandName("eval");
  if (EqualsIgnoreCase(inner[0], "e")) return KeylessUnconfirmed(eval);
  const CommandSpec* spec = LookupCommand(inner);
  if (spec == nullptr) return;
  const Kind kind = KindOf(spec);
  if (kind == Kind::kSelect || kind == Kind::kReset) {
    // It may change the db (the script's, at the debugger): the keys after
    // it are read back in a db that is a guess (a review found them in db 0),
    // those before it in theirs (in order, as an unanswered SELECT).
    Pending select{
        .kind = Kind::kSelect, .no_reply = true, .spec = spec, .param = 0, .ts = ts, .seq = next_seq_++};
    if (kind == Kind::kSelect && (inner.size() != 2 || !ParseI64(inner[1], &select.param) ||
                                  select.param < 0 || select.param > 0xfffe))
      select.param = -1;  // refused
    if (ignored_) return SelectUnanswered(select);
    select.chunk_offset = chunk_offset_;
    pending_.push_back(select);
    return DrainNoReply();
  }
  if (kind != Kind::kWrite) return;
  std::vector<KeyRef> keys;
  const long argc = static_cast<long>(inner.size());
  if (spec->arity >= 0 ? argc == spec->arity : argc >= -spec->arity) FindKeys(*spec, inner, &keys);
  if (keys.empty()) return KeylessUnconfirmed(spec);
  if (ignored_) return Unanswered(spec, inner, ts, kAfterGap);
  if (pending_.size() >= opts_.max_pending_requests ||
      arena_.size() + ArgBytes(inner) > opts_.max_pending_bytes) {
    // (Read back after what was waiting: EnterDesync reads that back.)
    ++stats_.overflows;
    EnterDesync();
    return Unanswered(spec, inner, ts, kAfterGap);
  }
  Pending p{.kind = Kind::kWrite,
            .no_reply = true,
            .spec = spec,
            .arg_begin = static_cast<uint32_t>(spans_.size()),
            .ts = ts,
            .seq = next_seq_++};
  p.argc = static_cast<uint32_t>(inner.size());
  for (const std::string_view a : inner) {
    spans_.emplace_back(static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(a.size()));
    arena_.append(a);
  }
  p.chunk_offset = chunk_offset_;
  pending_.push_back(p);
  DrainNoReply();
}

std::string_view Connection::CommandNamedByError(std::string_view error) {
  // Redis 7 names the command (a subcommand as `container|sub`) in these:
  //   NOPERM this user has no permissions to run the 'client|reply' command
  //   ERR wrong number of arguments for 'get' command
  constexpr std::string_view kPermission = "NOPERM ";
  constexpr std::string_view kArity = "ERR wrong number of arguments for '";
  size_t from;
  if (error.substr(0, kArity.size()) == kArity) {
    from = kArity.size();
  } else if (error.substr(0, kPermission.size()) == kPermission) {
    constexpr std::string_view kRun = "to run the '";
    const size_t at = error.find(kRun);
    if (at == std::string_view::npos) return {};
    from = at + kRun.size();
  } else {
    return {};
  }
  const size_t to = error.find("' command", from);
  if (to == std::string_view::npos) return {};
  return error.substr(from, to - from);
}

bool Connection::KillsItself(const CommandSpec* spec, std::span<const std::string_view> args) {
  static const CommandSpec* const client_kill = LookupCommandName("client|kill");
  if (spec == nullptr || spec != client_kill) return false;
  if (args.size() == 3) return true;
  for (size_t i = 2; i + 1 < args.size(); ++i) {
    if (EqualsIgnoreCase(args[i], "skipme") && EqualsIgnoreCase(args[i + 1], "no")) return true;
  }
  return false;
}

bool Connection::AnswersQueuedItself(const CommandSpec* spec) {
  return spec == nullptr || IsScriptCall(*spec) || IsReadOnlyScriptCall(*spec) ||
         TableIndex(spec) >= kCommandTableSize;
}

void Connection::DropInferredMulti() {
  // Those that may answer +QUEUED themselves may have run, and are read
  // back (ReadBack acts on writes only); the rest were queued, and never ran.
  for (const Pending& q : multi_queue_) {
    if (AnswersQueuedItself(q.spec)) ReadBack(q, false, 0);
  }
  multi_queue_.clear();
  in_multi_ = false;
  multi_inferred_ = false;
}

bool Connection::IsProtocolError(std::string_view error) {
  // Redis 7's messages (networking.c), exactly: a script may return an
  // error that starts the same way of its own, and its connection lives on
  // (the diff review: EVAL_RO returning "ERR Protocol error: mine").
  if (!error.starts_with("ERR Protocol error: ")) return false;
  const std::string_view what = error.substr(20);
  static constexpr std::string_view kWhats[] = {
      "too big inline request",   "unbalanced quotes in request",     "too big mbulk count string",
      "invalid multibulk length", "unauthenticated multibulk length", "too big bulk count string",
      "invalid bulk length",      "unauthenticated bulk length"};
  return std::find(std::begin(kWhats), std::end(kWhats), what) != std::end(kWhats) ||
         (what.starts_with("expected '$', got '") && what.size() == 21 && what.back() == '\'');
}

bool Connection::RefusedAtAccept(std::string_view error) {
  return error.starts_with("ERR max number of clients") ||
         error.starts_with("DENIED Redis is running in protected mode");
}

void Connection::OnReply(std::span<const Node> reply, uint64_t ts) {
  ++stats_.replies;
  if (reply[0].type == Type::kPush) {
    ++stats_.pushes;
    if (!sub_confirms_.empty()) [[unlikely]]
      ConfirmSubscribe(reply);
    return;
  }
  // The server ran what follows only after a SUBSCRIBE's confirmations: a
  // silenced one still owing them was refused, silently.
  while (!sub_confirms_.empty() && sub_confirms_.front().silent) {
    if (sub_confirms_.front().next > 0) {
      // Confirmed in part: an ACL refuses all or none, so those pushes were
      // another SUBSCRIBE's, and which reply is whose is not known.
      ++stats_.unpaired_replies;
      EnterDesync();  // (which forgets them)
      break;
    }
    Observe(sub_confirms_.front().spec, Outcome::kUnpaired);
    sub_confirms_.pop_front();
  }
  if (!sub_confirms_.empty()) [[unlikely]] {
    // A RESP3 SUBSCRIBE still owes confirmations, and the server runs what
    // follows it only after sending them: this reply is its own. An ACL
    // refuses every channel or none (a review: the -NOPERM paired with the
    // next request, a MULTI, and the FLUSHALL queued after it was shipped
    // though DISCARDed). Anything but an error cannot answer it.
    const SubConfirm refused = sub_confirms_.front();
    sub_confirms_.pop_front();
    // (An error naming another command, as Redis 7's do, is not its own.)
    const std::string_view named = IsError(reply[0]) ? CommandNamedByError(reply[0].str) : std::string_view();
    if (IsError(reply[0]) && (named.empty() || EqualsIgnoreCase(named, CommandName(*refused.spec)))) {
      Observe(refused.spec, Outcome::kRejected);
      if (IsRedirect(reply[0].str)) NoteRedirect(reply[0].str);
      return;
    }
    Observe(refused.spec, Outcome::kUnpaired);
    ++stats_.unpaired_replies;
    EnterDesync();
    return;
  }
  if (stats_.replies == 1 && IsError(reply[0]) && !opts_.joined_mid_stream && !gap_seen_ &&
      RefusedAtAccept(reply[0].str)) [[unlikely]] {
    // Written by the server as it accepted the connection, before reading
    // a byte of it, which it then closes (redis 7.0 acceptCommonHandler:
    // maxclients; clientAcceptHandler: protected mode): no request on it
    // ran, the ones sent before this came included. Paired with the first
    // one, the rest were read back at the close and a FLUSHALL among them
    // was shipped.
    // Not counted per command: the server never read them (INFO
    // commandstats counts none; a review), as with requests behind a QUIT.
    ++stats_.connections_refused;
    stats_.never_ran += pending_.size();
    pending_.clear();
    multi_queue_.clear();
    in_multi_ = false;
    multi_inferred_ = false;
    quit_ = true;
    Reclaim();
    return;
  }
  if (awaiting_reset_) {
    // Pub/sub messages or MONITOR lines still in flight before +RESET.
    if (reply[0].type != Type::kSimpleString || reply[0].str != "RESET") {
      ++stats_.skipped_before_reset;
      if (++skipped_before_reset_ > opts_.max_pending_requests) {
        // No +RESET in sight (lost, or the RESET was refused): give up.
        awaiting_reset_ = false;
        ForgetDb();
        EnterDesync();
      }
      return;
    }
    awaiting_reset_ = false;
    if (pending_.empty() || pending_.front().kind != Kind::kReset) {
      // A desync read the RESET back before its reply came: apply it here.
      last_reply_ts_ = ts;
      ApplyReset();
      ProveRequestsInStep();
      return;
    }
  }
  if (pubsub_ && IsPubSubMessage(reply)) {
    // Delivered between replies, answering no request.
    ++stats_.messages;
    return;
  }
  if (desync_ && protocol_ == 2 &&
      (IsSubscribeConfirmation(reply) || (pending_.empty() && IsPubSubMessage(reply)))) {
    // Out of step, a subscription is confirmed (its request lost, or read
    // back already) or a message comes with nothing to answer: the
    // connection is a subscriber, and its messages must not pair with the
    // requests to come.
    if (pending_.empty() || pending_.front().kind != Kind::kSubscribe) ++stats_.unpaired_replies;
    monitor_ = false;
    EnterIgnored();
    return;
  }
  last_reply_ts_ = ts;
  if (silenced_shutdown_ns_ != 0 && ts > silenced_shutdown_ns_) [[unlikely]]
    silenced_shutdown_ns_ = 0;  // answered since: the server did not exit
  if (pending_.empty()) {
    ++stats_.unpaired_replies;
    // A CLIENT REPLY OFF an ACL refused: replies are on after all.
    if (IsError(reply[0]) && EqualsIgnoreCase(CommandNamedByError(reply[0].str), "client|reply")) [[unlikely]]
      reply_off_ = skip_next_ = false;
    if (!desync_) EnterDesync();
    quiet_points_ = 0;  // the requests and replies since the last quiet point did not balance
    return;
  }
  while (pending_.front().confirm_only && !ConfirmsRequest(pending_.front(), reply)) {
    // Sent while replies were off and refused (silently): the reply is the
    // next request's.
    const Pending p = pending_.front();
    pending_.pop_front();
    Observe(p.spec, Outcome::kRejected);
    DrainNoReply();
    if (ignored_) return;  // a mark behind it was reached
    if (awaiting_reset_) {
      // A mark with a RESET behind it: this reply may be its +RESET.
      --stats_.replies;
      OnReply(reply, ts);
      return;
    }
    if (pending_.empty()) {
      ++stats_.unpaired_replies;
      if (!desync_) EnterDesync();
      quiet_points_ = 0;
      return;
    }
  }
  Pending& front = pending_.front();
  const bool after_silent = std::exchange(drained_silent_, false);
  if (!desync_ && IsError(reply[0]) && reply[0].str.starts_with("NOAUTH") &&
      (after_silent || front.kind == Kind::kAuth)) [[unlikely]] {
    // Refused because the connection had not authenticated: so was every
    // request since it opened, a CLIENT REPLY OFF or SKIP, a REPLCONF ACK
    // or a RESP3 SUBSCRIBE among them, which were then answered after all
    // (a review paired the replies one off and shipped the reply of CONFIG
    // GET requirepass as an SPOP's member). An AUTH is never refused so.
    // Nothing ran before the AUTH; what waits is read back, replies are on.
    ++stats_.unpaired_replies;
    reply_off_ = skip_next_ = false;
    EnterDesync();
    return;
  }
  // (Not for scripts, read-only ones included: a script's error may name a
  // command it called, or be any text the script returned.)
  if (!desync_ && IsError(reply[0]) && front.spec != nullptr && !IsScriptCall(*front.spec) &&
      !IsReadOnlyScriptCall(*front.spec)) [[unlikely]] {
    std::string_view named = CommandNamedByError(reply[0].str);
    const std::string_view own = CommandName(*front.spec);
    // A subcommand the table lacks (a newer server's CLIENT SETINFO) was
    // looked up as its container: compare the container alone.
    if (own.find('|') == std::string_view::npos) named = named.substr(0, named.find('|'));
    if (!named.empty() && !EqualsIgnoreCase(named, own)) {
      // An error that names another command than the request it would
      // answer: the replies are out of step. A refused CLIENT REPLY OFF or
      // SKIP (an ACL without `client`) was answered though no reply was
      // expected; paired on, the next write would be taken as refused and
      // lost. What waits is read back, and replies stay on.
      ++stats_.unpaired_replies;
      if (EqualsIgnoreCase(named, "client|reply")) reply_off_ = skip_next_ = false;
      EnterDesync();
      return;
    }
  }
  if ((front.kind == Kind::kSubscribe || front.kind == Kind::kUnsubscribe) && !IsError(reply[0])) {
    if (protocol_ == 2 && !desync_ && OnSubscriptionReply(front, reply)) {
      if (front.param > 0) return;  // more confirmations of this request to come
      const Pending p = front;
      pending_.pop_front();
      ++stats_.reads;
      Observe(p.spec, Outcome::kReadOnly);
      DrainNoReply();
      return;
    }
    if (front.param > 1) {
      // Subscriptions not counted: one of several per-channel replies, the
      // last one pairs; a subscribed connection is ignored from here.
      --front.param;
      if (front.kind == Kind::kSubscribe && protocol_ == 2 && !desync_) {
        monitor_ = false;
        EnterIgnored();
      }
      return;
    }
  }
  if (desync_ && reply[0].type == Type::kSimpleString && reply[0].str == "RESET" &&
      std::any_of(pending_.begin(), pending_.end(),
                  [](const Pending& q) { return q.kind == Kind::kReset; })) {
    // Only RESET is answered +RESET: the pair is certain (what waits ahead
    // of the RESET was answered unseen: read back), and so is the state after
    // it (db 0, RESP2, no MULTI). Pairing resumes here; the requests after
    // the RESET are in step.
    while (pending_.front().kind != Kind::kReset) {
      if (pending_.front().kind != Kind::kIgnoreMark) ++stats_.unpaired_requests;
      ReadBack(pending_.front(), false);
      pending_.pop_front();
    }
    pending_.pop_front();
    ApplyReset();
    desync_ = false;
    ProveRequestsInStep();  // the requests after the RESET (a review: a FLUSHALL there was dropped)
    quiet_points_ = 0;
    after_gap_left_ = opts_.after_gap_records;
    DrainNoReply();
    return;
  }
  const Pending p = front;
  pending_.pop_front();
  // A SELECT, RESET or EXEC answered while the db is unknown (one paired out
  // of sync, which leaves it unknown) surely ran by its reply's time, not by
  // its request's: a stalled server may run it later (ProveDb).
  if (MayChangeDb(p) && !db_known_) [[unlikely]]
    db_unknown_since_ns_ = std::max(db_unknown_since_ns_, ts);
  if (desync_) {
    if (p.kind == Kind::kWrite) Unanswered(p, ts, kAfterGap);
    if (p.kind == Kind::kSelect) {
      // Paired out of step, the reply may be another request's (a +QUEUED
      // of a transaction later discarded, a lost read's): its db is a
      // guess (a review: a server gap of 4 bytes, then MULTI SELECT 2 …
      // DISCARD, put every later write in db 2, unflagged).
      if (p.param >= 0 && !IsError(reply[0]) && !single_db_) db_ = static_cast<uint16_t>(p.param);
      if (db_known_) {
        ForgetDb();
        if (!single_db_) db_unknown_since_ns_ = ts;  // as above: it ran by its reply, if at all
      }
    }
    // Pub/sub or MONITOR output would otherwise resync against requests.
    if (!IsError(reply[0]) && (p.kind == Kind::kMonitor || (p.kind == Kind::kSubscribe && protocol_ == 2))) {
      monitor_ = p.kind == Kind::kMonitor;
      EnterIgnored();
      return;
    }
    if (!IsError(reply[0]) && p.kind == Kind::kSync) {
      EnterReplicaLink();
      return;
    }
  } else {
    // The write ran after its request arrived, maybe long before its reply
    // was captured (queued behind a large reply): the ambiguity window
    // compares these spans. A transaction runs at EXEC. A blocking command
    // too counts from its request: it ran at once (its list not empty) or
    // when a write served it, and either way its reply may leave long
    // after, behind the replies of later clients in the same event-loop
    // pass (Redis writes those newest first). Timed from its reply, a BRPOP
    // that ran before another connection's RPUSH was applied after it,
    // unflagged (found by a review).
    exec_from_ns_ = p.ts;
    Handle(p, reply, ts, false);
    if (replica_link_) return;  // PSYNC answered: the rest is the link's
    // RESP2 answers a write, SELECT or MULTI only outside pub/sub mode.
    if (!subs_known_ && protocol_ == 2 && !IsError(reply[0]) &&
        (p.kind == Kind::kWrite || p.kind == Kind::kSelect || p.kind == Kind::kMulti)) {
      SetSubscriptionsZero();
    }
  }
  DrainNoReply();
}

void Connection::ObserveReply(const CommandSpec* spec, const Node& root, bool in_tx) {
  if (!IsError(root)) return Observe(spec, Outcome::kReadOnly);
  if (CountedNowhere(root.str)) return;
  if (!in_tx || !root.str.starts_with("NOPERM ACLs rules changed")) Observe(spec, Outcome::kRejected);
}

void Connection::Handle(const Pending& p, std::span<const Node> reply, uint64_t ts, bool in_tx) {
  const Node& root = reply[0];
  const bool is_error = IsError(root);
  if (is_error && IsProtocolError(root.str)) [[unlikely]] {
    // A request the server could not read (more than 10 arguments or a
    // bulk over 16 KiB before AUTH, a bulk over proto-max-bulk-len, an
    // inline line too long…), which the parser read: Redis closes the
    // connection after this reply and runs nothing sent behind, in a
    // transaction too (a review: a FLUSHALL pipelined behind an
    // unauthenticated RPUSH of 10 elements was shipped; the diff review,
    // one behind a too long inline line inside MULTI).
    quit_ = quit_answered_ = true;
  }
  // (Refused at queueing too, or inside a script.)
  if (is_error && p.kind == Kind::kWrite && root.str.starts_with("OOM ")) [[unlikely]]
    ++stats_.oom_refused;
  // (Redis answers a kill with the number killed, or +OK in the old form.)
  kill_answered_ = p.kills && ((root.type == Type::kInteger && root.integer > 0) ||
                               (root.type == Type::kSimpleString && root.str == "OK"));
  const bool queued = root.type == Type::kSimpleString && root.str == "QUEUED";
  // "EXEC without MULTI", "DISCARD without MULTI": no transaction is open.
  const bool no_multi = is_error && root.str.find("without MULTI") != std::string_view::npos;
  if (!in_tx && p.kind != Kind::kExec && p.kind != Kind::kDiscard && p.kind != Kind::kMulti &&
      p.kind != Kind::kReset) {
    // Queued for EXEC. Seen outside MULTI it means the MULTI was lost, on
    // a connection that lost bytes or was joined mid-stream; on one seen
    // whole from its start every MULTI was seen, and +QUEUED is the
    // command's own answer (a script may return any status: a review's
    // EVAL returning {ok='QUEUED'} had its write dropped).
    // (AnswersQueuedItself is looked up only for a +QUEUED.)
    if (queued && (in_multi_ || !no_unseen_multi_ || !AnswersQueuedItself(p.spec))) {
      if (!in_multi_) {
        multi_inferred_ = true;
        multi_ts_ = 0;  // (its MULTI unseen: from before anything)
      }
      in_multi_ = true;
      multi_queue_.push_back(p);
      if (multi_queue_.size() > opts_.max_pending_requests) {
        ++stats_.overflows;
        EnterDesync();
      }
      return;
    }
    if (in_multi_) {
      // A command refused while queueing: EXEC will answer -EXECABORT.
      if (is_error) {
        if (p.holds_library) [[unlikely]]
          SettleLibrary(false);
        if (!CountedNowhere(root.str)) Observe(p.spec, Outcome::kRejected);
        if (IsRedirect(root.str)) NoteRedirect(root.str);
        return;
      }
      // Answered in step, and not queued: the transaction inferred was
      // none (its +QUEUEDs were scripts' own answers).
      if (multi_inferred_ && !queued && !desync_ && (p.kind == Kind::kPlain || p.kind == Kind::kWrite)) {
        DropInferredMulti();
        no_unseen_multi_ = true;
      }
    } else if (!queued && !is_error && !desync_ && (p.kind == Kind::kPlain || p.kind == Kind::kWrite)) {
      // Answered in step, and not queued: no transaction is open.
      no_unseen_multi_ = true;
    }
  }
  if (is_error && IsRedirect(root.str)) [[unlikely]]
    NoteRedirect(root.str);
  if (is_error && !single_db_ && opts_.client_lists != nullptr && ShowsClusterNode(p, root.str)) [[unlikely]]
    opts_.client_lists->OnClusterNode(ts);
  if (is_error && p.blocks && root.str.starts_with("UNBLOCKED force unblock")) [[unlikely]] {
    // A master made a replica (REPLICAOF) answers its blocked clients so
    // and closes them after the reply: nothing pipelined behind ran (a
    // review: a FLUSHDB behind a BLPOP emptied the replica). CLIENT UNBLOCK
    // … ERROR says "client unblocked via": the client lives on.
    quit_ = quit_answered_ = true;
  }
  switch (p.kind) {
    case Kind::kAuth:
    case Kind::kMulti:
    case Kind::kExec:
    case Kind::kDiscard:
    case Kind::kSelect:
    case Kind::kHello:
    case Kind::kSetName:
    case Kind::kReset:
    case Kind::kMonitor:
      // Connection control: counted per command like a read (a refused
      // AUTH or SELECT shows as rejected), handled below. (MONITOR was
      // not counted at all: a review compared with INFO commandstats.)
      ObserveReply(p.spec, root, in_tx);
      break;
    default: break;
  }
  switch (p.kind) {
    case Kind::kSync:  // PSYNC (SYNC is never answered in RESP)
      if (!is_error) {
        Observe(p.spec, Outcome::kReadOnly);
        if (announced_port_ != 0 && opts_.client_lists != nullptr && root.type == Type::kSimpleString &&
            (root.str.starts_with("FULLRESYNC") || root.str.starts_with("CONTINUE"))) {
          opts_.client_lists->OnReplicaLink({announced_port_, announced_ip_, p.param == 1}, ts);
        }
        EnterReplicaLink();
        return;
      }
      [[fallthrough]];
    case Kind::kPlain:
    case Kind::kClientReply:
    case Kind::kReplconf:  // the handshake's, before PSYNC
      if (!is_error) {
        if (p.spec == nullptr) {
          ++stats_.unknown_commands;
          // Named only when the pairing is sure: paired one off, the name
          // may be anything the client sent, a password typed at a prompt
          // (a review), and the success another request's.
          if (p.argc == 1 && after_gap_left_ == 0 && !p.out_of_step) NoteUnknown(Args(p)[0]);
        } else {
          ++stats_.reads;
        }
      }
      if (p.param != 0 && !is_error) [[unlikely]]
        NoteClientInfo(p, root, ts, in_tx);
      ObserveReply(p.spec, root, in_tx);
      return;
    case Kind::kAuth: return;
    case Kind::kMulti:
      if (!is_error) {
        if (multi_inferred_) DropInferredMulti();  // none was open: +OK, not a "nested" error
        in_multi_ = true;
        multi_ts_ = p.ts;
        multi_refused_ = false;  // (a transaction of its own)
        multi_inferred_ = false;
        multi_queue_.clear();
      }
      return;
    case Kind::kDiscard:
      // Answered, with an error too (DISCARD without MULTI): no transaction
      // is open now.
      if (!desync_ && (!is_error || no_multi)) no_unseen_multi_ = true;
      if (no_multi && multi_inferred_) {
        DropInferredMulti();  // as EXEC's
        return;
      }
      if (!is_error) {
        in_multi_ = false;
        multi_inferred_ = false;
        NeverLoaded(multi_queue_);
        multi_queue_.clear();
      }
      return;
    case Kind::kExec: {
      // As DISCARD's; EXECABORT (an ACL's or OOM refusal of the EXEC
      // too) and a nil (WATCH) end the transaction.
      if (!desync_ && (!is_error || no_multi || root.str.starts_with("EXECABORT"))) no_unseen_multi_ = true;
      if (no_multi && multi_inferred_) {
        DropInferredMulti();
        return;
      }
      if (!in_multi_ && is_error) return;  // EXEC without MULTI
      in_multi_ = false;
      multi_inferred_ = false;
      std::vector<Pending> queue;
      queue.swap(multi_queue_);
      // A (UN)SUBSCRIBE of several channels answers once per channel, past
      // the EXEC array's own count: which reply is whose cannot be told. A
      // bare UNSUBSCRIBE answers once when nothing is subscribed (RESP2
      // refuses MULTI while subscribed, so only the queue can subscribe).
      bool subscribed_before = !subs_known_ || protocol_ != 2;
      const bool spills = std::any_of(queue.begin(), queue.end(), [&](const Pending& q) {
        if (q.kind != Kind::kSubscribe && q.kind != Kind::kUnsubscribe) return false;
        const bool one = q.param == 1 || (q.bare && !subscribed_before);
        if (q.kind == Kind::kSubscribe) subscribed_before = true;
        return !one;
      });
      if (spills && root.type == Type::kArray) {
        ++stats_.bad_shapes;
        TransactionRanUnpaired(queue, ts);
        EnterDesync();
        return;
      }
      if (root.type == Type::kNull || is_error) {
        ++(is_error ? stats_.exec_aborted : stats_.watch_aborted);
        NeverLoaded(queue);
        HelloDidNotSwitch(QueuedProtocol(queue), false);  // switched when the EXEC was read
      } else if (root.type == Type::kArray && root.children == queue.size()) {
        ++stats_.transactions;
        size_t i = 1;
        for (const Pending& q : queue) {
          Handle(q, reply.subspan(i, reply[i].subtree), ts, true);
          i += reply[i].subtree;
        }
        // A SUBSCRIBE or MONITOR in the transaction takes effect after it.
        if (ignore_after_exec_) {
          ignore_after_exec_ = false;
          EnterIgnored();
        }
      } else {
        // The transaction ran, but we cannot tell which reply is whose.
        ++stats_.bad_shapes;
        TransactionRanUnpaired(queue, ts);
      }
      return;
    }
    case Kind::kSelect:
      if (!is_error && p.param >= 0) {
        db_ = static_cast<uint16_t>(p.param);
        KnowDb();
      }
      return;
    case Kind::kHello:
      if (!is_error) {
        ApplyHello(p);
      } else {
        HelloDidNotSwitch(static_cast<int>(p.param), root.str.starts_with("NOAUTH"));  // a wrong password
      }
      return;
    case Kind::kSetName:
      if (!is_error) replayer_ = IsReplayerName(Args(p)[2]);
      return;
    case Kind::kScriptLoad:  // (its body was learned from the request)
      ObserveReply(p.spec, root, in_tx);
      return;
    case Kind::kReset:
      if (!is_error) {
        ApplyReset();
        // Its +RESET paired with it: the requests after it are in step,
        // whatever bytes were lost before (a review: lost while a MONITOR
        // was ignored, they kept a later FLUSHALL from being shipped).
        ProveRequestsInStep();
      }
      return;
    case Kind::kSubscribe:
    case Kind::kUnsubscribe:
      if (!is_error && protocol_ == 2) {
        Pending counted = p;  // inside EXEC: one confirmation (one channel named)
        if (OnSubscriptionReply(counted, reply)) {
          ++stats_.reads;
          Observe(p.spec, Outcome::kReadOnly);
          return;
        }
      }
      if (is_error || protocol_ != 2 || p.kind == Kind::kUnsubscribe) {
        if (!is_error) ++stats_.reads;
        ObserveReply(p.spec, root, in_tx);
        return;
      }
      // Subscriptions not counted (after a desync): ignore the connection.
      monitor_ = false;
      if (in_tx) {
        ignore_after_exec_ = true;
      } else {
        EnterIgnored();
      }
      return;
    case Kind::kMonitor:
      if (is_error) return;
      monitor_ = true;
      if (in_tx) {
        ignore_after_exec_ = true;  // the rest of the EXEC reply is still to be paired
      } else {
        EnterIgnored();
      }
      return;
    case Kind::kWrite: HandleWrite(p, reply, ts, in_tx); return;
    case Kind::kQuit:
      // Inside MULTI too (answered +OK there, never queued): the
      // transaction is dropped with the connection. Parsed out of step and
      // answered in step (a +RESET before it proved the requests), it is
      // known only now: what is pending behind it never ran (OnClose).
      Observe(p.spec, Outcome::kReadOnly);
      in_multi_ = false;
      multi_inferred_ = false;
      NeverLoaded(multi_queue_);
      multi_queue_.clear();
      if (!is_error) quit_ = quit_answered_ = true;
      return;
    case Kind::kIgnoreMark: return;  // never answered (no_reply)
  }
}

void Connection::SettleLibrary(bool loaded) {
  --library_holds_;
  scripts_->NoteLibrarySettled(loaded, opts_.server_key);
  if (loaded) ++stats_.libraries_held_back;
}

template <typename Queue>
void Connection::NeverLoaded(const Queue& discarded) {
  if (library_holds_ == 0) return;
  for (const Pending& q : discarded) {
    if (q.holds_library) SettleLibrary(false);
  }
}

void Connection::SyncLibraryHolds() {
  uint32_t alive = 0;
  for (const Pending& q : pending_) alive += q.holds_library;
  for (const Pending& q : multi_queue_) alive += q.holds_library;
  while (library_holds_ > alive) SettleLibrary(true);
}

void Connection::HandleWrite(const Pending& p, std::span<const Node> reply, uint64_t ts, bool in_tx) {
  std::span<const std::string_view> argv = Args(p);
  const ScriptKind script = ScriptKindOf(p.spec);
  if (p.spec->name[0] == 'f') [[unlikely]] {
    if (p.holds_library) {
      SettleLibrary(!IsError(reply[0]));
    } else if (p.spec == FunctionFlushSpec() && !IsError(reply[0])) {
      scripts_->NoteFunctionsFlushed(opts_.server_key);
    }
    // The functions a library the server took registers (one it refused,
    // "already exists" at a restart's load, registers none: a review).
    if (!IsError(reply[0]) && argv.size() >= 3 && IsLibraryLoad(argv) && EqualsIgnoreCase(argv[1], "LOAD")) {
      bool complete = true;
      scripts_->LearnFunctions(RegisteredFunctionNames(argv.back(), &complete));
      // A library that may flush, with a function named by no literal:
      // which FCALL runs it cannot be told (the diff review's `local n`).
      if (!complete && !p.elided) [[unlikely]] {
        if (const uint8_t names = DatabaseWideNames(argv.back()); names != 0)
          scripts_->LearnDatabaseWideFunctions({}, names, /*every_fcall=*/true);
      }
    }
  }
  if (replayer_) {
    ++stats_.replayer_writes;
    Observe(p.spec, Outcome::kReplayer);
    return;
  }
  // Built only for a write that produces records: FlagsFor counts down the
  // after-gap budget.
  auto context = [&] {
    ConvertContext c;
    c.db = db_;
    c.capture_ns = ts;
    c.request_ns = exec_from_ns_;
    c.flags = FlagsFor(in_tx);
    c.connection_id = opts_.connection_id;
    return c;
  };
  if (IsError(reply[0])) {
    ++stats_.writes_rejected;
    ObserveReply(p.spec, reply[0], in_tx);
    // A script is not rolled back, and a MIGRATE of several keys may have
    // moved some: read their keys back (refusals before running cost a
    // needless read).
    if (MayHaveWrittenDespite(*p.spec, reply[0].str)) {
      stats_.records += ReadbackWrite(*p.spec, argv, context(), sink_);
      // One that may flush or swap dbs may have done so before it failed,
      // which no read-back of keys redoes; nor can shipping it: whether it
      // got that far (refused before it ran, an ACL refusing its FLUSHDB,
      // SCRIPT KILL) the wire does not say (the diff review: a failing
      // flush left the replica the keys the source had flushed; shipping
      // such scripts then flushed the replica where the source had refused
      // them). Counted and said: a consistency check settles those dbs.
      const bool script_call = script != ScriptKind::kNone || (p.spec->name[0] == 'f' && IsFcall(*p.spec));
      if (script_call && ScriptChangesDbs(p.spec, argv, *scripts_)) [[unlikely]]
        ++stats_.scripts_failed_may_flush;
    }
    return;
  }
  ConvertContext ctx = context();
  if (p.elided || (replies_.elided() &&
                   std::any_of(reply.begin(), reply.end(), [](const Node& n) { return n.elided; }))) {
    // What it wrote (an argument) or what it answered (a popped or
    // previous value) was too large to hold: its keys are read back.
    ++stats_.writes_oversized;
    Observe(p.spec, Outcome::kApplied);
    stats_.records += ReadbackWrite(*p.spec, argv, ctx, sink_);
    return;
  }
  struct Counting : RecordSink {
    RecordSink* next;
    uint64_t n = 0;
    void Emit(const RecordView& r, uint64_t id) override {
      ++n;
      next->Emit(r, id);
    }
  } counting;
  counting.next = sink_;
  std::shared_ptr<const std::string> body;  // the script, alive until ConvertWrite is done
  if (script == ScriptKind::kEvalsha && argv.size() >= 3) {
    body = scripts_->Find(argv[1]);
    if (body == nullptr && !opts_.defer_unknown_scripts) {
      // Shipping EVALSHA would fail on a target that never saw the script:
      // read its keys back instead.
      ++stats_.script_unknown;
      Observe(p.spec, Outcome::kScriptUnknown);
      const size_t n = ReadbackWrite(*p.spec, argv, ctx, sink_);
      if (n == 0) ++stats_.script_unknown_keyless;  // (keys named in ARGV, if any, are unknown)
      stats_.records += n;
      return;
    }
    script_argv_.assign(argv.begin(), argv.end());
    if (body != nullptr) {
      script_argv_[0] = "EVAL";
      script_argv_[1] = *body;
    } else {
      script_argv_[0] = kDeferredScript;  // the merge ships it as EVAL, or reads its keys back
    }
    argv = script_argv_;
  }
  // Scripts and libraries that call MIGRATE are read back, never shipped
  // (ConvertWrite), and so are FCALLs once such a library came: counted, so
  // that decode can say what that leaves out.
  if (p.spec->name[0] == 'f' && IsFcall(*p.spec)) [[unlikely]] {
    ctx.functions_held_back = scripts_->library_held_back(opts_.server_key);
    if (argv.size() >= 2) ctx.fcall_db_names = scripts_->DatabaseWideNamesOf(argv[1]);
    // Shipped all the same (a library deployed on every site runs it), but
    // said: a review's FCALL of a library loaded before the capture, with no
    // key to read back, left the replica without its write, unsaid.
    if (argv.size() >= 3 && argv[2] == "0" && !scripts_->FunctionKnown(argv[1]))
      ++stats_.fcall_unknown_keyless;
  }
  if (ctx.functions_held_back || CallsMigrate(argv)) [[unlikely]]
    ++stats_.scripts_not_shipped;
  const ConvertOutcome outcome = ConvertWrite(*p.spec, argv, reply, ctx, &counting);
  stats_.records += counting.n;
  switch (outcome) {
    case ConvertOutcome::kRecorded:
      ++stats_.writes_applied;
      Observe(p.spec, Outcome::kApplied);
      break;
    case ConvertOutcome::kNoEffect:
      ++stats_.writes_no_effect;
      Observe(p.spec, Outcome::kNoEffect);
      break;
    case ConvertOutcome::kBadShape:
      ++stats_.bad_shapes;
      Observe(p.spec, Outcome::kUnpaired);
      if (!in_tx) EnterDesync();
      break;
  }
}

}  // namespace kvf::resp
