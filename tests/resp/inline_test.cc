// Inline commands checked against a real redis-server: every line is sent over
// a raw socket, and what the server stored (read back with multibulk KEYS and
// LRANGE) or answered must equal what our parser makes of the same line.
#include <poll.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "resp/parser.h"
#include "tests/resp/mirror.h"

namespace kvf::resp {
namespace {

using testing::Cmd;
using testing::LiveRedis;

constexpr int kPort = 16600;  // this test's port (range 16600-16619)

// A client that waits at most `timeout_ms` for each reply: some inline lines
// are never answered, and the server closes after a protocol error.
class Client {
 public:
  Client() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(kPort);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends `bytes` and returns the next reply, or nothing when none arrives in
  // time or the connection closes first. `closed` tells which.
  std::optional<std::vector<Node>> Exchange(std::string_view bytes, int timeout_ms = 2000) {
    if (!bytes.empty() && ::send(fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL) != ssize_t(bytes.size()))
      return std::nullopt;
    return Read(timeout_ms);
  }
  std::optional<std::vector<Node>> Read(int timeout_ms) {
    for (;;) {
      Parser p(Parser::Mode::kReply);
      p.Feed(in_);
      if (p.Next() == ParseStatus::kMessage) {
        std::vector<Node> nodes(p.nodes().begin(), p.nodes().end());
        // Copy the strings out before dropping the bytes they point into.
        strings_.clear();
        for (const Node& n : nodes) strings_.emplace_back(n.str);
        for (size_t i = 0; i < nodes.size(); ++i) nodes[i].str = strings_[i];
        in_.erase(0, p.message_bytes());
        return nodes;
      }
      pollfd pfd{fd(), POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) return std::nullopt;
      char buf[4096];
      const ssize_t n = ::recv(fd(), buf, sizeof(buf), 0);
      if (n <= 0) {
        closed = true;
        return std::nullopt;
      }
      in_.append(buf, static_cast<size_t>(n));
    }
  }
  bool closed = false;

 private:
  int fd_ = -1;
  std::string in_;
  std::vector<std::string> strings_;
};

// What our parser makes of one inline line: the arguments, or the error.
struct Parsed {
  std::vector<std::string> args;
  ParseError error = ParseError::kNone;
};
Parsed ParseLine(const std::string& line) {
  Parser p(Parser::Mode::kRequest);
  p.Feed(line);
  Parsed out;
  const ParseStatus s = p.Next();
  if (s == ParseStatus::kError) {
    out.error = p.error();
  } else if (s == ParseStatus::kMessage) {
    EXPECT_TRUE(p.last_was_inline());
    for (auto a : p.args()) out.args.emplace_back(a);
  }
  return out;
}

std::vector<std::string> BulkStrings(const std::vector<Node>& reply) {
  std::vector<std::string> out;
  for (size_t i = 1; i < reply.size(); ++i) out.emplace_back(reply[i].str);
  return out;
}

// Sends `line` ("RPUSH <key> <values…>" in any inline spelling) to an empty
// server and checks the server's view against ours: stored key and values,
// a wrong-arity error, or the unbalanced-quotes error and close.
void CheckAgainstServer(const std::string& line) {
  SCOPED_TRACE(::testing::PrintToString(line));
  const Parsed ours = ParseLine(line);
  Client c;
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.Exchange(Cmd({"FLUSHALL"})).has_value());
  const auto reply = c.Exchange(line);
  if (ours.error == ParseError::kUnbalancedQuotes) {
    ASSERT_TRUE(reply.has_value());
    ASSERT_EQ((*reply)[0].type, Type::kError);
    EXPECT_EQ((*reply)[0].str, "ERR Protocol error: unbalanced quotes in request");
    EXPECT_FALSE(c.Read(2000).has_value());
    EXPECT_TRUE(c.closed);  // the server closes after that error
    return;
  }
  ASSERT_EQ(ours.error, ParseError::kNone);
  ASSERT_TRUE(reply.has_value()) << "server did not answer";
  if (ours.args.size() < 3) {
    ASSERT_EQ((*reply)[0].type, Type::kError);
    EXPECT_EQ((*reply)[0].str.substr(0, 30), "ERR wrong number of arguments ");
    return;
  }
  ASSERT_EQ((*reply)[0].type, Type::kInteger) << (*reply)[0].str;
  EXPECT_EQ((*reply)[0].integer, static_cast<int64_t>(ours.args.size() - 2));
  const auto keys = c.Exchange(Cmd({"KEYS", "*"}));
  ASSERT_TRUE(keys.has_value());
  EXPECT_EQ(BulkStrings(*keys), std::vector<std::string>{ours.args[1]});
  const auto values = c.Exchange(Cmd({"LRANGE", ours.args[1], "0", "-1"}));
  ASSERT_TRUE(values.has_value());
  EXPECT_EQ(BulkStrings(*values), std::vector<std::string>(ours.args.begin() + 2, ours.args.end()));
}

class InlineVsRedis : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::HaveRedisServer()) return;
    redis_ = new LiveRedis(kPort);
  }
  static void TearDownTestSuite() {
    delete redis_;
    redis_ = nullptr;
  }
  void SetUp() override {
    if (redis_ == nullptr) GTEST_SKIP() << "needs redis-server";
    ASSERT_TRUE(redis_->ok()) << "redis-server did not start on port " << kPort;
  }
  static LiveRedis* redis_;
};
LiveRedis* InlineVsRedis::redis_ = nullptr;

