// RESP parser: every request and reply type, fed whole and one byte at a
// time, limits, resynchronisation after gaps and errors.
#include "resp/parser.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace kvf::resp {
namespace {

// Renders a parsed reply as a compact string, so tests compare shapes.
std::string Render(std::span<const Node> nodes, size_t* i) {
  const Node& n = nodes[(*i)++];
  std::string out(TypeName(n.type));
  switch (n.type) {
    case Type::kInteger:
    case Type::kBoolean: out += "(" + std::to_string(n.integer) + ")"; break;
    case Type::kArray:
    case Type::kMap:
    case Type::kSet:
    case Type::kPush:
      out += "[";
      for (uint32_t c = 0; c < n.children; ++c) {
        if (c) out += ",";
        out += Render(nodes, i);
      }
      out += "]";
      break;
    case Type::kNull: break;
    default: out += n.elided ? "#elided" : "'" + std::string(n.str) + "'";
  }
  return out;
}

std::vector<std::string> ParseAll(Parser::Mode mode, const std::string& input, size_t chunk,
                                  Limits limits = {}) {
  Parser p(mode, limits);
  std::vector<std::string> out;
  for (size_t off = 0; off < input.size(); off += chunk) {
    // A fresh copy per chunk that dies right after: the parser must not keep
    // pointers into it.
    std::string piece = input.substr(off, chunk);
    p.Feed(piece);
    for (;;) {
      const ParseStatus s = p.Next();
      if (s == ParseStatus::kNeedMore) break;
      if (s == ParseStatus::kError) {
        out.push_back("ERROR:" + std::string(ParseErrorName(p.error())));
        return out;
      }
      if (mode == Parser::Mode::kRequest) {
        std::string r = p.last_was_inline() ? "inline:" : "";
        for (size_t a = 0; a < p.args().size(); ++a)
          r += p.arg_elided(a) ? "<#elided>" : "<" + std::string(p.args()[a]) + ">";
        if (p.tail_elided() > 0) r += "<+" + std::to_string(p.tail_elided()) + " elided>";
        out.push_back(r);
      } else {
        size_t i = 0;
        out.push_back(Render(p.nodes(), &i));
        EXPECT_EQ(i, p.nodes().size());
        EXPECT_EQ(p.nodes()[0].subtree, p.nodes().size());
      }
    }
    piece.assign(piece.size(), '#');  // scribble over the caller's bytes
  }
  return out;
}

// Every input must give the same result whether fed whole, byte by byte, or
// in odd-sized chunks.
void ExpectSame(Parser::Mode mode, const std::string& input, const std::vector<std::string>& want) {
  for (size_t chunk : {input.size() ? input.size() : 1, size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
    EXPECT_EQ(ParseAll(mode, input, chunk), want) << "chunk size " << chunk;
  }
}

TEST(RespParser, MultibulkRequestsPipelined) {
  ExpectSame(Parser::Mode::kRequest,
             "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n",
             {"<SET><k><hello>", "<PING>", "<GET><>"});
}

TEST(RespParser, BinarySafeBulk) {
  std::string v("a\r\nb\0c", 6);
  ExpectSame(Parser::Mode::kRequest, "*2\r\n$4\r\nECHO\r\n$6\r\n" + v + "\r\n", {"<ECHO><" + v + ">"});
}

TEST(RespParser, InlineRequestsAndBlankLines) {
  ExpectSame(Parser::Mode::kRequest, "PING\r\n\r\n  set  k\tv \r\n\nget k\n*1\r\n$4\r\nPING\r\n",
             {"inline:<PING>", "inline:<set><k><v>", "inline:<get><k>", "<PING>"});
}

// Inline lines split and unescaped as redis-server does (sdssplitargs); the
// expectations were checked against redis-server 7.0 (see inline_test.cc).
TEST(RespParser, InlineQuotesAndEscapes) {
  struct Case {
    std::string line;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"SET k \"a b\"\r\n", "inline:<SET><k><a b>"},
      {"SET k \"\\x41\\x4a\\x4G\\xZ\\x4\"\r\n", "inline:<SET><k><AJx4GxZx4>"},
      {"SET k \"\\n\\r\\t\\b\\a\\\\\\\"\\q\\'\"\r\n", "inline:<SET><k><\n\r\t\b\a\\\"q'>"},
      {"SET k 'it\\'s \\n \"x\"'\r\n", "inline:<SET><k><it's \\n \"x\">"},
      {"SET k \"\" ''\r\n", "inline:<SET><k><><>"},
      {"SET a\"b c\" d' e'  f\r\n", "inline:<SET><ab c><d e><f>"},
      {"SET k \"v\"\t\"w\"\x0b\r\n", "inline:<SET><k><v><w>"},
      {"SET k\x0bx \x0c\"v\"\r\n", "inline:<SET><k\x0bx><v>"},
      {"SET k \"\\x00\\xff\"\r\n", std::string("inline:<SET><k><\0\xff>", 19)},
      {"SET k \x80\xff\r\n", "inline:<SET><k><\x80\xff>"},
      {"SET k v\r\r\n", "inline:<SET><k><v>"},
      {"SET k \"a\rb\"\n", "inline:<SET><k><a\rb>"},
      {"  \t\x0b\r\n", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.line);
    std::vector<std::string> want;
    if (!c.want.empty()) want.push_back(c.want);
    want.push_back("inline:<PING>");
    ExpectSame(Parser::Mode::kRequest, c.line + "PING\r\n", want);
  }
}

TEST(RespParser, InlineUnbalancedQuotesAndNulAreErrors) {
  const std::string unbalanced = "ERROR:unbalanced quotes in inline command";
  for (std::string line : {"SET k \"v\r\n", "SET k 'v\r\n", "SET \"k\"x v\r\n", "SET k 'v''w'\r\n",
                           "SET k a\"b c\"d\r\n", "SET k \"v\\\"\r\n", "SET k \"v\\\r\n", "\"\r\n"}) {
    SCOPED_TRACE(line);
    ExpectSame(Parser::Mode::kRequest, "PING\r\n" + line + "PING\r\n", {"inline:<PING>", unbalanced});
  }
  ExpectSame(Parser::Mode::kRequest, std::string("PING\r\nSET k a\0b\r\nPING\r\n", 22),
             {"inline:<PING>", "ERROR:NUL byte in inline command"});
  // The server executes nothing after such a line: Resync skips all the rest.
  for (const std::string& bad : {std::string("SET k \"v\r\n"), std::string("SET k a\0b\r\n", 12)}) {
    Parser p(Parser::Mode::kRequest);
    std::string in = "PING\r\n" + bad + "GET k\r\n*1\r\n$4\r\nPING\r\n";
    p.Feed(in);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    ASSERT_EQ(p.Next(), ParseStatus::kError);
    EXPECT_FALSE(p.ended());
    p.Resync();
    EXPECT_TRUE(p.ended());
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    EXPECT_EQ(p.skipped_bytes(), in.size() - 6);
    std::string more = "*1\r\n$4\r\nPING\r\n";
    p.Feed(more);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    p.OnGap();
    p.Feed(more);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    EXPECT_EQ(p.skipped_bytes(), in.size() - 6 + 2 * more.size());
    EXPECT_EQ(p.buffered_bytes(), 0u);
  }
  // Other errors resynchronise to the next multibulk request as before.
  Parser p(Parser::Mode::kRequest);
  std::string in = "*1\r\n:1\r\nGET k\r\n*1\r\n$4\r\nPING\r\n";
  p.Feed(in);
  ASSERT_EQ(p.Next(), ParseStatus::kError);
  p.Resync();
  EXPECT_FALSE(p.ended());
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.args()[0], "PING");
}

