// Fuzz target for the RESP parser in both modes. The first byte picks the
// mode and a chunk size; the rest is the stream. Oracle: fed whole or fed in
// chunks, the parser must produce the same messages up to the first error,
// never buffer more than its limit plus one chunk, and build consistent trees.
// In request mode the first line, read as an inline command, must also split
// exactly as a reference model of redis-server's splitting does. In reply
// mode a skimmed parse (aggregates walked, not kept) must find the same
// messages and errors as a full one.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "resp/parser.h"

namespace {

using kvf::resp::Limits;
using kvf::resp::Node;
using kvf::resp::ParseError;
using kvf::resp::Parser;
using kvf::resp::ParseStatus;

// Reference model of redis-server's inline splitting, kept deliberately naive
// (byte by byte over a NUL-terminated copy, as the server scans its C string)
// and separate from the parser's code. False: unbalanced quotes.
bool ModelSplit(const std::string& line, std::vector<std::string>* out) {
  const std::string s = line + '\0';
  auto blank = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  size_t i = 0;
  out->clear();
  for (;;) {
    while (s[i] != '\0' && blank(s[i])) ++i;
    if (s[i] == '\0') return true;
    std::string arg;
    enum { kBare, kDouble, kSingle } state = kBare;
    bool done = false;
    while (!done) {
      const char c = s[i];
      if (state == kDouble) {
        if (c == '\0') return false;
        if (c == '\\' && s[i + 1] == 'x' && hex(s[i + 2]) >= 0 && hex(s[i + 3]) >= 0) {
          arg += static_cast<char>(hex(s[i + 2]) * 16 + hex(s[i + 3]));
          i += 3;
        } else if (c == '\\' && s[i + 1] != '\0') {
          ++i;
          const char e = s[i];
          arg += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
        } else if (c == '"') {
          if (s[i + 1] != '\0' && !blank(s[i + 1])) return false;
          done = true;
        } else {
          arg += c;
        }
      } else if (state == kSingle) {
        if (c == '\0') return false;
        if (c == '\\' && s[i + 1] == '\'') {
          ++i;
          arg += '\'';
        } else if (c == '\'') {
          if (s[i + 1] != '\0' && !blank(s[i + 1])) return false;
          done = true;
        } else {
          arg += c;
        }
      } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0') {
        done = true;
      } else if (c == '"') {
        state = kDouble;
      } else if (c == '\'') {
        state = kSingle;
      } else {
        arg += c;
      }
      if (s[i] != '\0') ++i;
    }
    out->push_back(std::move(arg));
  }
}

// The first line of `data` as an inline command: parser against model.
void CheckInlineAgainstModel(const uint8_t* data, size_t size) {
  const char* p = reinterpret_cast<const char*>(data);
  const void* nl = std::memchr(p, '\n', size);
  if (size == 0 || p[0] == '*' || nl == nullptr) return;
  const std::string line(p, static_cast<size_t>(static_cast<const char*>(nl) - p) + 1);
  if (line.size() > 1024) return;
  std::string body = line.substr(0, line.size() - 1);
  if (!body.empty() && body.back() == '\r') body.pop_back();
  Parser parser(Parser::Mode::kRequest);
  parser.Feed(line);
  const ParseStatus s = parser.Next();
  if (body.find('\0') != std::string::npos) {  // the server never answers such a line
    if (s != ParseStatus::kError || parser.error() != ParseError::kInlineNul) std::abort();
    return;
  }
  std::vector<std::string> want;
  if (!ModelSplit(body, &want)) {
    if (s != ParseStatus::kError || parser.error() != ParseError::kUnbalancedQuotes) std::abort();
    return;
  }
  if (want.empty()) {  // a blank line is no command
    if (s != ParseStatus::kNeedMore) std::abort();
    return;
  }
  if (s != ParseStatus::kMessage || !parser.last_was_inline() || parser.args().size() != want.size())
    std::abort();
  for (size_t i = 0; i < want.size(); ++i) {
    if (parser.args()[i] != want[i]) std::abort();
  }
}

