// Incremental RESP parser: see parser.h for the contract. The state between
// calls is a stack of open aggregates plus the offsets of the values parsed so
// far, all relative to the first byte of the message in progress, so the
// bytes can move from the caller's chunk into our buffer without fix-ups.
#include "resp/parser.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>

#include "resp/command_table.h"

namespace kvf::resp {

namespace {

// Inline scratch kept between lines (Parser::SplitQuoted).
constexpr size_t kSmallScratch = 64u << 10;

bool ParseInt64(const char* p, size_t n, int64_t* out) {
  if (n == 0 || n > 20) return false;
  auto r = std::from_chars(p, p + n, *out);
  return r.ec == std::errc() && r.ptr == p + n;
}

// Redis reads a request's lengths with string2ll, which refuses a leading
// zero ("05", "-0"; "0" itself is fine): the server answers such a length
// with a protocol error and closes the connection, so nothing after it runs
// (a review: `$05` taken as 5 paired the error with the request and shipped
// a FLUSHDB pipelined behind it).
bool LeadingZero(const char* p, size_t n) {
  const size_t digit = n > 0 && p[0] == '-' ? 1 : 0;
  return n > digit + 1 ? p[digit] == '0' : (digit == 1 && n == 2 && p[1] == '0');
}

bool IsBigNumber(const char* p, size_t n) {
  size_t i = (n > 0 && (p[0] == '-' || p[0] == '+')) ? 1 : 0;
  if (i == n) return false;
  for (; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
  }
  return true;
}

// Reads "<digits>\r\n" at v[*q] (no sign, at most 18 digits). False when
// malformed or incomplete; the general path then decides which.
inline bool ReadCount(const char* v, size_t len, size_t* q, int64_t* out) {
  size_t i = *q;
  const size_t start = i;
  int64_t n = 0;
  while (i < len && v[i] >= '0' && v[i] <= '9') {
    if (i - start == 18) return false;  // checked before the multiply can overflow
    n = n * 10 + (v[i] - '0');
    ++i;
  }
  if (i == start || i + 1 >= len || v[i] != '\r' || v[i + 1] != '\n') return false;
  if (v[start] == '0' && i - start > 1) return false;  // the general path decides (LeadingZero)
  *q = i + 2;
  *out = n;
  return true;
}

// isspace() in the C locale, which redis-server runs its parsing in.
inline bool IsCSpace(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

// The bytes that end an unquoted inline argument (a subset of IsCSpace).
inline bool EndsBareArg(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte for \c inside double quotes (other than \xHH).
char UnescapeDoubleQuoted(char c) {
  switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c;
  }
}

bool IsReplyType(char c) {
  return std::strchr("+-:$*_#,(!=%~>|", c) != nullptr && c != '\0';
}

}  // namespace

std::string_view TypeName(Type t) {
  switch (t) {
    case Type::kSimpleString: return "simple-string";
    case Type::kError: return "error";
    case Type::kInteger: return "integer";
    case Type::kBulkString: return "bulk-string";
    case Type::kArray: return "array";
    case Type::kNull: return "null";
    case Type::kBoolean: return "boolean";
    case Type::kDouble: return "double";
    case Type::kBigNumber: return "big-number";
    case Type::kBulkError: return "bulk-error";
    case Type::kVerbatim: return "verbatim";
    case Type::kMap: return "map";
    case Type::kSet: return "set";
    case Type::kPush: return "push";
  }
  return "?";
}

std::string_view ParseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kNone: return "none";
    case ParseError::kBadType: return "unknown type byte";
    case ParseError::kBadLength: return "malformed length or count";
    case ParseError::kBadInteger: return "malformed integer, boolean or big number";
    case ParseError::kBadTerminator: return "missing CRLF";
    case ParseError::kBulkTooLong: return "bulk string longer than the limit";
    case ParseError::kTooManyElements: return "aggregate larger than the limit";
    case ParseError::kTooDeep: return "aggregates nested deeper than the limit";
    case ParseError::kLineTooLong: return "line longer than the limit";
    case ParseError::kMessageTooLarge: return "message larger than the buffer limit";
    case ParseError::kNotBulkInRequest: return "request element is not a bulk string";
    case ParseError::kUnbalancedQuotes: return "unbalanced quotes in inline command";
    case ParseError::kInlineNul: return "NUL byte in inline command";
  }
  return "?";
}

// Nothing reserved: a connection that sends nothing (a port scan, a SYN
// flood, a pool's idle connection) costs its objects only (a review:
// 12 KB per flow, 718 MB for 60,000 SYNs); buffers grow with use.
Parser::Parser(Mode mode, Limits limits) : mode_(mode), limits_(limits) {}

namespace {
std::atomic<size_t> g_held_bytes{0};
}

size_t ParsersHeldBytes() {
  return g_held_bytes.load(std::memory_order_relaxed);
}

Parser::~Parser() {
  g_held_bytes.fetch_sub(accounted_, std::memory_order_relaxed);
}

void Parser::Account() {
  // (The capacity an empty string has in place is no allocation.)
  static const size_t in_place = std::string().capacity();
  const size_t now = buf_.capacity() > in_place ? buf_.capacity() : 0;
  if (now == accounted_) return;
  if (now > accounted_) {
    g_held_bytes.fetch_add(now - accounted_, std::memory_order_relaxed);
  } else {
    g_held_bytes.fetch_sub(accounted_ - now, std::memory_order_relaxed);
  }
  accounted_ = now;
}

