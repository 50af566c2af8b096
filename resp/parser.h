// Push-style incremental RESP parser for one direction of one connection:
// requests (multibulk and inline) or replies (every RESP2 and RESP3 type).
// Resumable at any byte boundary, bounded by hard limits, zero-copy when a
// message lies inside one fed chunk; resynchronises after gaps and errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"

namespace kvf::resp {

// Hard limits. Anything beyond them is a parse error (the stream is then
// resynchronised), never an allocation.
struct Limits {
  // One bulk string after a gap, a join or a resync: Redis's default
  // proto-max-bulk-len. On a stream whose framing was never in doubt, a
  // longer one is elided (a server may raise the limit; one that did not
  // refused it).
  uint64_t max_bulk_len = 512ull << 20;
  // Elements of one aggregate: as many as one message may hold nodes.
  // Redis 7 takes requests of up to INT_MAX arguments (6.2 refused more than
  // 1 Mi), and bulk loads send a million members in one SADD or MSET. Where
  // lengths are trusted, a request with more keeps its first arguments and
  // skips the rest unread (Parser::tail_elided), and a skimmed reply is
  // walked whatever its length.
  uint32_t max_elements = 4u << 20;
  uint32_t max_depth = 32;  // nesting of aggregates
  // One line: an inline command, a simple-string or error reply, a header.
  // Redis refuses an inline command once 64 KiB have come without a line
  // end, but runs a longer one whose end came in the same read (it reads
  // 16 KiB at a time: a review's SETs of 70,000 and 80,000 bytes ran, and
  // were lost here), and puts no limit on a status or error reply (a Lua
  // error_reply of 70,000 bytes desynced the connection: the same review).
  // A line Redis refused pairs with its protocol error.
  size_t max_inline_len = 1u << 20;
  // Bytes held for one message: a bulk string that would take a message
  // past this is elided (Node::elided, Parser::elided()), not buffered.
  size_t max_message_bytes = 64u << 20;
  size_t max_nodes = 4u << 20;  // values in one reply tree
  // Bytes every parser of the process together may hold for messages that
  // arrive in parts (capacity of their buffers): a bulk of at least
  // kSharedFloorBytes that would take them past this is elided too, where
  // lengths are trusted (not right after a gap or resync, where eliding
  // means failing: such a bulk is held, up to max_message_bytes). Without
  // it, each connection sending a large value at once holds up to
  // max_message_bytes (a review: 40 connections with 40 MB values, 4 GB).
  size_t max_held_bytes_all = size_t{1} << 30;
};
// Bulks smaller than this are held whatever the others hold.
inline constexpr size_t kSharedFloorBytes = 1u << 20;
// Bytes all parsers hold now (Limits::max_held_bytes_all).
size_t ParsersHeldBytes();

enum class Type : uint8_t {
  kSimpleString,  // +
  kError,         // -
  kInteger,       // :
  kBulkString,    // $
  kArray,         // *
  kNull,          // _  and RESP2 $-1 / *-1
  kBoolean,       // #
  kDouble,        // ,  (text kept in `str`)
  kBigNumber,     // (  (digits kept in `str`)
  kBulkError,     // !
  kVerbatim,      // =  (`str` excludes the "txt:" format prefix)
  kMap,           // %  (children = 2 * pairs, key then value)
  kSet,           // ~
  kPush,          // >
};
std::string_view TypeName(Type t);

// One value of a reply, in a pre-order flattened tree: an aggregate is
// followed by its `children` direct children, each with its own subtree.
// RESP3 attributes (|) are parsed and dropped: they never appear as nodes.
struct Node {
  Type type = Type::kNull;
  // A bulk (or verbatim, blob error) too large to hold: `str` is empty and
  // its bytes were skipped unread (Limits::max_message_bytes).
  bool elided = false;
  uint32_t children = 0;  // direct children (aggregates only)
  uint32_t subtree = 1;   // nodes in this subtree, itself included
  int64_t integer = 0;    // kInteger value; kBoolean 0/1
  std::string_view str;   // payload of string-like types
};
static_assert(sizeof(Node) == 40, "Node stays five words: replies are vectors of them");

enum class ParseStatus : uint8_t {
  kNeedMore,  // everything fed is consumed or buffered; Feed() more
  kMessage,   // a message is ready: args() / nodes()
  kError,     // protocol error or limit hit: error(); call Resync() to go on
};

enum class ParseError : uint8_t {
  kNone,
  kBadType,           // unknown type byte
  kBadLength,         // length / count not a number or out of range
  kBadInteger,        // :, #, ( payload malformed
  kBadTerminator,     // missing \r\n
  kBulkTooLong,       // > max_bulk_len
  kTooManyElements,   // > max_elements or > max_nodes
  kTooDeep,           // > max_depth
  kLineTooLong,       // inline command / line > max_inline_len
  kMessageTooLarge,   // > max_message_bytes buffered
  kNotBulkInRequest,  // a multibulk request element that is not $
  kUnbalancedQuotes,  // inline command: unterminated quote, or a closing quote not followed by a blank
  kInlineNul,         // inline command line holding a NUL byte (Redis never answers it)
};
std::string_view ParseErrorName(ParseError e);

class Parser {
 public:
  enum class Mode : uint8_t { kRequest, kReply };
  explicit Parser(Mode mode, Limits limits = {});
  ~Parser();  // gives its bytes back to the shared count
  Parser(Parser&&) = delete;
  Parser& operator=(Parser&&) = delete;
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Hands over the next bytes of the stream. Call it only when Next() last
  // returned kNeedMore (or before the first Next()). `bytes` must stay valid
  // until Next() returns kNeedMore again; the parser copies what it still
  // needs at that point, and nothing otherwise.
  void Feed(ByteSpan bytes);
  void Feed(std::string_view s) { Feed(AsBytes(s)); }