TEST(RespParser, InlineArgsZeroCopyWithoutQuotesScratchOtherwise) {
  Limits l;
  l.max_inline_len = 64;
  Parser p(Parser::Mode::kRequest, l);
  std::string in = "SET key value\r\nSET k \"a\\x41\" 'b' c\r\n";
  p.Feed(in);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.args()[1].data(), in.data() + 4);  // a view into the fed bytes
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  ASSERT_EQ(p.args().size(), 5u);
  EXPECT_EQ(p.args()[2], "aA");
  EXPECT_EQ(p.args()[3], "b");
  EXPECT_EQ(p.args()[4], "c");
  // Quoted lines are unescaped into the parser's own scratch.
  EXPECT_TRUE(p.args()[2].data() < in.data() || p.args()[2].data() >= in.data() + in.size());
  // A line at the limit (64 bytes before the '\n'), with quotes, still parses.
  std::string longest = "S \"" + std::string(59, 'x') + "\"\r\n";
  ASSERT_EQ(longest.size(), 65u);
  p.Feed(longest);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.args()[1], std::string(59, 'x'));
  std::string too_long = "S \"" + std::string(60, 'x') + "\"\r\n";
  p.Feed(too_long);
  EXPECT_EQ(p.Next(), ParseStatus::kError);
  EXPECT_EQ(p.error(), ParseError::kLineTooLong);
}

