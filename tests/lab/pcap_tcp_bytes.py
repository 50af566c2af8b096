#!/usr/bin/env python3
"""Sums TCP payload bytes and counts segments per direction in a pcap file.

usage: pcap_tcp_bytes.py FILE PORT  ->  prints JSON
  {"to_server": {"segments": n, "payload": bytes, "retransmitted": bytes}, "from_server": {...},
   "frames": n, "max_frame": n}
"payload" counts each byte of a connection's sequence space once, as the receiver gets it: a
retransmission (a loaded machine makes some even on veth) adds its repeated bytes to
"retransmitted" instead.
Only Ethernet/IPv4/TCP (what the lab mirror carries); anything else is counted in "other".
Written for the lab tests so they need nothing beyond python3.
"""
import json
import struct
import sys


def add_range(ranges, begin, end):
    """Merges [begin, end) into the sorted disjoint `ranges`; returns how many bytes were new."""
    keep = []
    for b, e in ranges:
        if e < begin or b > end:
            keep.append((b, e))
        else:
            begin, end = min(b, begin), max(e, end)
    keep.append((begin, end))
    keep.sort()
    new = (end - begin) - sum(e - b for b, e in ranges if begin <= b and e <= end)
    ranges[:] = keep
    return new


def main() -> int:
    path, port = sys.argv[1], int(sys.argv[2])
    out = {"to_server": {"segments": 0, "payload": 0, "retransmitted": 0},
           "from_server": {"segments": 0, "payload": 0, "retransmitted": 0},
           "frames": 0, "other": 0, "max_frame": 0}
    # Per connection direction: the first sequence number seen, and the byte
    # ranges seen so far (relative to it), merged.
    flows = {}
    with open(path, "rb") as f:
        hdr = f.read(24)
        magic = struct.unpack("<I", hdr[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                break
            _, _, incl, orig = struct.unpack(endian + "IIII", rec)
            data = f.read(incl)
            out["frames"] += 1
            out["max_frame"] = max(out["max_frame"], orig)
            if len(data) < 14 + 20 or struct.unpack(">H", data[12:14])[0] != 0x0800:
                out["other"] += 1
                continue
            ihl = (data[14] & 0x0F) * 4
            total = struct.unpack(">H", data[16:18])[0]
            if data[23] != 6:
                out["other"] += 1
                continue
            tcp = 14 + ihl
            sport, dport = struct.unpack(">HH", data[tcp:tcp + 4])
            doff = (data[tcp + 12] >> 4) * 4
            payload = total - ihl - doff
            key = "to_server" if dport == port else "from_server" if sport == port else None
            if key is None:
                out["other"] += 1
                continue
            out[key]["segments"] += 1
            if payload <= 0:
                continue
            seq = struct.unpack(">I", data[tcp + 4:tcp + 8])[0]
            flow = flows.setdefault((data[26:30], sport, data[30:34], dport), [seq, []])
            begin = (seq - flow[0]) % (1 << 32)
            new = add_range(flow[1], begin, begin + payload)
            out[key]["payload"] += new
            out[key]["retransmitted"] += payload - new
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