void Parser::Stash() {
  // Keep the unfinished message (or the partial resync candidate) and drop
  // everything before it; the caller's chunk is not touched after this.
  const size_t len = view_len();
  if (in_message_ && !holes_.empty()) {
    // Without its elided bulks, which are never held: the spans after
    // each hole move down by it (spans and holes both ascend). The holes
    // lie in what was parsed since the last call, so only that much moves:
    // rebuilding the whole message at every chunk made a message past
    // max_message_bytes quadratic (a review: 77 MB took 74 s).
    const size_t mlen = len - msg_start_;
    if (in_buf_) {
      char* b = buf_.data() + msg_start_;
      size_t w = holes_[0].first;
      for (size_t i = 0; i < holes_.size(); ++i) {
        const size_t from = holes_[i].first + holes_[i].second;
        const size_t to = i + 1 < holes_.size() ? holes_[i + 1].first : mlen;
        std::memmove(b + w, b + from, to - from);
        w += to - from;
      }
      buf_.resize(msg_start_ + w);
      buf_.erase(0, msg_start_);
    } else {
      const char* v = ext_ + msg_start_;
      buf_.clear();
      buf_.reserve(mlen - hole_bytes_);
      size_t from = 0;
      for (const auto& [at, n] : holes_) {
        buf_.append(v + from, at - from);
        from = at + n;
      }
      buf_.append(v + from, mlen - from);
    }
    // (Only spans past the first hole move: the elided nodes' own spans sit
    // at their hole's start, every one since the limit at the same offset.)
    auto span = std::upper_bound(spans_.begin(), spans_.end(), holes_[0].first,
                                 [](size_t at, const std::pair<size_t, size_t>& s) { return at < s.first; });
    size_t h = 0, shift = 0;
    for (; span != spans_.end(); ++span) {
      for (; h < holes_.size() && holes_[h].first < span->first; ++h) shift += holes_[h].second;
      span->first -= shift;
    }
    pos_ -= msg_start_ + hole_bytes_;
    msg_start_ = 0;
    in_buf_ = true;
    holes_.clear();
    hole_bytes_ = 0;
    ext_ = nullptr;
    ext_len_ = 0;
    ReserveWanted();
    return;
  }
  const size_t keep_from = in_message_ ? msg_start_ : (pos_ < len ? pos_ : len);
  if (in_buf_) {
    buf_.erase(0, keep_from);
  } else {
    buf_.assign(ext_ + keep_from, len - keep_from);
  }
  pos_ -= keep_from;
  if (in_message_) msg_start_ -= keep_from;
  in_buf_ = !buf_.empty();
  ext_ = nullptr;
  ext_len_ = 0;
  if (!in_buf_) {
    pos_ = 0;
    msg_start_ = 0;
    // What a large message grew is given back as soon as it is consumed,
    // not at the next Feed: a client waiting for its reply sends nothing.
    if (buf_.capacity() > kKeepBytes) std::string().swap(buf_);
  }
  ReserveWanted();
}

void Parser::ReserveWanted() {
  // The message in progress now starts at buf_'s front.
  if (in_message_ && want_bytes_ > buf_.capacity()) buf_.reserve(want_bytes_);
  want_bytes_ = 0;
  Account();
}

void Parser::ForgetElisions() {
  skip_body_ = 0;
  skip_bulks_ = 0;
  tail_elided_ = 0;
  holes_.clear();
  hole_bytes_ = 0;
}

void Parser::Feed(ByteSpan bytes) {
  if (ext_ != nullptr) Stash();  // the previous chunk was not fully parsed
  if (skip_body_ > 0) {
    // The rest of an elided bulk: never held, only its CRLF is looked at.
    const size_t drop = static_cast<size_t>(std::min<uint64_t>(skip_body_, bytes.size()));
    const auto at = [&](uint64_t from_end) { return skip_body_ >= from_end && skip_body_ - from_end < drop; };
    if ((at(2) && bytes[skip_body_ - 2] != '\r') || (at(1) && bytes[skip_body_ - 1] != '\n'))
      error_ = ParseError::kBadTerminator;  // reported by the next Next()
    skip_body_ -= drop;
    elided_bytes_ += drop;
    bytes = bytes.subspan(drop);
  }
  ext_ = reinterpret_cast<const char*>(bytes.data());
  ext_len_ = bytes.size();
  if (!buf_.empty()) {
    ext_base_ = buf_.size();
    buf_.append(ext_, ext_len_);
    in_buf_ = true;
  } else {
    in_buf_ = false;
    pos_ = 0;
    msg_start_ = 0;
    // Between messages, what one large message grew is given back: a
    // connection idle in a pool for hours keeps little.
    if (buf_.capacity() > kKeepBytes) std::string().swap(buf_);
    if (!in_message_ && nodes_.capacity() > kKeepNodes) {
      std::vector<Node>().swap(nodes_);
      std::vector<std::pair<size_t, size_t>>().swap(spans_);
    }
  }
  Account();
}

ParseStatus Parser::Fail(ParseError e) {
  error_ = e;
  return ParseStatus::kError;
}

ParseStatus Parser::NeedMore() {
  const size_t len = view_len();
  // Complete elements held past the limit, or more than a line after them
  // (a bulk that fits was checked whole when its header was read).
  if (in_message_ &&
      (pos_ - msg_start_ - hole_bytes_ > limits_.max_message_bytes ||
       len - msg_start_ - hole_bytes_ > limits_.max_message_bytes + limits_.max_inline_len + 2))
    return Fail(ParseError::kMessageTooLarge);
  Stash();
  return ParseStatus::kNeedMore;
}

void Parser::Resync() {
  finish_after_gap_ = false;
  skimming_ = false;
  // Redis runs nothing more after such a line, but only where the framing
  // was never in doubt is it one: after a gap or a join, or on a stream
  // that sent multibulk requests, it may be a value's text read out of
  // frame, and the parser resyncs as after any error.
  if ((error_ == ParseError::kUnbalancedQuotes || error_ == ParseError::kInlineNul) && !multibulk_seen_ &&
      resyncs_ == 0)
    ended_ = true;
  if (in_message_ && error_ == ParseError::kTooDeep && pos_ > msg_start_) {
    // Past the aggregate that went too deep (pos_ is its header), not from
    // the message's second byte: every line between opens a chain the
    // deeper ones nest in, and restarting at each made a run of nested
    // headers quadratic (a review: 200,000 "*1" lines, read after a gap as
    // a reply, took 105 s, each restart 16,384 levels deep before failing).
    skipped_bytes_ += pos_ - msg_start_;
  } else if (in_message_) {
    pos_ = msg_start_ + 1;
    ++skipped_bytes_;
  }
  in_message_ = false;
  error_ = ParseError::kNone;
  frames_.clear();
  nodes_.clear();
  spans_.clear();
  ForgetElisions();
  trust_lengths_ = false;
  resyncing_ = true;
  resync_first_is_candidate_ = false;
  ++resyncs_;
}

