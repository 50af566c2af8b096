#!/usr/bin/python3
"""A Redis write workload that drives every write family through a real client
library (Debian's python3-redis), for the round-trip tests: what kvferry
captures and replays must rebuild exactly the dataset this leaves behind.

usage: workload.py --host H --port P [--phase all|concurrent] [--seed N]
  all:         strings, counters, hashes, lists, sets, sorted sets, streams,
               HyperLogLog, bitmaps, geo, expiries, keyspace ops, MULTI/EXEC
               with and without WATCH, Lua, several dbs, server-rejected writes.
  concurrent:  several connections write the *same* keys at once (the case
               the wire cannot order; kvferry must flag those keys).
Prints a one-line summary of what it did.
"""
import argparse
import random
import sys
import threading
import time

import redis


def strings(r, rnd):
    r.set("s:plain", "v1")
    r.set("s:ex", "v", ex=300)
    r.set("s:px", "v", px=250000)
    r.set("s:nx", "first", nx=True)
    r.set("s:nx", "second", nx=True)          # not applied: reply is nil
    r.set("s:xx-missing", "x", xx=True)       # not applied
    r.set("s:plain", "v2", xx=True)
    r.set("s:keepttl", "a", ex=500)
    r.set("s:keepttl", "b", keepttl=True)
    r.execute_command("SET", "s:get", "old")
    r.execute_command("SET", "s:get", "new", "GET")
    r.setnx("s:setnx", "1")
    r.setnx("s:setnx", "2")
    r.mset({"s:m1": "a", "s:m2": "b", "s:m3": "c"})
    r.msetnx({"s:mnx1": "1", "s:mnx2": "2"})
    r.msetnx({"s:mnx2": "x", "s:mnx3": "3"})  # not applied: mnx2 exists
    r.getset("s:getset", "g1")
    r.getset("s:getset", "g2")
    r.set("s:getdel", "gone")
    r.getdel("s:getdel")
    r.set("s:getex", "e")
    r.getex("s:getex", ex=400)
    r.set("s:getex-persist", "p", ex=100)
    r.getex("s:getex-persist", persist=True)
    r.append("s:append", "hello ")
    r.append("s:append", "world")
    r.set("s:range", "Hello World")
    r.setrange("s:range", 6, "Redis")
    r.setex("s:setex", 700, "x")
    r.psetex("s:psetex", 800000, "y")
    r.set("s:binary", bytes(range(256)))
    r.set("s:big", "z" * 100000)              # spans many TCP segments
    r.set("s:empty", "")
    r.set("s:crlf", "line1\r\nline2\r\n$5\r\n*3\r\n")


def counters(r, rnd):
    for _ in range(20):
        r.incr("c:incr")
    r.incrby("c:incrby", 1000)
    r.incrby("c:incrby", -7)
    r.decr("c:decr")
    r.decrby("c:decr", 41)
    r.incrbyfloat("c:float", 3.25)
    r.incrbyfloat("c:float", 1e-3)
    r.set("c:ttl", "10", ex=600)
    r.incr("c:ttl")                           # keeps the TTL
    r.hincrby("h:counters", "a", 5)
    r.hincrby("h:counters", "a", 6)
    r.hincrbyfloat("h:counters", "f", 2.5)
    r.zincrby("z:scores", 3, "m1")
    r.zincrby("z:scores", 1.5, "m1")


def hashes(r, rnd):
    r.hset("h:user", mapping={"name": "ada", "lang": "c", "year": "1843"})
    r.hset("h:user", "lang", "analytical engine")
    r.hsetnx("h:user", "name", "nobody")      # not applied
    r.hsetnx("h:user", "email", "ada@example.org")
    r.hdel("h:user", "year")
    r.execute_command("HMSET", "h:legacy", "a", "1", "b", "2")
    for i in range(200):
        r.hset("h:wide", f"f{i}", i * i)


def lists(r, rnd):
    r.rpush("l:q", *[f"item{i}" for i in range(10)])
    r.lpush("l:q", "head")
    r.lpushx("l:missing", "x")                # not applied
    r.linsert("l:q", "BEFORE", "item5", "inserted")
    r.lset("l:q", 0, "HEAD")
    r.lrem("l:q", 1, "item3")
    r.lpop("l:q")
    r.rpop("l:q", 2)
    r.execute_command("LMPOP", 1, "l:q", "LEFT", "COUNT", 2)
    r.ltrim("l:q", 0, 3)
    r.rpush("l:src", "a", "b", "c")
    r.lmove("l:src", "l:dst", "LEFT", "RIGHT")
    r.rpoplpush("l:src", "l:dst")
    r.blpop(["l:src"], timeout=1)             # data present: pops "c"
    r.blpop(["l:never"], timeout=0.1)         # times out: nil, no write
    r.rpush("l:blmove", "x", "y")
    r.blmove("l:blmove", "l:blmove-dst", 1, "LEFT", "LEFT")


