#!/usr/bin/python3
"""Snapshot of a Redis dataset for comparisons: every key of every db with its
type, DEBUG DIGEST-VALUE and absolute expiry time, as JSON. The server must allow DEBUG from
this connection (enable-debug-command yes|local).

usage: redis_snapshot.py --port P [--host H] > snap.json
       redis_snapshot.py --compare A.json B.json [--flagged keys.txt] [--ttl-tolerance-ms 1000]
In compare mode: prints every differing key with why, then a summary line;
exits 1 if a key differs that is not listed in --flagged (lines "db key").
"""
import argparse
import json
import sys
import time


def snapshot(host, port):
    import redis
    out = {}
    r0 = redis.Redis(host=host, port=port)
    dbs = [int(k[2:]) for k in r0.info("keyspace").keys()]
    r0.close()
    for db in dbs:
        r = redis.Redis(host=host, port=port, db=db)
        for key in r.scan_iter(count=1000):
            t = r.type(key).decode()
            digest = r.execute_command("DEBUG", "DIGEST-VALUE", key)[0]
            if t == "stream":
                # DEBUG DIGEST-VALUE covers the entries, not the consumer
                # groups: their names, consumer and pending counts and last
                # ids (XINFO GROUPS holds no times) are state too.
                groups = r.execute_command("XINFO", "GROUPS", key)
                digest = digest + repr(groups).encode()
            pttl = r.pttl(key)
            # Absolute expiry (ms since the epoch, -1 for none): a snapshot of
            # thousands of keys takes seconds, so relative TTLs of two servers
            # read one after the other would differ by that time.
            expire_at = int(time.time() * 1000) + pttl if pttl >= 0 else -1
            out[f"{db} {key.decode('latin-1')}"] = {"type": t, "digest": digest.decode(), "expire_at": expire_at}
        r.close()
    return out


def key_difference(a, b, tol, missing="missing at target", extra="extra at target"):
    """Why one key's snapshot entries differ (a: source, b: target; None when absent), or None."""
    if a is None and b is None:
        return None
    if b is None:
        return missing
    if a is None:
        return extra
    if a["type"] != b["type"]:
        return f"type {a['type']} != {b['type']}"
    if a["digest"] != b["digest"]:
        return "value differs"
    ta, tb = a["expire_at"], b["expire_at"]
    if (ta < 0) != (tb < 0) or (ta >= 0 and abs(ta - tb) > tol):
        return f"expiry {ta} != {tb} (ms since the epoch)"
    return None


def compare(a_path, b_path, flagged_path, tol):
    a = json.load(open(a_path))
    b = json.load(open(b_path))
    flagged = set()
    if flagged_path:
        flagged = {line.rstrip("\n") for line in open(flagged_path, encoding="latin-1") if line.strip()}
    bad, excused = [], []
    for k in sorted(set(a) | set(b)):
        why = key_difference(a.get(k), b.get(k), tol)
        if why:
            (excused if k in flagged else bad).append((k, why))
    for k, why in bad:
        print(f"DIFF  {k!r}: {why}")
    for k, why in excused:
        print(f"flagged {k!r}: {why}")
    print(f"compare: {len(a)} keys at source, {len(b)} at target, {len(bad)} unexplained differences, "
          f"{len(excused)} differences on flagged keys")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--compare", nargs=2)
    ap.add_argument("--flagged")
    ap.add_argument("--ttl-tolerance-ms", type=int, default=1000)
    a = ap.parse_args()
    if a.compare:
        return compare(a.compare[0], a.compare[1], a.flagged, a.ttl_tolerance_ms)
    json.dump(snapshot(a.host, a.port), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