std::span<const std::string_view> Parser::PartialArgs() {
  partial_args_.clear();
  if (mode_ != Mode::kRequest || !in_message_ || !in_buf_ || ext_ != nullptr) return {};
  const char* base = view() + msg_start_;
  if (inline_msg_) {
    // The words of an inline line that ended before the hole: up to its
    // last blank, unquoted as Redis splits them (a quote open there, or a
    // NUL, and nothing is known). The word the hole cut may go on past it.
    size_t cut = view_len() - msg_start_;
    while (cut > 0 && base[cut - 1] != ' ' && base[cut - 1] != '\t') --cut;
    if (cut == 0 || std::memchr(base, '\0', cut) != nullptr) return {};
    inline_scratch_.resize(cut);  // (at most max_inline_len: a longer line failed)
    if (!SplitArgs(base, base + cut, inline_scratch_.data(), &partial_args_)) partial_args_.clear();
    return partial_args_;
  }
  // Held in our buffer (NeedMore stashed it), one multibulk level deep.
  if (frames_.size() != 1 || nodes_.size() < 2) return {};
  for (size_t i = 1; i < nodes_.size(); ++i) {
    if (nodes_[i].elided) break;  // not held: what came before it is whole, nothing past it is known
    partial_args_.emplace_back(base + spans_[i].first, spans_[i].second);
  }
  return partial_args_;
}

bool Parser::FindHeldBulk(HeldBulk* out) const {
  if (!in_message_ || inline_msg_ || skimming_ || !trust_lengths_) return false;
  // Not inside a push or an attribute: what they say is out of band (a
  // subscription's confirmation, whose kind a gap would hide; a review saw
  // every later reply paired one off).
  for (const Frame& f : frames_) {
    if (f.attribute || f.node == kSkimmedNode || nodes_[f.node].type == Type::kPush) return false;
  }
  const char* v = view();
  const size_t len = view_len();
  if (pos_ >= len || (v[pos_] != '$' && v[pos_] != '!' && v[pos_] != '=')) return false;
  const char* line = v + pos_;
  const char* nl =
      static_cast<const char*>(std::memchr(line, '\n', std::min(len - pos_, limits_.max_inline_len + 2)));
  if (nl == nullptr) return false;
  const size_t line_len = static_cast<size_t>(nl - line) + 1;
  int64_t num = 0;
  if (line_len < 3 || nl[-1] != '\r' || !ParseInt64(line + 1, line_len - 3, &num) || num < 0 ||
      static_cast<uint64_t>(num) > limits_.max_bulk_len)
    return false;
  const size_t next = pos_ + line_len;
  if (len - next >= static_cast<size_t>(num) + 2) return false;  // whole: not where the parser waits
  out->type = line[0] == '$' ? Type::kBulkString : line[0] == '!' ? Type::kBulkError : Type::kVerbatim;
  out->blen = static_cast<size_t>(num);
  out->next = next;
  return true;
}

size_t Parser::LocateGap(uint64_t n, HeldBulk* b) const {
  if (n == 0 || error_ != ParseError::kNone || ended_ || resyncing_ || finish_after_gap_) return kNoBulk;
  if (skip_body_ > 0) return n <= skip_body_ ? kElidedBody : kNoBulk;
  if (!FindHeldBulk(b)) return kNoBulk;
  const size_t here = view_len() - b->next;
  if (n > b->blen + 2 - here) return kNoBulk;  // past its CRLF: the next message's bytes are lost too
  if (here > b->blen && view()[b->next + b->blen] != '\r') return kNoBulk;
  return nodes_.size();
}

size_t Parser::GapInsideBulk(uint64_t n) const {
  HeldBulk b;
  return LocateGap(n, &b);
}

bool Parser::AbsorbGap(uint64_t n) {
  HeldBulk b;
  const size_t at = LocateGap(n, &b);
  if (at == kNoBulk) return false;
  if (at == kElidedBody) {
    skip_body_ -= n;
    elided_bytes_ += n;
    return true;
  }
  const size_t here = view_len() - b.next;
  const size_t idx = nodes_.size();
  if (!AddNode(b.type, pos_ - msg_start_, 0, 0, 0, false)) return false;  // (before it changed anything)
  if (idx < nodes_.size()) nodes_[idx].elided = true;  // (gone if inside a completed attribute)
  elided_msg_ = true;
  elided_bytes_ += here + n;
  skip_body_ = b.blen + 2 - here - n;
  // Its header and the part of its body held go, as for a bulk too large
  // to hold whose body runs past the view.
  if (in_buf_) {
    buf_.resize(pos_);
    ext_len_ = pos_ >= ext_base_ ? pos_ - ext_base_ : 0;
    if (buf_.capacity() > kKeepBytes) buf_.shrink_to_fit();
    Account();
  } else {
    ext_len_ = pos_;
  }
  finish_after_gap_ = frames_.empty() && !nodes_.empty();
  return true;
}

void Parser::OnGap() {
  finish_after_gap_ = false;
  skimming_ = false;
  if (ext_ != nullptr) {
    skipped_bytes_ += view_len() - (in_message_ ? msg_start_ : pos_);
  } else {
    skipped_bytes_ += buf_.size();
  }
  buf_.clear();
  if (buf_.capacity() > kKeepBytes) std::string().swap(buf_);
  want_bytes_ = 0;
  Account();
  in_buf_ = false;
  ext_ = nullptr;
  ext_len_ = 0;
  pos_ = msg_start_ = 0;
  in_message_ = false;
  error_ = ParseError::kNone;
  frames_.clear();
  nodes_.clear();
  spans_.clear();
  ForgetElisions();  // the gap may have held the rest of an elided bulk, or more
  trust_lengths_ = false;
  resyncing_ = true;
  resync_first_is_candidate_ = true;  // the gap may end exactly at a message start
  ++resyncs_;
}

bool Parser::AtBoundary() const {
  return !in_message_ && !resyncing_ && error_ == ParseError::kNone && pos_ >= view_len() &&
         skip_body_ == 0 && skip_bulks_ == 0;
}