  // Parses the next message. After kMessage, args() (request mode) or
  // nodes() (reply mode) describe it; their views stay valid until the next
  // Feed() or Next() call.
  ParseStatus Next();

  // Request mode: the command, name first. Inline commands are split and
  // unquoted exactly as redis-server does it (see ParseInline in parser.cc and
  // docs/resp.md): views into the fed bytes when the line has no quotes, else
  // into a per-parser scratch of at most max_inline_len bytes. A line Redis
  // rejects is an error: kUnbalancedQuotes (Redis answers "-ERR Protocol
  // error: unbalanced quotes in request" and closes the connection) or
  // kInlineNul (Redis never finds the line end and answers nothing).
  std::span<const std::string_view> args() const { return args_; }
  // Request mode: the complete arguments of the multibulk request still in
  // progress (a request a gap is about to cut: its name and keys may have
  // come whole before the hole). Views valid until the next call that feeds
  // or drops bytes; empty when nothing such is held.
  std::span<const std::string_view> PartialArgs();
  // The last message held an elided bulk (see Limits::max_message_bytes):
  // request mode, arg_elided(i) says which argument is empty for it; reply
  // mode, the node says so.
  bool elided() const { return elided_msg_; }
  bool arg_elided(size_t i) const { return elided_msg_ && i + 1 < nodes_.size() && nodes_[i + 1].elided; }
  // Request mode: the last message declared more arguments than
  // max_elements on a stream whose framing was never in doubt (Redis 7 runs
  // up to INT_MAX): args() holds its first kTailKeptArgs (or max_elements,
  // if fewer), and the other tail_elided() were skipped unread as they came
  // (elided() is true too). Zero otherwise. After a gap, a join or a resync
  // such a count is an error: it may be a false start in a value's text.
  uint64_t tail_elided() const { return tail_elided_; }
  static constexpr uint32_t kTailKeptArgs = 1024;
  bool last_was_inline() const { return last_inline_; }
  // Reply mode: the reply tree, root first.
  std::span<const Node> nodes() const { return nodes_; }
  // Reply mode: `skim(ctx)` is asked at the root of each aggregate reply
  // (not a push) whether anyone reads its elements. If not, the reply is
  // only walked: nodes() holds its root alone, with no children, and
  // skimmed() says so; its elements are still checked as usual, except
  // against max_nodes (a skimmed reply holds no nodes: an XRANGE of
  // millions of entries then pairs instead of failing). An LRANGE of 600
  // values costs a header per value instead of a node.
  using SkimPredicate = bool (*)(const void* ctx);
  void SetSkimPredicate(SkimPredicate skim, const void* ctx) {
    skim_ = skim;
    skim_ctx_ = ctx;
  }
  // Request mode: after a gap, a whole line that Redis would run (quotes
  // balanced) whose first word `known` accepts (a command name) is a place
  // to resync at, besides a multibulk header, on a stream that sent inline
  // requests before any gap or join and no multibulk one. Without it, an
  // inline client (telnet, nc, a script) never resyncs after a gap and every
  // later write is lost unflagged. Not after a join: nothing shows the
  // stream inline there, and a value's text holds lines that look like
  // commands.
  using CommandPredicate = bool (*)(std::string_view word);
  void SetInlineCommandPredicate(CommandPredicate known) { known_command_ = known; }
  bool skimmed() const { return skimming_; }
  // Wire bytes of the last message (attributes included).
  size_t message_bytes() const { return message_bytes_; }