// Redis runs an inline command longer than its 64 KiB inline limit when
// the line end comes in the read that crosses it, and puts no limit on a
// status or error reply (a Lua error_reply): with the default limits both
// parse (a review lost a SET of 70,000 bytes, and desynced a connection on
// a 70,000-byte error). A line with no end for 1 MiB is an error.
TEST(RespParser, LinesLongerThanRedisInlineLimitParseByDefault) {
  const std::string big(70'000, 'v');
  Parser req(Parser::Mode::kRequest);
  const std::string requests = "SET big " + big + "\r\nSET k \"" + big + "\"\r\n";
  req.Feed(requests);  // (fed bytes must outlive the views into them)
  ASSERT_EQ(req.Next(), ParseStatus::kMessage);
  ASSERT_EQ(req.args().size(), 3u);
  EXPECT_EQ(req.args()[2], big);
  ASSERT_EQ(req.Next(), ParseStatus::kMessage);
  EXPECT_EQ(req.args()[2], big);
  Parser rep(Parser::Mode::kReply);
  const std::string replies = "-ERR " + big + "\r\n+" + big + "\r\n:1\r\n";
  rep.Feed(replies);
  for (Type t : {Type::kError, Type::kSimpleString, Type::kInteger}) {
    ASSERT_EQ(rep.Next(), ParseStatus::kMessage);
    EXPECT_EQ(rep.nodes()[0].type, t);
  }
  EXPECT_EQ(rep.nodes()[0].integer, 1);
  Parser endless(Parser::Mode::kRequest);
  const std::string endless_line = "SET k " + std::string((1u << 20) + 1, 'x');
  endless.Feed(endless_line);
  EXPECT_EQ(endless.Next(), ParseStatus::kError);
  EXPECT_EQ(endless.error(), ParseError::kLineTooLong);
}

TEST(RespParser, EmptyMultibulkIgnored) {
  ExpectSame(Parser::Mode::kRequest, "*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", {"<PING>"});
}

TEST(RespParser, Resp2Replies) {
  ExpectSame(Parser::Mode::kReply,
             "+OK\r\n-ERR bad\r\n:-42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
             {"simple-string'OK'", "error'ERR bad'", "integer(-42)", "bulk-string'abc'", "null", "null",
              "array[]", "array[bulk-string'a',array[integer(1)]]"});
}

TEST(RespParser, Resp3Replies) {
  ExpectSame(
      Parser::Mode::kReply,
      "_\r\n#t\r\n#f\r\n,3.14\r\n,inf\r\n(3492890328409238509324850943850943825024385\r\n"
      "!21\r\nSYNTAX invalid syntax\r\n=15\r\ntxt:Some string\r\n"
      "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n~2\r\n+a\r\n+b\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$"
      "2\r\nhi\r\n",
      {"null", "boolean(1)", "boolean(0)", "double'3.14'", "double'inf'",
       "big-number'3492890328409238509324850943850943825024385'", "bulk-error'SYNTAX invalid syntax'",
       "verbatim'Some string'", "map[simple-string'first',integer(1),simple-string'second',integer(2)]",
       "set[simple-string'a',simple-string'b']",
       "push[bulk-string'message',bulk-string'ch',bulk-string'hi']"});
}

TEST(RespParser, AttributesAreDropped) {
  // An attribute before a top-level reply and one before an array element.
  ExpectSame(
      Parser::Mode::kReply,
      "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n|1\r\n+x\r\n+y\r\n:3\r\n|0\r\n+OK\r\n",
      {"array[integer(2),integer(3)]", "simple-string'OK'"});
}

// Redis 7.0 writes a keyspace event that EXEC (or a script) raised on a RESP3
// connection subscribed to it into the middle of that reply: the push is no
// element of the array, wherever it sits and however deep; a push at the top
// stays a reply of its own.
TEST(RespParser, PushesInsideRepliesAreDropped) {
  const std::string event = ">3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:set\r\n$1\r\nc\r\n";
  ExpectSame(Parser::Mode::kReply,
             "*2\r\n" + event + "+OK\r\n:2\r\n" + "*1\r\n*2\r\n:1\r\n" + event + ">0\r\n:2\r\n" + event,
             {"array[simple-string'OK',integer(2)]", "array[array[integer(1),integer(2)]]",
              "push[bulk-string'message',bulk-string'__keyevent@0__:set',bulk-string'c']"});
}

// A push whose first element names a subscription change is no event: it is
// the answer of a SUBSCRIBE queued in MULTI, an element of the EXEC array.
// Any other push inside a reply is still dropped, and an attribute too.
TEST(RespParser, SubscriptionPushesInsideRepliesAreElements) {
  const std::string sub = ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
  const std::string event = ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n";
  const std::string unsub = ">3\r\n$12\r\nPUNSUBSCRIBE\r\n$2\r\np*\r\n:0\r\n";
  ExpectSame(
      Parser::Mode::kReply,
      "*3\r\n:1\r\n" + event + sub + ":11\r\n" + "*2\r\n" + unsub + "|1\r\n+a\r\n:1\r\n" + sub + ":7\r\n",
      {"array[integer(1),push[bulk-string'subscribe',bulk-string'ch',integer(1)],integer(11)]",
       "array[push[bulk-string'PUNSUBSCRIBE',bulk-string'p*',integer(0)],"
       "push[bulk-string'subscribe',bulk-string'ch',integer(1)]]",
       "integer(7)"});
}

// Request lengths as redis-server reads them (string2ll): a leading zero is a
// protocol error there (the connection is closed, nothing after it runs),
// so it is one here too; "0" itself and negative counts are not. Replies
// come from the server, which never writes one, and are read as written.
TEST(RespParser, RequestLengthsWithALeadingZeroAreRefusedAsRedisRefusesThem) {
  const std::string bad = "ERROR:" + std::string(ParseErrorName(ParseError::kBadLength));
  ExpectSame(Parser::Mode::kRequest, "*1\r\n$04\r\nPING\r\n", {bad});
  ExpectSame(Parser::Mode::kRequest, "*01\r\n$4\r\nPING\r\n", {bad});
  ExpectSame(Parser::Mode::kRequest, "*1\r\n$-0\r\n", {bad});
  ExpectSame(Parser::Mode::kRequest, "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
             {"<ECHO><>", "<PING>"});
  ExpectSame(Parser::Mode::kReply, "$02\r\nok\r\n*01\r\n:1\r\n", {"bulk-string'ok'", "array[integer(1)]"});
}

// A large message grows the parser's buffers; they are given back once it
// is consumed (the byte buffer at once: a client waiting for its reply
// sends nothing; the nodes with the next chunk), so connections idle in a
// pool for hours keep little. The shared count follows.
TEST(RespParser, BuffersGrownByALargeMessageAreReleasedAfterIt) {
  const size_t before = ParsersHeldBytes();
  Parser p(Parser::Mode::kReply);
  std::string big = "*20000\r\n";
  for (int i = 0; i < 20000; ++i) big += ":1\r\n";
  const std::string value(3u << 20, 'v');
  big += "$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  size_t most = 0, most_shared = 0;
  for (size_t off = 0; off < big.size(); off += 1000) {  // across chunks: held in the buffer
    p.Feed(std::string_view(big).substr(off, 1000));
    while (p.Next() == ParseStatus::kMessage) {
    }
    most = std::max(most, p.capacity_bytes());
    most_shared = std::max(most_shared, ParsersHeldBytes() - before);
  }
  EXPECT_GT(most, value.size());
  // The bulk's length known, its buffer was sized once, not doubled.
  EXPECT_GE(most_shared, value.size());
  EXPECT_LT(most_shared, value.size() + (size_t{1} << 20));
  EXPECT_LT(p.capacity_bytes(), size_t{2} << 20);
  EXPECT_EQ(ParsersHeldBytes(), before);
  p.Feed(std::string_view("+OK\r\n"));
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_LT(p.capacity_bytes(), size_t{1} << 20);
}

// Messages arriving in parts on many connections at once share one budget
// (Limits::max_held_bytes_all): a large bulk that would take the parsers
// past it is elided, as one past max_message_bytes is (a review held 4 GB
// for 40 connections each sending a 40 MB value).
TEST(RespParser, PartialMessagesOfAllConnectionsShareOneBudget) {
  const size_t before = ParsersHeldBytes();
  Limits l;
  l.max_held_bytes_all = before + (3u << 20);
  const size_t n = size_t{2} << 20;
  const std::string head = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(n) + "\r\n";
  const std::string part(1u << 20, 'x');
  const std::string rest = std::string(n - part.size(), 'x') + "\r\n";
  const std::string first = head + part;  // (fed bytes must outlive Next)
  Parser a(Parser::Mode::kRequest, l), b(Parser::Mode::kRequest, l);
  a.Feed(first);
  EXPECT_EQ(a.Next(), ParseStatus::kNeedMore);
  EXPECT_GE(ParsersHeldBytes() - before, n);  // held whole, sized once
  b.Feed(first);
  ASSERT_EQ(b.Next(), ParseStatus::kMessage);  // no room: elided, the message complete without it
  EXPECT_TRUE(b.elided());
  EXPECT_TRUE(b.arg_elided(2));
  EXPECT_EQ(b.args()[1], "k");
  b.Feed(rest);
  EXPECT_EQ(b.Next(), ParseStatus::kNeedMore);
  a.Feed(rest);
  ASSERT_EQ(a.Next(), ParseStatus::kMessage);
  EXPECT_FALSE(a.elided());
  EXPECT_EQ(a.args()[2].size(), n);
  EXPECT_EQ(a.Next(), ParseStatus::kNeedMore);
  EXPECT_EQ(ParsersHeldBytes(), before);
  // Where lengths are not trusted (right after a gap, or where the capture
  // joined), eliding would mean failing and losing the write: such a bulk is
  // held past the budget (a review lost SETs this way, with no flag).
  Parser mid(Parser::Mode::kRequest, l);
  mid.OnGap();
  mid.Feed(first);
  a.Feed(first);
  EXPECT_EQ(a.Next(), ParseStatus::kNeedMore);  // the budget is used up again
  EXPECT_EQ(mid.Next(), ParseStatus::kNeedMore);
  mid.Feed(rest);
  ASSERT_EQ(mid.Next(), ParseStatus::kMessage);
  EXPECT_FALSE(mid.elided());
  EXPECT_EQ(mid.args()[2].size(), n);
  // Small bulks are held whatever the budget says.
  Limits none;
  none.max_held_bytes_all = 0;
  Parser c(Parser::Mode::kRequest, none);
  c.Feed(std::string_view("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab"));
  EXPECT_EQ(c.Next(), ParseStatus::kNeedMore);
  c.Feed(std::string_view("cde\r\n"));
  ASSERT_EQ(c.Next(), ParseStatus::kMessage);
  EXPECT_FALSE(c.elided());
}

// Replies a read command gets, walked without their elements (SetSkimPredicate):
// the root alone, with no children; the same boundaries, sizes and errors as a
// full parse, fed whole or byte by byte; pushes and scalars as usual.
TEST(RespParser, SkimmedRepliesKeepTheirRootAndBoundaries) {
  std::string lrange = "*600\r\n";
  for (int i = 0; i < 600; ++i) lrange += "$3\r\nxxx\r\n";
  const std::string replies =
      lrange + "*2\r\n$1\r\n0\r\n*3\r\n$1\r\na\r\n$-1\r\n:-7\r\n" +  // SCAN-like, nested, null, negative
      "|1\r\n+ttl\r\n:3\r\n%2\r\n+f\r\n|0\r\n(12345678901234567890\r\n+g\r\n#t\r\n" +  // attributes, RESP3
      ">2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n" +                                          // a push: kept whole
      "+OK\r\n*0\r\n*-1\r\n";
  struct Seen {
    std::string render;
    size_t bytes;
    bool skimmed;
  };
  auto parse = [&](bool skim, size_t chunk) {
    Parser p(Parser::Mode::kReply);
    if (skim) p.SetSkimPredicate([](const void*) { return true; }, nullptr);
    std::vector<Seen> out;
    for (size_t off = 0; off < replies.size(); off += chunk) {
      p.Feed(std::string_view(replies).substr(off, chunk));
      for (ParseStatus st; (st = p.Next()) != ParseStatus::kNeedMore;) {
        EXPECT_EQ(st, ParseStatus::kMessage) << ParseErrorName(p.error());
        if (st != ParseStatus::kMessage) return out;
        size_t i = 0;
        out.push_back({Render(p.nodes(), &i), p.message_bytes(), p.skimmed()});
      }
    }
    return out;
  };
  const std::vector<Seen> full = parse(false, replies.size());
  ASSERT_EQ(full.size(), 7u);
  for (size_t chunk : {replies.size(), size_t{1}, size_t{5}}) {
    const std::vector<Seen> skim = parse(true, chunk);
    ASSERT_EQ(skim.size(), full.size()) << "chunk " << chunk;
    for (size_t i = 0; i < full.size(); ++i) {
      EXPECT_EQ(skim[i].bytes, full[i].bytes) << i;
      EXPECT_FALSE(full[i].skimmed);
    }
    EXPECT_EQ(skim[0].render, "array[]");
    EXPECT_TRUE(skim[0].skimmed);
    EXPECT_EQ(skim[1].render, "array[]");
    EXPECT_EQ(skim[2].render, "map[]");         // the attribute before it dropped
    EXPECT_EQ(skim[3].render, full[3].render);  // the push
    EXPECT_FALSE(skim[3].skimmed);
    EXPECT_EQ(skim[4].render, "simple-string'OK'");
    EXPECT_EQ(skim[5].render, "array[]");  // empty: parsed as usual
    EXPECT_FALSE(skim[5].skimmed);
    EXPECT_EQ(skim[6].render, "null");
  }
  // A skimmed reply holds no nodes: max_nodes does not bound it.
  {
    Limits few;
    few.max_nodes = 4;
    const std::string many = "*1\r\n*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n";
    EXPECT_EQ(
        ParseAll(Parser::Mode::kReply, many, many.size(), few),
        (std::vector<std::string>{"ERROR:" + std::string(ParseErrorName(ParseError::kTooManyElements))}));
    Parser q(Parser::Mode::kReply, few);
    q.SetSkimPredicate([](const void*) { return true; }, nullptr);
    q.Feed(many);
    EXPECT_EQ(q.Next(), ParseStatus::kMessage);
    EXPECT_EQ(q.message_bytes(), many.size());
  }
  // A malformed element is the same error skimmed.
  const std::string bad = "*2\r\n$3\r\nabc\r\n$3\r\nabcd\r\n";
  Parser p(Parser::Mode::kReply);
  p.SetSkimPredicate([](const void*) { return true; }, nullptr);
  p.Feed(bad);
  EXPECT_EQ(p.Next(), ParseStatus::kError);
  EXPECT_EQ(p.error(), ParseError::kBadTerminator);
}

TEST(RespParser, ZeroCopyWithinOneChunk) {
  std::string in = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  Parser p(Parser::Mode::kRequest);
  p.Feed(in);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.args()[1].data(), in.data() + 17);
  EXPECT_EQ(p.buffered_bytes(), 0u);
  EXPECT_EQ(p.message_bytes(), in.size());
  EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
}