Parser::Candidate Parser::CheckCandidate(size_t at) const {
  const char* v = view();
  const size_t len = view_len();
  if (mode_ == Mode::kRequest) {
    if (v[at] != '*') return CheckInlineCandidate(at);
    // "*<count>\r\n$": a multibulk header followed by a bulk header.
    size_t i = at + 1;
    size_t digits = 0;
    for (; i < len && v[i] >= '0' && v[i] <= '9'; ++i) {
      if (++digits > 7) return Candidate::kNo;
    }
    if (i == len) return Candidate::kMore;
    if (digits == 0 || v[at + 1] == '0') return Candidate::kNo;
    if (v[i] != '\r') return Candidate::kNo;
    if (i + 1 == len) return Candidate::kMore;
    if (v[i + 1] != '\n') return Candidate::kNo;
    if (i + 2 == len) return Candidate::kMore;
    return v[i + 2] == '$' ? Candidate::kYes : Candidate::kNo;
  }
  const char t = v[at];
  if (!IsReplyType(t)) return Candidate::kNo;
  const size_t avail = len - at;
  const char* nl =
      static_cast<const char*>(std::memchr(v + at, '\n', std::min(avail, limits_.max_inline_len + 2)));
  if (nl == nullptr) return avail > limits_.max_inline_len + 1 ? Candidate::kNo : Candidate::kMore;
  const size_t line = static_cast<size_t>(nl - (v + at));
  if (line < 2 || nl[-1] != '\r') return Candidate::kNo;
  const char* c = v + at + 1;
  const size_t n = line - 2;
  int64_t num = 0;
  switch (t) {
    case ':':
    case '$':
    case '*':
    case '%':
    case '~':
    case '>':
    case '|':
    case '!':
    case '=':
      if (!ParseInt64(c, n, &num) || num < -1) return Candidate::kNo;
      return Candidate::kYes;
    case '_': return n == 0 ? Candidate::kYes : Candidate::kNo;
    case '#': return (n == 1 && (c[0] == 't' || c[0] == 'f')) ? Candidate::kYes : Candidate::kNo;
    case '(': return IsBigNumber(c, n) ? Candidate::kYes : Candidate::kNo;
    default: return Candidate::kYes;
  }
}

Parser::Candidate Parser::CheckInlineCandidate(size_t at) const {
  // Only on a stream that showed itself inline before any gap or join, and
  // sent no multibulk request: a client library never sends inline, and a
  // value's text, where a join or a gap may land, holds lines that look
  // like commands (two diff reviews: `Get Mike's book`, then `SET evil x`
  // / `DEL victim` lines read as requests after a join, thousands of them,
  // and a later unbalanced quote ended the stream with every write after).
  if (known_command_ == nullptr || multibulk_seen_ || !inline_trusted_) return Candidate::kNo;
  const char* v = view();
  const size_t len = view_len();
  // A whole line that Redis would run: up to '\n', within its limit, no
  // NUL, quotes balanced, its first word a command.
  const char c = v[at];
  if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return Candidate::kNo;
  const char* line = v + at;
  const char* nl =
      static_cast<const char*>(std::memchr(line, '\n', std::min(len - at, limits_.max_inline_len + 1)));
  if (nl == nullptr) return len - at > limits_.max_inline_len ? Candidate::kNo : Candidate::kMore;
  const char* end = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
  if (std::memchr(line, '\0', static_cast<size_t>(end - line)) != nullptr) return Candidate::kNo;
  if (!SplitArgs(line, end, nullptr, nullptr)) return Candidate::kNo;
  const char* w = line;
  while (w < end && !IsCSpace(*w)) ++w;
  return known_command_(std::string_view(line, static_cast<size_t>(w - line))) ? Candidate::kYes
                                                                               : Candidate::kNo;
}

bool Parser::SkipToCandidate() {
  const char* v = view();
  const size_t len = view_len();
  while (pos_ < len) {
    if (resync_first_is_candidate_) {
      const Candidate c = CheckCandidate(pos_);
      if (c == Candidate::kYes) {
        resyncing_ = false;
        resync_first_is_candidate_ = false;
        return true;
      }
      if (c == Candidate::kMore) return false;
      resync_first_is_candidate_ = false;
    }
    const void* nl = std::memchr(v + pos_, '\n', len - pos_);
    const size_t next = nl == nullptr ? len : static_cast<size_t>(static_cast<const char*>(nl) - v) + 1;
    skipped_bytes_ += next - pos_;
    pos_ = next;
    resync_first_is_candidate_ = nl != nullptr;
  }
  return false;
}

bool Parser::AddNode(Type type, size_t str_off, size_t str_len, int64_t integer, uint32_t count,
                     bool attribute) {
  if (skimming_) return SkimNode(count, attribute);
  if (skim_ != nullptr && frames_.empty() && count > 0 && !attribute && type != Type::kPush &&
      mode_ == Mode::kReply && skim_(skim_ctx_)) {
    // A reply whose elements nobody reads: the root is kept, with no
    // children, and the rest is only walked (SkimNode).
    skimming_ = true;
    Node n;
    n.type = type;
    nodes_.push_back(n);
    spans_.emplace_back(str_off, str_len);
    frames_.push_back({kSkimmedNode, count, false});
    return true;
  }
  if (nodes_.size() >= limits_.max_nodes) return false;
  if (!frames_.empty()) --frames_.back().remaining;
  const uint32_t idx = static_cast<uint32_t>(nodes_.size());
  Node n;
  n.type = type;
  n.children = count;
  n.integer = integer;
  nodes_.push_back(n);
  spans_.emplace_back(str_off, str_len);
  if (count > 0) {
    frames_.push_back({idx, count, attribute});
    return true;
  }
  if (attribute) {  // empty attribute map: gone at once
    nodes_.pop_back();
    spans_.pop_back();
    if (!frames_.empty()) ++frames_.back().remaining;
    return true;
  }
  while (!frames_.empty() && frames_.back().remaining == 0) {
    const Frame f = frames_.back();
    frames_.pop_back();
    if (f.attribute) {
      nodes_.resize(f.node);
      spans_.resize(f.node);
      if (!frames_.empty()) ++frames_.back().remaining;
    } else {
      nodes_[f.node].subtree = static_cast<uint32_t>(nodes_.size() - f.node);
    }
  }
  return true;
}