  ParseError error() const { return error_; }
  // After kError: skips forward to the next plausible message start. After
  // kUnbalancedQuotes or kInlineNul it skips everything fed from then on
  // instead: redis-server closes the connection after answering the former
  // and never reads past the latter, so no later request is executed (and
  // none may be paired with a reply). See ended().
  void Resync();
  // True once Resync() followed kUnbalancedQuotes or kInlineNul (request mode):
  // the server executes nothing more on this connection; bytes are skipped.
  bool ended() const { return ended_; }
  // The stream lost bytes (a capture gap): drops any partial message and
  // skips to the next plausible message start in what is fed next.
  void OnGap();
  // The stream lost `n` bytes that lie wholly inside the body (and CRLF) of
  // the bulk string in progress, whose header was read with the message's
  // lengths trusted (not right after a resync), or inside what is left of
  // an elided bulk's body: that bulk becomes elided, as one too large to
  // hold (elided(), arg_elided()), and the message goes on with the bytes
  // after the gap; a message the gap ends is returned by the next Next().
  // False, with nothing changed, for any other gap: then call OnGap().
  bool AbsorbGap(uint64_t n);
  // Where a gap of `n` bytes would fall, before AbsorbGap: the index in
  // nodes() the bulk it is inside would have (in a request, 1 is the
  // command's name, 2 its first argument), kElidedBody when it is more of
  // an elided bulk's body, kNoBulk when AbsorbGap would refuse it.
  static constexpr size_t kNoBulk = SIZE_MAX;
  static constexpr size_t kElidedBody = SIZE_MAX - 1;
  size_t GapInsideBulk(uint64_t n) const;
  // Request mode: the argument count the multibulk in progress declared (0: none).
  size_t PartialArgc() const {
    return mode_ == Mode::kRequest && in_message_ && !inline_msg_ && !nodes_.empty() ? nodes_[0].children : 0;
  }
  // True when no partial message is buffered and no resync is pending.
  bool AtBoundary() const;
  // Reply mode: bare newlines between messages are skipped, not an error. A
  // master sends one a second to a replica whose PSYNC waits for the RDB
  // (redis 7.0 replicationCron; five of them under the default
  // repl-diskless-sync-delay) before +FULLRESYNC; a review found every full
  // sync read as garbled replies.
  void SkipNewlinesBetweenMessages(bool on) { skip_newlines_ = on; }
  // True while bytes of an unfinished message (or resync candidate) are held.
  bool HasPartial() const { return in_message_ || !buf_.empty() || skip_body_ > 0 || skip_bulks_ > 0; }

  uint64_t skipped_bytes() const { return skipped_bytes_; }  // dropped by resyncs and gaps
  // Requests dropped for being empty (a blank inline line, `*0`): Redis runs
  // no command for them, but each uses up a CLIENT REPLY SKIP.
  uint64_t empty_requests() const { return empty_requests_; }
  // Bytes the parser's buffers hold (their capacity), for tests of release.
  size_t capacity_bytes() const {
    return buf_.capacity() + nodes_.capacity() * sizeof(Node) + spans_.capacity() * sizeof(spans_[0]);
  }
  // Buffers larger than these are released between messages.
  static constexpr size_t kKeepBytes = 1u << 20;
  static constexpr size_t kKeepNodes = 1u << 14;
  uint64_t elided_bytes() const { return elided_bytes_; }  // of elided bulks, skipped unread
  uint64_t resyncs() const { return resyncs_; }
  size_t buffered_bytes() const { return buf_.size(); }

 private:
  enum class Candidate : uint8_t { kNo, kYes, kMore };
  struct Frame {
    uint32_t node;       // index of the aggregate node (kSkimmedNode: not kept)
    uint32_t remaining;  // children still to parse
    bool attribute;      // a | map: dropped when complete
  };
  static constexpr uint32_t kSkimmedNode = UINT32_MAX;
  // A value inside a skimmed reply: counted in its frame, not kept.
  bool SkimNode(uint32_t count, bool attribute);
  // Inside a skimmed reply: walks the bulk strings and non-negative integers
  // that lie wholly in the view, exactly as the general path would check
  // them, and stops at anything else for it. True when that ended the reply.
  bool SkimScalars(const char* v, size_t len);