def sets(r, rnd):
    r.sadd("t:a", *[f"m{i}" for i in range(20)])
    r.sadd("t:b", *[f"m{i}" for i in range(10, 30)])
    r.srem("t:a", "m0", "m1", "not-there")
    r.spop("t:a")
    r.spop("t:a", 3)
    r.smove("t:a", "t:moved", "m10")
    r.sinterstore("t:inter", ["t:a", "t:b"])
    r.sunionstore("t:union", ["t:a", "t:b"])
    r.sdiffstore("t:diff", ["t:b", "t:a"])


def zsets(r, rnd):
    r.zadd("z:board", {f"p{i}": i * 1.5 for i in range(30)})
    r.zadd("z:board", {"p1": 100}, xx=True)
    r.zadd("z:board", {"p1": 50}, gt=True)    # not changed
    r.zadd("z:board", {"new": 7}, nx=True)
    r.zrem("z:board", "p2", "p3")
    r.zpopmin("z:board", 2)
    r.zpopmax("z:board")
    r.execute_command("ZMPOP", 1, "z:board", "MIN", "COUNT", 1)
    r.bzpopmin(["z:board"], timeout=1)
    r.zremrangebyscore("z:board", 20, 25)
    r.zadd("z:other", {"p10": 1, "x": 2})
    r.zunionstore("z:union", ["z:board", "z:other"])
    r.zinterstore("z:inter", ["z:board", "z:other"])
    r.execute_command("ZRANGESTORE", "z:top", "z:board", 0, 4)


def streams(r, rnd):
    for i in range(20):
        r.xadd("x:events", {"n": i, "kind": "tick"})
    r.xadd("x:explicit", {"a": 1}, id="1700000000000-1")
    r.xadd("x:explicit", {"a": 2}, id="1700000000000-2")
    for i in range(300):
        r.xadd("x:capped", {"n": i}, maxlen=50, approximate=True)
    r.xtrim("x:events", maxlen=15)
    ids = [e[0] for e in r.xrange("x:events", count=2)]
    r.xdel("x:events", *ids)


