// The write workload shared by the round-trip tests: every write family,
// transactions (applied, aborted, WATCH-failed, discarded), Lua, several dbs,
// server-rejected writes and a pipelined burst. `other` is a second client
// (it breaks the WATCH).
#pragma once

#include <string>

#include "tests/resp/mirror.h"

namespace kvf::resp::testing {

inline void RunWorkload(MirroredClient& c, MirroredClient& other) {
  // Strings and counters.
  c.Do({"SET", "s:plain", "v1"});
  c.Do({"SET", "s:ex", "v", "EX", "100"});
  c.Do({"SET", "s:px", "v", "PX", "200000"});
  c.Do({"SET", "s:nx", "first", "NX"});
  c.Do({"SET", "s:nx", "second", "NX"});  // refused: nil
  c.Do({"SET", "s:xx", "no", "XX"});      // refused: key missing
  c.Do({"SET", "s:ex", "kept", "KEEPTTL"});
  c.Do({"SET", "s:get", "old"});
  c.Do({"SET", "s:get", "new", "GET", "EXAT", std::to_string(NowNs() / 1000000000 + 500)});
  c.Do({"SETEX", "s:setex", "50", "x"});
  c.Do({"PSETEX", "s:psetex", "50000", "y"});
  c.Do({"SETNX", "s:setnx", "a"});
  c.Do({"SETNX", "s:setnx", "b"});
  c.Do({"GETSET", "s:getset", "g"});
  c.Do({"SET", "s:getdel", "d"});
  c.Do({"GETDEL", "s:getdel"});
  c.Do({"GETDEL", "s:missing"});
  c.Do({"SET", "s:getex", "e"});
  c.Do({"GETEX", "s:getex", "PX", "300000"});
  c.Do({"SET", "s:persist", "p", "EX", "100"});
  c.Do({"GETEX", "s:persist", "PERSIST"});
  c.Do({"APPEND", "s:plain", "-appended"});
  c.Do({"SETRANGE", "s:plain", "1", "XY"});
  c.Do({"INCR", "n:counter"});
  c.Do({"INCRBY", "n:counter", "41"});
  c.Do({"DECR", "n:counter"});
  c.Do({"DECRBY", "n:counter", "2"});
  c.Do({"SET", "n:ttl", "10", "EX", "1000"});
  c.Do({"INCR", "n:ttl"});  // keeps the TTL
  c.Do({"INCRBYFLOAT", "n:float", "1.5"});
  c.Do({"INCRBYFLOAT", "n:float", "0.25"});
  c.Do({"MSET", "m:a", "1", "m:b", "2", "s:ex", "mset-clears-ttl"});
  c.Do({"MSETNX", "m:c", "3", "m:d", "4"});
  c.Do({"MSETNX", "m:c", "x", "m:e", "5"});  // refused: m:c exists
  c.Do({"INCR", "s:plain"});                 // rejected by the server (not an integer)
  // Hashes.
  c.Do({"HSET", "h:1", "f1", "a", "f2", "b"});
  c.Do({"HINCRBY", "h:1", "n", "7"});
  c.Do({"HINCRBYFLOAT", "h:1", "x", "2.5"});
  c.Do({"HSETNX", "h:1", "f1", "no"});
  c.Do({"HSETNX", "h:1", "f3", "yes"});
  c.Do({"HDEL", "h:1", "f2"});
  c.Do({"HMSET", "h:2", "a", "1"});
  c.Do({"LPUSH", "h:1", "wrongtype"});  // WRONGTYPE
  // Lists.
  c.Do({"RPUSH", "l:1", "a", "b", "c", "d", "e", "f", "g"});
  c.Do({"LPUSH", "l:1", "z"});
  c.Do({"LPOP", "l:1"});
  c.Do({"LPOP", "l:1", "2"});
  c.Do({"RPOP", "l:1"});
  c.Do({"RPOP", "l:1", "2"});
  c.Do({"LPOP", "l:missing"});
  c.Do({"RPUSH", "l:2", "x", "y"});
  c.Do({"LMOVE", "l:1", "l:2", "LEFT", "RIGHT"});
  c.Do({"RPOPLPUSH", "l:2", "l:2"});
  c.Do({"LMPOP", "2", "l:missing", "l:2", "RIGHT", "COUNT", "2"});
  c.Do({"BLPOP", "l:missing", "l:1", "0"});
  c.Do({"LINSERT", "l:2", "BEFORE", "x", "ins"});
  c.Do({"LSET", "l:2", "0", "set0"});
  c.Do({"LREM", "l:2", "0", "ins"});
  c.Do({"RPUSH", "l:3", "1", "2", "3", "4"});
  c.Do({"LTRIM", "l:3", "1", "2"});
  // Sets.
  c.Do({"SADD", "set:1", "a", "b", "c", "d", "e"});
  c.Do({"SREM", "set:1", "e"});
  c.Do({"SPOP", "set:1"});
  c.Do({"SPOP", "set:1", "2"});
  c.Do({"SADD", "set:2", "q", "r"});
  c.Do({"SMOVE", "set:2", "set:1", "q"});
  c.Do({"SMOVE", "set:2", "set:1", "nope"});
  c.Do({"SINTERSTORE", "set:3", "set:1", "set:2"});
  c.Do({"SUNIONSTORE", "set:4", "set:1", "set:2"});
  // Sorted sets.
  c.Do({"ZADD", "z:1", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e"});
  c.Do({"ZINCRBY", "z:1", "0.5", "a"});
  c.Do({"ZADD", "z:1", "INCR", "10", "b"});
  c.Do({"ZADD", "z:1", "GT", "1", "c"});
  c.Do({"ZPOPMIN", "z:1"});
  c.Do({"ZPOPMAX", "z:1", "2"});
  c.Do({"ZADD", "z:2", "1", "x", "2", "y", "3", "w"});
  c.Do({"BZPOPMAX", "z:missing", "z:2", "0"});
  c.Do({"ZMPOP", "1", "z:2", "MIN", "COUNT", "1"});
  c.Do({"ZUNIONSTORE", "z:3", "2", "z:1", "z:2"});
  c.Do({"ZREM", "z:1", "zz"});
  // Streams, HyperLogLog, bitmaps, geo.
  c.Do({"XADD", "x:1", "*", "f", "v"});
  c.Do({"XADD", "x:1", "*", "f", "w"});
  c.Do({"XADD", "x:1", "MAXLEN", "~", "1", "*", "f", "trimmed"});
  c.Do({"XADD", "x:2", "NOMKSTREAM", "*", "f", "v"});  // nil: no stream
  c.Do({"XADD", "x:3", "5-1", "a", "b"});
  c.Do({"XDEL", "x:3", "5-1"});
  c.Do({"PFADD", "hll:1", "a", "b", "c"});
  c.Do({"PFADD", "hll:2", "c", "d"});
  c.Do({"PFMERGE", "hll:3", "hll:1", "hll:2"});
  c.Do({"SETBIT", "b:1", "7", "1"});
  c.Do({"SETBIT", "b:2", "3", "1"});
  c.Do({"BITOP", "OR", "b:3", "b:1", "b:2"});
  c.Do({"GEOADD", "g:1", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"});
  // Expiries.
  c.Do({"SET", "e:1", "v"});
  c.Do({"EXPIRE", "e:1", "300"});
  c.Do({"SET", "e:2", "v"});
  c.Do({"PEXPIRE", "e:2", "400000"});
  c.Do({"SET", "e:3", "v"});
  c.Do({"EXPIREAT", "e:3", std::to_string(NowNs() / 1000000000 + 600)});
  c.Do({"EXPIRE", "e:missing", "10"});  // 0: nothing
  c.Do({"SET", "e:4", "v", "EX", "100"});
  c.Do({"PERSIST", "e:4"});
  c.Do({"SET", "e:5", "v"});
  c.Do({"EXPIRE", "e:5", "-1"});  // deletes
  // Keyspace.
  c.Do({"SET", "k:ren", "r"});
  c.Do({"RENAME", "k:ren", "k:renamed"});
  c.Do({"SET", "k:copy", "c"});
  c.Do({"COPY", "k:copy", "k:copied"});
  c.Do({"SET", "k:del1", "1"});
  c.Do({"SET", "k:del2", "2"});
  c.Do({"DEL", "k:del1", "k:del2", "k:none"});
  c.Do({"UNLINK", "m:a"});
  // Transactions.
  c.Do(Cmd({"MULTI"}) + Cmd({"SET", "t:1", "a"}) + Cmd({"INCR", "t:n"}) + Cmd({"LPUSH", "t:1", "x"}) +
           Cmd({"EXEC"}),
       5);  // LPUSH fails inside EXEC with WRONGTYPE: the others still apply
  c.Do(Cmd({"MULTI"}) + Cmd({"SET", "t:2", "a"}) + Cmd({"NOSUCHCMD"}) + Cmd({"EXEC"}), 4);  // EXECABORT
  c.Do({"SET", "t:w", "0"});
  c.Do({"WATCH", "t:w"});
  other.Do({"SET", "t:w", "changed-by-other"});
  c.Do(Cmd({"MULTI"}) + Cmd({"SET", "t:w", "lost"}) + Cmd({"SET", "t:never", "x"}) + Cmd({"EXEC"}),
       4);  // nil
  c.Do(Cmd({"MULTI"}) + Cmd({"SET", "t:d", "x"}) + Cmd({"DISCARD"}), 3);
  // Scripts.
  c.Do({"EVAL", "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", "2", "lua:a",
        "lua:n", "from-lua"});
  {
    // SCRIPT LOAD is not a write: EVALSHA must reach the replica as EVAL.
    const std::string body = "return redis.call('SET', KEYS[1], ARGV[1])";
    const std::string loaded = c.Do({"SCRIPT", "LOAD", body});  // $40\r\n<sha>\r\n
    const std::string sha = loaded.size() >= 45 ? loaded.substr(5, 40) : "";
    c.Do({"EVALSHA", sha, "1", "lua:sha", "via-evalsha"});
    c.Do({"FUNCTION", "LOAD", "REPLACE",
          "#!lua name=kvftlib\nredis.register_function('kvft_set', function(keys, args) "
          "return redis.call('SET', keys[1], args[1]) end)"});
    c.Do({"FCALL", "kvft_set", "1", "fn:k", "via-fcall"});
  }
  // Databases.
  c.Do({"SELECT", "1"});
  c.Do({"SET", "db1:k", "one"});
  c.Do({"HSET", "db1:h", "f", "v"});
  c.Do({"MOVE", "db1:k", "2"});
  c.Do({"SELECT", "3"});
  c.Do({"SET", "db3:tmp", "x"});
  c.Do({"FLUSHDB"});
  c.Do({"SET", "db3:k", "survives"});
  c.Do({"SWAPDB", "1", "3"});
  c.Do({"SELECT", "0"});
  // Pipelined burst.
  std::string burst;
  for (int i = 0; i < 50; ++i) burst += Cmd({"SET", "p:" + std::to_string(i), std::to_string(i)});
  for (int i = 0; i < 50; ++i) burst += Cmd({"INCR", "p:counter"});
  c.Do(burst, 100);
}

}  // namespace kvf::resp::testing
