#!/usr/bin/python3
"""Randomized differential round-trip of `kvferryctl decode` against a real redis-server.

For each seed: an empty source redis-server (port 16700) receives --count random commands over a small
key space (--keys per type, 3 dbs) from one raw-socket connection, or from --connections N at once
writing the same keys (single commands, pipelined batches, MULTI/EXEC/DISCARD/WATCH, RESP2 and RESP3 via
HELLO 3); tcpdump captures the traffic; the capture is
decoded with `kvferryctl decode --format resp|json|stats`; the resp output is piped into an empty replica
(port 16701) with `redis-cli --pipe`; both datasets are snapshotted (type, DEBUG DIGEST-VALUE, absolute
expiry, plus stream metadata) and compared. Every differing key that no needs_readback record covers is
printed with the commands of the run that touched it; exit status 1 if there is any.

usage: differential.py [--seed S] [--runs R] [--count N] [--keys K] [--connections N] [--keep DIR] [--replay FILE]
                       [--only FAMILIES] [--exclude FAMILIES] [--skip CMDS] [--show N] [--ctl PATH]
  --runs R      seeds S, S+1, … S+R-1 (tcpdump restarted and both servers flushed per seed)
  --connections N  N connections at once, --count/N commands each; writes of one key by two of them
                whose replies come close are where the decoder must flag (DESIGN.md decision 3)
  --only/--exclude  comma-separated generator families (see FAMILIES) to narrow a reproduction
  --skip CMDS   comma-separated command names never generated (to mask a known bug)
  --keep DIR    keep pcap/resp/json/log of every run under DIR
  --drop-flagged  flag audit: needs_readback records are not applied (a read-back would repair their
                keys), so any other key they touched shows up as an unflagged difference
  --replay FILE run the commands of FILE (one command per line, shlex-split; `|` separates a pipelined
                batch on one line; a line starting with `noreply ` is not answered, e.g. after CLIENT REPLY OFF;
                `inline RAW` sends RAW as an inline command, Python escapes decoded)
                instead of random ones: for minimal repros.
Needs root (tcpdump) and loopback only. Uses /usr/bin/python3 with python3-redis for the snapshots.
"""
import argparse
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# Sent among the writes of a RESP2 subscriber, which the server refuses:
# they must change nothing.
PUBSUB_REFUSED = [["CLIENT", "REPLY", "OFF"], ["CLIENT", "REPLY", "SKIP"], ["HELLO", "3"], ["MULTI"], ["FLUSHALL"]]
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
import redis_snapshot  # noqa: E402

SRC, DST = 16700, 16701
NDB = 3


# ---------------------------------------------------------------------------- raw RESP client

class Err(bytes):
    def __repr__(self):
        return "ERR(" + bytes.__repr__(self) + ")"


class Simple(bytes):
    def __repr__(self):
        return "+" + self.decode("latin-1")


class Dbl(bytes):
    def __repr__(self):
        return "," + self.decode("latin-1")


def enc(arg):
    if isinstance(arg, bytes):
        return arg
    return str(arg).encode()


def encode(cmd):
    out = [b"*%d\r\n" % len(cmd)]
    for a in cmd:
        b = enc(a)
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Raw:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")
        self.pushes = []

    def close(self):
        self.f.close()
        self.sock.close()

    def send(self, cmds):
        self.sock.sendall(b"".join(encode(c) for c in cmds))

    def read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("server closed the connection")
        t, body = line[:1], line[1:-2]
        if t == b"+":
            return Simple(body)
        if t in (b"-", b"!"):
            if t == b"!":
                body = self.f.read(int(body) + 2)[:-2]
            return Err(body)
        if t in (b":", b"("):
            return int(body)
        if t == b",":
            return Dbl(body)
        if t == b"#":
            return body == b"t"
        if t == b"_":
            return None
        if t in (b"$", b"="):
            n = int(body)
            if n < 0:
                return None
            return self.f.read(n + 2)[:-2]
        if t == b">":  # out-of-band push (RESP3 tracking/pub-sub): not a reply
            self.pushes.append([self.read() for _ in range(int(body))])
            return self.read()
        if t in (b"*", b"~"):
            n = int(body)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        if t == b"%":
            n = int(body)
            return {repr(self.read()): self.read() for _ in range(n)}
        if t == b"|":
            n = int(body)
            for _ in range(2 * n):
                self.read()
            return self.read()
        raise ValueError(f"unexpected reply line {line!r}")

    def call(self, *cmd):
        self.send([cmd])
        return self.read()


# ---------------------------------------------------------------------------- generator

TYPES = ["str", "hash", "list", "set", "zset", "stream", "hll", "bit", "geo"]
SCRIPTS = [
    "redis.call('set', KEYS[1], ARGV[1]) return 1",
    "return redis.call('incrby', KEYS[1], ARGV[1])",
    "redis.call('rpush', KEYS[1], ARGV[1]) return redis.call('llen', KEYS[1])",
    "return redis.call('hincrby', KEYS[1], 'f', 1)",
    "redis.call('sadd', KEYS[1], ARGV[1]) redis.call('sadd', KEYS[2], ARGV[1]) return 2",
    "return redis.call('get', KEYS[1])",
]
PRELOADED = "return redis.call('append', KEYS[1], 'pre')"  # loaded before the capture starts
LIBRARY = ("#!lua name=kvfdiff\n"
           "redis.register_function('kvf_set', function(keys, args) return redis.call('set', keys[1], args[1]) end)\n"
           "redis.register_function('kvf_push', function(keys, args) return redis.call('lpush', keys[1], args[1]) end)\n")
# A library whose function flushes: its FCALLs are database-wide (docs/resp.md, Ambiguity).
WIPE_LIBRARY = ("#!lua name=kvfwipe\n"
                "redis.register_function('kvf_wipe', function(keys, args) return redis.call('flushdb') end)\n")


