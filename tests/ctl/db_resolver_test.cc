// ctl/db_resolver.h: answers on the board settle a connection's unknown db
// whoever polls CLIENT LIST and how often; the resolver asks under the
// source's names for AUTH and CLIENT, never prints the password, and
// survives a server that closes on it. The resolver's half runs against real
// redis-servers (ports 16481-16482).
#include "ctl/db_resolver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "resp/renames.h"
#include "resp/sink.h"
#include "tests/resp/live_redis.h"

namespace kvf::ctl {
namespace {

using resp::testing::Cmd;
using resp::testing::HaveRedisServer;
using resp::testing::LiveRedis;
using resp::testing::RawClient;

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;
constexpr uint64_t kMs = 1'000'000;

dataplane::Endpoint At(const char* s) {
  auto e = dataplane::Endpoint::Parse(s);
  EXPECT_TRUE(e.ok());
  return *e;
}

struct Discard : resp::RecordSink {
  void Emit(const RecordView&, uint64_t) override {}
};

// A monitoring agent polls CLIENT LIST every 10 ms, ten times within the
// margin an answer waits before it applies: the answer that applies must
// still be on the board when the stream is read that far (a review: the 4
// newest answers, none applicable yet, pushed it out, and the connection's
// db stayed unknown for good).
TEST(DbSettler, AnAgentPollingFasterThanTheMarginLeavesAnAnswerThatApplies) {
  const dataplane::Endpoint server = At("10.0.0.2:6379"), client = At("10.0.0.1:5000");
  Discard sink;
  resp::ConnectionOptions o;
  o.joined_mid_stream = true;
  resp::Connection conn(&sink, o);
  conn.OnData(resp::Direction::kClientToServer, Cmd({"SET", "k", "v"}), kT0);
  conn.OnData(resp::Direction::kServerToClient, "+OK\r\n", kT0 + kMs);
  conn.OnData(resp::Direction::kClientToServer, Cmd({"SET", "k", "v"}), kT0 + 2 * kMs);
  conn.OnData(resp::Direction::kServerToClient, "+OK\r\n", kT0 + 3 * kMs);  // in step now
  ASSERT_TRUE(conn.in_sync());
  ASSERT_FALSE(conn.db_known());
  ASSERT_NE(conn.db_unknown_since_ns(), 0u);
  const std::string list =
      "id=7 addr=10.0.0.1:5000 laddr=10.0.0.2:6379 fd=8 name= age=1 idle=0 flags=N db=3 sub=0 psub=0 "
      "multi=-1 qbuf=0 qbuf-free=0 cmd=client|list\n";
  DbAnswerBoard board;
  DbBoardReader reader(&board);
  DbSettler settler(server, client, nullptr);
  for (int i = 0; i < 60 && !conn.db_known(); ++i) {
    const uint64_t asked = kT0 + 200 * kMs + static_cast<uint64_t>(i) * 10 * kMs;
    board.Publish(server, DbAnswer::FromClientList(list, server, asked, asked + kMs));
    settler.Check(conn, reader, asked + kMs);  // the stream read along, as fast
  }
  ASSERT_TRUE(conn.db_known());
  EXPECT_EQ(conn.db(), 3);
  // Bounded however fast it polls.
  for (int i = 0; i < 1000; ++i) {
    const uint64_t asked = kT0 + 2000 * kMs + static_cast<uint64_t>(i) * 1000;
    board.Publish(server, DbAnswer::FromClientList(list, server, asked, asked + 1000));
  }
  EXPECT_LE(board.Answers()->Find(server)->size(), DbAnswers::kMaxKept);
}

// Runs `f` with stderr sent to a file; returns what was written there.
template <typename F>
std::string Stderr(F f) {
  const std::string path = ::testing::TempDir() + "kvft_resolver_err_" + std::to_string(getpid());
  std::fflush(stderr);
  const int saved = dup(2);
  const int fd = open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
  dup2(fd, 2);
  close(fd);
  f();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  std::remove(path.c_str());
  return s.str();
}

// Waits until `resolver` has answered or failed `n` questions in all.
void WaitForQuestions(DbResolver& resolver, uint64_t n) {
  for (int i = 0; i < 300; ++i) {
    const DbResolverStats s = resolver.stats();
    if (s.queries + s.failures >= n) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// A hardened source renames AUTH and CLIENT: the resolver asks under the new
// names (a review: every question was refused), and an AUTH refused by
// a server that repeats its arguments does not print the password.
TEST(DbResolver, AsksUnderTheSourcesNamesAndNeverPrintsThePassword) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kPort = 16481;
  const std::string pw = "S3cr3t-pw xyz";
  LiveRedis redis(kPort, {"--requirepass", pw, "--rename-command", "CLIENT", "MYCLIENT_x1",
                          "--rename-command", "AUTH", "AUTH_9f"});
  ASSERT_TRUE(redis.ok());
  ASSERT_TRUE(resp::AddCommandRename("CLIENT", "MYCLIENT_x1").ok());
  ASSERT_TRUE(resp::AddCommandRename("AUTH", "AUTH_9f").ok());
  EXPECT_EQ(resp::ServerCommandName("CLIENT"), "myclient_x1");
  EXPECT_EQ(resp::ServerCommandName("auth"), "auth_9f");
  EXPECT_EQ(resp::ServerCommandName("SET"), "SET");
  const dataplane::Endpoint server = At("127.0.0.1:16481");
  for (const bool renamed : {true, false}) {
    SCOPED_TRACE(renamed);
    DbAnswerBoard board;
    DbResolverOptions o;
    o.password = pw;
    if (renamed) {
      o.auth_command = resp::ServerCommandName("AUTH");
      o.client_command = resp::ServerCommandName("CLIENT");
    }
    std::string err = Stderr([&] {
      DbResolver resolver(&board, o);
      resolver.Want(server, 0);
      WaitForQuestions(resolver, 1);
      EXPECT_EQ(resolver.stats().queries, renamed ? 1u : 0u);
    });
    EXPECT_EQ(err.find("S3cr3t"), std::string::npos) << err;
    EXPECT_EQ(board.Answers() != nullptr, renamed) << err;
  }
  resp::ClearCommandRenames();
  EXPECT_EQ(resp::ServerCommandName("CLIENT"), "CLIENT");
}

// A server that closes as it accepts (maxclients reached) refuses the
// question; the process goes on (a review: the next write raised SIGPIPE and
// killed the capture).
TEST(DbResolver, AServerThatClosesOnItIsAFailureNotAnExit) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kPort = 16482;
  LiveRedis redis(kPort, {"--maxclients", "1"});
  ASSERT_TRUE(redis.ok());
  RawClient holder(kPort);  // the one client allowed
  ASSERT_TRUE(holder.ok());
  ASSERT_EQ(holder.Send(Cmd({"PING"}), 1), "+PONG\r\n");
  DbAnswerBoard board;
  DbResolverOptions o;
  o.min_interval = std::chrono::milliseconds(10);
  const std::string err = Stderr([&] {
    DbResolver resolver(&board, o);
    for (int i = 0; i < 5; ++i) {
      resolver.Want(At("127.0.0.1:16482"), 0);
      WaitForQuestions(resolver, static_cast<uint64_t>(i) + 1);
    }
    EXPECT_GE(resolver.stats().failures, 5u);
    EXPECT_EQ(resolver.stats().queries, 0u);
  });
  EXPECT_NE(err.find("max number of clients"), std::string::npos) << err;
  EXPECT_EQ(board.Answers(), nullptr);
}

// A minimal ACL user, allowed CLIENT LIST alone (as docs/capture.md asks):
// its refused CLIENT SETNAME does not stop the question (the diff review).
TEST(DbResolver, AUserAllowedClientListAloneIsEnough) {
  if (!HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kPort = 16483;
  LiveRedis redis(kPort);
  ASSERT_TRUE(redis.ok());
  RawClient admin(kPort);
  ASSERT_EQ(admin.Send(Cmd({"ACL", "SETUSER", "resolver", "on", ">rpw", "+client|list"}), 1), "+OK\r\n");
  DbAnswerBoard board;
  DbResolverOptions o;
  o.username = "resolver";
  o.password = "rpw";
  DbResolver resolver(&board, o);
  resolver.Want(At("127.0.0.1:16483"), 0);
  WaitForQuestions(resolver, 1);
  EXPECT_EQ(resolver.stats().queries, 1u);
  EXPECT_NE(board.Answers(), nullptr);
}

}  // namespace
}  // namespace kvf::ctl