TEST(RespParser, LimitsGiveClearErrors) {
  Limits l;
  l.max_bulk_len = 10;
  l.max_elements = 3;
  l.max_depth = 2;
  l.max_inline_len = 16;
  // On a stream whose framing was never in doubt, a bulk past max_bulk_len
  // is elided (a source may raise its proto-max-bulk-len: a review's took
  // 600 MB values, lost to this error unflagged); after a gap or a resync,
  // even once lengths are trusted again, it is the error.
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, "*1\r\n$4294967296\r\n", 100, l),
            std::vector<std::string>{"<#elided>"});
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, "$4294967296\r\n", 100, l),
            std::vector<std::string>{"bulk-string#elided"});
  {
    Parser p(Parser::Mode::kReply, l);
    p.OnGap();
    const std::string in = "$4294967296\r\n";
    p.Feed(in);
    ASSERT_EQ(p.Next(), ParseStatus::kError);
    EXPECT_EQ(p.error(), ParseError::kBulkTooLong);
    EXPECT_EQ(std::string(ParseErrorName(p.error())), "bulk string longer than the limit");
    p.Resync();
    const std::string more = "+OK\r\n$4294967296\r\n";
    p.Feed(more);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.Next(), ParseStatus::kError);
    EXPECT_EQ(p.error(), ParseError::kBulkTooLong);
  }
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, "*4\r\n", 100, l),
            std::vector<std::string>{"ERROR:aggregate larger than the limit"});
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, "*1\r\n*1\r\n*1\r\n:1\r\n", 100, l),
            std::vector<std::string>{"ERROR:aggregates nested deeper than the limit"});
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, std::string(40, 'x'), 100, l),
            std::vector<std::string>{"ERROR:line longer than the limit"});
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, "*1\r\n:1\r\n", 100, l),
            std::vector<std::string>{"ERROR:request element is not a bulk string"});
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, "?x\r\n", 100, l),
            std::vector<std::string>{"ERROR:unknown type byte"});
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, "$3\r\nabcd\r\n", 100, l),
            std::vector<std::string>{"ERROR:missing CRLF"});
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, ":12a\r\n", 100, l),
            std::vector<std::string>{"ERROR:malformed integer, boolean or big number"});
}