Limits SmallLimits() {
  Limits l;
  l.max_bulk_len = 1 << 16;
  l.max_elements = 64;  // small, so that requests past it (their tails skipped) are explored
  l.max_depth = 8;
  l.max_inline_len = 512;
  // Small, so that bulks past it (elided, skipped unread) are explored.
  l.max_message_bytes = 600;
  return l;
}

std::string Describe(const Parser& p, Parser::Mode mode) {
  std::string out;
  if (mode == Parser::Mode::kRequest) {
    for (size_t i = 0; i < p.args().size(); ++i) {
      const std::string_view a = p.args()[i];
      if (p.arg_elided(i)) {
        if (!a.empty()) std::abort();
        out += "elided;";
        continue;
      }
      out += std::to_string(a.size()) + ":";
      out.append(a);
    }
    if (p.tail_elided() > 0) {
      if (!p.elided() ||
          p.args().size() != std::min<size_t>(SmallLimits().max_elements, Parser::kTailKeptArgs))
        std::abort();
      out += "tail:" + std::to_string(p.tail_elided()) + ";";
    }
    return out;
  }
  auto nodes = p.nodes();
  // Tree consistency: every aggregate's subtree is 1 + its children's subtrees.
  std::vector<size_t> stack;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    size_t sum = 1, j = i + 1;
    for (uint32_t c = 0; c < n.children; ++c) {
      if (j >= nodes.size()) std::abort();
      sum += nodes[j].subtree;
      j += nodes[j].subtree;
    }
    if (sum != n.subtree) std::abort();
    out += std::to_string(static_cast<int>(n.type)) + "/" + std::to_string(n.integer) + "/";
    if (n.elided && !n.str.empty()) std::abort();
    out += n.elided ? "elided" : n.str;
    out += ";";
  }
  if (nodes.empty() || nodes[0].subtree != nodes.size()) std::abort();
  return out;
}

// `skim`: every aggregate reply is only walked (Parser::SetSkimPredicate),
// and each message is described by its root type and wire size alone, which
// is all a skimmed reply keeps; `brief`: the same description of a full parse.
std::vector<std::string> Run(Parser::Mode mode, const uint8_t* data, size_t size, size_t chunk, bool* errored,
                             bool skim = false, bool brief = false, ParseError* error = nullptr) {
  const Limits l = SmallLimits();
  Parser p(mode, l);
  if (skim) p.SetSkimPredicate([](const void*) { return true; }, nullptr);
  std::vector<std::string> out;
  *errored = false;
  for (size_t off = 0; off < size; off += chunk) {
    const size_t n = std::min(chunk, size - off);
    std::string piece(reinterpret_cast<const char*>(data + off), n);  // dies after this round
    p.Feed(piece);
    for (;;) {
      const ParseStatus s = p.Next();
      if (s == ParseStatus::kNeedMore) break;
      if (s == ParseStatus::kError) {
        *errored = true;
        if (error != nullptr) *error = p.error();
        return out;
      }
      if (skim || brief) {
        const Node& root = p.nodes()[0];
        if (p.skimmed() && (root.children != 0 || p.nodes().size() != 1)) std::abort();
        // (An elided bulk's bytes are skipped as they come: its message's
        // size depends on how it was fed.)
        out.push_back(std::to_string(static_cast<int>(root.type)) + "/" +
                      (p.elided() ? "elided" : std::to_string(p.message_bytes())));
      } else {
        out.push_back(Describe(p, mode));
      }
    }
    // Complete elements up to the limit, a partial line after them, a chunk.
    if (p.buffered_bytes() > l.max_message_bytes + l.max_inline_len + 2 + chunk + 16) std::abort();
  }
  return out;
}

// A second pass that keeps going through errors and gaps: must not crash.
void RunWithResync(Parser::Mode mode, const uint8_t* data, size_t size, size_t chunk) {
  Limits l;
  l.max_message_bytes = 1 << 14;
  l.max_depth = 4;
  Parser p(mode, l);
  // Inline requests resync at a known command (any word of 3 letters here).
  p.SetInlineCommandPredicate([](std::string_view w) { return w.size() == 3; });
  size_t round = 0;
  for (size_t off = 0; off < size; off += chunk, ++round) {
    if (round % 5 == 4) p.OnGap();
    p.Feed(kvf::ByteSpan(data + off, std::min(chunk, size - off)));
    for (ParseStatus s; (s = p.Next()) != ParseStatus::kNeedMore;) {
      if (s == ParseStatus::kError) p.Resync();
    }
  }
}