  const char* view() const { return in_buf_ ? buf_.data() : ext_; }
  size_t view_len() const { return in_buf_ ? buf_.size() : ext_len_; }
  ParseStatus Fail(ParseError e);
  ParseStatus NeedMore();
  ParseStatus ParseInline(const char* p, size_t len);
  bool SplitQuoted(const char* line, const char* end);
  static bool SplitArgs(const char* line, const char* end, char* out, std::vector<std::string_view>* args);
  bool FastRequest(const char* v, size_t len);
  bool FastReply(const char* v, size_t len);
  bool AddNode(Type type, size_t str_off, size_t str_len, int64_t integer, uint32_t count, bool attribute);
  // Called before adding a bulk string `first` inside an out-of-band frame:
  // a push whose first element names a subscription change is an element.
  void CountConfirmation(std::string_view first);
  void Stash();
  // Brings the shared count (ParsersHeldBytes) to buf_'s capacity.
  void Account();
  // Reserves want_bytes_ for the message in progress, then Account().
  void ReserveWanted();
  // Drops the elided bulks' holes and the rest still to skip (resync, gap).
  void ForgetElisions();
  void Finish();
  Candidate CheckCandidate(size_t at) const;
  // Request mode, a line that is no multibulk header: an inline request of
  // a known command (SetInlineCommandPredicate)?
  Candidate CheckInlineCandidate(size_t at) const;
  // The bulk string whose body the view ends inside (the message in
  // progress, its header read): false when the parser waits elsewhere.
  struct HeldBulk {
    Type type;
    size_t blen;  // its length
    size_t next;  // view offset of its body
  };
  bool FindHeldBulk(HeldBulk* out) const;
  // GapInsideBulk, with the bulk it found.
  size_t LocateGap(uint64_t n, HeldBulk* b) const;
  bool SkipToCandidate();
  // Skips the bulks of an elided tail (tail_elided) that lie in the view.
  // False when it needs more bytes, or failed (error_ set).
  bool SkipTail(const char* v, size_t len);
  // The aggregate whose header is at hand, in reply mode, is only walked.
  bool WalksOnly(Type type, bool attribute) const;

  Mode mode_;
  Limits limits_;
  // Input view: either the caller's chunk (ext_) or our own buffer holding a
  // partial message plus, appended, the caller's chunk from ext_base_ on.
  const char* ext_ = nullptr;
  size_t ext_len_ = 0;
  std::string buf_;
  size_t accounted_ = 0;  // of buf_'s capacity, in the shared count
  // Bytes the message in progress needs held to finish the bulk whose body
  // is still to come: Stash reserves them at once rather than doubling.
  size_t want_bytes_ = 0;
  bool in_buf_ = false;
  size_t ext_base_ = 0;
  size_t pos_ = 0;        // next unparsed byte in the view
  size_t msg_start_ = 0;  // first byte of the message in progress
  bool in_message_ = false;
  bool inline_msg_ = false;  // the message in progress is an inline command

  std::vector<Frame> frames_;
  std::vector<Node> nodes_;
  std::vector<std::pair<size_t, size_t>> spans_;  // str offsets relative to msg_start_
  std::vector<std::string_view> args_;
  std::vector<std::string_view> partial_args_;  // PartialArgs
  std::string inline_scratch_;                  // unquoted inline arguments; size <= max_inline_len
  size_t message_bytes_ = 0;
  bool last_inline_ = false;

  ParseError error_ = ParseError::kNone;
  bool resyncing_ = false;
  bool ended_ = false;          // see ended(); never cleared
  bool skip_newlines_ = false;  // see SkipNewlinesBetweenMessages
  bool resync_first_is_candidate_ = false;
  bool inline_trusted_ = false;               // an inline request was parsed before any gap or join
  bool multibulk_seen_ = false;               // a multibulk request was parsed
  CommandPredicate known_command_ = nullptr;  // SetInlineCommandPredicate
  uint64_t skipped_bytes_ = 0;
  uint64_t empty_requests_ = 0;
  uint64_t resyncs_ = 0;
  bool elided_msg_ = false;        // see elided()
  bool finish_after_gap_ = false;  // AbsorbGap ended the message in progress: Next() returns it
  SkimPredicate skim_ = nullptr;   // SetSkimPredicate
  const void* skim_ctx_ = nullptr;
  bool skimming_ = false;     // the message being parsed is skimmed
  uint64_t skip_body_ = 0;    // bytes of an elided bulk (CRLF included) still to come: Feed drops them
  uint64_t skip_bulks_ = 0;   // bulks of an elided tail still to skip, after skip_body_
  uint64_t tail_elided_ = 0;  // see tail_elided()
  // Lengths are trusted (bulks past the limit elided, not failed) except in
  // the first message after a resync or gap, where a false start is likely.
  bool trust_lengths_ = true;
  // Elided bulks (header and body) inside the view of the message in
  // progress, as (offset from msg_start_, bytes), ascending: not held.
  std::vector<std::pair<size_t, size_t>> holes_;
  size_t hole_bytes_ = 0;
  uint64_t elided_bytes_ = 0;
};

}  // namespace kvf::resp