// Redis 7 takes requests of up to INT_MAX arguments (a bulk load's SADD of
// 4.4 M members was lost to a parse error, its key not read back): where
// lengths are trusted, a request past max_elements keeps its head and skips
// the rest unread, whatever the chunking, and the next request follows.
// After a gap it is still an error, and so is a malformed bulk in the tail.
TEST(RespParser, RequestsPastTheElementLimitKeepTheirHead) {
  Limits l;
  l.max_elements = 3;
  const std::string big =
      "*6\r\n$4\r\nSADD\r\n$1\r\nk\r\n$1\r\na\r\n$0\r\n\r\n$12\r\nbbbbbbbbbbbb\r\n$1\r\nc\r\n";
  const std::string ping = "*1\r\n$4\r\nPING\r\n";
  for (size_t chunk : {big.size() + ping.size(), size_t{1}, size_t{2}, size_t{5}, size_t{9}}) {
    EXPECT_EQ(ParseAll(Parser::Mode::kRequest, big + ping, chunk, l),
              (std::vector<std::string>{"<SADD><k><a><+3 elided>", "<PING>"}))
        << "chunk " << chunk;
  }
  {
    Parser p(Parser::Mode::kRequest, l);
    const std::string both = big + ping;
    p.Feed(both);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_TRUE(p.elided());
    EXPECT_FALSE(p.arg_elided(2));
    EXPECT_EQ(p.elided_bytes(), 0u);  // the tail is skipped on the way to the next message
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.elided_bytes(), 2u + 14 + 3);  // the bodies, CRLFs included
    EXPECT_EQ(p.tail_elided(), 0u);
    EXPECT_FALSE(p.elided());
  }
  {
    // The tail's last body runs past the chunk: the message is out, the
    // parser is not at a boundary until the body ends.
    Parser p(Parser::Mode::kRequest, l);
    const std::string head = big.substr(0, big.size() - 4);
    p.Feed(head);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.tail_elided(), 3u);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    EXPECT_FALSE(p.AtBoundary());
    EXPECT_TRUE(p.HasPartial());
    const std::string rest = big.substr(big.size() - 4) + ping;
    p.Feed(rest);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.args().size(), 1u);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    EXPECT_TRUE(p.AtBoundary());
  }
  {
    Parser p(Parser::Mode::kRequest, l);
    p.OnGap();
    p.Feed(big);
    EXPECT_EQ(p.Next(), ParseStatus::kError);
    EXPECT_EQ(p.error(), ParseError::kTooManyElements);
  }
  EXPECT_EQ(
      ParseAll(Parser::Mode::kRequest, "*5\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n", 100, l),
      (std::vector<std::string>{"<DEL><a><b><+2 elided>", "ERROR:request element is not a bulk string"}));
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, "*5\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nxy\r\n", 100, l),
            (std::vector<std::string>{"<DEL><a><b><+2 elided>", "ERROR:missing CRLF"}));
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, "*5\r\n$3\r\nDEL\r\n$1\r\na\r\n$1\r\nb\r\n$01\r\nx\r\n", 100, l),
            (std::vector<std::string>{"<DEL><a><b><+2 elided>", "ERROR:malformed length or count"}));
  // Past INT_MAX Redis refuses the request itself.
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, "*2147483648\r\n", 100, l),
            std::vector<std::string>{"ERROR:aggregate larger than the limit"});
  // A reply nobody reads is walked whatever its length; one read is not.
  const std::string reply = "*4\r\n:1\r\n:2\r\n$1\r\nx\r\n*5\r\n:1\r\n:1\r\n:1\r\n:1\r\n:1\r\n+OK\r\n";
  {
    Parser p(Parser::Mode::kReply, l);
    p.SetSkimPredicate([](const void*) { return true; }, nullptr);
    p.Feed(reply);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_TRUE(p.skimmed());
    EXPECT_EQ(p.message_bytes(), reply.size() - 5);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.nodes()[0].str, "OK");
  }
  EXPECT_EQ(ParseAll(Parser::Mode::kReply, reply, 100, l),
            std::vector<std::string>{"ERROR:aggregate larger than the limit"});
}