// Every third chunk that would fall wholly inside a bulk's body is lost
// instead (Parser::AbsorbGap): the framing holds, so the messages are as
// many as in the whole parse `whole`, and those before the first gap are
// the same.
void RunWithGapsInsideValues(Parser::Mode mode, const uint8_t* data, size_t size, size_t chunk,
                             const std::vector<std::string>& whole, bool err_whole) {
  Parser p(mode, SmallLimits());
  std::vector<std::string> out;
  size_t before_gap = SIZE_MAX;
  size_t round = 0;
  for (size_t off = 0; off < size; off += chunk, ++round) {
    const size_t n = std::min(chunk, size - off);
    std::string piece(reinterpret_cast<const char*>(data + off), n);  // dies after this round
    if (round % 3 == 2 && p.GapInsideBulk(n) != Parser::kNoBulk) {
      if (!p.AbsorbGap(n)) std::abort();
      if (before_gap == SIZE_MAX) before_gap = out.size();
    } else {
      p.Feed(piece);
    }
    for (;;) {
      const ParseStatus s = p.Next();
      if (s == ParseStatus::kNeedMore) break;
      if (s == ParseStatus::kError) return;  // (what the lost bytes held is unknown: no comparison)
      out.push_back(Describe(p, mode));
    }
  }
  if (before_gap == SIZE_MAX) before_gap = out.size();
  for (size_t i = 0; i < std::min(before_gap, whole.size()); ++i) {
    if (i < out.size() && out[i] != whole[i]) std::abort();
  }
  // (An elided bulk that ends a message ends it at once, as one too large
  // to hold does: the last may be out while the rest of its body is not.)
  if (!err_whole && out.size() != whole.size() && !(out.size() == whole.size() + 1 && p.HasPartial()))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Parser::Mode mode = (data[0] & 1) ? Parser::Mode::kReply : Parser::Mode::kRequest;
  const size_t chunk = 1 + (data[0] >> 1) % 17;
  ++data;
  --size;
  bool err_whole = false, err_split = false;
  const auto whole = Run(mode, data, size, size ? size : 1, &err_whole);
  const auto split = Run(mode, data, size, chunk, &err_split);
  // Up to the first error the two must agree message for message. (An error
  // may surface later when split, e.g. a limit checked on buffered bytes.)
  const size_t common = std::min(whole.size(), split.size());
  for (size_t i = 0; i < common; ++i) {
    if (whole[i] != split[i]) std::abort();
  }
  if (!err_whole && !err_split && whole.size() != split.size()) std::abort();
  RunWithResync(mode, data, size, chunk);
  RunWithGapsInsideValues(mode, data, size, chunk, whole, err_whole);
  if (mode == Parser::Mode::kRequest) CheckInlineAgainstModel(data, size);
  if (mode == Parser::Mode::kReply) {
    // A skimmed parse finds the same messages (root type, size) and the
    // same first error as a full one, fed whole or in chunks; except that an
    // aggregate past max_elements, an error when parsed whole, is walked.
    bool err_brief = false, err_skim = false, err_skim_split = false;
    ParseError brief_error = ParseError::kNone;
    const auto brief = Run(mode, data, size, size ? size : 1, &err_brief, false, true, &brief_error);
    const auto skimmed = Run(mode, data, size, size ? size : 1, &err_skim, true);
    const auto skimmed_split = Run(mode, data, size, chunk, &err_skim_split, true);
    if (err_brief && brief_error == ParseError::kTooManyElements) {
      if (skimmed.size() < brief.size() || !std::equal(brief.begin(), brief.end(), skimmed.begin()))
        std::abort();
    } else if (skimmed != brief || err_skim != err_brief) {
      std::abort();
    }
    const size_t n = std::min(skimmed.size(), skimmed_split.size());
    for (size_t i = 0; i < n; ++i) {
      if (skimmed[i] != skimmed_split[i]) std::abort();
    }
    if (!err_skim && !err_skim_split && skimmed.size() != skimmed_split.size()) std::abort();
  }
  return 0;
}
