// Request/reply pairing for one captured TCP connection to a Redis server.
// Consumes the capture side's per-flow events (OnData/OnGap/OnClose), pairs
// every request with its reply in FIFO order, follows connection state
// (MULTI/EXEC, SELECT, HELLO, CLIENT REPLY, RESET, subscriber/MONITOR mode,
// replayer name) and emits change records for acknowledged writes.
#pragma once

#include <cstdint>
#include <cstddef>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "resp/command_table.h"
#include "resp/parser.h"
#include "resp/script_cache.h"
#include "resp/sink.h"

namespace kvf::resp {

enum class Direction : uint8_t { kClientToServer = 0, kServerToClient = 1 };
enum class CloseReason : uint8_t { kFin, kReset, kIdle, kEvicted, kCaptureEnd };

// What became of one request, for per-command accounting (decode --format stats).
enum class Outcome : uint8_t {
  kApplied,        // acknowledged write that produced records
  kNoEffect,       // acknowledged write, reply says nothing changed
  kRejected,       // the server answered with an error
  kReadOnly,       // not a write
  kUnpaired,       // no usable reply (gap, CLIENT REPLY OFF, closed): read back
  kReplayer,       // write of a kvferry replayer connection
  kScriptUnknown,  // EVALSHA of a script never seen loaded: its keys are read back
  kCount
};
std::string_view OutcomeName(Outcome o);
// What an operator reads when `n` key-less writes (ConnectionStats::
// keyless_unconfirmed) were counted and not shipped.
std::string KeylessUnconfirmedNote(uint64_t n);

class OutcomeObserver {
 public:
  virtual ~OutcomeObserver() = default;
  // `command` is the table name ("set", "client|setname") or "unknown".
  virtual void OnOutcome(std::string_view command, Outcome outcome) = 0;
};

// Told of every CLIENT LIST reply a connection pairs (in sync, outside a
// transaction): its text, when the request was captured and when the reply
// was. The text is only valid during the call.
// A replica's link, as its handshake told it (ClientListObserver::OnReplicaLink).
struct ReplicaLink {
  uint16_t listening_port = 0;    // REPLCONF listening-port
  std::string_view announced_ip;  // REPLCONF ip-address (replica-announce-ip), if sent
  // PSYNC … FAILOVER: the old master handing over to this server (FAILOVER TO),
  // which became a master on answering it.
  bool failover = false;
};

class ClientListObserver {
 public:
  virtual ~ClientListObserver() = default;
  virtual void OnClientList(std::string_view text, uint64_t request_ns, uint64_t reply_ns) = 0;
  // The server answered a REPLICAOF (SLAVEOF) +OK at `reply_ns`: it became
  // a replica of `master` ("host:port" as the request named it), or a
  // master (`master` empty: REPLICAOF NO ONE). What a replica held before
  // is replaced by its master's (a failover throws away what the old master
  // took after the new one was made master).
  // `answered` false: sent under CLIENT REPLY OFF or SKIP, so most likely
  // done, but unconfirmed; `reply_ns` is then when it had surely run.
  virtual void OnRoleChange(std::string_view master, uint64_t reply_ns, bool answered) {
    (void)master;
    (void)reply_ns;
    (void)answered;
  }
  // The server showed it is a Redis Cluster node, which has db 0 alone
  // (a -MOVED, -ASK, -CROSSSLOT or -CLUSTERDOWN answering one of Redis's own
  // commands, not a script's or a module's, whose errors may say anything;
  // a SELECT refused "in cluster mode").
  virtual void OnClusterNode(uint64_t reply_ns) { (void)reply_ns; }
  // This connection is a replica's link: the replica announced its port
  // (REPLCONF listening-port) and its PSYNC was answered +FULLRESYNC or
  // +CONTINUE at `reply_ns`, in step. It replicates the server from then
  // on, whatever name its REPLICAOF gave the server.
  virtual void OnReplicaLink(const ReplicaLink& link, uint64_t reply_ns) {
    (void)link;
    (void)reply_ns;
  }
};

struct ConnectionOptions {
  OutcomeObserver* observer = nullptr;  // optional; must outlive the connection
  // Script bodies learned from SCRIPT LOAD / EVAL, shared by the connections
  // to one server (a script loaded on one connection is often run from
  // another). Optional, must outlive the connection; null: a private cache.
  ScriptCache* scripts = nullptr;
  ClientListObserver* client_lists = nullptr;  // optional; must outlive the connection
  uint64_t connection_id = 0;                  // passed to the sink with every record
  // The server, as a number (a hash of its address): which servers hold a
  // function library held back (ScriptCache, shared by the servers).
  uint64_t server_key = 0;
  bool joined_mid_stream = false;   // capture did not see the connection start
  uint32_t after_gap_records = 64;  // writes flagged kAfterGap|kNeedsReadback after a resync
  // Unanswered requests kept (then: desync), and the bytes they take: their
  // arguments and their entries. A client library's bulk pipeline (ruby's
  // `pipelined`, node's Promise.all) sends 100,000s of requests before it
  // reads a reply; a review found 66-88 % of such a load read back at the
  // old cap of 65,536.
  size_t max_pending_requests = 1u << 20;
  size_t max_pending_bytes = 64u << 20;
  // Emit kHold markers while a FLUSHDB, FLUSHALL or SWAPDB waits for its
  // reply (or for its EXEC's), for an ambiguity tracker downstream.
  bool announce_holds = false;
  // An EVALSHA whose body the script cache lacks is emitted as such (args
  // "EVALSHA", sha, …, its records shaped as EVAL's) instead of as read-backs
  // of its keys, for a ShardMerge downstream to resolve: with several capture
  // workers the SCRIPT LOAD that names it may sit in another worker that has
  // not decoded it yet, though it ran first (resp/merge.h).
  bool defer_unknown_scripts = false;
  Limits request_limits;
  // Replies nest as deep as a script's return value: Redis's Lua stops at
  // its C stack limit, about 8,000 levels (a review: a reply 7,963 levels
  // deep gave as many parse errors, and its key-less script's write was
  // lost). Frames cost 16 bytes a level, nodes are capped anyway.
  Limits reply_limits{.max_depth = 16384};
};

// Counters, named for an operator. "writes" are requests whose command may
// change data.
struct ConnectionStats {
  uint64_t requests = 0;
  uint64_t replies = 0;
  uint64_t reads = 0;                   // non-write commands answered
  uint64_t writes_applied = 0;          // acknowledged writes that produced records
  uint64_t writes_no_effect = 0;        // acknowledged, but the reply says nothing changed
  uint64_t writes_rejected = 0;         // the server answered with an error
  uint64_t writes_unacked = 0;          // no reply to pair (CLIENT REPLY OFF, gap): read back
  uint64_t writes_cut = 0;              // requests cut by a gap whose keys came whole: read back
  uint64_t replayer_writes = 0;         // writes of a kvferry replayer connection: not captured
  uint64_t script_unknown = 0;          // EVALSHA whose body was never seen: keys read back, no command
  uint64_t script_unknown_keyless = 0;  // of those, with no key to read back: nothing replicated
  uint64_t scripts_not_shipped = 0;     // EVAL (EVALSHA) or FUNCTION LOAD naming MIGRATE: keys read back
  uint64_t libraries_held_back = 0;  // of those, libraries the server took (LOAD, RESTORE): not on replicas
  // FCALLs declaring no keys of a function no captured FUNCTION LOAD
  // registered: shipped, but only a replica given its library runs them.
  uint64_t fcall_unknown_keyless = 0;
  // Scripts (EVAL, EVALSHA, FCALL) that may flush or swap dbs and failed:
  // whether they did before failing the wire does not say.
  uint64_t scripts_failed_may_flush = 0;
  uint64_t records = 0;
  uint64_t db_proven_by_server = 0;  // dbs settled (or corrected) by the server's word: ProveDb, CLIENT INFO
  uint64_t transactions = 0;         // EXEC that applied
  uint64_t exec_aborted = 0;         // EXEC answered -EXECABORT / error
  uint64_t watch_aborted = 0;        // EXEC answered nil (WATCH)
  uint64_t unpaired_replies = 0;     // replies with no request to pair
  uint64_t unpaired_requests = 0;    // requests still unanswered at close
  // Requests after a QUIT, or on a connection the server refused when it
  // accepted it (maxclients, protected mode): never run (the server closes).
  uint64_t never_ran = 0;
  uint64_t connections_refused = 0;  // refused at accept: the first reply was the refusal
  uint64_t bad_shapes = 0;           // reply did not fit its command: pairing suspect
  uint64_t unknown_commands = 0;     // not in the command table, answered without error
  // Key-less write (FLUSHDB, SWAPDB…) of an ignored connection, or parsed out
  // of step after client bytes were lost: not shipped.
  uint64_t keyless_unconfirmed = 0;
  uint64_t subscriber_doubts = 0;  // requests whose effect pub/sub mode made unknowable: ignored from there
  uint64_t skipped_before_reset = 0;  // replies skipped while waiting for +RESET (pub/sub, MONITOR)
  uint64_t pushes = 0;                // RESP3 out-of-band pushes skipped
  uint64_t messages = 0;              // RESP2 pub/sub messages skipped (subscribed connection)
  uint64_t replication_links = 0;     // a replica's link (PSYNC, REPLCONF ACK): ignored from there
  // REPLICAOF (SLAVEOF) of a master answered +OK: the source replaces its
  // dataset with the master's, over a link of its own that the capture of
  // its port never sees.
  uint64_t became_replica = 0;
  uint64_t redirected = 0;  // answered -MOVED or -ASK (Redis Cluster): the request runs on another node
  // An EVAL under SCRIPT DEBUG YES|SYNC: a Lua debugging session, whose
  // traffic is the debugger's to the connection's end. Its declared keys,
  // and those of writes typed at the debugger, are read back.
  uint64_t lua_debug_sessions = 0;
  // Writes refused -OOM: the source is at maxmemory, where an eviction
  // policy also removes keys, which the wire does not show.
  uint64_t oom_refused = 0;
  // A SHUTDOWN the server never answered: it exited (nothing after it ran).
  // Restarted, it holds its last save, which the wire does not show.
  uint64_t shutdowns = 0;
  // An argument or the reply too large to hold, or a gap inside it: keys read back.
  uint64_t writes_oversized = 0;
  uint64_t oversized_lost = 0;  // a key (or a key-less write's argument) too large to hold: lost
  uint64_t parse_errors = 0;
  uint64_t gaps = 0;
  uint64_t gap_bytes = 0;
  // Gaps wholly inside one value (a bulk string's body): that value is
  // elided, as one too large to hold, and pairing goes on in step.
  uint64_t gaps_in_values = 0;
  uint64_t desyncs = 0;          // times pairing was abandoned and later re-established
  uint64_t overflows = 0;        // pending caps hit
  uint64_t ignored_bytes = 0;    // subscriber / MONITOR / replication link / TLS traffic
  uint64_t tls_connections = 0;  // began with a TLS record: encrypted, nothing decodable