// Nesting past max_depth: the parser resyncs past the aggregate header that
// went too deep, not from the message's second byte, so a long run of
// nested headers (a value holding them, read as a reply after a gap) costs
// linear time, not one restart as deep as the limit per line (a review:
// 200,000 "*1" lines took 105 s). The reply after them is found.
TEST(RespParser, NestingTooDeepResyncsPastTheHeaderThatWentTooDeep) {
  Limits l;
  l.max_depth = 64;
  std::string in;
  for (int i = 0; i < 20000; ++i) in += "*1\r\n";
  in += "+OK\r\n";
  Parser p(Parser::Mode::kReply, l);
  p.Feed(in);
  std::vector<std::string> messages;
  for (;;) {
    const ParseStatus s = p.Next();
    if (s == ParseStatus::kNeedMore) break;
    if (s == ParseStatus::kError) {
      EXPECT_EQ(p.error(), ParseError::kTooDeep);
      p.Resync();
      continue;
    }
    size_t i = 0;
    messages.push_back(Render(p.nodes(), &i));
  }
  // Each failure skips the 64 headers it opened and the 65th; the last 45
  // are the reply that holds the +OK.
  std::string last;
  for (int i = 0; i < 20000 % 65; ++i) last += "array[";
  last += "simple-string'OK'" + std::string(20000 % 65, ']');
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0], last);
  EXPECT_EQ(p.resyncs(), 20000u / 65);
  EXPECT_EQ(p.skipped_bytes() + 4 * (20000 % 65), 4u * 20000) << p.skipped_bytes();
}

// A bulk string that would take its message past max_message_bytes is not
// held: it comes out empty and marked elided, its bytes skipped unread as
// they arrive, and the stream goes on right after it, whatever the chunking
// (a 70 MB SET must still be seen as a SET of its key).
TEST(RespParser, BulksTooLargeToHoldAreElided) {
  Limits m;
  m.max_message_bytes = 256;
  const std::string big(1000, 'v');
  const std::string req = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n" + big + "\r\n" +
                          "*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1000\r\n" + big + "\r\n$1\r\nb\r\n$1\r\n2\r\n" +
                          "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
  const std::vector<std::string> want_req = {"<SET><k><#elided>", "<MSET><a><#elided><b><2>", "<GET><k>"};
  const std::string rep = "$1000\r\n" + big + "\r\n+OK\r\n*2\r\n$1000\r\n" + big + "\r\n$1\r\nx\r\n:1\r\n";
  const std::vector<std::string> want_rep = {"bulk-string#elided", "simple-string'OK'",
                                             "array[bulk-string#elided,bulk-string'x']", "integer(1)"};
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{64}, size_t{300}, size_t{1003}, size_t{5000}}) {
    EXPECT_EQ(ParseAll(Parser::Mode::kRequest, req, chunk, m), want_req) << "chunk " << chunk;
    EXPECT_EQ(ParseAll(Parser::Mode::kReply, rep, chunk, m), want_rep) << "chunk " << chunk;
  }
  // Nothing of the bulk is buffered, and its bytes are counted.
  Parser p(Parser::Mode::kRequest, m);
  const std::string head = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n";
  p.Feed(head);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_TRUE(p.elided());
  EXPECT_FALSE(p.arg_elided(1));
  EXPECT_TRUE(p.arg_elided(2));
  EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
  EXPECT_TRUE(p.HasPartial());  // the rest of the bulk is still to come
  const std::string body(4096, 'z');
  for (int i = 0; i < 244; ++i) {
    p.Feed(body);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    EXPECT_EQ(p.buffered_bytes(), 0u);
  }
  const std::string tail = std::string(1000000 - 244 * 4096, 'z') + "\r\n*1\r\n$4\r\nPING\r\n";
  p.Feed(tail);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_FALSE(p.elided());
  ASSERT_EQ(p.args().size(), 1u);
  EXPECT_EQ(p.args()[0], "PING");
  EXPECT_EQ(p.elided_bytes(), 1000002u);
  EXPECT_FALSE(p.HasPartial());
}

// Elided bulks are not held even when one arrives whole inside a chunk: a
// reply of many values past the limit keeps the parser's buffer under the
// limit plus a chunk, element after element.
TEST(RespParser, ElidedBulksAreNeverHeld) {
  Limits m;
  m.max_message_bytes = 16 << 10;
  // 3000 values of 3000 bytes, then 20000 of one byte (elided too: the
  // message already holds all it may).
  std::string rep = "*23000\r\n";
  for (int i = 0; i < 3000; ++i) rep += "$3000\r\n" + std::string(3000, 'a' + i % 26) + "\r\n";
  for (int i = 0; i < 20000; ++i) rep += "$1\r\nx\r\n";
  rep += ":7\r\n";
  for (size_t chunk : {size_t{7}, size_t{1000}, size_t{64} << 10}) {
    Parser p(Parser::Mode::kReply, m);
    std::vector<std::string> got;
    for (size_t off = 0; off < rep.size(); off += chunk) {
      const std::string piece = rep.substr(off, chunk);
      p.Feed(piece);
      for (ParseStatus st; (st = p.Next()) != ParseStatus::kNeedMore;) {
        ASSERT_EQ(st, ParseStatus::kMessage) << ParseErrorName(p.error());
        const auto nodes = p.nodes();
        size_t elided = 0, held = 0;
        bool contents_ok = true;
        for (const Node& n : nodes) {
          elided += n.elided;
          if (n.elided || n.type != Type::kBulkString) continue;
          ++held;
          contents_ok &= held <= 5 ? n.str == std::string(3000, 'a' + (held - 1) % 26) : n.str == "x";
        }
        EXPECT_TRUE(contents_ok);
        got.push_back(std::to_string(nodes.size()) + "/" + std::to_string(held) + "/" +
                      std::to_string(elided));
      }
      EXPECT_LE(p.buffered_bytes(), m.max_message_bytes + chunk) << "at " << off;
    }
    // 16 KiB hold the array header, 5 values of 3000 bytes and 190 of one
    // byte (7 bytes each on the wire); the other 2995 + 19810 are elided.
    EXPECT_EQ(got, (std::vector<std::string>{"23001/195/22805", "1/0/0"})) << "chunk " << chunk;
  }
}