void Parser::CountConfirmation(std::string_view first) {
  // A push inside a reply is out of band (a keyspace event Redis raised
  // while running EXEC or a script, an invalidation), except the answer of
  // a (P|S)(UN)SUBSCRIBE queued in MULTI: RESP3 answers it with a push that
  // is that command's element of the EXEC array, counted in its length (a
  // review: dropped, the array took the next reply as its last element and
  // every later pair was one off).
  Frame& f = frames_.back();
  if (f.node == kSkimmedNode || nodes_[f.node].type != Type::kPush || f.remaining != nodes_[f.node].children)
    return;  // not the first element of a push
  static constexpr std::string_view kKinds[] = {"subscribe",    "unsubscribe", "psubscribe",
                                                "punsubscribe", "ssubscribe",  "sunsubscribe"};
  for (std::string_view k : kKinds) {
    if (EqualsIgnoreCase(first, k)) {
      f.attribute = false;  // an element of its parent like any other
      return;
    }
  }
}

bool Parser::SkimNode(uint32_t count, bool attribute) {
  --frames_.back().remaining;
  if (count > 0) {
    frames_.push_back({kSkimmedNode, count, attribute});
    return true;
  }
  if (attribute) {  // an empty attribute map is no value
    ++frames_.back().remaining;
    return true;
  }
  while (!frames_.empty() && frames_.back().remaining == 0) {
    const Frame f = frames_.back();
    frames_.pop_back();
    if (f.attribute && !frames_.empty()) ++frames_.back().remaining;  // an attribute is no value
  }
  return true;
}

bool Parser::WalksOnly(Type type, bool attribute) const {
  return skimming_ ||
         (skim_ != nullptr && frames_.empty() && !attribute && type != Type::kPush && skim_(skim_ctx_));
}

bool Parser::SkipTail(const char* v, size_t len) {
  // Each is "$<len>\r\n<body>\r\n", checked as the general path checks a
  // bulk of a request; its body is skipped unread as it comes, as the rest
  // of an elided bulk is (Feed).
  while (skip_bulks_ > 0) {
    if (skip_body_ > 0 || pos_ >= len) return false;
    if (v[pos_] != '$') {
      error_ = ParseError::kNotBulkInRequest;
      return false;
    }
    size_t q = pos_ + 1;
    int64_t bl = 0;
    if (!ReadCount(v, len, &q, &bl)) {
      // Incomplete, or malformed once the line is there ("$" and at most
      // 18 digits: 21 bytes with its CRLF).
      const size_t avail = len - pos_;
      if (avail > 21 || std::memchr(v + pos_, '\n', avail) != nullptr) error_ = ParseError::kBadLength;
      return false;
    }
    const uint64_t body = static_cast<uint64_t>(bl) + 2;
    const size_t here = static_cast<size_t>(std::min<uint64_t>(len - q, body));
    if ((here > body - 2 && v[q + body - 2] != '\r') || (here > body - 1 && v[q + body - 1] != '\n')) {
      error_ = ParseError::kBadTerminator;
      return false;
    }
    elided_bytes_ += here;
    pos_ = q + here;
    --skip_bulks_;
    if (here < body) {
      skip_body_ = body - here;
      return false;
    }
  }
  return true;
}

bool Parser::SkimScalars(const char* v, size_t len) {
  while (pos_ < len) {
    size_t q = pos_ + 1;
    int64_t n;
    if (v[pos_] == '$') {
      if (!ReadCount(v, len, &q, &n) || static_cast<uint64_t>(n) > limits_.max_bulk_len) return false;
      const size_t b = static_cast<size_t>(n);
      if (len - q < b + 2 || v[q + b] != '\r' || v[q + b + 1] != '\n') return false;
      // (One the general path would elide: it decides.)
      if (q - msg_start_ - hole_bytes_ + b + 2 > limits_.max_message_bytes) return false;
      q += b + 2;
    } else if (v[pos_] == ':') {
      if (!ReadCount(v, len, &q, &n)) return false;  // (a negative one: the general path)
    } else {
      return false;
    }
    pos_ = q;
    if (--frames_.back().remaining == 0) {
      while (!frames_.empty() && frames_.back().remaining == 0) {
        const Frame f = frames_.back();
        frames_.pop_back();
        if (f.attribute && !frames_.empty()) ++frames_.back().remaining;  // an attribute is no value
      }
      if (frames_.empty()) return true;
    }
  }
  return false;
}

void Parser::Finish() {
  const char* base = view() + msg_start_;
  for (size_t i = 0; i < nodes_.size(); ++i)
    nodes_[i].str = std::string_view(base + spans_[i].first, spans_[i].second);
  if (mode_ == Mode::kRequest) {
    args_.clear();
    for (size_t i = 1; i < nodes_.size(); ++i) args_.push_back(nodes_[i].str);
  }
  message_bytes_ = pos_ - msg_start_;
  last_inline_ = false;
  multibulk_seen_ = multibulk_seen_ || mode_ == Mode::kRequest;
  in_message_ = false;
  trust_lengths_ = true;
  holes_.clear();
  hole_bytes_ = 0;
}