  ConnectionStats& operator+=(const ConnectionStats& o);
  // Adds what each counter grew by from `before` to `now` (one connection's
  // counts at two moments).
  void AddGrowth(const ConnectionStats& now, const ConnectionStats& before);
  // (name, value) pairs for printing; names are stable.
  std::vector<std::pair<std::string, uint64_t>> Named() const;
};

// A FIFO over a vector with a moving head: the steady state of a pipelining
// connection (fill, drain to empty, repeat) allocates nothing, unlike
// std::deque's node per few entries. Compacts when the head passes half.
template <typename T>
class FifoVector {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  void push_back(const T& v) { items_.push_back(v); }
  T& back() { return items_.back(); }
  void pop_back() {
    items_.pop_back();
    if (head_ == items_.size()) clear();
  }
  void pop_front() {
    if (++head_ == items_.size()) {
      clear();
    } else if (head_ >= 1024 && 2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  T* begin() { return items_.data() + head_; }
  T* end() { return items_.data() + items_.size(); }
  const T* begin() const { return items_.data() + head_; }
  const T* end() const { return items_.data() + items_.size(); }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
};

class Connection {
 public:
  // The command an error reply names (Redis 7's NOPERM and wrong-arity
  // errors name theirs), or empty.
  static std::string_view CommandNamedByError(std::string_view error);
  // `sink` must outlive the connection. Thread confinement: one thread.
  explicit Connection(RecordSink* sink, ConnectionOptions options = {});
  // Its reply parser keeps a pointer to it (SetSkimPredicate): never moved.
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // `bytes` of one direction, in stream order, captured at `capture_ns`
  // (CLOCK_REALTIME). Bytes need not be valid after the call.
  void OnData(Direction dir, ByteSpan bytes, uint64_t capture_ns);
  void OnData(Direction dir, std::string_view s, uint64_t capture_ns) { OnData(dir, AsBytes(s), capture_ns); }
  // `missing` bytes of `dir` were lost (reassembly hole, join, drop).
  void OnGap(Direction dir, uint64_t missing);
  // `dir` ended with a FIN that acknowledged `peer_acked` bytes of the other
  // direction's stream (UINT64_MAX: unknown, taken as all seen so far). The
  // server's: Redis closes a connection whole (an idle `timeout`, CLIENT
  // KILL, an output buffer limit), so a request whose last byte came in a
  // chunk wholly past what it acknowledged never runs, whether captured
  // before the FIN or after.
  void OnFin(Direction dir, uint64_t peer_acked = UINT64_MAX);
  // The flow ended. Unanswered writes become read-backs.
  // `ts`: when the connection ended (its FIN or RST), if known: writes still
  // waiting may have run until then.
  void OnClose(CloseReason reason, uint64_t ts = 0);

  const ConnectionStats& stats() const { return stats_; }
  uint16_t db() const { return db_; }
  bool db_known() const { return db_known_; }
  // Where the records go from now on (a stage put in front of the sink).
  void set_sink(RecordSink* sink) { sink_ = sink; }
  // The server has db 0 alone: a Redis Cluster node, which refuses a SELECT
  // of any other. Every record is then in db 0, whatever this connection
  // lost or was joined in the middle of (a cluster review: every record of
  // pooled connections was flagged unknown_db). Called from the board
  // (ctl::DbSettler) once any connection to the server showed it.
  void SetSingleDb();
  // Capture time from which a server's answer on the db must have been asked
  // (ProveDb): the first bytes seen since the db became unknown (a join,
  // lost client bytes, an unanswered SELECT or RESET), or a SELECT, RESET or
  // EXEC request seen since, whichever is later; 0 while the db is known or
  // before any bytes since.
  uint64_t db_unknown_since_ns() const { return db_unknown_since_ns_; }
  // The source server says (CLIENT LIST, asked at `asked_ns` on the capture
  // clock) that this connection's db is `db`. Call it only once the stream
  // has been read up to where the answer was received (the caller keeps a
  // margin for the mirror's delay): then every SELECT the server ran before
  // answering has been seen. Taken (true) only when it settles an unknown
  // db: asked after the db became unknown, in sync, and with no SELECT,
  // RESET, MULTI or EXEC captured up to `answered_ns` (when the answer was
  // received, plus that margin) waiting for its reply; the connection's
  // records from here on carry `db` without kUnknownDb.
  bool ProveDb(uint16_t db, uint64_t asked_ns, uint64_t answered_ns);
  int protocol() const { return protocol_; }
  bool in_multi() const { return in_multi_; }
  bool ignored() const { return ignored_; }      // subscriber or MONITOR
  bool encrypted() const { return encrypted_; }  // TLS: ignored
  // RESP2 pub/sub mode followed reply by reply (subscriptions counted).
  bool subscribed() const { return pubsub_; }
  bool replayer() const { return replayer_; }  // named kvferry:*
  bool in_sync() const { return !desync_; }
  uint64_t skipped_bytes() const { return requests_.skipped_bytes() + replies_.skipped_bytes(); }
  // Names (lower case, non-printable bytes as '?') of commands missing from the command table that the
  // server answered without an error: module commands, perhaps writes, that
  // nothing here can replicate. At most kMaxUnknownNames distinct names.
  const std::vector<std::string>& unknown_command_names() const { return unknown_names_; }
  bool more_unknown_command_names() const { return unknown_names_more_; }  // beyond those
  static constexpr size_t kMaxUnknownNames = 8;
  // The nodes -MOVED and -ASK replies sent requests to ("host:port" as the
  // server wrote it; at most kMaxUnknownNames), for decode to name those
  // its --server does not cover.
  const std::vector<std::string>& redirect_targets() const { return redirect_targets_; }
  static constexpr size_t kMaxUnknownNameBytes = 64;

 private:
  enum class Kind : uint8_t {
    kPlain,
    kWrite,
    kAuth,
    kMulti,
    kExec,
    kDiscard,
    kSelect,
    kHello,
    kSetName,
    kReset,
    kSubscribe,
    kMonitor,
    kUnsubscribe,
    kClientReply,
    kScriptLoad,
    kSync,      // SYNC, PSYNC: what follows is a replication stream
    kReplconf,  // REPLCONF; ACK is sent only on a replication link
    kQuit,      // QUIT: answered +OK, then the server closes; nothing after it runs
    // Not a request: where the connection starts being ignored once every
    // request before it is answered (IgnoreFromHere).
    kIgnoreMark,
  };
  static Kind KindOf(const CommandSpec* spec);
  // Which subscriptions a (UN)SUBSCRIBE-family command counts in.
  enum class Family : uint8_t { kChannel, kPattern, kShard };
  // A RESP3 push confirming a SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE of one
  // channel (>3 kind channel count): its family and channel.
  static bool SubscribePush(std::span<const Node> push, Family* family, std::string_view* channel);
  struct Pending {
    Kind kind;
    bool no_reply;                     // the server will not answer (CLIENT REPLY OFF/SKIP, RESP3 subscribe)
    Family family = Family::kChannel;  // (UN)SUBSCRIBE family
    bool bare = false;                 // an (UN)SUBSCRIBE naming no channel
    bool queued = false;               // parsed inside MULTI: runs at EXEC, if at all
    bool confirm_only = false;         // (UN)SUBSCRIBE under CLIENT REPLY OFF|SKIP: confirmed, or silent
    bool elided = false;               // a write with an argument too large to hold (Parser::elided)
    bool out_of_step = false;          // parsed out of sync after client bytes were lost (requests_unsure_)
    bool blocks = false;               // may hold its client until served (BlocksClient; not queued)
    bool kills = false;                // a CLIENT KILL that may kill its own connection (KillsItself)
    bool holds_library = false;        // a library load held back: ScriptCache::NoteLibraryRequested
    bool database_wide = false;  // with announce_holds: FLUSHDB…, a script that may run one (UpdateHold)
    // A RESP3 (P|S)SUBSCRIBE: unanswered, but confirmed by one push per
    // channel, or refused by one error unless `silenced` (sub_confirms_).
    bool confirmed_by_push = false;
    bool silenced =
        false;  // sent under CLIENT REPLY OFF or SKIP (a RESP3 SUBSCRIBE's refusal is then silent)
    const CommandSpec* spec = nullptr;
    uint32_t arg_begin = 0;  // index into spans_
    uint32_t argc = 0;
    // SELECT db, HELLO protover; (UN)SUBSCRIBE: channels named, so replies
    // still to come (0: a bare UNSUBSCRIBE, one reply per subscription);
    // EXEC: 1 when its transaction cannot change the db.
    int64_t param = 0;
    uint64_t ts = 0;
    uint64_t seq = 0;  // order of arrival
    // Client stream offset where the chunk its last byte came in began: the
    // server never had it if its FIN acknowledged less (OnFin). A chunk the
    // FIN acknowledged in part (a capture's super-segment) may have reached
    // it whole: run or not, as before.
    uint64_t chunk_offset = 0;
  };
  // Whether the server will hold the connection in RESP2 pub/sub mode when
  // it runs the request being parsed (it then refuses all but (UN)SUBSCRIBE,
  // PING, QUIT and RESET): from the counts confirmed so far and the
  // requests still unanswered.
  enum class SubState : uint8_t { kNo, kYes, kMaybe };
  SubState PredictSubscribed() const;
  // A request whose effect cannot be known (it may be refused in pub/sub
  // mode, or may leave RESP3 pub/sub for RESP2) takes this instead: the
  // requests before it pair with their replies, and once they are answered
  // the connection is ignored (EnterIgnored) as a subscriber whose counts
  // are not known.
  void IgnoreFromHere(uint64_t ts, bool subscriber = true);
  // A HELLO's protocol switch as the requests after it see it; false when
  // what follows cannot be told apart (IgnoreFromHere).
  bool SwitchRequestProtocol(int protocol);
  // A SELECT, a RESET, or an EXEC whose transaction may hold one.
  static bool MayChangeDb(const Pending& p) {
    return p.kind == Kind::kSelect || p.kind == Kind::kReset || (p.kind == Kind::kExec && p.param == 0);
  }
  void NoteUnknown(std::string_view name);
  // -MOVED or -ASK: the request runs on the node named (Redis Cluster).
  static bool IsRedirect(std::string_view error) {
    return error.starts_with("MOVED ") || error.starts_with("ASK ");
  }
  void NoteRedirect(std::string_view error);
  // A REPLICAOF that made the server a replica or a master.
  void NoteRoleChange(const Pending& p, uint64_t ts, bool answered);
  // A refusal only a Redis Cluster node gives (SetSingleDb).
  static bool ShowsClusterNode(const Pending& p, std::string_view error);
  // Whether `reply` is a RESP2 confirmation of `p`'s (UN)SUBSCRIBE family.
  static bool ConfirmsRequest(const Pending& p, std::span<const Node> reply);

  // OnData's work: the bytes parsed and paired.
  void Consume(Direction dir, ByteSpan bytes, uint64_t capture_ns);
  void OnRequest(std::span<const std::string_view> args, uint64_t ts);
  // A request of a subscriber or MONITOR connection (ignored()).
  void OnIgnoredRequest(std::span<const std::string_view> args, uint64_t ts);
  void EnterIgnored();
  // A write whose reply is not read in ignored mode: its keys are read back;
  // a key-less one (FLUSHALL…) is counted, never shipped (the server may
  // have refused it: subscribed, MONITOR, a discarded transaction).
  void UnansweredWhileIgnored(const CommandSpec* spec, std::span<const std::string_view> argv, uint64_t ts);
  // EVAL or EVAL_RO: under SCRIPT DEBUG, they start a Lua debugging session.
  static bool IsDebuggableEval(const CommandSpec& spec);
  // A request from an EVAL that may have started a Lua debugging session
  // on: the debugger's (`redis SET k v` writes) or the client's.
  void LuaDebugRequest(std::span<const std::string_view> args, uint64_t ts);
  // A key-less write (FLUSHDB, SWAPDB…) that cannot be confirmed: counted, never shipped.
  void KeylessUnconfirmed(const CommandSpec* spec);
  // The request may hold its client until served (BLPOP, XREAD … BLOCK,
  // WAIT…): nothing pipelined behind it runs meanwhile.
  static bool BlocksClient(const CommandSpec* spec, std::span<const std::string_view> args);
  // Pairing proved the request parser in step (resumed at a quiet point, a
  // RESET answered): the requests parsed so far and from here on are real.
  void ProveRequestsInStep();
  // Client bytes were lost: the transaction the requests had open is
  // forgotten.
  void ForgetRequestTransaction();
  // A HELLO that asked for `asked` did not switch the protocol (refused, or
  // dropped with its transaction), though the requests after it were read
  // under `asked`.
  // `unauthenticated`: refused with -NOAUTH (and so was every request after it).
  void HelloDidNotSwitch(int asked, bool unauthenticated);
  // The protocol the last HELLO of a transaction's queue asks for (0: none).
  static int QueuedProtocol(std::span<const Pending> queue);
  // A CLIENT SETNAME whose reply was silenced (CLIENT REPLY OFF or SKIP).
  void SetNameSilenced(const Pending& p);
  // A RESP2 (un)subscribe confirmation for `front`, a (UN)SUBSCRIBE-family
  // request: the subscription counts and pub/sub mode follow it. False when
  // the counts are not known or the reply is no confirmation (the caller
  // falls back to ignoring the connection).
  bool OnSubscriptionReply(Pending& front, std::span<const Node> reply);
  // A RESP3 (UN)SUBSCRIBE outside MULTI, answered by pushes only: keeps the
  // subscription counts where it cannot have changed them but to zero.
  void UnsubscribeUncounted(const Pending& p);
  // The subscription count of a family.
  uint64_t* CountOf(Family f);
  void SetSubscriptionsZero();
  // Before a client gap: reads back the keys of the write it cuts.
  void ReadBackCut();
  void OnReply(std::span<const Node> reply, uint64_t ts);
  void Handle(const Pending& p, std::span<const Node> reply, uint64_t ts, bool in_tx);
  // Library loads held back (Pending::holds_library): one settled, loaded
  // or not; those among `discarded` (DISCARD, an aborted EXEC, a QUIT or
  // RESET in MULTI…) never ran; any other that left the queues without a
  // reply (a desync, a close) may have run: loaded (SyncLibraryHolds, at
  // the end of each call in).
  void SettleLibrary(bool loaded);
  template <typename Queue>
  void NeverLoaded(const Queue& discarded);
  void SyncLibraryHolds();
  void HandleWrite(const Pending& p, std::span<const Node> reply, uint64_t ts, bool in_tx);
  void Unanswered(const Pending& p, uint64_t ts, uint16_t extra_flags);
  void Unanswered(const CommandSpec* spec, std::span<const std::string_view> argv, uint64_t ts,
                  uint16_t extra_flags);
  // What an answered RESET does: db 0 (proven), out of MULTI, RESP2.
  void ApplyReset();
  // The transaction inferred from +QUEUED answers was none, or ends with
  // the connection (no EXEC): its script calls are read back.
  void DropInferredMulti();
  // An error Redis writes to a connection it refuses as it accepts it.
  // One of the replies Redis closes a connection after: it could not read a request.
  static bool IsProtocolError(std::string_view error);
  static bool RefusedAtAccept(std::string_view error);
  // A CLIENT KILL that may kill the connection sending it: the old form
  // (`CLIENT KILL addr`), or the new one with `SKIPME no` (redis 7.0
  // clientKillCommand skips the caller by default).
  static bool KillsItself(const CommandSpec* spec, std::span<const std::string_view> args);
  // A script call, or a module's command: the only requests that may answer
  // +QUEUED themselves (null: unknown, so maybe).
  static bool AnswersQueuedItself(const CommandSpec* spec);
  // A key-less write whose outcome is in doubt would be shipped whole
  // (nothing to read back): the case KeylessUnconfirmed counts instead.
  // A silenced CLIENT KILL of itself or SHUTDOWN ran, and nothing answered
  // since shows the connection (or the server) still there.
  bool MayHaveEnded() const { return kill_answered_ || silenced_shutdown_ns_ != 0; }
  bool KeylessShipped(const CommandSpec* spec) const {
    return spec != nullptr && spec->num_specs == 0 && !replayer_;
  }
  void Observe(const CommandSpec* spec, Outcome o) {
    if (opts_.observer != nullptr)
      opts_.observer->OnOutcome(spec != nullptr ? CommandName(*spec) : "unknown", o);
  }
  // A reply's outcome, read only or rejected; none for a queued command
  // that EXEC refused because its ACL changed since it was queued: redis
  // 7.0's execCommand never called it, and INFO commandstats counts it
  // nowhere (a review).
  void ObserveReply(const CommandSpec* spec, const Node& root, bool in_tx);
  void DrainNoReply();
  // The request at the front, not answered: false when nothing more may be
  // drained (a replica's link began).
  bool DrainOneNoReply();
  // A SELECT the server executed (or refused) without answering.
  void SelectUnanswered(const Pending& p);
  // A gap the request or reply parser can take as part of one value
  // (Parser::AbsorbGap), and pairing with it: true when it did.
  bool AbsorbRequestGap(uint64_t missing);
  bool AbsorbReplyGap(uint64_t missing);
  // A transaction ran whose replies cannot be told apart: its writes are
  // read back, and its SELECTs leave the db a guess.
  void TransactionRanUnpaired(std::span<const Pending> queue, uint64_t ts);
  // A HELLO the server executed (answered or not).
  void ApplyHello(const Pending& p);
  void EnterDesync();
  // Whether the next reply answers a read whose elements nobody reads (the
  // reply parser then only walks them). Asked when the reply's first line is
  // read: a client gap or overflow before its last byte comes can put the
  // connection out of step, and the reply is then looked at without its
  // elements (a RESP2 message to a subscriber whose state was unknown is
  // then counted as an unpaired reply; the next one, parsed whole, tells).
  bool NextReplyUnread() const;
  // Pending::param of a read that names dbs: a CLIENT LIST of every normal
  // client, or CLIENT INFO (this connection's own); of REPLICAOF (SLAVEOF)
  // of a master; of SCRIPT DEBUG NO, YES or SYNC; of SHUTDOWN (not ABORT);
  // 0 for any other.
  static constexpr int64_t kFullClientList = 1, kOwnClientInfo = 2, kReplicaOfMaster = 3, kReplicaOfNoOne = 4,
                           kClusterCommand = 5, kScriptDebugNo = 6, kScriptDebugYes = 7, kScriptDebugSync = 8,
                           kShutdown = 9;
  static int64_t ClientInfoKind(const CommandSpec* spec, std::span<const std::string_view> args);
  // Its reply: a CLIENT LIST told to opts_.client_lists, a CLIENT INFO
  // settling this connection's db (out of line: off the read path).
  [[gnu::noinline]] void NoteClientInfo(const Pending& p, const Node& reply, uint64_t ts, bool in_tx);
  // Writes still waiting for a reply (or for EXEC) become read-backs
  // (`ignoring`: as UnansweredWhileIgnored).
  void ReadBackWaiting(bool ignoring = false);
  // A replica's link: everything from here on, both ways, is ignored.
  void EnterReplicaLink();
  // Whether a key of the request just parsed was too large to hold, or may
  // lie among arguments past the element limit (Parser::tail_elided).
  bool KeyElided(const CommandSpec& spec, std::span<const std::string_view> args) const;
  // One such request (`ignoring`: as UnansweredWhileIgnored).
  void ReadBack(const Pending& p, bool ignoring, uint16_t extra_flags = kAfterGap);
  void Reclaim();
  // With announce_holds: tells the sink (kHold) when the earliest
  // database-wide write still waiting changed (`ts`: now).
  void UpdateHold(uint64_t ts);
  uint16_t FlagsFor(bool in_tx);
  std::span<const std::string_view> Args(const Pending& p);

  RecordSink* sink_;
  ConnectionOptions opts_;
  ConnectionStats stats_;
  Parser requests_;
  Parser replies_;

  FifoVector<Pending> pending_;
  std::vector<Pending> multi_queue_;
  uint32_t library_holds_ = 0;                        // Pending::holds_library not settled yet
  std::string arena_;                                 // argument bytes of pending requests
  std::vector<std::pair<uint32_t, uint32_t>> spans_;  // (offset, length) into arena_
  std::vector<std::string_view> argv_;                // scratch
  bool drained_silent_ = false;  // requests run unanswered since the last reply paired (DrainNoReply)
  std::vector<std::string_view> renamed_args_;  // a request read under its command's own name (renames.h)
  std::vector<std::string_view> script_argv_;   // scratch: EVALSHA rewritten as EVAL
  std::unique_ptr<ScriptCache> own_scripts_;    // when opts_.scripts is null
  ScriptCache* scripts_;

  void ForgetDb() {
    if (single_db_) return;  // db 0, whatever was lost
    db_known_ = false;
    db_unknown_since_ns_ = 0;  // stamped by the next bytes seen
  }
  void KnowDb() {
    db_known_ = true;
    db_unknown_since_ns_ = 0;
  }

  // Request time of the earliest database-wide write waiting, as last
  // announced (0: none); hold_watch_: one may be waiting.
  uint64_t hold_from_ = 0;
  bool hold_watch_ = false;
  uint64_t last_ts_ = 0;  // of the latest bytes seen
  uint16_t db_ = 0;
  bool db_known_ = true;
  bool single_db_ = false;  // SetSingleDb
  uint64_t db_unknown_since_ns_ = 0;
  int protocol_ = 2;
  int req_protocol_ = 2;  // as of the last request parsed (HELLO is optimistic)
  bool in_multi_ = false;
  bool reply_off_ = false;
  bool skip_next_ = false;
  uint64_t empty_requests_seen_ = 0;  // requests_.empty_requests() at the last request
  bool ignored_ = false;
  bool quit_ = false;                       // a QUIT parsed in step: later requests never run
  uint64_t client_offset_ = 0;              // client stream bytes seen or lost so far
  uint64_t chunk_offset_ = 0;               // where the client chunk being parsed began
  uint64_t server_fin_acked_ = UINT64_MAX;  // the server's FIN: client bytes it had received
  // The last reply paired answered a CLIENT KILL that killed someone: if
  // the connection then closes with requests pending, it may have been
  // itself (closed after the reply), and they never ran.
  bool kill_answered_ = false;
  bool quit_answered_ = false;  // a QUIT answered +OK: nothing still pending ran
  // RESP3 SUBSCRIBEs passed unanswered (DrainNoReply) whose confirmations
  // are still to come, oldest first: the next reply that is not a push is
  // the oldest one's refusal.
  struct SubConfirm {
    const CommandSpec* spec;
    Family family;
    bool silent;                        // sent under CLIENT REPLY OFF or SKIP: a refusal says nothing
    uint32_t left;                      // confirmations still due
    uint32_t next;                      // index in channels of the next one
    std::vector<std::string> channels;  // in the order confirmed; empty: not kept (too many)
  };
  // A subscribe push: which entry of sub_confirms_ it confirms (entries
  // whose silenced refusal it shows are dropped), or out of step.
  void ConfirmSubscribe(std::span<const Node> push);
  // Entries whose fate will never be known: counted unpaired.
  void DropSubConfirms();
  static constexpr size_t kMaxSubConfirms = 1024;
  std::deque<SubConfirm> sub_confirms_;
  // No transaction can be open unseen: the connection was seen from its
  // start, or since a +RESET or an EXEC/DISCARD reply, with nothing lost.
  // A +QUEUED outside a seen MULTI is then the command's own answer.
  bool no_unseen_multi_ = false;
  // In a transaction inferred from a +QUEUED (its MULTI unseen): at a close
  // with no EXEC sent, the queued writes are read back (the +QUEUED may
  // have been a script's answer).
  bool multi_inferred_ = false;
  bool encrypted_ = false;              // TLS: every byte is ignored
  bool first_bytes_[2] = {true, true};  // per direction: the next chunk is the first
  bool gap_seen_ = false;               // bytes were lost (the first ones seen may not be the first)
  bool awaiting_reset_ = false;         // RESET left ignored mode: replies before +RESET are skipped
  bool ignore_after_exec_ = false;      // a SUBSCRIBE/MONITOR inside the EXEC being paired
  bool monitor_ = false;                // ignored_ because of MONITOR (commands still run), not SUBSCRIBE
  bool replica_link_ = false;           // ignored_: a replica's replication link (replies skipped)
  bool link_from_ack_ = false;          // known only by a REPLCONF ACK: a request of another kind ends it
  uint16_t announced_port_ = 0;         // REPLCONF listening-port, as a replica's handshake sent it
  std::string announced_ip_;            // REPLCONF ip-address (at most 255 bytes)
  bool req_in_multi_ = false;           // as of the last request parsed
  uint64_t req_multi_ts_ = 0;           // its MULTI's capture time
  uint64_t multi_ts_ = 0;               // in_multi_: its MULTI's capture time (0: unseen)
  int req_multi_protocol_ = 0;          // of the last HELLO queued in that transaction (0: none)
  bool req_multi_keeps_db_ = false;     // every command queued in it was parsed, none a SELECT or RESET
  uint64_t multi_skipped_bytes_ = 0;    // requests_.skipped_bytes() at its MULTI
  // RESP2 subscriptions, from the servers' confirmations (each carries the
  // count of its family: channels + patterns, or shard channels). Known
  // from the start of the connection, a RESET, or a plain reply (RESP2
  // answers those only outside pub/sub mode); lost in a desync.
  bool pubsub_ = false;  // the server holds the connection in pub/sub mode
  bool subs_known_ = true;
  bool sub_seen_ = false;    // a RESP2 (UN)SUBSCRIBE-family request was parsed
  bool resp3_subs_ = false;  // a RESP3 subscription was requested since the last RESET
  uint64_t next_seq_ = 1;
  uint64_t last_sub_seq_ = 0;  // seq of the last RESP2 (UN)SUBSCRIBE-family request or RESET
  uint64_t sub_channels_ = 0, sub_patterns_ = 0, sub_shard_ = 0;
  uint64_t skipped_before_reset_ = 0;
  bool replayer_ = false;
  // A SCRIPT DEBUG YES or SYNC was asked (answered or not), and no NO was
  // answered +OK since: an EVAL may start a Lua debugging session.
  bool lua_debug_ = false;
  bool lua_session_ = false;           // an EVAL started a debugging session: requests are the debugger's
  uint64_t silenced_shutdown_ns_ = 0;  // a SHUTDOWN under CLIENT REPLY OFF|SKIP ran (OnClose)
  bool multi_refused_ = false;         // a silenced command refused at queueing: the EXEC aborts
  bool desync_ = false;
  // Client bytes were lost (a gap, a join mid-stream, a request that did not
  // parse) and pairing has not proved the requests in step since: what the
  // request parser found after resyncing may be text inside a value.
  bool requests_unsure_ = false;
  uint32_t after_gap_left_ = 0;
  uint64_t last_reply_ts_ = 0;
  uint64_t exec_from_ns_ = 0;  // request time of the write being handled (ConvertContext::request_ns)
  std::vector<std::string> unknown_names_;
  std::vector<std::string> redirect_targets_;
  bool unknown_names_more_ = false;
  // Where the client chunk being parsed began: at a message boundary; inside
  // a message cut by the chunk before; or with the parser seeking a message
  // start (after a gap), which is a boundary if nothing was skipped up to
  // the request at hand (the parser's skipped_bytes() still chunk_skipped_).
  enum class ChunkStart : uint8_t { kBoundary, kCut, kSeeking };
  ChunkStart chunk_start_ = ChunkStart::kCut;
  uint64_t chunk_skipped_ = 0;
  bool first_request_of_chunk_ = false;
  uint64_t chunk_ts_ = 0;  // capture time of that chunk
  // Out of sync: quiet points in a row with nothing pending (see OnRequest).
  uint32_t quiet_points_ = 0;
};

}  // namespace kvf::resp