def misc_types(r, rnd):
    r.pfadd("hll:a", *[f"u{i}" for i in range(500)])
    r.pfadd("hll:b", *[f"u{i}" for i in range(250, 900)])
    r.pfmerge("hll:merged", "hll:a", "hll:b")
    for bit in (1, 7, 100, 4096):
        r.setbit("bm:flags", bit, 1)
    r.setbit("bm:flags", 7, 0)
    r.set("bm:x", "ab")
    r.bitop("XOR", "bm:xor", "bm:flags", "bm:x")
    r.execute_command("BITFIELD", "bm:field", "SET", "u8", 0, 200, "INCRBY", "u8", 0, 100)
    r.geoadd("g:cities", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"])
    r.execute_command("GEOSEARCHSTORE", "g:near", "g:cities", "FROMLONLAT", 15, 37, "BYRADIUS", 200,
                      "km", "ASC")


def expiries(r, rnd):
    for k in ("e:expire", "e:pexpire", "e:expireat", "e:pexpireat", "e:persist", "e:gone"):
        r.set(k, "v")
    r.expire("e:expire", 900)
    r.pexpire("e:pexpire", 950000)
    r.expireat("e:expireat", int(time.time()) + 1000)
    r.pexpireat("e:pexpireat", int(time.time() * 1000) + 1100000)
    r.expire("e:persist", 100)
    r.persist("e:persist")
    r.expire("e:missing-key", 100)            # reply 0: nothing
    r.execute_command("EXPIRE", "e:expire", 10, "GT")  # not applied (10 < 900)
    r.expire("e:gone", 0)                      # deletes the key


def keyspace(r, rnd):
    r.set("k:del1", "1"); r.set("k:del2", "2"); r.set("k:unlink", "u")
    r.delete("k:del1", "k:del2", "k:never-existed")
    r.unlink("k:unlink")
    r.set("k:old", "renamed-value", ex=1200)
    r.rename("k:old", "k:new")
    r.set("k:rnx", "a"); r.set("k:rnx-taken", "b")
    r.renamenx("k:rnx", "k:rnx-taken")        # not applied
    r.execute_command("COPY", "h:user", "k:user-copy")
    r.set("k:to-db3", "moving")
    r.move("k:to-db3", 3)


def transactions(r, rnd):
    p = r.pipeline(transaction=True)
    p.set("tx:a", "1").incr("tx:counter").hset("tx:h", "f", "v").lpush("tx:l", "x")
    p.execute()
    # A transaction with a command the server rejects at run time (WRONGTYPE):
    # the other commands still apply.
    p = r.pipeline(transaction=True)
    p.set("tx:b", "2").incr("tx:h").set("tx:c", "3")
    try:
        p.execute()
    except redis.ResponseError:
        pass
    # WATCH that succeeds and one that fails (another connection changes the key).
    r.set("tx:watched", "0")
    with r.pipeline() as p:
        p.watch("tx:watched")
        v = int(p.get("tx:watched"))
        p.multi()
        p.set("tx:watched", v + 1)
        p.execute()
    other = redis.Redis(host=r.connection_pool.connection_kwargs["host"],
                        port=r.connection_pool.connection_kwargs["port"])
    with r.pipeline() as p:
        p.watch("tx:watched")
        other.set("tx:watched", "changed-by-other")
        p.multi()
        p.set("tx:watched", "never-applied")
        p.set("tx:never", "never-applied")
        try:
            p.execute()
        except redis.WatchError:
            pass
    other.close()
    # DISCARD
    r.execute_command("MULTI")
    r.execute_command("SET", "tx:discarded", "x")
    r.execute_command("DISCARD")


def scripts(r, rnd):
    r.eval("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", 2,
           "lua:a", "lua:b", "from-lua")
    sha = r.script_load("return redis.call('HSET', KEYS[1], 'f', ARGV[1])")
    r.evalsha(sha, 1, "lua:h", "hashed")
    # Redis 7 functions: the library is server state that must replicate too.
    r.execute_command("FUNCTION", "LOAD", "REPLACE",
                      "#!lua name=kvflib\nredis.register_function('kvf_bump', function(keys, args) "
                      "return redis.call('INCRBY', keys[1], args[1]) end)")
    r.execute_command("FCALL", "kvf_bump", 1, "fn:counter", 5)
    r.execute_command("FCALL", "kvf_bump", 1, "fn:counter", 7)


def rejected(r, rnd):
    r.set("rej:string", "s")
    for cmd in (("LPUSH", "rej:string", "x"), ("HSET", "rej:string", "f", "v"),
                ("INCR", "s:plain"), ("SADD", "h:user", "m")):
        try:
            r.execute_command(*cmd)
        except redis.ResponseError:
            pass


def multi_db(host, port, rnd):
    for db in (1, 2, 5):
        r = redis.Redis(host=host, port=port, db=db)
        r.set("db:marker", f"db{db}")
        r.incr("db:count")
        r.hset("db:h", "db", db)
        r.close()
    # One connection switching dbs with SELECT, pipelined.
    r = redis.Redis(host=host, port=port)
    conn = r.connection_pool.get_connection("SELECT")
    for db in (2, 0, 5, 2):
        conn.send_command("SELECT", db)
        conn.read_response()
        conn.send_command("RPUSH", "db:switch", f"in{db}")
        conn.read_response()
    r.connection_pool.release(conn)
    r.close()


def authenticated(r, rnd):
    # An ACL user whose password crosses the wire in AUTH: kvferry must never
    # let it out of its RESP layer (the round-trip test greps every output).
    r.execute_command("ACL", "SETUSER", "kvfuser", "on", ">kvf-test-password", "~*", "+@all")
    kw = r.connection_pool.connection_kwargs
    u = redis.Redis(host=kw["host"], port=kw["port"], username="kvfuser", password="kvf-test-password")
    u.set("auth:written-by", "kvfuser")
    u.execute_command("AUTH", "kvfuser", "kvf-test-password")
    u.incr("auth:count")
    u.close()


def pipelined_bulk(r, rnd):
    p = r.pipeline(transaction=False)
    for i in range(2000):
        p.set(f"bulk:{i}", "v" * rnd.randint(1, 300))
        if i % 3 == 0:
            p.incr(f"bulkc:{i % 50}")
    p.execute()


def concurrent(host, port, seconds=1.0, workers=4):
    stop = time.time() + seconds
    counts = [0] * workers

    def worker(idx):
        r = redis.Redis(host=host, port=port)
        rnd = random.Random(idx)
        while time.time() < stop:
            k = f"hot:{rnd.randint(0, 9)}"
            if rnd.random() < 0.5:
                r.set(k, f"w{idx}-{counts[idx]}")
            else:
                r.append(k, f"+{idx}")
            counts[idx] += 1
        r.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--phase", default="all", choices=["all", "concurrent"])
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    if a.phase == "concurrent":
        n = concurrent(a.host, a.port)
        print(f"workload: concurrent phase, {n} writes to 10 shared keys from 4 connections")
        return 0
    r = redis.Redis(host=a.host, port=a.port)
    families = [strings, counters, hashes, lists, sets, zsets, streams, misc_types, expiries, keyspace,
                transactions, scripts, rejected, authenticated, pipelined_bulk]
    for f in families:
        f(r, rnd)
    multi_db(a.host, a.port, rnd)
    r.close()
    print(f"workload: {len(families) + 1} families written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