// ---- Inline commands ------------------------------------------------------
// redis-server 7 (processInlineBuffer + sdssplitargs) reads an inline command
// as follows, and so do we:
//  - the line ends at the first '\n'; one '\r' right before it is dropped. A
//    NUL byte before the '\n' hides the line end from the server (it searches
//    with strchr), which then never answers: kInlineNul here.
//  - between arguments any C-locale isspace byte is skipped (space \t \n \v
//    \f \r); an unquoted argument ends only at space, \t, \r or \n, so \v
//    and \f inside it are kept.
//  - a '"' anywhere in an argument opens a double-quoted part: \xHH (two hex
//    digits, either case) is that byte; \n \r \t \b \a are the control
//    bytes; any other \c is c. A '\'' opens a single-quoted part where only
//    \' is an escape. The closing quote ends the argument and must be
//    followed by an isspace byte or the line end, else the whole line is
//    rejected; so is an unterminated quote (kUnbalancedQuotes).
//  - "" and '' are empty arguments; a line with no argument is no command.
ParseStatus Parser::ParseInline(const char* v, size_t len) {
  const char* line = v + pos_;
  const size_t avail = len - pos_;
  const char* nl =
      static_cast<const char*>(std::memchr(line, '\n', std::min(avail, limits_.max_inline_len + 1)));
  if (nl == nullptr) {
    if (avail > limits_.max_inline_len) return Fail(ParseError::kLineTooLong);
    return NeedMore();
  }
  const char* end = (nl > line && nl[-1] == '\r') ? nl - 1 : nl;
  const size_t n = static_cast<size_t>(end - line);
  if (std::memchr(line, '\0', n) != nullptr) return Fail(ParseError::kInlineNul);
  args_.clear();
  if (std::memchr(line, '"', n) == nullptr && std::memchr(line, '\'', n) == nullptr) {
    // No quotes (the usual case): arguments are views into the line.
    const char* p = line;
    for (;;) {
      while (p < end && IsCSpace(*p)) ++p;
      if (p == end) break;
      const char* s = p;
      while (p < end && !EndsBareArg(*p)) ++p;
      args_.emplace_back(s, static_cast<size_t>(p - s));
    }
  } else if (!SplitQuoted(line, end)) {
    return Fail(ParseError::kUnbalancedQuotes);
  }
  pos_ = static_cast<size_t>(nl - v) + 1;
  message_bytes_ = pos_ - msg_start_;
  in_message_ = false;
  inline_msg_ = false;
  last_inline_ = true;
  if (resyncs_ == 0) inline_trusted_ = true;
  return ParseStatus::kMessage;
}

// Splits [line, end) (no NUL inside) into args_, unescaping into
// inline_scratch_. Every input byte yields at most one output byte, so the
// scratch is sized to the line (<= max_inline_len) before any view into it
// is taken, so it never moves under them. False when the quotes are
// unbalanced.
bool Parser::SplitQuoted(const char* line, const char* end) {
  const size_t n = static_cast<size_t>(end - line);
  // (A long line's scratch is not kept for the short ones after it.)
  if (n <= kSmallScratch && inline_scratch_.capacity() > kSmallScratch) std::string().swap(inline_scratch_);
  inline_scratch_.resize(n);
  return SplitArgs(line, end, inline_scratch_.data(), &args_);
}

// As Redis's sdssplitargs: the arguments of [line, end) unescaped into `out`
// (at most one byte per input byte) and viewed in `args`; with `out` null,
// only whether the quotes balance.
bool Parser::SplitArgs(const char* line, const char* end, char* out, std::vector<std::string_view>* args) {
  size_t w = 0;
  auto put = [&](char c) {
    if (out != nullptr) out[w] = c;
    ++w;
  };
  const char* p = line;
  for (;;) {
    while (p < end && IsCSpace(*p)) ++p;
    if (p == end) return true;
    const size_t start = w;
    char quote = 0;  // '"' or '\'' while inside a quoted part
    for (;;) {
      if (quote == 0) {
        if (p == end || EndsBareArg(*p)) break;  // the separator is skipped with the blanks
        if (*p == '"' || *p == '\'') {
          quote = *p;
        } else {
          put(*p);
        }
        ++p;
        continue;
      }
      if (p == end) return false;  // unterminated
      const char c = *p;
      if (c == quote) {
        if (p + 1 < end && !IsCSpace(p[1])) return false;
        ++p;
        break;
      }
      if (c == '\\' && quote == '"' && end - p >= 4 && p[1] == 'x' && HexValue(p[2]) >= 0 &&
          HexValue(p[3]) >= 0) {
        put(static_cast<char>(HexValue(p[2]) * 16 + HexValue(p[3])));
        p += 4;
      } else if (c == '\\' && quote == '"' && end - p >= 2) {
        put(UnescapeDoubleQuoted(p[1]));
        p += 2;
      } else if (c == '\\' && quote == '\'' && end - p >= 2 && p[1] == '\'') {
        put('\'');
        p += 2;
      } else {
        put(c);
        ++p;
      }
    }
    if (out != nullptr) args->emplace_back(out + start, w - start);
  }
}

// Fast path for the common case: a whole multibulk request inside the view,
// parsed straight into args_. Anything unusual returns false untouched.
bool Parser::FastRequest(const char* v, size_t len) {
  size_t q = pos_ + 1;
  int64_t n;
  if (!ReadCount(v, len, &q, &n) || n <= 0 || static_cast<uint64_t>(n) > limits_.max_elements) return false;
  args_.clear();
  for (int64_t i = 0; i < n; ++i) {
    int64_t bl;
    if (q >= len || v[q] != '$') return false;
    ++q;
    if (!ReadCount(v, len, &q, &bl) || static_cast<uint64_t>(bl) > limits_.max_bulk_len) return false;
    const size_t b = static_cast<size_t>(bl);
    if (len - q < b + 2 || v[q + b] != '\r' || v[q + b + 1] != '\n') return false;
    args_.emplace_back(v + q, b);
    q += b + 2;
  }
  if (q - pos_ > limits_.max_message_bytes) return false;
  message_bytes_ = q - pos_;
  pos_ = q;
  last_inline_ = false;
  multibulk_seen_ = true;
  return true;
}

// Fast path for one-line replies (+OK, -ERR…, :n) and complete bulk strings.
bool Parser::FastReply(const char* v, size_t len) {
  const char t = v[pos_];
  if (t != '+' && t != '-' && t != ':' && t != '$') return false;
  Node n;
  size_t end;
  if (t == '$') {
    size_t q = pos_ + 1;
    int64_t bl;
    if (!ReadCount(v, len, &q, &bl) || static_cast<uint64_t>(bl) > limits_.max_bulk_len) return false;
    const size_t b = static_cast<size_t>(bl);
    if (len - q < b + 2 || v[q + b] != '\r' || v[q + b + 1] != '\n') return false;
    if (q - pos_ + b + 2 > limits_.max_message_bytes) return false;
    n.type = Type::kBulkString;
    n.str = std::string_view(v + q, b);
    end = q + b + 2;
  } else {
    const size_t avail = std::min(len - pos_, limits_.max_inline_len + 2);
    // Replies like +OK, :1 and -ERR… are a few bytes: look at them in place
    // before paying for a memchr call.
    const char* nl = nullptr;
    const size_t near = std::min<size_t>(avail, 16);
    for (size_t i = 1; i < near; ++i) {
      if (v[pos_ + i] == '\n') {
        nl = v + pos_ + i;
        break;
      }
    }
    if (nl == nullptr && avail > near)
      nl = static_cast<const char*>(std::memchr(v + pos_ + near, '\n', avail - near));
    if (nl == nullptr || nl - (v + pos_) < 2 || nl[-1] != '\r') return false;
    const size_t n_len = static_cast<size_t>(nl - (v + pos_)) - 2;
    n.str = std::string_view(v + pos_ + 1, n_len);
    if (t == ':') {
      if (!ParseInt64(n.str.data(), n_len, &n.integer)) return false;
      n.type = Type::kInteger;
    } else {
      n.type = t == '+' ? Type::kSimpleString : Type::kError;
    }
    end = static_cast<size_t>(nl - v) + 1;
  }
  nodes_.clear();
  nodes_.push_back(n);
  message_bytes_ = end - pos_;
  pos_ = end;
  return true;
}

