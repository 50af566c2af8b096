// The source's rename-command (resp/renames.h): renames applied as
// redis-server applies them, read from a redis.conf, and a renamed source's
// traffic replicated under the commands' own names (ports 16470-16471).
#include "resp/renames.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <memory>

#include "resp/command_table.h"
#include "resp/convert.h"
#include "resp/sink.h"
#include "tests/resp/live_redis.h"
#include "tests/resp/mirror.h"

namespace kvf::resp {
namespace {

using testing::Cmd;

class CommandRenames : public ::testing::Test {
 protected:
  void SetUp() override { ClearCommandRenames(); }
  void TearDown() override { ClearCommandRenames(); }
  static std::string Name(std::string_view sent) {
    const auto n = SourceCommandName(sent);
    return n ? std::string(*n) : "(as sent)";
  }
};

TEST_F(CommandRenames, AreAppliedInOrderAsRedisAppliesThem) {
  EXPECT_FALSE(HaveCommandRenames());
  EXPECT_EQ(Name("SET"), "(as sent)");
  ASSERT_TRUE(AddCommandRename("FLUSHALL", "Admin_Flush").ok());
  EXPECT_TRUE(HaveCommandRenames());
  EXPECT_EQ(Name("admin_flush"), "FLUSHALL");
  EXPECT_EQ(Name("ADMIN_FLUSH"), "FLUSHALL");
  // The old name is no command on the source, and none in the table.
  const std::string old = Name("FlushAll");
  EXPECT_EQ(old, "FLUSHALL (renamed)");
  const std::string_view old_argv[] = {old};
  EXPECT_EQ(LookupCommand(old_argv), nullptr);
  EXPECT_EQ(Name("SET"), "(as sent)");
  // What redis-server refuses at start-up: an old name no longer there, a
  // new name that is another command's, a subcommand.
  EXPECT_FALSE(AddCommandRename("FLUSHALL", "X").ok());
  EXPECT_FALSE(AddCommandRename("SET", "get").ok());
  EXPECT_FALSE(AddCommandRename("NOSUCHCOMMAND", "X").ok());
  EXPECT_FALSE(AddCommandRename("config|set", "X").ok());
  EXPECT_FALSE(AddCommandRename("SET", "admin_flush").ok());
  // A swap through a third name.
  ASSERT_TRUE(AddCommandRename("GET", "TMP").ok());
  ASSERT_TRUE(AddCommandRename("SET", "GET").ok());
  ASSERT_TRUE(AddCommandRename("TMP", "SET").ok());
  EXPECT_EQ(Name("get"), "SET");
  EXPECT_EQ(Name("set"), "GET");
  EXPECT_EQ(Name("tmp"), "(as sent)");  // unknown to the table as it is to the server
  // Disabled.
  ASSERT_TRUE(AddCommandRename("DEBUG", "").ok());
  EXPECT_EQ(Name("debug"), "DEBUG (renamed)");
  // Back to its own name: the table's again.
  ASSERT_TRUE(AddCommandRename("ADMIN_FLUSH", "FLUSHALL").ok());
  EXPECT_EQ(Name("flushall"), "(as sent)");
  EXPECT_EQ(Name("admin_flush"), "(as sent)");
  // A script calling MIGRATE by its new name must still be caught; so must
  // one naming any renamed command by either name: a replica, without the
  // renames, would run it otherwise (a review: `redis.pcall('FLUSHALL')`,
  // refused on a source that disabled FLUSHALL, emptied the replica).
  ASSERT_TRUE(AddCommandRename("MIGRATE", "MoveKey").ok());
  auto names = RenamedNames();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"debug", "get", "migrate", "movekey", "set"}));
  EXPECT_TRUE(ScriptCallsMigrate("return redis.call('movekey', '10.0.0.9', 6379, KEYS[1], 0, 5000)"));
  EXPECT_TRUE(ScriptCallsMigrate("redis.pcall('DEBUG', 'sleep', '0') return 1"));
  EXPECT_TRUE(ScriptCallsMigrate("return redis.call('GET', KEYS[1])"));
  EXPECT_FALSE(ScriptCallsMigrate("return redis.call('HSET', KEYS[1], 'f', 'v')"));
  // Arguments keep their bytes; only the name changes.
  const std::string_view argv[] = {"GET", "k", "v"};
  std::vector<std::string_view> scratch;
  const auto read = WithSourceCommandName(argv, &scratch);
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[0], "SET");
  EXPECT_EQ(read[1].data(), argv[1].data());
  const std::string_view plain[] = {"HSET", "h", "f", "v"};
  EXPECT_EQ(WithSourceCommandName(plain, &scratch).data(), plain);
  // A long body's verdict is remembered (BullMQ's scripts are judged once,
  // not at every call), but judged again once the renames change.
  const std::string big = "redis.call('SADD', KEYS[1], 'm') -- " + std::string(4096, 'x') + "\nreturn 1";
  const std::string big_calls = "return redis.call('ZADD', KEYS[1], 1, 'm') -- " + std::string(4096, 'y');
  EXPECT_FALSE(ScriptCallsMigrate(big));
  EXPECT_FALSE(ScriptCallsMigrate(big_calls));
  ASSERT_TRUE(AddCommandRename("ZADD", "zadd_9").ok());
  EXPECT_TRUE(ScriptCallsMigrate(big_calls));
  EXPECT_FALSE(ScriptCallsMigrate(big));
  ClearCommandRenames();
  EXPECT_FALSE(ScriptCallsMigrate(big_calls));
}