// An elided bulk must still end in CRLF (in view or in a later chunk); and
// right after a gap a huge length is an error, not a reason to skip: it may
// be a false start inside a value.
TEST(RespParser, ElidedBulksAreCheckedAndNotTrustedAfterAGap) {
  Limits m;
  m.max_message_bytes = 256;
  const std::string bad = "$1000\r\n" + std::string(1000, 'x') + "XY+OK\r\n";
  for (size_t chunk : {size_t{1}, size_t{100}, size_t{2000}}) {
    const auto got = ParseAll(Parser::Mode::kReply, bad, chunk, m);
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.back(), "ERROR:missing CRLF") << "chunk " << chunk;
  }
  Parser p(Parser::Mode::kReply, m);
  p.OnGap();
  const std::string after_gap = "$1000\r\n" + std::string(1000, 'x') + "\r\n";
  p.Feed(after_gap);
  EXPECT_EQ(p.Next(), ParseStatus::kError);
  EXPECT_EQ(p.error(), ParseError::kMessageTooLarge);
  // Once a message went through, lengths are trusted again.
  p.Resync();
  while (p.Next() != ParseStatus::kNeedMore) p.Resync();
  const std::string next = "+OK\r\n$1000\r\n" + std::string(1000, 'x') + "\r\n";
  p.Feed(next);
  ParseStatus st;
  while ((st = p.Next()) == ParseStatus::kError) p.Resync();
  ASSERT_EQ(st, ParseStatus::kMessage);
  EXPECT_EQ(p.nodes()[0].type, Type::kSimpleString);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_TRUE(p.nodes()[0].elided);
}

// Counts of 19 digits and more (past what fits in int64) are errors, found
// without overflowing on the way (UBSan in the fuzz build checks that).
TEST(RespParser, CountsTooLongForSixtyFourBitsAreErrors) {
  const std::string nines(19, '9');
  for (const std::string& head : {"*" + nines, "*1\r\n$" + nines, "*2\r\n$1\r\nx\r\n$1" + nines}) {
    const auto got = ParseAll(Parser::Mode::kRequest, head + "\r\n", 100);
    ASSERT_EQ(got.size(), 1u) << head;
    EXPECT_EQ(got[0].substr(0, 6), "ERROR:") << head;
  }
  for (const std::string& head : {"$" + nines, "*" + nines, ":" + nines + "9"}) {
    const auto got = ParseAll(Parser::Mode::kReply, head + "\r\n", 100);
    ASSERT_EQ(got.size(), 1u) << head;
    EXPECT_EQ(got[0].substr(0, 6), "ERROR:") << head;
  }
  // 18 digits still parse as a count (in step, a bulk of that length is
  // elided: its bytes are skipped as they come).
  EXPECT_EQ(ParseAll(Parser::Mode::kRequest, "*1\r\n$" + std::string(18, '9') + "\r\n", 100),
            std::vector<std::string>{"<#elided>"});
}

TEST(RespParser, BufferedBytesStayBoundedByTheLimit) {
  Limits m;
  m.max_message_bytes = 1000;
  Parser p(Parser::Mode::kReply, m);
  std::string in = "*100000\r\n";
  p.Feed(in);
  EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
  std::string el = ":1\r\n";
  ParseStatus s = ParseStatus::kNeedMore;
  for (int i = 0; i < 1000 && s == ParseStatus::kNeedMore; ++i) {
    p.Feed(el);
    s = p.Next();
    EXPECT_LE(p.buffered_bytes(), 1004u);
  }
  EXPECT_EQ(s, ParseStatus::kError);
  EXPECT_EQ(p.error(), ParseError::kMessageTooLarge);
}

TEST(RespParser, ResyncAfterGapSkipsToNextRequest) {
  Parser p(Parser::Mode::kRequest);
  std::string a = "*3\r\n$3\r\nSET\r\n$1\r\nk";  // cut mid-request
  p.Feed(a);
  EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
  p.OnGap();
  EXPECT_EQ(p.skipped_bytes(), a.size());
  // The stream resumes inside a value that itself looks like RESP.
  std::string b = "lue*1\r\n:1\r\n\r\n*1\r\n$4\r\nPING\r\n";
  p.Feed(b);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.args()[0], "PING");
  EXPECT_EQ(p.skipped_bytes(), a.size() + 13);
  EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
}