class Gen:
    def __init__(self, rnd, nkeys, start_ms, ids=None, shas=None, tag=""):
        self.r = rnd
        self.nkeys = nkeys
        self.start_ms = start_ms
        # Shared by the generators of concurrent connections: one's EVALSHA
        # runs what another loaded, one's XDEL names what another added.
        self.ids = {} if ids is None else ids  # stream key -> recent ids (bytes)
        self.shas = [] if shas is None else shas
        # Pub/sub channels of their own: a message another connection
        # published would be read as a reply.
        self.tag = tag

    # -- building blocks
    def key(self, t, collide=0.08):
        r = self.r
        if r.random() < collide:
            t = r.choice(TYPES)
        i = min(r.randrange(self.nkeys), r.randrange(self.nkeys))  # skewed: low indices are hot
        return f"{t}:{i}"

    def keys(self, t, lo=1, hi=3):
        return [self.key(t) for _ in range(self.r.randint(lo, hi))]

    def val(self):
        r = self.r
        x = r.random()
        if x < 0.35:
            return str(r.randint(-20, 100))
        if x < 0.55:
            return r.choice(["a", "b", "hello", "x y", "", "0", "-0", "1.5", "3e2", "010", " 7"])
        if x < 0.75:
            return r.randbytes(r.randint(1, 12))
        if x < 0.9:
            return "line\r\n$3\r\n*1\r\n:" + str(r.randint(0, 9))
        if x < 0.98:
            return "v" * r.randint(20, 300)
        return r.randbytes(r.randint(2000, 40000))

    def member(self):
        r = self.r
        if r.random() < 0.1:
            return r.randbytes(r.randint(1, 4))
        return "m" + str(r.randint(0, 11))

    def score(self):
        return self.r.choice([str(self.r.randint(-5, 5)), "1.5", "-0.25", "0.1", "+inf", "-inf", "1e3",
                              str(self.r.randint(0, 1000)), "3.0000000000000004", "nan"])

    def ttl_s(self):
        r = self.r
        x = r.random()
        if x < 0.05:
            return str(r.choice([-5, 0]))
        return str(r.randint(100, 100000))

    def expiry_opt(self):
        r = self.r
        c = r.randrange(6)
        now = int(time.time())
        if c == 0:
            return ["EX", r.randint(100, 100000)]
        if c == 1:
            return ["PX", r.randint(100000, 10 ** 8)]
        if c == 2:
            return ["EXAT", now + r.randint(100, 100000) if r.random() < 0.9 else now - r.randint(10, 1000)]
        if c == 3:
            return ["PXAT", now * 1000 + r.randint(100000, 10 ** 8) if r.random() < 0.9 else 1 + r.randrange(10 ** 9)]
        if c == 4:
            return ["KEEPTTL"]
        return []

    def stream_id(self, k):
        r = self.r
        ids = self.ids.get(k)
        if ids and r.random() < 0.7:
            return r.choice(ids)
        return f"{r.randint(0, 5)}-{r.randint(0, 3)}"

    # -- families: each returns a list of commands (argument lists)
    def f_string(self):
        r = self.r
        k = self.key("str")
        c = r.randrange(22)
        if c < 5:
            cmd = ["SET", k, self.val()]
            o = r.random()
            if o < 0.2:
                cmd.append("NX")
            elif o < 0.4:
                cmd.append("XX")
            if r.random() < 0.3:
                cmd.append("GET")
            cmd += self.expiry_opt()
            return [cmd]
        if c == 5:
            opt = r.choice([[], ["PERSIST"], ["EX", r.randint(100, 9999)], ["PX", r.randint(10 ** 5, 10 ** 7)],
                            ["EXAT", int(time.time()) + 5000], ["PXAT", int(time.time() * 1000) + 5 * 10 ** 6]])
            return [["GETEX", k] + opt]
        if c == 6:
            return [["GETDEL", k]]
        if c == 7:
            return [["GETSET", k, self.val()]]
        if c == 8:
            return [["SETRANGE", k, r.choice([0, 1, 3, 10, 100]), self.val()]]
        if c == 9:
            return [["APPEND", k, self.val()]]
        if c == 10:
            return [[r.choice(["INCR", "DECR"]), k]]
        if c == 11:
            return [[r.choice(["INCRBY", "DECRBY"]), k, r.randint(-1000, 1000)]]
        if c == 12:
            return [["INCRBYFLOAT", k, r.choice(["0.1", "-1.5", "3", "1e3", "2.5e-3", "10.0000000001"])]]
        if c == 13:
            kv = []
            for kk in self.keys("str", 1, 3):
                kv += [kk, self.val()]
            return [[r.choice(["MSET", "MSETNX"])] + kv]
        if c == 14:
            return [["SETNX", k, self.val()]]
        if c == 15:
            return [["SETEX", k, self.ttl_s(), self.val()]]
        if c == 16:
            return [["PSETEX", k, r.randint(10 ** 5, 10 ** 7), self.val()]]
        if c == 17:
            return [[r.choice(["GET", "STRLEN", "TTL", "TYPE"]), k]]
        if c == 18:
            return [["SET", k, str(r.randint(0, 50))]]
        return [["SET", k, self.val(), "EX", self.ttl_s()]]

    def f_keyspace(self):
        r = self.r
        t = r.choice(TYPES)
        k = self.key(t)
        c = r.randrange(16)
        if c < 2:
            return [[r.choice(["DEL", "UNLINK"])] + self.keys(t, 1, 3)]
        if c < 6:
            cmd = [r.choice(["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]), k]
            s = int(self.ttl_s())
            if cmd[0] == "PEXPIRE":
                s *= 1000
            elif cmd[0] == "EXPIREAT":
                s = int(time.time()) + s if s > 0 else s
            elif cmd[0] == "PEXPIREAT":
                s = int(time.time() * 1000) + s * 1000 if s > 0 else s
            cmd.append(s)
            if r.random() < 0.4:
                cmd.append(r.choice(["NX", "XX", "GT", "LT"]))
            return [cmd]
        if c == 6:
            return [["PERSIST", k]]
        if c == 7:
            return [[r.choice(["RENAME", "RENAMENX"]), k, self.key(t)]]
        if c == 8:
            cmd = ["COPY", k, self.key(t)]
            if r.random() < 0.4 and "COPYDB" not in self.skip:
                cmd += ["DB", r.randrange(NDB)]
            if r.random() < 0.5:
                cmd.append("REPLACE")
            return [cmd]
        if c == 9:
            return [["MOVE", k, r.randrange(NDB)]]
        if c == 10:
            if r.random() < 0.15:
                return [["SWAPDB", r.randrange(NDB), r.randrange(NDB)]]
            return [["EXISTS", k]]
        if c == 11:
            if r.random() < 0.02:
                return [["FLUSHDB"]]
            return [["TYPE", k]]
        if c == 12:
            return [["SELECT", r.randrange(NDB)]]
        if c == 13:
            return [["PTTL", k]]
        return [["SELECT", r.randrange(NDB)]]

    def f_hash(self):
        r = self.r
        k = self.key("hash")
        c = r.randrange(9)
        if c < 3:
            cmd = [r.choice(["HSET", "HSET", "HMSET"]), k]
            for _ in range(r.randint(1, 3)):
                cmd += [self.member(), self.val()]
            return [cmd]
        if c == 3:
            return [["HSETNX", k, self.member(), self.val()]]
        if c == 4:
            return [["HDEL", k] + [self.member() for _ in range(r.randint(1, 3))]]
        if c == 5:
            return [["HINCRBY", k, self.member(), r.randint(-100, 100)]]
        if c == 6:
            return [["HINCRBYFLOAT", k, self.member(), r.choice(["0.1", "-2.5", "7", "1e2"])]]
        return [[r.choice(["HGETALL", "HLEN"]), k]]

    def f_list(self):
        r = self.r
        k = self.key("list")
        c = r.randrange(24)
        if c < 5:
            return [[r.choice(["LPUSH", "RPUSH", "LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), k] +
                    [self.member() for _ in range(r.randint(1, 4))]]
        if c < 7:
            cmd = [r.choice(["LPOP", "RPOP"]), k]
            if r.random() < 0.5:
                cmd.append(r.randint(0, 4))
            return [cmd]
        if c == 7:
            return [["LINSERT", k, r.choice(["BEFORE", "AFTER"]), self.member(), self.member()]]
        if c == 8:
            return [["LSET", k, r.randint(-3, 3), self.member()]]
        if c == 9:
            return [["LREM", k, r.randint(-2, 2), self.member()]]
        if c == 10:
            return [["LTRIM", k, r.randint(-3, 2), r.randint(-3, 5)]]
        if c == 11:
            return [["LMOVE", k, self.key("list"), r.choice(["LEFT", "RIGHT"]), r.choice(["LEFT", "RIGHT"])]]
        if c == 12:
            return [["RPOPLPUSH", k, self.key("list")]]
        if c == 13:
            ks = self.keys("list", 1, 3)
            cmd = ["LMPOP", len(ks)] + ks + [r.choice(["LEFT", "RIGHT"])]
            if r.random() < 0.5:
                cmd += ["COUNT", r.randint(1, 4)]
            return [cmd]
        if c == 14:
            return [[r.choice(["BLPOP", "BRPOP"])] + self.keys("list", 1, 3) + ["0.01"]]
        if c == 15:
            return [["BLMOVE", k, self.key("list"), r.choice(["LEFT", "RIGHT"]), r.choice(["LEFT", "RIGHT"]), "0.01"]]
        if c == 16:
            ks = self.keys("list", 1, 3)
            cmd = ["BLMPOP", "0.01", len(ks)] + ks + [r.choice(["LEFT", "RIGHT"])]
            if r.random() < 0.5:
                cmd += ["COUNT", r.randint(1, 4)]
            return [cmd]
        if c == 17:
            return [["BRPOPLPUSH", k, self.key("list"), "0.01"]]
        return [["LRANGE", k, 0, -1]]

    def f_set(self):
        r = self.r
        k = self.key("set")
        c = r.randrange(12)
        if c < 4:
            return [["SADD", k] + [self.member() for _ in range(r.randint(1, 4))]]
        if c == 4:
            return [["SREM", k] + [self.member() for _ in range(r.randint(1, 3))]]
        if c == 5:
            cmd = ["SPOP", k]
            if r.random() < 0.5:
                cmd.append(r.randint(0, 3))
            return [cmd]
        if c == 6:
            return [["SMOVE", k, self.key("set"), self.member()]]
        if c == 7:
            return [[r.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), self.key("set")] + self.keys("set", 1, 3)]
        return [[r.choice(["SMEMBERS", "SCARD"]), k]]

    def f_zset(self):
        r = self.r
        k = self.key("zset")
        c = r.randrange(20)
        if c < 5:
            cmd = ["ZADD", k]
            if r.random() < 0.3:
                cmd.append(r.choice(["NX", "XX"]))
            if r.random() < 0.3:
                cmd.append(r.choice(["GT", "LT"]))
            if r.random() < 0.3:
                cmd.append("CH")
            if r.random() < 0.2:
                cmd += ["INCR", self.score(), self.member()]
            else:
                for _ in range(r.randint(1, 3)):
                    cmd += [self.score(), self.member()]
            return [cmd]
        if c == 5:
            return [["ZINCRBY", k, self.score(), self.member()]]
        if c == 6:
            return [["ZREM", k] + [self.member() for _ in range(r.randint(1, 3))]]
        if c == 7:
            cmd = [r.choice(["ZPOPMIN", "ZPOPMAX"]), k]
            if r.random() < 0.5:
                cmd.append(r.randint(0, 3))
            return [cmd]
        if c == 8:
            return [[r.choice(["BZPOPMIN", "BZPOPMAX"])] + self.keys("zset", 1, 3) + ["0.01"]]
        if c == 9:
            ks = self.keys("zset", 1, 3)
            blocking = r.random() < 0.4
            cmd = (["BZMPOP", "0.01"] if blocking else ["ZMPOP"]) + [len(ks)] + ks + [r.choice(["MIN", "MAX"])]
            if r.random() < 0.5:
                cmd += ["COUNT", r.randint(1, 4)]
            return [cmd]
        if c == 10:
            return [["ZREMRANGEBYSCORE", k, r.choice(["-inf", "0", "(1"]), r.choice(["+inf", "2", "(3"])]]
        if c == 11:
            return [["ZREMRANGEBYRANK", k, r.randint(-2, 1), r.randint(-1, 2)]]
        if c == 12:
            return [["ZREMRANGEBYLEX", k, r.choice(["-", "[m1", "(m3"]), r.choice(["+", "[m5", "(m9"])]]
        if c == 13:
            return [["ZRANGESTORE", self.key("zset"), k, 0, r.randint(-1, 3)]]
        if c == 14:
            ks = self.keys("zset", 1, 3)
            cmd = [r.choice(["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]), self.key("zset"), len(ks)] + ks
            if cmd[0] != "ZDIFFSTORE" and r.random() < 0.3:
                cmd += ["WEIGHTS"] + [r.choice([1, 2, "0.5", -1]) for _ in ks]
            if cmd[0] != "ZDIFFSTORE" and r.random() < 0.3:
                cmd += ["AGGREGATE", r.choice(["SUM", "MIN", "MAX"])]
            return [cmd]
        return [["ZRANGE", k, 0, -1, "WITHSCORES"]]

    def f_stream(self):
        r = self.r
        k = self.key("stream")
        c = r.randrange(18)
        if c < 6:
            cmd = ["XADD", k]
            if r.random() < 0.15:
                cmd.append("NOMKSTREAM")
            if r.random() < 0.25:
                cmd.append(r.choice(["MAXLEN", "MINID"]))
                cmd.append(r.choice(["=", "~", None]))
                cmd.append(r.randint(0, 6) if cmd[-2] == "MAXLEN" else self.stream_id(k))
                cmd = [a for a in cmd if a is not None]
            x = r.random()
            cmd.append("*" if x < 0.7 else (f"{r.randint(0, 5)}-*" if x < 0.8 else self.stream_id(k)))
            for _ in range(r.randint(1, 2)):
                cmd += [self.member(), self.val()]
            return [cmd]
        if c == 6:
            return [["XDEL", k] + [self.stream_id(k) for _ in range(r.randint(1, 2))]]
        if c == 7:
            cmd = ["XTRIM", k, r.choice(["MAXLEN", "MINID"]), r.choice(["=", "~"])]
            cmd.append(r.randint(0, 5) if cmd[2] == "MAXLEN" else self.stream_id(k))
            return [cmd]
        if c == 8:
            cmd = ["XGROUP", "CREATE", k, r.choice(["g1", "g2"]), r.choice(["$", "0"])]
            if r.random() < 0.5:
                cmd.append("MKSTREAM")
            return [cmd]
        if c == 9:
            sub = r.choice(["SETID", "DESTROY", "CREATECONSUMER", "DELCONSUMER"])
            g = r.choice(["g1", "g2"])
            if sub == "SETID":
                return [["XGROUP", "SETID", k, g, r.choice(["$", "0", self.stream_id(k)])]]
            if sub == "DESTROY":
                return [["XGROUP", "DESTROY", k, g]]
            return [["XGROUP", sub, k, g, r.choice(["c1", "c2"])]]
        if c < 12:
            cmd = ["XREADGROUP", "GROUP", r.choice(["g1", "g2"]), r.choice(["c1", "c2"]), "COUNT", r.randint(1, 3)]
            if r.random() < 0.2:
                cmd.append("NOACK")
            if r.random() < 0.3:
                return [cmd + ["STREAMS", k, self.key("stream"), ">", r.choice([">", "0"])]]
            return [cmd + ["STREAMS", k, r.choice([">", ">", "0"])]]
        if c == 12:
            return [["XACK", k, r.choice(["g1", "g2"])] + [self.stream_id(k) for _ in range(r.randint(1, 2))]]
        if c == 13:
            return [["XCLAIM", k, r.choice(["g1", "g2"]), r.choice(["c1", "c2"]), 0, self.stream_id(k)]]
        if c == 14:
            return [["XAUTOCLAIM", k, r.choice(["g1", "g2"]), r.choice(["c1", "c2"]), 0, "0-0", "COUNT", 2]]
        if c == 15:
            ids = self.ids.get(k)
            top = ids[-1].decode() if ids else "0-1"
            ms, seq = top.split("-")
            return [["XSETID", k, f"{int(ms) + r.randint(0, 2)}-{seq}"]]
        return [[r.choice(["XLEN", "XRANGE"]), k] + (["-", "+"] if r.random() < 0.5 else [])]

    def f_misc(self):
        r = self.r
        c = r.randrange(12)
        if c == 0:
            return [["PFADD", self.key("hll")] + [self.member() for _ in range(r.randint(0, 4))]]
        if c == 1:
            return [["PFMERGE", self.key("hll")] + self.keys("hll", 0, 2)]
        if c == 2:
            return [["PFCOUNT"] + self.keys("hll", 1, 2)]
        if c == 3:
            return [["SETBIT", self.key("bit"), r.randint(0, 100), r.randint(0, 1)]]
        if c == 4:
            op = r.choice(["AND", "OR", "XOR", "NOT"])
            return [["BITOP", op, self.key("bit")] + self.keys("bit", 1, 1 if op == "NOT" else 3)]
        if c == 5:
            k = self.key("bit")
            cmd = ["BITFIELD", k]
            for _ in range(r.randint(1, 3)):
                x = r.randrange(4)
                if x == 0:
                    cmd += ["SET", r.choice(["u8", "i5", "u1"]), r.choice(["#1", "3", "0"]), r.randint(-50, 300)]
                elif x == 1:
                    cmd += ["INCRBY", r.choice(["u8", "i5", "u2"]), r.choice(["#0", "5", "0"]), r.randint(-50, 300)]
                elif x == 2:
                    cmd += ["OVERFLOW", r.choice(["SAT", "WRAP", "FAIL"])]
                else:
                    cmd += ["GET", "u4", "0"]
            return [cmd]
        if c == 6:
            cmd = ["GEOADD", self.key("geo")]
            if r.random() < 0.3:
                cmd.append(r.choice(["NX", "XX"]))
            if r.random() < 0.2:
                cmd.append("CH")
            for _ in range(r.randint(1, 2)):
                cmd += [f"{r.uniform(-10, 10):.5f}", f"{r.uniform(40, 50):.5f}", self.member()]
            return [cmd]
        if c == 7:
            cmd = ["GEOSEARCHSTORE", self.key("geo"), self.key("geo"), "FROMLONLAT", 0, 45, "BYRADIUS",
                   r.choice([100, 500, 2000]), "km"]
            if r.random() < 0.4:
                cmd.append("STOREDIST")
            return [cmd]
        if c == 8:
            src = self.key(r.choice(["list", "set", "zset"]))
            cmd = ["SORT", src]
            if r.random() < 0.7:
                cmd.append("ALPHA")
            if r.random() < 0.3:
                cmd += ["LIMIT", 0, 3]
            return [cmd + ["STORE", self.key(r.choice(["list", "str"]))]]
        if c == 9:
            store = [r.choice(["STORE", "STOREDIST"]), self.key("geo")]
            if r.random() < 0.5:
                return [["GEORADIUS", self.key("geo"), 0, 45, r.choice([100, 2000]), "km"] + store]
            return [["GEORADIUSBYMEMBER", self.key("geo"), self.member(), 2000, "km"] + store]
        if c == 10:
            src = self.key(r.choice(["list", "set", "zset"]))
            cmd = ["SORT", src, "BY", r.choice(["nosort", "str:*", "hash:*->m1"])]
            if r.random() < 0.5:
                cmd += ["GET", "#", "GET", r.choice(["str:*", "hash:*->m2"])]
            return [cmd + ["ALPHA", "STORE", self.key("list")]]
        return [["BITCOUNT", self.key("bit")]]

    def f_script(self):
        r = self.r
        c = r.randrange(8)
        k1, k2 = self.key(r.choice(["str", "list", "hash", "set"])), self.key("set")
        if c < 3:
            body = r.choice([b for b in SCRIPTS if "KEYS[2]" not in b or "PARTIALSCRIPT" not in self.skip])
            return [["EVAL", body, 2, k1, k2, r.randint(1, 9)]]
        if c == 3:
            return [["SCRIPT", "LOAD", r.choice([b for b in SCRIPTS if "KEYS[2]" not in b or "PARTIALSCRIPT" not in self.skip])]]
        if c == 4 and self.shas:
            sha = r.choice(self.shas)
            return [["EVALSHA", sha.upper() if r.random() < 0.2 else sha, 2, k1, k2, r.randint(1, 9)]]
        if c == 5:
            return [["EVALSHA", self.pre_sha, 1, self.key("str")]]
        if c == 6:
            lib = LIBRARY if r.random() < 0.8 else WIPE_LIBRARY
            return [["FUNCTION", "LOAD", "REPLACE", lib]] if r.random() < 0.3 else [["FUNCTION", "LOAD", lib]]
        if c == 7 and r.random() < 0.1:
            # Database-wide, with keys or without: ordered against the writes
            # of other connections as a FLUSHDB is (docs/resp.md, Ambiguity).
            x = r.random()
            if x < 0.35:
                return [["EVAL", "return redis.call('FLUSHDB')", 0]]
            if x < 0.7:
                return [["FCALL", "kvf_wipe", 0]]
            return [["EVAL", "redis.call('flushdb') return redis.call('set', KEYS[1], ARGV[1])", 1, k1, self.member()]]
        return [["FCALL", r.choice(["kvf_set", "kvf_push"]), 1, self.key(r.choice(["str", "list"])), self.member()]]

    FAMILIES = {"string": 20, "keyspace": 8, "hash": 8, "list": 14, "set": 7, "zset": 12, "stream": 9,
                "misc": 6, "script": 3}

    skip = set()

    def one(self, fams):
        r = self.r
        names = [f for f in self.FAMILIES if f in fams]
        while True:
            f = r.choices(names, weights=[self.FAMILIES[n] for n in names])[0]
            cmds = getattr(self, "f_" + f)()
            if not any(enc(c[0]).upper().decode() in self.skip for c in cmds):
                return cmds

    def item(self, fams):
        """One unit of traffic: (mode, commands).
        mode: single | pipe | multi | multi-pipe | inline | skip | off | pubsub (see drive())"""
        mode, cmds = self._item(fams)
        r = self.r
        for i, c in enumerate(cmds):
            if r.random() < 0.1:  # command names and keywords are case-insensitive
                c = list(c)
                c[0] = r.choice([str.lower, str.title, lambda x: x[0].lower() + x[1:]])(c[0])
                for j in range(1, len(c)):
                    if isinstance(c[j], str) and c[j].isalpha() and c[j].isupper() and r.random() < 0.5:
                        c[j] = c[j].lower()
                cmds[i] = c
        return mode, cmds

    def _item(self, fams):
        r = self.r
        x = r.random()
        if x < 0.06:
            cmds = []
            big = r.random() < 0.08 and "BIGPIPE" not in self.skip
            for _ in range(r.randint(100, 400) if big else r.randint(2, 12)):
                cmds += self.one(fams)
            return "pipe", cmds
        if x < 0.10:
            cmds = []
            if r.random() < 0.35:
                wk = self.key(r.choice(TYPES))
                cmds.append(["WATCH", wk])
                if r.random() < 0.5:
                    cmds.append(["SET", wk, "touched"] if wk.startswith("str") else ["DEL", wk])
            cmds.append(["MULTI"])
            for _ in range(r.randint(1, 5)):
                cmds += self.one(fams)
            if r.random() < 0.05:
                cmds.append(["SET", "str:0"])  # wrong arity: EXECABORT
            if r.random() < 0.05:
                cmds.append(["SELECT", 99])  # queued, fails at EXEC
            cmds.append(["DISCARD"] if r.random() < 0.1 else ["EXEC"])
            return ("multi-pipe" if r.random() < 0.5 else "multi"), cmds
        if x < 0.11:
            return "single", [["HELLO", r.choice([2, 3, 3])]]
        if x < 0.13 and "INLINE" not in self.skip:
            cmds = self.one(fams)
            if len(cmds) == 1 and all(len(enc(a)) < 2000 for a in cmds[0]):
                return "inline", cmds
            return "single", cmds
        if x < 0.135 and "NOREPLY" not in self.skip:
            return "skip", [["CLIENT", "REPLY", "SKIP"]] + self.one(fams)[:1]
        if x < 0.145 and "NOREPLY" not in self.skip:
            cmds = [["CLIENT", "REPLY", "OFF"]]
            tx = r.random() < 0.3 and "NOREPLYTX" not in self.skip
            if tx:
                cmds.append(["MULTI"])
            for _ in range(r.randint(1, 3)):
                cmds += self.one(fams)[:1]
                if r.random() < 0.2 and "NOREPLYSELECT" not in self.skip:
                    cmds.append(["SELECT", r.choice([0, 1, 2, 99])])
            if tx:
                cmds.append([r.choice(["EXEC", "EXEC", "DISCARD"])])
            return "off", cmds + [["CLIENT", "REPLY", "ON"]]
        if 0.90 < x < 0.915 and "PUBSUB" not in self.skip:
            # RESP2 pub/sub: writes sent while subscribed (refused), then an
            # UNSUBSCRIBE down to nothing and writes that run (see drive()).
            refused = [c for _ in range(r.randint(0, 2)) for c in self.one(fams)]
            if r.random() < 0.5:
                # Commands that change how later replies come, refused too
                # while subscribed: they must change nothing.
                ctl = r.choice(PUBSUB_REFUSED)
                refused.insert(r.randint(0, len(refused)), ctl)
            run = [c for _ in range(r.randint(1, 3)) for c in self.one(fams)]
            self.pubsub_split = len(refused)
            return "pubsub", refused + run
        if x < 0.147:
            return "single", [["RESET"]]
        if x < 0.14705:
            return "single", [["FLUSHALL"]]
        if x < 0.149:
            return "single", [["SELECT", r.choice([99, -1, "x"])]]
        return "single", self.one(fams)

    def inline(self, cmd):
        r = self.r
        parts = []
        for a in cmd:
            b = enc(a)
            x = r.random()
            if b and all(33 <= c < 127 and c not in b"\"'\\" for c in b) and x < 0.7:
                parts.append(b)
            elif b and all(32 <= c < 127 for c in b) and b"'" not in b and b"\\" not in b and x < 0.85:
                parts.append(b"'" + b + b"'")
            else:
                q = []
                for c in b:
                    if c in b'"\\':
                        q.append(b"\\" + bytes([c]))
                    elif 32 <= c < 127:
                        q.append(bytes([c]))
                    else:
                        q.append(b"\\x%02x" % c if r.random() < 0.5 else b"\\x%02X" % c)
                parts.append(b'"' + b"".join(q) + b'"')
        return r.choice([b" ", b"  ", b"\t"]).join(parts) + r.choice([b"\r\n", b"\n"])


# ---------------------------------------------------------------------------- processes

def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Lab:
    def __init__(self, tmp):
        self.tmp = tmp
        self.tcpdump = None

    def start_servers(self):
        for port in (SRC, DST):
            sh(["nice", "-n", "5", "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--enable-debug-command", "yes", "--daemonize", "yes",
                "--pidfile", f"{self.tmp}/redis-{port}.pid", "--logfile", f"{self.tmp}/redis-{port}.log",
                "--dir", self.tmp])
        for port in (SRC, DST):
            for _ in range(100):
                try:
                    Raw(port).close()
                    break
                except OSError:
                    time.sleep(0.05)

    def reset(self):
        for port in (SRC, DST):
            c = Raw(port)
            for cmd in (["FLUSHALL"], ["SCRIPT", "FLUSH"], ["FUNCTION", "FLUSH"]):
                c.call(*cmd)
            c.close()

    def start_tcpdump(self, pcap):
        self.tcpdump = subprocess.Popen(["tcpdump", "--immediate-mode", "-B", "131072", "-i", "lo", "-s", "70000",
                                         "-U", "-n", "-w", pcap,
                                         f"tcp port {SRC}"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        line = self.tcpdump.stderr.readline().decode()
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line}")

    def stop_tcpdump(self, pcap=None):
        if self.tcpdump is None:
            return ""
        # Until the file stops growing (at most 10 s): on a loaded machine
        # tcpdump may still be draining its buffer, and what it holds at the
        # SIGINT is lost without being counted as dropped (a review's sweep
        # saw a capture end 880 requests short, no drop reported).
        time.sleep(0.5)
        if pcap is not None:
            last, still = -1, 0
            for _ in range(100):
                size = os.path.getsize(pcap) if os.path.exists(pcap) else 0
                still = still + 1 if size == last else 0
                if still >= 3:
                    break
                last = size
                time.sleep(0.1)
        self.tcpdump.send_signal(signal.SIGINT)
        err = self.tcpdump.stderr.read().decode()
        self.tcpdump.wait()
        self.tcpdump = None
        return err

    def stop(self):
        if self.tcpdump is not None:
            self.tcpdump.kill()
            self.tcpdump.wait()
            self.tcpdump = None
        for port in (SRC, DST):
            pidf = f"{self.tmp}/redis-{port}.pid"
            try:
                pid = int(open(pidf).read())
            except (OSError, ValueError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                except ProcessLookupError:
                    break


# ---------------------------------------------------------------------------- run

def short(x, n=160):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "…"


def fmt_cmd(cmd):
    out = []
    for a in cmd:
        b = enc(a)
        try:
            s = b.decode()
            if len(s) > 60:
                s = s[:60] + f"…({len(s)}B)"
            out.append(shlex.quote(s) if s and all(ch.isprintable() for ch in s) else repr(b[:60]))
        except UnicodeDecodeError:
            out.append(repr(b[:40]) + (f"…({len(b)}B)" if len(b) > 40 else ""))
    return " ".join(out)


class ConnLog(list):
    """The commands of one connection: append((db, proto, cmd, reply)) keeps
    (time answered, connection, db, proto, cmd, reply)."""

    def __init__(self, conn_id):
        super().__init__()
        self.conn_id = conn_id

    def append(self, entry):
        super().append((time.monotonic(), self.conn_id) + tuple(entry))


def fmt_entry(entry):
    _, conn, db, proto, cmd, rep = entry
    who = "" if conn is None else f"c{conn} "
    return f"[{who}db{db} resp{proto}] {fmt_cmd(cmd)}  -> {short(rep)}"


def drive(conn, gen, count, fams, log, script_lines=None):
    """Send `count` commands; append (db, proto, cmd, reply) to log."""
    state = {"db": 0, "proto": 2, "multi": False, "queue": []}

    def note(cmd, reply):
        log.append((state["db"], state["proto"], cmd, reply))
        if cmd[0] == "(inline)":
            cmd = cmd[1:]
        name = enc(cmd[0]).upper()
        if name == b"XADD" and type(reply) is bytes:
            gen.ids.setdefault(enc(cmd[1]).decode(), []).append(bytes(reply))
            gen.ids[enc(cmd[1]).decode()] = gen.ids[enc(cmd[1]).decode()][-8:]
        if name == b"SCRIPT" and type(reply) is bytes:
            if bytes(reply) not in gen.shas:
                gen.shas.append(bytes(reply))
        if name == b"HELLO" and isinstance(reply, (list, dict)) and len(cmd) > 1:
            state["proto"] = int(cmd[1])  # a bare HELLO keeps the protocol
        if name == b"RESET" and reply == b"RESET":
            state.update(db=0, proto=2, multi=False, queue=[])
            return
        if name == b"MULTI" and reply == b"OK":
            state["multi"], state["queue"] = True, []
            return
        if state["multi"] and name not in (b"EXEC", b"DISCARD", b"MULTI", b"WATCH"):
            state["queue"].append(cmd)
            return
        if name in (b"EXEC", b"DISCARD"):
            q = state["queue"]
            state["multi"], state["queue"] = False, []
            if name == b"EXEC" and isinstance(reply, list):
                for c, rep in zip(q, reply):
                    log.append((state["db"], state["proto"], ["  (exec)"] + list(c), rep))
                    if enc(c[0]).upper() == b"SELECT" and rep == b"OK":
                        state["db"] = int(c[1])
            return
        if name == b"SELECT" and reply == b"OK":
            state["db"] = int(cmd[1])

    sent = 0
    publisher = None
    if script_lines is not None:
        for line in script_lines:
            if line.startswith("inline "):  # raw inline command: Python escapes (\\t, \\x0b, …) decoded
                raw = line[len("inline "):].encode("latin-1").decode("unicode_escape").encode("latin-1")
                conn.sock.sendall(raw + b"\r\n")
                if raw.strip():  # a blank line is skipped by the server: no reply
                    note(["(inline)", raw], conn.read())
                sent += 1
                continue
            silent = line.startswith("noreply ")  # the server will not answer (CLIENT REPLY OFF|SKIP)
            if silent:
                line = line[len("noreply "):]
            batch = [shlex.split(part) for part in line.split(" | ")]
            conn.send(batch)
            for cmd in batch:
                if silent:
                    log.append((state["db"], state["proto"], cmd, "(no reply)"))
                else:
                    note(cmd, conn.read())
            sent += len(batch)
        return sent
    while sent < count:
        mode, cmds = gen.item(fams)
        if mode == "inline":
            conn.sock.sendall(gen.inline(cmds[0]))
            note(["(inline)"] + list(cmds[0]), conn.read())
            sent += 1
            continue
        if mode in ("skip", "off"):
            # CLIENT REPLY SKIP|OFF: the server answers nothing until CLIENT REPLY ON.
            conn.send(cmds)
            for cmd in cmds[:-1]:
                log.append((state["db"], state["proto"], cmd, "(no reply)"))
                if enc(cmd[0]).upper() == b"SELECT":
                    state["db"] = None  # unknown: the reply is suppressed
            if mode == "off":
                note(cmds[-1], conn.read())
            else:
                log.append((state["db"], state["proto"], cmds[-1], "(no reply)"))
            if state["db"] is None:
                conn.send([["SELECT", 0]])
                state["db"] = 0
                note(["SELECT", 0], conn.read())
                sent += 1
            sent += len(cmds)
            continue
        if mode == "pubsub" and state["proto"] == 2:
            # SUBSCRIBE two channels (and a pattern), messages published by
            # another connection, then one pipeline: writes (refused while
            # subscribed), PING, a bare UNSUBSCRIBE (one reply per channel),
            # PUNSUBSCRIBE, and writes that run once nothing is subscribed.
            split = gen.pubsub_split
            psub = gen.r.random() < 0.5
            ch1, ch2, pat = (f"kvf{gen.tag}ch1", f"kvf{gen.tag}ch2", f"kvf{gen.tag}p*")
            subs = [["SUBSCRIBE", ch1, ch2]] + ([["PSUBSCRIBE", pat]] if psub else [])
            conn.send(subs)
            for _ in range(2 + psub):
                log.append((state["db"], state["proto"], ["(subscribed)"], conn.read()))
            npub = gen.r.randint(0, 3)
            if npub and publisher is None:
                publisher = Raw(SRC)
            for i in range(npub):
                publisher.call("PUBLISH", ch1, f"m{i}")
            for _ in range(npub):
                log.append((state["db"], state["proto"], ["(message)"], conn.read()))
            unsub = [["PING"], ["UNSUBSCRIBE"]] + ([["PUNSUBSCRIBE"]] if psub else [])
            conn.send(cmds[:split] + unsub + cmds[split:])
            for cmd in cmds[:split] + unsub:
                # A bare UNSUBSCRIBE answers once per channel: twice.
                for _ in range(2 if cmd == ["UNSUBSCRIBE"] else 1):
                    log.append((state["db"], state["proto"], cmd, conn.read()))
            for cmd in cmds[split:]:
                note(cmd, conn.read())
            sent += len(subs) + len(cmds) + len(unsub) + npub
            continue
        if mode == "pubsub":
            # RESP3: nothing is refused (nor subscribed); the control
            # commands meant to be refused would run.
            cmds = [c for c in cmds if [str(x).upper() for x in c] not in PUBSUB_REFUSED]
        if mode in ("pipe", "multi-pipe", "pubsub"):
            conn.send(cmds)
            for cmd in cmds:
                note(cmd, conn.read())
        else:
            for cmd in cmds:
                conn.send([cmd])
                note(cmd, conn.read())
        sent += len(cmds)
    if publisher is not None:
        publisher.close()
    return sent


def parse_requests(buf):
    i = 0
    while i < len(buf):
        assert buf[i:i + 1] == b"*", buf[i:i + 20]
        j = buf.index(b"\r\n", i)
        n = int(buf[i + 1:j])
        i = j + 2
        cmd = []
        for _ in range(n):
            j = buf.index(b"\r\n", i)
            ln = int(buf[i + 1:j])
            cmd.append(buf[j + 2:j + 2 + ln])
            i = j + 2 + ln + 2
        yield cmd


def drop_flagged(resp_bytes, records):
    """The resp stream without the commands of needs_readback records (key-less database records are
    kept): their keys are to be read back, so nothing else may depend on them (a flag audit)."""
    cmds = list(parse_requests(resp_bytes))
    out, i, db = [], 0, 0
    for rec in records:
        if rec["op"] == "readback" or not rec["args"]:
            continue
        if not (rec["op"] == "database" and rec["args"][0].upper() == "FLUSHALL") and rec["db"] != db:
            assert cmds[i][0] == b"SELECT", cmds[i]
            out.append(cmds[i])
            i += 1
            db = rec["db"]
        assert cmds[i][0].decode("latin-1").upper() == rec["args"][0].upper(), (cmds[i][:2], rec["args"][:2])
        if "needs_readback" not in rec["flags"] or rec["op"] == "database":
            out.append(cmds[i])
        i += 1
    assert i == len(cmds)
    return b"".join(encode(c) for c in out)


def stream_meta(port):
    import redis
    out = {}
    for db in range(NDB):
        r = redis.Redis(port=port, db=db)
        for key in r.scan_iter(count=1000, _type="stream"):
            info = r.execute_command("XINFO", "STREAM", key)
            info = dict(zip(info[0::2], info[1::2]))
            meta = {k.decode(): (v.decode() if isinstance(v, bytes) else v) for k, v in info.items()
                    if k in (b"last-generated-id", b"max-deleted-entry-id", b"entries-added", b"length",
                             b"recorded-first-entry-id")}
            groups = []
            for g in r.execute_command("XINFO", "GROUPS", key):
                g = dict(zip(g[0::2], g[1::2]))
                groups.append({k.decode(): (v.decode() if isinstance(v, bytes) else v) for k, v in g.items()
                               if k in (b"name", b"consumers", b"pending", b"last-delivered-id", b"entries-read")})
            meta["groups"] = sorted(groups, key=lambda g: g["name"])
            out[f"{db} {key.decode('latin-1')}"] = meta
        r.close()
    return out


def run_one(lab, a, seed, workdir):
    rnd = random.Random(seed)
    lab.reset()
    pre = Raw(SRC)
    pre_sha = pre.call("SCRIPT", "LOAD", PRELOADED).decode()  # before the capture: EVALSHA unknown
    pre.close()
    pcap = f"{workdir}/run.pcap"
    lab.start_tcpdump(pcap)
    fams = set(Gen.FAMILIES)
    if a.only:
        fams = set(a.only.split(","))
    if a.exclude:
        fams -= set(a.exclude.split(","))
    script_lines = None
    if a.replay:
        script_lines = [ln.rstrip("\n") for ln in open(a.replay) if ln.strip() and not ln.startswith("#")]
    # One generator per connection: the first draws from the seed's own
    # stream (a one-connection run is what it always was), the others from
    # streams of their own; all over the same keys.
    gens, shas, ids = [], [], {}
    for i in range(a.connections):
        g = Gen(rnd if i == 0 else random.Random(seed * 7919 + i), a.keys, int(time.time() * 1000), ids, shas,
                tag="" if i == 0 else str(i))
        g.pre_sha = pre_sha
        g.skip = set(a.skip.upper().split(",")) if a.skip else set()
        gens.append(g)
    logs = [ConnLog(i if a.connections > 1 else None) for i in range(a.connections)]
    conns = [Raw(SRC) for _ in range(a.connections)]
    sent_by = [0] * a.connections
    failed = []
    start = threading.Barrier(a.connections)

    def one_connection(i):
        try:
            start.wait()
            sent_by[i] = drive(conns[i], gens[i], a.count // a.connections, fams, logs[i], script_lines)
        except Exception as e:  # noqa: BLE001 (reported below, after the others finish)
            failed.append(f"connection {i}: {e!r}")
            start.abort()

    t0 = time.time()
    if a.connections == 1:
        one_connection(0)
    else:
        threads = [threading.Thread(target=one_connection, args=(i,)) for i in range(a.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for c in conns:
        c.close()
    if failed:
        lab.stop_tcpdump()
        raise RuntimeError("; ".join(failed))
    sent = sum(sent_by)
    # Every connection's commands in the order they were answered (across
    # connections only as near as the client's clock tells).
    log = sorted((e for lg in logs for e in lg), key=lambda e: e[0])
    drive_s = time.time() - t0
    tcpdump_err = lab.stop_tcpdump(pcap)
    ctl = [a.ctl, "decode", "--pcap", pcap, "--server", f"127.0.0.1:{SRC}"]
    resp = subprocess.run(ctl + ["--format", "resp"], capture_output=True, check=True)
    js = subprocess.run(ctl + ["--format", "json"], capture_output=True, check=True).stdout.decode()
    stats = subprocess.run(ctl + ["--format", "stats"], capture_output=True, check=True).stdout.decode()
    open(f"{workdir}/run.resp", "wb").write(resp.stdout)
    open(f"{workdir}/run.json", "w").write(js)
    records = [json.loads(line) for line in js.split("\n") if line.strip()]
    resp_bytes = resp.stdout
    if a.drop_flagged:
        resp_bytes = drop_flagged(resp_bytes, records)
    pipe = subprocess.run(["redis-cli", "-p", str(DST), "--pipe"], input=resp_bytes, capture_output=True)
    pipe_out = pipe.stdout.decode(errors="replace")
    if "errors: 0," not in pipe_out:
        # redis-cli --pipe only counts errors: replay the same stream with our client to name them
        # (the replica ends in the same state).
        c = Raw(DST)
        c.call("FLUSHALL")
        c.call("SCRIPT", "FLUSH")
        c.call("FUNCTION", "FLUSH")
        c.call("SELECT", 0)
        for cmd in parse_requests(resp_bytes):
            rep = c.call(*cmd)
            if isinstance(rep, Err):
                print(f"  REPLAY ERROR {fmt_cmd(cmd)} -> {short(rep)}")
        c.close()
    flagged = set()
    # kUnknownDb (docs/resp.md, "Unknown db"): the db is a guess, the key is
    # suspect in every db (read back or verified wherever it exists).
    flagged_any_db = set()
    # A flagged SWAPDB (two from two connections that ran the other way
    # round) names no key: every key of the two dbs is in doubt, to be
    # verified whole (docs/resp.md, Ambiguity window; a review's sweep saw a
    # key left in the other db, unflagged by its own record). A flagged
    # FLUSHDB or FLUSHALL excuses nothing more: the writes near it are
    # flagged key by key. Keys excused this way are counted in the summary.
    doubted_dbs = set()
    for rec in records:
        if (rec["op"] == "database" and len(rec["args"]) >= 3 and rec["args"][0].upper() == "SWAPDB"
                and ("needs_readback" in rec["flags"] or "ambiguous_order" in rec["flags"])):
            doubted_dbs.update(rec["args"][1:3])
    by_db_doubt = 0
    for rec in records:
        if "needs_readback" in rec["flags"] or rec["op"] == "readback":
            flagged.add(f"{rec['db']} {rec['key']}")
        if "unknown_db" in rec["flags"] and rec["key"]:
            flagged_any_db.add(rec["key"])
        if rec["op"] == "database" and rec["args"] and rec["args"][0].upper() == "SWAPDB":
            x, y = rec["args"][1], rec["args"][2]
            for fk in list(flagged):
                db, key = fk.split(" ", 1)
                if db in (x, y):
                    flagged.add(f"{y if db == x else x} {key}")
    snap_a = redis_snapshot.snapshot("127.0.0.1", SRC)
    snap_b = redis_snapshot.snapshot("127.0.0.1", DST)
    meta_a, meta_b = stream_meta(SRC), stream_meta(DST)
    bad, excused = [], []
    funcs = []
    for port in (SRC, DST):
        c = Raw(port)
        libs = c.call("FUNCTION", "LIST", "WITHCODE") or []
        libs = [dict(zip(map(bytes, lib[0::2]), lib[1::2])) if isinstance(lib, list) else lib for lib in libs]
        funcs.append(repr(sorted((lib.get(b"library_name"), lib.get(b"library_code")) for lib in libs)))
        c.close()
    if funcs[0] != funcs[1]:
        bad.append(("(functions)", f"FUNCTION LIST differs: {short(funcs[0], 300)} != {short(funcs[1], 300)}"))
    for k in sorted(set(snap_a) | set(snap_b)):
        why = redis_snapshot.key_difference(snap_a.get(k), snap_b.get(k), a.ttl_tolerance_ms,
                                            "missing at replica", "extra at replica")
        if why is None and meta_a.get(k) != meta_b.get(k):
            why = f"stream metadata {meta_a.get(k)} != {meta_b.get(k)}"
        if why:
            named = k in flagged or k.split(" ", 1)[1] in flagged_any_db
            in_doubted_db = k.split(" ", 1)[0] in doubted_dbs
            by_db_doubt += 1 if in_doubted_db and not named else 0
            (excused if named or in_doubted_db else bad).append((k, why))
    stat_line = " ".join(ln.strip() for ln in stats.splitlines()
                         if any(w in ln for w in ("bad_shapes", "desyncs", "unpaired", "records ")))
    pipe_errors = [ln for ln in pipe_out.splitlines() if "errors:" in ln or ln.startswith("ERR")
                   or ln.startswith("WRONGTYPE")]
    print(f"seed {seed}: {sent} commands in {drive_s:.1f}s, {len(records)} records, {len(snap_a)} keys; "
          f"{len(bad)} unflagged diffs, {len(excused)} flagged diffs"
          f"{f' ({by_db_doubt} in dbs a flagged SWAPDB put in doubt)' if by_db_doubt else ''}; "
          f"pipe: {'; '.join(pipe_errors)[:300]}")
    if "\n0 packets dropped by kernel" not in tcpdump_err:
        print("  WARNING tcpdump dropped packets:", tcpdump_err.strip().replace("\n", "; "))
    nreq = [int(ln.split()[-1]) for ln in stats.splitlines() if ln.startswith("conn requests ")]
    if nreq != [sent]:
        print(f"  WARNING capture incomplete: decoder saw {nreq} requests, {sent} were sent")
    if a.verbose:
        print("  stats:", stat_line[:600])
    for k, why in bad:
        print(f"  DIFF {k!r}: {why}")
        if k == "(functions)":
            continue
        db, key = k.split(" ", 1)
        print(f"    source: {snap_a.get(k)}  replica: {snap_b.get(k)}")
        touching = [e for e in log if any(enc(x).decode("latin-1") == key for x in e[4]) or
                    enc(e[4][0]).upper() in (b"SWAPDB", b"FLUSHDB", b"FLUSHALL")]
        for e in touching[-a.show:]:
            print("    " + fmt_entry(e))
        recs = [rec for rec in records if rec["key"] == key and str(rec["db"]) == db][-6:]
        for rec in recs:
            print(f"    rec: db={rec['db']} op={rec['op']} flags={rec['flags']} args={short(rec['args'], 200)}")
    for k, why in excused[: a.show_flagged]:
        print(f"  flagged {k!r}: {why}")
    if a.keep:
        d = os.path.join(a.keep, f"seed{seed}")
        os.makedirs(d, exist_ok=True)
        for f in ("run.pcap", "run.resp", "run.json"):
            shutil.copy(f"{workdir}/{f}", d)
        with open(f"{d}/commands.log", "w") as fh:
            for e in log:
                fh.write(fmt_entry(e) + "\n")
        open(f"{d}/pipe.out", "w").write(pipe_out)
        open(f"{d}/stats.txt", "w").write(stats)
    return sent, len(bad), len(excused)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--keys", type=int, default=30)
    ap.add_argument("--connections", type=int, default=1,
                    help="concurrent connections sharing the --count commands and the keys")
    ap.add_argument("--only")
    ap.add_argument("--exclude")
    ap.add_argument("--replay")
    ap.add_argument("--drop-flagged", action="store_true",
                    help="flag audit: do not apply needs_readback records at all (their keys stay excused)")
    ap.add_argument("--skip", help="comma-separated commands never generated (e.g. known bugs); PARTIALSCRIPT: no script "
                         "that writes two keys; COPYDB: no COPY … DB; NOREPLYSELECT/NOREPLYTX: no SELECT/MULTI under CLIENT REPLY OFF; "
                         "INLINE, NOREPLY, BIGPIPE, PUBSUB: no such items")
    ap.add_argument("--keep")
    ap.add_argument("--show", type=int, default=25, help="commands shown per differing key")
    ap.add_argument("--show-flagged", type=int, default=0)
    ap.add_argument("--ttl-tolerance-ms", type=int, default=1000)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--ctl", default=os.path.join(ROOT, "build", "ci", "ctl", "kvferryctl"))
    a = ap.parse_args()
    if a.connections < 1 or (a.replay and a.connections != 1):
        ap.error("--connections must be at least 1, and 1 with --replay")
    # Skips (exit 77, as CTest's SKIP_RETURN_CODE) where it cannot run.
    if os.geteuid() != 0:
        print("SKIP: needs root (tcpdump on lo)")
        return 77
    for tool in ("tcpdump", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            print("SKIP: needs " + tool + " (deploy/install-deps.sh)")
            return 77
    if not os.access(a.ctl, os.X_OK):
        print("SKIP: kvferryctl not built at " + a.ctl)
        return 77
    tmp = tempfile.mkdtemp(prefix="kvf-diff-")
    lab = Lab(tmp)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    total, bad_runs, total_bad = 0, 0, 0
    try:
        lab.start_servers()
        for seed in range(a.seed, a.seed + a.runs):
            sent, nbad, _ = run_one(lab, a, seed, tmp)
            total += sent
            total_bad += nbad
            bad_runs += 1 if nbad else 0
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"total: {a.runs} runs, {total} commands, {bad_runs} runs with unflagged differences "
          f"({total_bad} keys)")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