ParseStatus Parser::Next() {
  if (error_ != ParseError::kNone) return ParseStatus::kError;
  if (finish_after_gap_) [[unlikely]] {
    finish_after_gap_ = false;
    Finish();
    return ParseStatus::kMessage;
  }
  // Leave our buffer as soon as everything left lies in the caller's chunk.
  if (in_buf_ && !in_message_ && ext_ != nullptr && pos_ >= ext_base_) {
    pos_ -= ext_base_;
    in_buf_ = false;
    buf_.clear();
  }
  const char* v = view();
  const size_t len = view_len();
  if (ended_) {
    skipped_bytes_ += len - std::min(pos_, len);
    pos_ = len;
    return NeedMore();
  }
  if (resyncing_ && !SkipToCandidate()) return NeedMore();

  for (;;) {
    if (!in_message_) {
      if (skip_bulks_ > 0) [[unlikely]] {
        tail_elided_ = 0;  // (its message is done with; ForgetElisions clears it too)
        if (!SkipTail(v, len)) return error_ != ParseError::kNone ? ParseStatus::kError : NeedMore();
      }
      if (pos_ >= len) return NeedMore();
      elided_msg_ = false;
      skimming_ = false;
      if (mode_ == Mode::kRequest ? (v[pos_] == '*' && FastRequest(v, len)) : FastReply(v, len)) {
        trust_lengths_ = true;
        return ParseStatus::kMessage;
      }
      if (v[pos_] == '\n' && skip_newlines_) [[unlikely]] {
        ++pos_;  // a keepalive (FastReply takes no newline)
        continue;
      }
      msg_start_ = pos_;
      in_message_ = true;
      holes_.clear();
      hole_bytes_ = 0;
      nodes_.clear();
      spans_.clear();
      frames_.clear();
      inline_msg_ = mode_ == Mode::kRequest && v[pos_] != '*';
    }
    if (inline_msg_) {
      const ParseStatus s = ParseInline(v, len);
      if (s == ParseStatus::kMessage && args_.empty()) {  // blank line: Redis ignores it
        ++empty_requests_;
        continue;
      }
      return s;
    }
    if (skimming_ && SkimScalars(v, len)) {
      Finish();
      return ParseStatus::kMessage;
    }
    if (pos_ >= len) return NeedMore();
    const char* line = v + pos_;
    const size_t avail = len - pos_;
    const char* nl =
        static_cast<const char*>(std::memchr(line, '\n', std::min(avail, limits_.max_inline_len + 2)));
    if (nl == nullptr) {
      if (avail > limits_.max_inline_len + 1) return Fail(ParseError::kLineTooLong);
      return NeedMore();
    }
    const size_t line_len = static_cast<size_t>(nl - line) + 1;  // with CRLF
    if (line_len < 3 || nl[-1] != '\r') return Fail(ParseError::kBadTerminator);
    const char t = line[0];
    const char* c = line + 1;
    const size_t n = line_len - 3;
    const size_t c_off = pos_ + 1 - msg_start_;
    const size_t next = pos_ + line_len;
    if (mode_ == Mode::kRequest && !frames_.empty() && t != '$') return Fail(ParseError::kNotBulkInRequest);
    int64_t num = 0;
    bool ok = true;
    switch (t) {
      case '+':
      case '-':
        ok = AddNode(t == '+' ? Type::kSimpleString : Type::kError, c_off, n, 0, 0, false);
        pos_ = next;
        break;
      case ':':
        if (!ParseInt64(c, n, &num)) return Fail(ParseError::kBadInteger);
        ok = AddNode(Type::kInteger, c_off, n, num, 0, false);
        pos_ = next;
        break;
      case '#':
        if (n != 1 || (c[0] != 't' && c[0] != 'f')) return Fail(ParseError::kBadInteger);
        ok = AddNode(Type::kBoolean, c_off, n, c[0] == 't' ? 1 : 0, 0, false);
        pos_ = next;
        break;
      case ',':
        if (n == 0) return Fail(ParseError::kBadInteger);
        ok = AddNode(Type::kDouble, c_off, n, 0, 0, false);
        pos_ = next;
        break;
      case '(':
        if (!IsBigNumber(c, n)) return Fail(ParseError::kBadInteger);
        ok = AddNode(Type::kBigNumber, c_off, n, 0, 0, false);
        pos_ = next;
        break;
      case '_':
        if (n != 0) return Fail(ParseError::kBadLength);
        ok = AddNode(Type::kNull, c_off, 0, 0, 0, false);
        pos_ = next;
        break;
      case '$':
      case '!':
      case '=': {
        if (!ParseInt64(c, n, &num) || (mode_ == Mode::kRequest && LeadingZero(c, n)))
          return Fail(ParseError::kBadLength);
        if (num == -1 && t == '$' && mode_ == Mode::kReply) {
          ok = AddNode(Type::kNull, c_off, 0, 0, 0, false);
          pos_ = next;
          break;
        }
        if (num < 0) return Fail(ParseError::kBadLength);
        // Redis takes a bulk up to its proto-max-bulk-len: 512 MiB unless
        // raised (a review's source took 600 MB values, each lost unflagged
        // to a parse error here). On a stream whose framing was never in
        // doubt, a longer one is elided like any value too large to hold (a
        // server that refused it answered a protocol error and closed, which
        // pairs with it). After a gap, a join or a resync it stays an error:
        // a false start inside a value's text could claim any length, and
        // skipping on its word would swallow the rest of the connection.
        if (static_cast<uint64_t>(num) > limits_.max_bulk_len && (!trust_lengths_ || resyncs_ != 0))
          return Fail(ParseError::kBulkTooLong);
        const size_t blen = static_cast<size_t>(num);
        Type type = t == '$' ? Type::kBulkString : t == '!' ? Type::kBulkError : Type::kVerbatim;
        const size_t need = next - msg_start_ - hole_bytes_ + blen + 2;  // to hold the message this far
        // A body that runs past the view is held until it is whole.
        const bool held = len - next < blen + 2;
        if (need > limits_.max_message_bytes ||
            (trust_lengths_ && held && blen >= kSharedFloorBytes && need > buf_.capacity() &&
             ParsersHeldBytes() + (need - std::min(need, buf_.capacity())) > limits_.max_held_bytes_all)) {
          // Too large to hold: an empty node marked elided. Its header and
          // body are never held: a hole in the view that Stash leaves out,
          // or, when the body runs past the view, the end of the view, with
          // the rest dropped by Feed. Not right after a resync: a length
          // there may be a false start that would skip real messages.
          if (!trust_lengths_) return Fail(ParseError::kMessageTooLarge);
          const size_t here = std::min(len - next, blen + 2);
          if ((here > blen && v[next + blen] != '\r') || (here > blen + 1 && v[next + blen + 1] != '\n'))
            return Fail(ParseError::kBadTerminator);
          const size_t head = pos_ - msg_start_;
          const size_t idx = nodes_.size();
          if (!AddNode(type, head, 0, 0, 0, false)) return Fail(ParseError::kTooManyElements);
          if (idx < nodes_.size()) nodes_[idx].elided = true;  // (gone if inside a completed attribute)
          elided_msg_ = true;
          elided_bytes_ += here;
          if (here == blen + 2) {
            holes_.emplace_back(head, next - pos_ + here);
            hole_bytes_ += next - pos_ + here;
            pos_ = next + here;
            break;
          }
          skip_body_ = blen + 2 - here;
          if (in_buf_) {
            buf_.resize(pos_);
            ext_len_ = pos_ >= ext_base_ ? pos_ - ext_base_ : 0;
          } else {
            ext_len_ = pos_;
          }
          if (frames_.empty() && !nodes_.empty()) {
            Finish();
            return ParseStatus::kMessage;
          }
          return NeedMore();
        }
        if (len - next < blen + 2) {
          if (blen >= kSharedFloorBytes) want_bytes_ = need;
          return NeedMore();
        }
        if (v[next + blen] != '\r' || v[next + blen + 1] != '\n') return Fail(ParseError::kBadTerminator);
        size_t off = next - msg_start_;
        size_t slen = blen;
        if (t == '=') {
          if (blen < 4 || v[next + 3] != ':') return Fail(ParseError::kBadLength);
          off += 4;
          slen -= 4;
        }
        if (!frames_.empty() && frames_.back().attribute) [[unlikely]]
          CountConfirmation(std::string_view(v + next, blen));
        ok = AddNode(type, off, slen, 0, 0, false);
        pos_ = next + blen + 2;
        break;
      }
      case '*':
      case '%':
      case '~':
      case '>':
      case '|': {
        if (!ParseInt64(c, n, &num) || (mode_ == Mode::kRequest && LeadingZero(c, n)))
          return Fail(ParseError::kBadLength);
        if (mode_ == Mode::kRequest && num <= 0) {  // Redis ignores empty multibulks
          ++empty_requests_;
          pos_ = next;
          in_message_ = false;
          continue;
        }
        if (num == -1 && (t == '*' || t == '>' || t == '%' || t == '~')) {
          ok = AddNode(Type::kNull, c_off, 0, 0, 0, false);
          pos_ = next;
          break;
        }
        if (num < 0) return Fail(ParseError::kBadLength);
        const Type type = t == '*'   ? Type::kArray
                          : t == '%' ? Type::kMap
                          : t == '~' ? Type::kSet
                          : t == '>' ? Type::kPush
                                     : Type::kMap;
        uint64_t tail = 0;
        if (static_cast<uint64_t>(num) > limits_.max_elements) [[unlikely]] {
          // Redis 7 takes requests of up to INT_MAX arguments (a bulk load's
          // SADD of millions of members was lost to this error, its key not
          // even read back). On a stream whose framing was never in doubt,
          // the first arguments are kept (the name, the keys of nearly every
          // command) and the rest skipped unread; a reply nobody reads is
          // walked, which holds no node. After a gap, a join or a resync it
          // stays an error, as a length past max_bulk_len does.
          if (num > INT32_MAX) return Fail(ParseError::kTooManyElements);
          if (mode_ == Mode::kRequest && trust_lengths_ && resyncs_ == 0) {
            const int64_t keep = std::min(limits_.max_elements, kTailKeptArgs);
            tail = static_cast<uint64_t>(num - keep);
            num = keep;
          } else if (mode_ != Mode::kReply || !WalksOnly(type, t == '|')) {
            return Fail(ParseError::kTooManyElements);
          }
        }
        if (frames_.size() + 1 > limits_.max_depth) return Fail(ParseError::kTooDeep);
        const uint32_t count = static_cast<uint32_t>((t == '%' || t == '|') ? num * 2 : num);
        // A push is out of band: one inside a reply (Redis 7.0 writes a
        // keyspace event it raised while running EXEC or a script into the
        // middle of that reply) is no element of it, and is dropped like an
        // attribute.
        const bool out_of_band = t == '|' || (t == '>' && mode_ == Mode::kReply && !frames_.empty());
        ok = AddNode(type, c_off, 0, 0, count, out_of_band);
        pos_ = next;
        if (tail > 0 && ok) {
          tail_elided_ = skip_bulks_ = tail;
          elided_msg_ = true;
        }
        break;
      }
      default: return Fail(ParseError::kBadType);
    }
    if (!ok) return Fail(ParseError::kTooManyElements);
    if (frames_.empty() && !nodes_.empty()) {
      Finish();
      return ParseStatus::kMessage;
    }
  }
}

}  // namespace kvf::resp