// An inline client: after a gap, the parser resyncs at a line of a known
// command once the stream sent inline requests before any gap; a line whose
// first word is no command is no place to start, nor is any line of a
// multibulk stream (a bulk "SET" line), nor of a stream joined mid-way
// (nothing shows it inline). Without the predicate, only multibulk headers
// are.
TEST(RespParser, InlineRequestsResyncAtAKnownCommand) {
  auto known = [](std::string_view w) { return w == "set" || w == "SET" || w == "get" || w == "GET"; };
  {
    Parser p(Parser::Mode::kRequest);
    p.SetInlineCommandPredicate(known);
    const std::string one = "set a 1\r\n", two = "SET b 2\r\nset c", three = " 3\r\nfoo d 4\r\nget e\r\n";
    p.Feed(one);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_TRUE(p.last_was_inline());
    EXPECT_EQ(p.args()[1], "a");
    p.Feed(two);  // cut by a gap
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    p.OnGap();
    // The gap ends inside a line: its end is skipped, a word no command is
    // not a start, the next known one is.
    p.Feed(three);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_EQ(p.args()[0], "get");
    EXPECT_EQ(p.args()[1], "e");
  }
  {
    // A multibulk stream: a bulk line that names a command is no start
    // (the stream sent nothing inline), the next multibulk header is.
    Parser p(Parser::Mode::kRequest);
    p.SetInlineCommandPredicate(known);
    const std::string set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    const std::string rest = "x\r\nSET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    p.Feed(set);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    p.OnGap();
    p.Feed(rest);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    EXPECT_FALSE(p.last_was_inline());
    EXPECT_EQ(p.args()[0], "GET");
  }
  {
    // Joined mid-way: no inline start, however command-like.
    Parser p(Parser::Mode::kRequest);
    p.SetInlineCommandPredicate(known);
    p.OnGap();
    const std::string lines = "set a 1\r\nset b 2\r\n";
    p.Feed(lines);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
  }
  {
    // Without the predicate an inline stream never resyncs.
    Parser p(Parser::Mode::kRequest);
    const std::string first = "set z 0\r\n";
    p.Feed(first);
    ASSERT_EQ(p.Next(), ParseStatus::kMessage);
    p.OnGap();
    const std::string lines = "set a 1\r\nset b 2\r\n";
    p.Feed(lines);
    EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
  }
}

// What a diff review found: a value's text read as an inline request after
// a gap ended the stream for good (an unbalanced quote is what makes Redis
// close a connection), and every later write was lost unflagged. A line
// with unbalanced quotes is no start; on a stream that sent multibulk, no
// line is, and an inline error reached out of frame only resyncs; on a
// joined stream a line is a start only when its end is the end of what was
// captured so far or the next line is a command too.
TEST(RespParser, AValuesTextIsNoInlineRequest) {
  auto known = [](std::string_view w) {
    for (const char* c : {"get", "set", "del", "monitor"}) {
      if (w.size() == std::strlen(c) &&
          std::equal(w.begin(), w.end(), c, [](char a, char b) { return (a | 0x20) == b; }))
        return true;
    }
    return false;
  };
  const std::string set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
  const std::string xs(3000, 'x');
  auto first_after = [&](Parser& p, const std::string& in) {
    p.Feed(in);
    for (;;) {
      const ParseStatus st = p.Next();
      if (st == ParseStatus::kNeedMore) return std::string("(none)");
      if (st == ParseStatus::kError) {
        p.Resync();
        continue;
      }
      std::string r = p.last_was_inline() ? "inline:" : "";
      for (const auto& a : p.args()) r += std::string(a) + " ";
      return r;
    }
  };
  for (const std::string text : {"Get Mike's book\r\n", "Monitor the logs\r\n", "set x y\r\n",
                                 "SET evil x\r\nDEL victim\r\nGet Mike's book\r\n"}) {
    SCOPED_TRACE(text);
    const std::string rest = text + xs + "\r\n" + set;
    {
      Parser p(Parser::Mode::kRequest);  // a gap on a multibulk stream
      p.SetInlineCommandPredicate(known);
      EXPECT_EQ(first_after(p, set), "SET k v ");
      p.OnGap();
      EXPECT_EQ(first_after(p, rest), "SET k v ");
      EXPECT_FALSE(p.ended());
    }
    {
      Parser p(Parser::Mode::kRequest);  // joined at the value's segment
      p.SetInlineCommandPredicate(known);
      p.OnGap();
      EXPECT_EQ(first_after(p, rest), "SET k v ");
    }
  }
  {
    // Out of frame on a multibulk stream: a false multibulk start, then a
    // line with an unbalanced quote: resync, not the end.
    Parser p(Parser::Mode::kRequest);
    p.SetInlineCommandPredicate(known);
    EXPECT_EQ(first_after(p, set), "SET k v ");
    p.OnGap();
    const std::string in = "*1\r\n$3\r\nabc\r\nGet Mike's book\r\n" + set;
    EXPECT_EQ(first_after(p, in), "abc ");
    EXPECT_EQ(first_after(p, ""), "SET k v ");
    EXPECT_FALSE(p.ended());
  }
}

TEST(RespParser, ResyncCandidateSplitAcrossChunks) {
  Parser p(Parser::Mode::kRequest);
  p.OnGap();
  for (std::string piece : {"xx\r\n*", "1", "\r", "\n", "$4\r\nPI", "NG\r\n"}) {
    p.Feed(piece);
    if (piece == "NG\r\n") {
      ASSERT_EQ(p.Next(), ParseStatus::kMessage);
      EXPECT_EQ(p.args()[0], "PING");
    } else {
      EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
    }
  }
  EXPECT_EQ(p.skipped_bytes(), 4u);
}

TEST(RespParser, ResyncAfterProtocolError) {
  Parser p(Parser::Mode::kReply);
  std::string in = "$abc\r\n+OK\r\n";
  p.Feed(in);
  ASSERT_EQ(p.Next(), ParseStatus::kError);
  p.Resync();
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.nodes()[0].str, "OK");
  EXPECT_EQ(p.skipped_bytes(), 6u);
}

TEST(RespParser, GarbageNeverCrashesAndStaysBounded) {
  Limits l;
  l.max_message_bytes = 4096;
  for (auto mode : {Parser::Mode::kRequest, Parser::Mode::kReply}) {
    Parser p(mode, l);
    uint32_t x = 12345;
    std::string chunk(97, '\0');
    for (int round = 0; round < 2000; ++round) {
      for (char& c : chunk) {
        x = x * 1103515245 + 12345;
        const char* alphabet = "*$:+-\r\n0123456789%~>|_#,(!=abc";
        c = alphabet[(x >> 16) % 30];
      }
      p.Feed(chunk);
      for (ParseStatus s; (s = p.Next()) != ParseStatus::kNeedMore;) {
        if (s == ParseStatus::kError) p.Resync();
      }
      ASSERT_LE(p.buffered_bytes(), 4096u + chunk.size());
    }
  }
}

}  // namespace
}  // namespace kvf::resp