TEST_F(CommandRenames, AreReadFromTheSourcesRedisConf) {
  const std::string path =
      std::string(::testing::TempDir()) + "kvf_renames_" + std::to_string(::getpid()) + ".conf";
  {
    std::ofstream f(path);
    f << "# hardened\n"
         "port 6379\r\n"
         "  rename-command  FLUSHDB  \"wipe db\"   \n"
         "rename-command CONFIG \"\"\n"
         "include /etc/redis/extra.conf\n"
         "RENAME-COMMAND \"KEYS\" \"LIST\\x41LL\"\n"
         "#rename-command SET PUT\n";
  }
  auto load = LoadRenamesFromRedisConf(path);
  ASSERT_TRUE(load.ok()) << load.status().message();
  EXPECT_EQ(load->renames, 3u);
  EXPECT_EQ(load->includes, 1u);
  EXPECT_EQ(Name("wipe db"), "FLUSHDB");
  EXPECT_EQ(Name("config"), "CONFIG (renamed)");
  EXPECT_EQ(Name("listall"), "KEYS");
  EXPECT_EQ(Name("set"), "(as sent)");
  // A line redis-server would refuse is refused, naming the line.
  for (const std::string bad : {"port 1\nrename-command ONLYONE\n", "port 1\nrename-command \"A B\n",
                                "port 1\nrename-command NOSUCH X\n"}) {
    ClearCommandRenames();
    {
      std::ofstream f(path);
      f << bad;
    }
    auto refused = LoadRenamesFromRedisConf(path);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_NE(refused.status().message().find(path + ":2: "), std::string::npos)
        << refused.status().message();
  }
  std::remove(path.c_str());
  EXPECT_FALSE(LoadRenamesFromRedisConf(path).ok());
}

// A source whose redis.conf renames SET, FLUSHDB and MIGRATE and disables
// DEL: its clients' writes under the new names replicate under the old
// ones to a replica without renames, and what the old names ask (refused,
// or silently under CLIENT REPLY OFF) is not shipped.
TEST_F(CommandRenames, ARenamedSourcesWritesAreReplicatedUnderTheCommandsOwnNames) {
  if (!testing::HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  constexpr int kSource = 16470, kReplica = 16471;
  const std::vector<std::string> renames = {"SET", "PUT", "FLUSHDB", "WIPE_7f3a",
                                            "DEL", "",    "MIGRATE", "MOVEKEY"};
  std::vector<std::string> config;
  for (size_t i = 0; i < renames.size(); i += 2) {
    config.insert(config.end(), {"--rename-command", renames[i], renames[i + 1]});
    ASSERT_TRUE(AddCommandRename(renames[i], renames[i + 1]).ok());
  }
  testing::LiveRedis source(kSource, config), replica_server(kReplica);
  ASSERT_TRUE(source.ok() && replica_server.ok());
  VectorSink sink;
  testing::MirroredClient c(kSource, &sink, 1);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.Do({"PUT", "a", "1"}), "+OK\r\n");
  c.Do({"SELECT", "1"});
  EXPECT_EQ(c.Do({"PUT", "b", "2"}), "+OK\r\n");
  EXPECT_EQ(c.Do({"HSET", "h", "f", "v"}), ":1\r\n");
  c.Do({"SELECT", "0"});
  EXPECT_EQ(c.Do({"put", "gone", "x"}), "+OK\r\n");
  EXPECT_EQ(c.Do({"WIPE_7f3a"}), "+OK\r\n");
  EXPECT_EQ(c.Do({"PUT", "c", "3"}), "+OK\r\n");
  EXPECT_EQ(c.Do({"PUT", "kept", "4"}), "+OK\r\n");
  EXPECT_EQ(c.Do({"DEL", "c"})[0], '-');
  EXPECT_EQ(c.Do({"SET", "d", "1"})[0], '-');
  // Unanswered: only the names tell that these never ran.
  c.SendOnly(Cmd({"CLIENT", "REPLY", "OFF"}) + Cmd({"SET", "e", "1"}) + Cmd({"DEL", "kept"}) +
             Cmd({"CLIENT", "REPLY", "ON"}));
  EXPECT_EQ(c.ReceiveMirrored(1), "+OK\r\n");
  // A script that may call MIGRATE by its new name (with a password) is
  // read back, not shipped.
  EXPECT_EQ(c.Do({"EVAL",
                  "if ARGV[1] == 'never' then return redis.call('MOVEKEY', '10.0.0.9', 6379, KEYS[1], 0, 10, "
                  "'AUTH', ARGV[2]) end return redis.call('PUT', KEYS[1], 'x')",
                  "1", "s", "now", "pw"}),
            "+OK\r\n");
  testing::ExpectPairedCleanly(c.conn().stats());
  EXPECT_EQ(c.conn().stats().scripts_not_shipped, 1u);

  bool flushdb = false;
  for (const ChangeRecord& r : sink.records) {
    if (r.op == RecordOp::kReadback) continue;
    ASSERT_FALSE(r.args.empty()) << testing::Replica::Describe(r);
    EXPECT_NE(r.args[0], "PUT") << testing::Replica::Describe(r);
    EXPECT_NE(r.args[0], "EVAL") << testing::Replica::Describe(r);
    EXPECT_NE(r.key, "e");
    EXPECT_NE(r.key, "d");
    if (r.args[0] == "FLUSHDB") flushdb = true;
  }
  EXPECT_TRUE(flushdb);
  testing::Replica replica(kReplica);
  ASSERT_TRUE(replica.ok());
  replica.Apply(sink.records);
  EXPECT_EQ(replica.readback_keys().count({0, "s"}), 1u);
  replica.RepairFrom(kSource);
  const auto want = testing::Snapshot(kSource, 2);
  EXPECT_EQ(want.size(), 5u);  // c, kept, s; b, h
  EXPECT_TRUE(testing::Differences(want, testing::Snapshot(kReplica, 2)).empty());
}

}  // namespace
}  // namespace kvf::resp
