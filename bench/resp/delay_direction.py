#!/usr/bin/python3
"""A mirror that delays one direction, made from a capture, and what it does to the flags.

  delay_direction.py delay IN.pcap OUT.pcap PORT DELAY_US [server]
      Rewrites a pcap (Ethernet, IPv4, microsecond or nanosecond) so that the
      frames to PORT (the client's direction; with `server`, the frames from
      PORT) are stamped DELAY_US later, then sorts the frames by time.
  delay_direction.py compare WHOLE.json LATE.json
      Matches the records of two `kvferryctl decode --format json` outputs by
      (reply time, key, args) and counts the ambiguous_order flags the second
      lost and gained.

bench/RESULTS.md (twenty-fifth follow-up) used it on a redis-benchmark capture:
  delay cap.pcap late.pcap 16465 1000; decode both --format json; compare.
"""
import json
import struct
import sys
from collections import Counter


def delay(src, dst, port, delay_us, from_server):
    data = open(src, "rb").read()
    header, off, frames = data[:24], 24, []
    unit = 1000 if struct.unpack("<I", header[:4])[0] == 0xA1B23C4D else 1  # nanosecond pcap
    while off + 16 <= len(data):
        sec, sub, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        body = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = sec * 1_000_000 * unit + sub
        ihl = (body[14] & 15) * 4
        sport, dport = struct.unpack(">HH", body[14 + ihl:14 + ihl + 4])
        if (dport == port and not from_server) or (sport == port and from_server):
            t += delay_us * unit
        frames.append((t, len(frames), orig, body))
    frames.sort()
    with open(dst, "wb") as f:
        f.write(header)
        for t, _, orig, body in frames:
            f.write(struct.pack("<IIII", t // (1_000_000 * unit), t % (1_000_000 * unit), len(body), orig) + body)
    print(len(frames), "frames")


def flags(path):
    records, flagged = Counter(), Counter()
    for line in open(path):
        j = json.loads(line)
        k = (j["capture_ns"], j["key"], tuple(j["args"]))
        records[k] += 1
        if "ambiguous_order" in j["flags"]:
            flagged[k] += 1
    return records, flagged


def compare(whole, late):
    (w, wf), (l, lf) = flags(whole), flags(late)
    print(f"same_records {w == l} flagged_whole {sum(wf.values())} flagged_late {sum(lf.values())} "
          f"lost_flags {sum((wf - lf).values())} new_flags {sum((lf - wf).values())}")


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "delay":
        delay(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:7] == ["server"])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