TEST_F(InlineVsRedis, QuotesEscapesAndBinaryBytes) {
  const std::vector<std::string> lines = {
      "RPUSH plain a b c\r\n",
      "RPUSH \"quoted key\" \"a b\" 'c d'\r\n",
      "RPUSH k \"\\x41\\x4a\\x4G\\xZ\\x4\" \"\\xff\\x00\\x7F\"\r\n",
      "RPUSH k \"\\n\\r\\t\\b\\a\\\\\\\"\\q\\'\"\r\n",
      "RPUSH k 'it\\'s \\n \"x\"' '\\\\'\r\n",
      "RPUSH k \"\" '' x\r\n",
      "RPUSH a\"b c\" d' e'  f\r\n",
      "rpush k \"v\"\t\"w\"\x0b\x0c'z'\r\n",
      "RPUSH k\x0bx \x0c\"v\" a\x0c\x0b\r\n",
      "RPUSH k \x80\xff \"\xc3\xa9\"\n",
      "  \t RPUSH   k  v\r\r\n",
      "\"RPUSH\" k \"a\rb\"\r\n",
      "RPUSH k\r\n",  // wrong arity
      // Unbalanced: the server answers the error and closes.
      "RPUSH k \"v\r\n",
      "RPUSH k 'v\r\n",
      "RPUSH \"k\"x v\r\n",
      "RPUSH k 'v''w'\r\n",
      "RPUSH k a\"b c\"d\r\n",
      "RPUSH k \"v\\\"\r\n",
      "RPUSH k \"v\\\r\n",
  };
  for (const auto& line : lines) CheckAgainstServer(line);
}

// Random lines over an alphabet dense in quotes, escapes and blanks.
TEST_F(InlineVsRedis, RandomLinesAgree) {
  static const char kAlphabet[] = {'a',  'b',  ' ',  ' ',  '\t', '\x0b', '\x0c', '\r', '"',    '"',
                                   '\'', '\'', '\\', '\\', 'x',  '4',    'f',    'G',  '\x80', 'n'};
  uint32_t x = 20261123;
  int unbalanced = 0, stored = 0;
  for (int i = 0; i < 300; ++i) {
    std::string line = "RPUSH ";
    const int len = 1 + static_cast<int>((x >> 7) % 14);
    for (int j = 0; j < len; ++j) {
      x = x * 1664525 + 1013904223;
      line += kAlphabet[(x >> 16) % sizeof(kAlphabet)];
    }
    line += "\r\n";
    const Parsed ours = ParseLine(line);
    unbalanced += ours.error == ParseError::kUnbalancedQuotes;
    stored += ours.error == ParseError::kNone && ours.args.size() >= 3;
    CheckAgainstServer(line);
    if (HasFatalFailure()) return;
  }
  // The alphabet must exercise both outcomes, or the test proves little.
  EXPECT_GT(unbalanced, 30);
  EXPECT_GT(stored, 30);
}

TEST_F(InlineVsRedis, BlankLinesAreNotCommands) {
  Client c;
  ASSERT_TRUE(c.ok());
  const std::string in = "\r\n \t\x0b\x0c\r\n\nPING\r\n";
  Parser p(Parser::Mode::kRequest);
  p.Feed(in);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  EXPECT_EQ(p.args().size(), 1u);
  EXPECT_EQ(p.Next(), ParseStatus::kNeedMore);
  const auto reply = c.Exchange(in);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ((*reply)[0].str, "PONG");
  EXPECT_FALSE(c.Read(200).has_value());  // one reply only
}

// A NUL byte before the line end: redis-server never answers that line nor
// anything after it, and we report kInlineNul.
TEST_F(InlineVsRedis, NulByteLineIsNeverAnswered) {
  const std::string in("RPUSH k a\0b\r\nPING\r\n", 19);
  EXPECT_EQ(ParseLine(in).error, ParseError::kInlineNul);
  Client c;
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c.Exchange(in, 300).has_value());
  EXPECT_FALSE(c.closed);
}

// Pipelined after a line with unbalanced quotes, nothing is executed (the
// server answers the error and closes): the capture must not pair a later
// request with an earlier reply, so it records no write after that line.
TEST_F(InlineVsRedis, NothingAfterUnbalancedQuotesIsRecorded) {
  Client check;
  ASSERT_TRUE(check.ok());
  ASSERT_TRUE(check.Exchange(Cmd({"FLUSHALL"})).has_value());
  VectorSink sink;
  testing::MirroredClient c(kPort, &sink, 1);
  ASSERT_TRUE(c.ok());
  const std::string pipeline = "SET a 1\r\nSET b \"x\r\n" + Cmd({"SET", "c", "3"}) + "SET d 4\r\n";
  const std::string replies = c.Do(pipeline, 2);
  EXPECT_EQ(replies, "+OK\r\n-ERR Protocol error: unbalanced quotes in request\r\n");
  const auto exists = check.Exchange(Cmd({"EXISTS", "a", "b", "c", "d"}));
  ASSERT_TRUE(exists.has_value());
  EXPECT_EQ((*exists)[0].integer, 1);  // only "a"
  // "a" was executed but its reply can no longer be trusted to pair: read back.
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].key, "a");
  EXPECT_TRUE(sink.records[0].HasFlag(kNeedsReadback));
  EXPECT_EQ(c.conn().stats().parse_errors, 1u);
}

}  // namespace
}  // namespace kvf::resp
