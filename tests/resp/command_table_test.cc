// The checked-in command table (resp/command_table_gen.cc) against the
// redis-server installed here, read with our own reply parser; and key
// extraction from key specs.
#include "resp/command_table.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "resp/command_info.h"
#include "tests/common/shell.h"
#include "tests/resp/live_redis.h"

namespace kvf::resp {
namespace {

using testing::Cmd;
using testing::LiveRedis;
using testing::RawClient;

constexpr int kPort = 16410;

std::vector<std::string> KeysOf(std::vector<std::string_view> argv, bool writes_only = false) {
  const CommandSpec* spec = LookupCommand(argv);
  EXPECT_NE(spec, nullptr);
  if (spec == nullptr) return {};
  std::vector<KeyRef> keys;
  FindKeys(*spec, argv, &keys);
  std::vector<std::string> out;
  for (auto k : keys) {
    if (!writes_only || !(k.flags & kKeyRo)) out.emplace_back(argv[k.arg]);
  }
  return out;
}

TEST(CommandTable, LookupIsCaseInsensitiveAndFindsSubcommands) {
  std::vector<std::string_view> a = {"SeT", "k", "v"};
  const CommandSpec* set = LookupCommand(a);
  ASSERT_NE(set, nullptr);
  EXPECT_STREQ(set->name, "set");
  EXPECT_TRUE(set->Has(kCmdWrite));
  std::vector<std::string_view> b = {"client", "SETNAME", "x"};
  ASSERT_NE(LookupCommand(b), nullptr);
  EXPECT_STREQ(LookupCommand(b)->name, "client|setname");
  std::vector<std::string_view> c = {"nosuchcommand"};
  EXPECT_EQ(LookupCommand(c), nullptr);
  EXPECT_FALSE(LookupCommandName("get")->Has(kCmdWrite));
  EXPECT_TRUE(LookupCommandName("blpop")->Has(kCmdBlocking));
}

TEST(CommandTable, KeySpecs) {
  EXPECT_EQ(KeysOf({"mset", "a", "1", "b", "2"}), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(KeysOf({"del", "a", "b", "c"}), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(KeysOf({"blpop", "a", "b", "0"}), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(KeysOf({"eval", "return 1", "2", "k1", "k2", "arg"}), (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(KeysOf({"zunionstore", "dst", "2", "s1", "s2", "weights", "1", "2"}),
            (std::vector<std::string>{"dst", "s1", "s2"}));
  EXPECT_EQ(KeysOf({"zunionstore", "dst", "2", "s1", "s2"}, true), (std::vector<std::string>{"dst"}));
  EXPECT_EQ(KeysOf({"lmpop", "2", "l1", "l2", "LEFT"}), (std::vector<std::string>{"l1", "l2"}));
  EXPECT_EQ(KeysOf({"sort", "src", "BY", "w_*", "STORE", "dst"}, true), (std::vector<std::string>{"dst"}));
  EXPECT_EQ(KeysOf({"xread", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"}),
            (std::vector<std::string>{"s1", "s2"}));
  EXPECT_EQ(KeysOf({"migrate", "h", "1", "", "0", "5", "KEYS", "a", "b"}, true),
            (std::vector<std::string>{"a", "b"}));
  // A numkeys larger than the arguments finds nothing past the end.
  std::vector<std::string_view> bad = {"eval", "s", "5", "k"};
  std::vector<KeyRef> keys;
  EXPECT_FALSE(FindKeys(*LookupCommand(bad), bad, &keys));
}

// SORT … STORE and GEORADIUS … STORE|STOREDIST name the key they write in
// their options, read left to right with the last one winning; a key or
// pattern named "store" is not the keyword. Each case is also run on the
// installed redis-server, which must have written exactly the key found.
TEST(CommandTable, StoreKeysAreReadAsRedisReadsTheOptions) {
  struct Case {
    std::vector<std::string_view> argv;
    std::string written;  // "" = none
  };
  const std::vector<Case> cases = {
      {{"SORT", "L", "BY", "nosort", "GET", "w_*", "STORE", "store", "LIMIT", "0", "5"}, "store"},
      {{"SORT", "L", "STORE", "d", "GET", "store", "GET", "#"}, "d"},
      {{"SORT", "L", "STORE", "a", "STORE", "b"}, "b"},
      {{"sort", "L", "limit", "0", "1", "store", "x"}, "x"},
      {{"SORT", "L", "BY", "store", "GET", "#"}, ""},
      {{"GEORADIUS", "g", "15", "37", "200", "km", "STOREDIST", "store", "STORE", "d"}, "d"},
      {{"GEORADIUS", "g", "15", "37", "200", "km", "COUNT", "3", "STORE", "store"}, "store"},
      {{"GEORADIUSBYMEMBER", "g", "m", "500", "km", "STORE", "a", "STOREDIST", "b"}, "b"},
      {{"GEORADIUSBYMEMBER", "g", "m", "500", "km", "ASC"}, ""},
  };
  for (const Case& c : cases) {
    std::vector<std::string> want;
    if (!c.written.empty()) want.push_back(c.written);
    EXPECT_EQ(KeysOf(c.argv, true), want) << c.argv[0] << " " << c.argv.back();
  }
  if (!testing::HaveRedisServer()) GTEST_SKIP() << "needs redis-server for the live half";
  LiveRedis redis(kPort);
  ASSERT_TRUE(redis.ok());
  RawClient r(kPort);
  ASSERT_TRUE(r.ok());
  const std::vector<std::string> names = {"store", "d", "a", "b", "x", "STORE", "LIMIT", "GET"};
  for (const Case& c : cases) {
    ASSERT_EQ(r.Send(Cmd({"FLUSHALL"}), 1), "+OK\r\n");
    ASSERT_EQ(r.Send(Cmd({"RPUSH", "L", "1", "2"}), 1), ":2\r\n");
    ASSERT_EQ(r.Send(Cmd({"GEOADD", "g", "15", "37", "m"}), 1), ":1\r\n");
    std::vector<std::string> argv(c.argv.begin(), c.argv.end());
    const std::string reply = r.Send(Cmd(argv), 1);
    ASSERT_NE(reply[0], '-') << reply;
    for (const std::string& n : names) {
      const bool exists = r.Send(Cmd({"EXISTS", n}), 1) == ":1\r\n";
      EXPECT_EQ(exists, n == c.written) << n << " after " << c.argv[0] << " " << c.argv.back();
    }
  }
}

// MIGRATE's options, read left to right as Redis reads them: a key named
// "keys", or an AUTH2 user named "keys", is not the keyword (a review: the
// key spec's backward search hid the keys before a key named "keys", and
// read the AUTH2 password back as a key, into the log). Each case is also
// run from one installed redis-server to another, where the keys moved must
// be among those found, and exactly those when the migration succeeds.
TEST(CommandTable, MigrateKeysAreReadAsRedisReadsTheOptions) {
  const std::string port = std::to_string(kPort + 1);
  struct Case {
    std::vector<std::string_view> options;  // after MIGRATE host port
    std::vector<std::string> keys;
    bool succeeds;  // on a target that has no password
  };
  const std::vector<Case> cases = {
      {{"", "0", "5000", "KEYS", "a", "keys", "b"}, {"a", "keys", "b"}, true},
      {{"", "0", "5000", "copy", "REPLACE", "keys", "keys", "b"}, {"keys", "b"}, true},
      {{"a", "0", "5000", "COPY"}, {"a"}, true},
      {{"a", "0", "5000"}, {"a"}, true},
      {{"a", "0", "5000", "AUTH2", "keys", "pw"}, {"a"}, false},
      {{"", "0", "5000", "AUTH", "keys", "KEYS", "b"}, {"b"}, false},
      {{"a", "0", "5000", "KEYS", "b"}, {}, false},  // KEYS after a key: refused
      {{"a", "0", "5000", "BOGUS"}, {}, false},
      {{"a", "0", "5000", "AUTH"}, {}, false},
  };
  auto argv_of = [&](const Case& c) {
    std::vector<std::string> argv = {"MIGRATE", "127.0.0.1", port};
    argv.insert(argv.end(), c.options.begin(), c.options.end());
    return argv;
  };
  for (const Case& c : cases) {
    const std::vector<std::string> argv = argv_of(c);
    EXPECT_EQ(KeysOf(std::vector<std::string_view>(argv.begin(), argv.end()), true), c.keys) << argv.back();
  }
  if (!testing::HaveRedisServer()) GTEST_SKIP() << "needs redis-server for the live half";
  LiveRedis source(kPort), target(kPort + 1);
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(target.ok());
  RawClient src(kPort), dst(kPort + 1);
  ASSERT_TRUE(src.ok());
  ASSERT_TRUE(dst.ok());
  const std::vector<std::string> names = {"a", "b", "keys", "pw", "KEYS"};
  for (const Case& c : cases) {
    const std::vector<std::string> argv = argv_of(c);
    ASSERT_EQ(src.Send(Cmd({"FLUSHALL"}), 1), "+OK\r\n");
    ASSERT_EQ(dst.Send(Cmd({"FLUSHALL"}), 1), "+OK\r\n");
    for (const std::string& n : names) ASSERT_EQ(src.Send(Cmd({"SET", n, "v"}), 1), "+OK\r\n");
    const std::string reply = src.Send(Cmd(argv), 1);
    EXPECT_EQ(reply == "+OK\r\n", c.succeeds) << reply;
    std::vector<std::string> moved;
    for (const std::string& n : names) {
      if (dst.Send(Cmd({"EXISTS", n}), 1) == ":1\r\n") moved.push_back(n);
    }
    std::vector<std::string> found = c.keys;
    std::sort(found.begin(), found.end());
    std::sort(moved.begin(), moved.end());
    EXPECT_TRUE(std::includes(found.begin(), found.end(), moved.begin(), moved.end())) << argv.back();
    if (c.succeeds) EXPECT_EQ(moved, found) << argv.back();
  }
}

// Flattens a RESP2 key spec ([name, value, …] with nested [name, value, …])
// into "begin_search.type=index", "begin_search.spec.index=1", … entries.
void Flatten(std::span<const Node> n, size_t* i, const std::string& prefix,
             std::map<std::string, std::string>* out) {
  const Node& agg = n[(*i)++];
  for (uint32_t c = 0; c + 1 < agg.children + 1 && c < agg.children; c += 2) {
    const std::string key = prefix + std::string(n[*i].str);
    ++*i;
    const Node& v = n[*i];
    if (v.type == Type::kArray && key.size() >= 5 && key.compare(key.size() - 5, 5, "flags") == 0) {
      std::string flags;
      for (uint32_t f = 0; f < v.children; ++f) flags += std::string(n[*i + 1 + f].str) + ",";
      (*out)[key] = flags;
      *i += v.subtree;
    } else if (v.type == Type::kArray) {
      Flatten(n, i, key + ".", out);
    } else {
      (*out)[key] = v.type == Type::kInteger ? std::to_string(v.integer) : std::string(v.str);
      ++*i;
    }
  }
}

void CheckKeySpec(std::span<const Node> n, const KeySpec& ks, const std::string& name) {
  std::map<std::string, std::string> m;
  size_t i = 0;
  Flatten(n, &i, "", &m);
  const std::string& bt = m["begin_search.type"];
  const std::string& ft = m["find_keys.type"];
  if (bt == "index") {
    EXPECT_EQ(ks.begin, KeyBegin::kIndex) << name;
    EXPECT_EQ(std::to_string(ks.begin_arg), m["begin_search.spec.index"]) << name;
  } else if (bt == "keyword") {
    EXPECT_EQ(ks.begin, KeyBegin::kKeyword) << name;
    EXPECT_EQ(std::to_string(ks.begin_arg), m["begin_search.spec.startfrom"]) << name;
    EXPECT_EQ(std::string(ks.keyword ? ks.keyword : ""), m["begin_search.spec.keyword"]) << name;
  } else {
    EXPECT_EQ(ks.begin, KeyBegin::kUnknown) << name;
  }
  if (ft == "range") {
    EXPECT_EQ(ks.find, KeyFind::kRange) << name;
    EXPECT_EQ(std::to_string(ks.a), m["find_keys.spec.lastkey"]) << name;
    EXPECT_EQ(std::to_string(ks.b), m["find_keys.spec.keystep"]) << name;
    EXPECT_EQ(std::to_string(ks.c), m["find_keys.spec.limit"]) << name;
  } else if (ft == "keynum") {
    EXPECT_EQ(ks.find, KeyFind::kKeynum) << name;
    EXPECT_EQ(std::to_string(ks.a), m["find_keys.spec.keynumidx"]) << name;
    EXPECT_EQ(std::to_string(ks.b), m["find_keys.spec.firstkey"]) << name;
    EXPECT_EQ(std::to_string(ks.c), m["find_keys.spec.keystep"]) << name;
  } else {
    EXPECT_EQ(ks.find, KeyFind::kUnknown) << name;
  }
  const std::string& flags = m["flags"];
  EXPECT_EQ((ks.flags & kKeyRo) != 0, flags.find("RO,") != std::string::npos) << name;
  EXPECT_EQ((ks.flags & kKeyRw) != 0, flags.find("RW,") != std::string::npos) << name;
  EXPECT_EQ((ks.flags & kKeyOw) != 0, flags.find("OW,") != std::string::npos) << name;
  EXPECT_EQ((ks.flags & kKeyRm) != 0, flags.find("RM,") != std::string::npos) << name;
  EXPECT_EQ((ks.flags & kKeyDelete) != 0, flags.find("delete,") != std::string::npos) << name;
}

// Walks a COMMAND INFO entry (RESP2) and checks it against our table.
void CheckEntry(std::span<const Node> n, size_t* i, std::set<std::string>* seen) {
  const Node& entry = n[*i];
  ASSERT_EQ(entry.type, Type::kArray);
  const size_t end = *i + entry.subtree;
  size_t j = *i + 1;
  std::string name(n[j++].str);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const int64_t arity = n[j++].integer;
  const CommandSpec* spec = LookupCommandName(name);
  ASSERT_NE(spec, nullptr) << "missing from the table: " << name;
  seen->insert(name);
  EXPECT_EQ(spec->arity, arity) << name;
  std::set<std::string> flags;
  const Node& fl = n[j];
  for (uint32_t k = 0; k < fl.children; ++k) flags.insert(std::string(n[j + 1 + k].str));
  j += fl.subtree;
  EXPECT_EQ(spec->Has(kCmdWrite), flags.count("write") == 1) << name;
  EXPECT_EQ(spec->Has(kCmdReadonly), flags.count("readonly") == 1) << name;
  EXPECT_EQ(spec->Has(kCmdBlocking), flags.count("blocking") == 1) << name;
  EXPECT_EQ(spec->Has(kCmdMovablekeys), flags.count("movablekeys") == 1) << name;
  EXPECT_EQ(spec->first_key, n[j++].integer) << name;
  EXPECT_EQ(spec->last_key, n[j++].integer) << name;
  EXPECT_EQ(spec->key_step, n[j++].integer) << name;
  j += n[j].subtree;               // ACL categories
  if (j < end) j += n[j].subtree;  // tips
  if (j < end) {
    // Key specs: count them and check the begin/find types.
    const Node& specs = n[j];
    EXPECT_EQ(spec->num_specs, specs.children) << name;
    size_t k = j + 1;
    for (uint32_t s = 0; s < specs.children && s < spec->num_specs; ++s) {
      CheckKeySpec(n.subspan(k, n[k].subtree), spec->specs[s], name);
      k += n[k].subtree;
    }
    j += specs.subtree;
  }
  if (j < end && n[j].type == Type::kArray) {
    const Node& subs = n[j];
    size_t k = j + 1;
    for (uint32_t s = 0; s < subs.children; ++s) CheckEntry(n, &k, seen);
    j += subs.subtree;
  }
  *i = end;
}

TEST(CommandTable, MatchesTheInstalledRedisServer) {
  if (!testing::HaveRedisServer()) GTEST_SKIP() << "needs redis-server";
  LiveRedis redis(kPort);
  ASSERT_TRUE(redis.ok());
  RawClient c(kPort);
  ASSERT_TRUE(c.ok());
  const std::string info = c.Send(Cmd({"INFO", "server"}), 1);
  EXPECT_NE(info.find(std::string("redis_version:") + kCommandTableRedisVersion), std::string::npos)
      << "table generated from another Redis version: regenerate with resp/tools/gen_command_table.py";
  const std::string reply = c.Send(Cmd({"COMMAND", "INFO"}), 1);
  Parser p(Parser::Mode::kReply);
  p.Feed(reply);
  ASSERT_EQ(p.Next(), ParseStatus::kMessage);
  auto nodes = p.nodes();
  std::set<std::string> seen;
  size_t i = 1;
  for (uint32_t k = 0; k < nodes[0].children; ++k) CheckEntry(nodes, &i, &seen);
  EXPECT_EQ(seen.size(), kCommandTableSize) << "the table has commands the server does not";
  EXPECT_GT(seen.size(), 200u);
}

// `redis-cli --json COMMAND` of the installed server, RESP3 and RESP2
// shaped, parses to exactly the generated table's specs: the loader that
// teaches decode a module's commands reads the same facts the generator did.
TEST(CommandInfo, TheInstalledServersCommandsParseToTheGeneratedTable) {
  if (!testing::HaveRedisServer() || std::system("command -v redis-cli >/dev/null") != 0) {
    GTEST_SKIP() << "needs redis-server and redis-cli";
  }
  LiveRedis redis(kPort);
  ASSERT_TRUE(redis.ok());
  for (const char* protocol : {"-3", "-2"}) {
    SCOPED_TRACE(protocol);
    const std::string cmd =
        std::string("redis-cli -p ") + std::to_string(kPort) + " " + protocol + " --json COMMAND";
    const std::string json = kvf::testing::RunShell(cmd).out;
    auto parsed = ParseCommandInfoJson(json);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    size_t checked = 0;
    std::function<void(const OwnedCommandSpec&)> check = [&](const OwnedCommandSpec& c) {
      const CommandSpec* spec = LookupCommandName(c.name);
      ASSERT_NE(spec, nullptr) << c.name;
      EXPECT_EQ(spec->arity, c.arity) << c.name;
      EXPECT_EQ(spec->flags, c.flags) << c.name;
      EXPECT_EQ(spec->first_key, c.first_key) << c.name;
      EXPECT_EQ(spec->last_key, c.last_key) << c.name;
      EXPECT_EQ(spec->key_step, c.key_step) << c.name;
      ASSERT_EQ(spec->num_specs, c.key_specs.size()) << c.name;
      for (size_t k = 0; k < spec->num_specs; ++k) {
        const KeySpec& want = spec->specs[k];
        const KeySpec& got = c.key_specs[k];
        EXPECT_EQ(want.flags, got.flags) << c.name << " spec " << k;
        EXPECT_EQ(want.begin, got.begin) << c.name << " spec " << k;
        EXPECT_EQ(want.begin_arg, got.begin_arg) << c.name << " spec " << k;
        EXPECT_EQ(std::string(want.keyword ? want.keyword : ""), c.keywords[k]) << c.name << " spec " << k;
        EXPECT_EQ(want.find, got.find) << c.name << " spec " << k;
        EXPECT_EQ(want.a, got.a) << c.name << " spec " << k;
        EXPECT_EQ(want.b, got.b) << c.name << " spec " << k;
        EXPECT_EQ(want.c, got.c) << c.name << " spec " << k;
      }
      ++checked;
      for (const OwnedCommandSpec& sub : c.subcommands) check(sub);
    };
    for (const OwnedCommandSpec& c : *parsed) check(c);
    EXPECT_EQ(checked, kCommandTableSize);
    const CommandInfoLoad load = RegisterCommands(std::move(*parsed));
    EXPECT_EQ(load.added, 0u);
    EXPECT_EQ(load.known, kCommandTableSize);
  }
}

// A module's commands (RedisJSON here, as its COMMAND INFO reads): once
// learnt they are looked up like Redis's own, keys and all; malformed
// input is refused whole, with the entry named.
TEST(CommandInfo, AModulesCommandsAreLearnt) {
  const char* json = R"([
    ["json.set", -4, ["write", "denyoom"], 1, 1, 1, ["@json"], [],
     [{"flags": ["RW", "update"], "begin_search": {"type": "index", "spec": {"index": 1}},
       "find_keys": {"type": "range", "spec": {"lastkey": 0, "keystep": 1, "limit": 0}}}], []],
    ["json.get", -2, ["readonly"], 1, 1, 1, ["@json"], [],
     [{"flags": ["RO", "access"], "begin_search": {"type": "index", "spec": {"index": 1}},
       "find_keys": {"type": "range", "spec": {"lastkey": 0, "keystep": 1, "limit": 0}}}], []],
    ["modx", -2, [], 0, 0, 0, [], [], [],
     [["modx|put", -3, ["write"], 0, 0, 0, [], [],
       [["flags", ["OW"], "begin_search", ["type", "keyword", "spec", ["keyword", "INTO", "startfrom", 1]],
         "find_keys", ["type", "range", "spec", ["lastkey", 0, "keystep", 1, "limit", 0]]]], []]]],
    ["ping|deep", -2, ["write"], 0, 0, 0, [], [], [], []],
    ["mod.mv", -2, ["write", "movablekeys"], 0, 0, 0, [], [],
     [{"flags": ["RW"], "begin_search": {"type": "unknown", "spec": {}},
       "find_keys": {"type": "unknown", "spec": {}}}], []],
    null
  ])";
  auto parsed = ParseCommandInfoJson(json);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const CommandInfoLoad load = RegisterCommands(std::move(*parsed));
  EXPECT_EQ(load.added, 6u);  // json.set, json.get, modx, modx|put, ping|deep, mod.mv
  // A learnt subcommand of a command the generated table has without any.
  EXPECT_EQ(std::string(LookupCommand(std::vector<std::string_view>{"PING", "deep"})->name), "ping|deep");
  EXPECT_EQ(std::string(LookupCommand(std::vector<std::string_view>{"PING", "hello"})->name), "ping");
  std::vector<std::string_view> set = {"JSON.SET", "doc", "$", "{}"};
  const CommandSpec* spec = LookupCommand(set);
  ASSERT_NE(spec, nullptr);
  EXPECT_EQ(std::string(spec->name), "json.set");
  EXPECT_TRUE(spec->Has(kCmdWrite));
  EXPECT_EQ(KeysOf({"json.set", "doc", "$", "{}"}, true), (std::vector<std::string>{"doc"}));
  EXPECT_EQ(KeysOf({"JSON.GET", "doc"}, true), (std::vector<std::string>{}));
  EXPECT_EQ(KeysOf({"MODX", "PUT", "v", "into", "dst"}, true), (std::vector<std::string>{"dst"}));
  EXPECT_EQ(std::string(LookupCommand(std::vector<std::string_view>{"modx", "put", "v"})->name), "modx|put");
  for (const char* bad :
       {"", "{}", "[[\"x\"]]", "[[\"x\", 0, [], 0, 0, 0]]", "[[\"x\", \"-2\", [], 0, 0, 0]]",
        "[[\"x y\", -2, [], 0, 0, 0]]", "[[\"x\", -2, [], 0, 0, 0, [], [], [{\"flags\": [\"RW\"]}]]]",
        "[[\"x\", -2, [], 0, 0, 0, [], [], [], [[\"y|z\", -2, [], 0, 0, 0]]]]"}) {
    EXPECT_FALSE(ParseCommandInfoJson(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace kvf::resp
