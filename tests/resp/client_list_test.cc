// CLIENT LIST parsing (resp/client_list.h) on what a real redis-server
// answers, and on lines it must not trust.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "resp/client_list.h"
#include "tests/resp/live_redis.h"

namespace kvf::resp {
namespace {

using namespace testing;  // NOLINT

constexpr int kPort = 16436;

ClientAddrKey V4(const char* ip, uint16_t port) {
  std::array<uint8_t, 16> a{};
  a[10] = a[11] = 0xff;
  inet_pton(AF_INET, ip, a.data() + 12);
  return ClientAddrKeyOf(a, port);
}

uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// The body of a bulk-string reply ("$N\r\n<body>\r\n").
std::string Bulk(const std::string& reply) {
  const size_t nl = reply.find("\r\n");
  if (reply.empty() || reply[0] != '$' || nl == std::string::npos) return "";
  return reply.substr(nl + 2, std::stoul(reply.substr(1, nl - 1)));
}

TEST(ClientList, EveryClientOfARealServerWithItsDb) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  LiveRedis redis(kPort);
  ASSERT_TRUE(redis.ok());
  RawClient a(kPort), b(kPort);
  ASSERT_TRUE(a.ok() && b.ok());
  a.Send(Cmd({"SELECT", "3"}), 1);
  b.Send(Cmd({"CLIENT", "SETNAME", "pool-7"}), 1);
  const std::string text = Bulk(b.Send(Cmd({"CLIENT", "LIST", "TYPE", "normal"}), 1));
  ASSERT_FALSE(text.empty());
  const ClientList list = ParseClientList(text);
  EXPECT_EQ(list.skipped_lines, 0u) << text;
  ASSERT_EQ(list.entries.size(), 2u) << text;
  bool saw_a = false, saw_b = false;
  for (const ClientListEntry& e : list.entries) {
    if (!e.has_laddr) GTEST_SKIP() << "redis-server older than 6.2: CLIENT LIST has no laddr=";
    EXPECT_EQ(e.laddr, V4("127.0.0.1", kPort));
    if (e.addr == V4("127.0.0.1", LocalPort(a.fd()))) {
      EXPECT_EQ(e.db, 3);
      EXPECT_TRUE(e.settled());  // at rest: nothing unread, no MULTI (b is running CLIENT LIST)
      saw_a = true;
    }
    if (e.addr == V4("127.0.0.1", LocalPort(b.fd()))) {
      EXPECT_EQ(e.db, 0);
      saw_b = true;
    }
  }
  EXPECT_TRUE(saw_a && saw_b) << text;
  // Inside a MULTI with a SELECT queued, the db the server lists is not
  // yet the one that will hold when EXEC runs.
  a.Send(Cmd({"MULTI"}), 1);
  a.Send(Cmd({"SELECT", "4"}), 1);
  const ClientList in_multi = ParseClientList(Bulk(b.Send(Cmd({"CLIENT", "LIST", "TYPE", "normal"}), 1)));
  bool saw_busy = false;
  for (const ClientListEntry& e : in_multi.entries) {
    if (e.addr != V4("127.0.0.1", LocalPort(a.fd()))) continue;
    EXPECT_EQ(e.multi, 1);
    EXPECT_FALSE(e.settled());
    saw_busy = true;
  }
  EXPECT_TRUE(saw_busy);
}

TEST(ClientList, LinesItCannotTrustAreSkipped) {
  const std::string text =
      "id=1 addr=10.0.0.5:51234 laddr=10.0.0.9:6379 fd=8 name= db=2 cmd=client|list\n"
      "id=2 addr=[2001:db8::7]:40000 laddr=[2001:db8::1]:6379 db=15\r\n"
      "id=3 addr=[::ffff:10.0.0.6]:1000 db=1\n"                   // an IPv4 client of a dual-stack listener
      "id=4 addr=/tmp/redis.sock:0 laddr=/tmp/redis.sock db=0\n"  // unix socket
      "id=5 addr=10.0.0.5:70000 db=0\n"                           // port out of range
      "id=6 addr=10.0.0.5:1 db=65536\n"                           // db out of range
      "id=7 addr=10.0.0.5:2 db=-1\n"
      "id=8 addr=10.0.0.5:3\n"                        // no db
      "id=9 db=4\n"                                   // no addr
      "id=10 addr=10.0.0.5:4 addr=10.0.0.6:4 db=1\n"  // twice
      "id=11 addr=10.0.0.5:5 db=1 qbuf=x\n"
      "id=12 addr=10.0.0.5:6 db=1 multi=-2\n"
      "id=13 addr=10.0.0.5:7 db=1 qbuf=26 multi=-1\n"  // unread bytes: listed, not settled
      "garbage without fields\n"
      "\n";
  const ClientList list = ParseClientList(text);
  ASSERT_EQ(list.entries.size(), 4u);
  EXPECT_TRUE(list.entries[0].settled());
  EXPECT_EQ(list.entries[3].qbuf, 26u);
  EXPECT_FALSE(list.entries[3].settled());
  EXPECT_EQ(list.entries[0].addr, V4("10.0.0.5", 51234));
  EXPECT_EQ(list.entries[0].laddr, V4("10.0.0.9", 6379));
  EXPECT_EQ(list.entries[0].db, 2);
  std::array<uint8_t, 16> v6{};
  inet_pton(AF_INET6, "2001:db8::7", v6.data());
  EXPECT_EQ(list.entries[1].addr, ClientAddrKeyOf(v6, 40000));
  EXPECT_EQ(list.entries[1].db, 15);
  EXPECT_EQ(list.entries[2].addr, V4("10.0.0.6", 1000));  // the same key as the capture's
  EXPECT_FALSE(list.entries[2].has_laddr);
  EXPECT_EQ(list.skipped_lines, 10u);
  // Caps: entries and line length.
  ClientListLimits small;
  small.max_entries = 1;
  EXPECT_EQ(ParseClientList(text, small).entries.size(), 1u);
  small = {};
  small.max_line_bytes = 40;
  EXPECT_EQ(ParseClientList(text, small).entries.size(), 1u);  // only id=3 is short enough
}

}  // namespace
}  // namespace kvf::resp
