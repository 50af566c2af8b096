#!/usr/bin/env python3
# Regenerates the seed corpus for logstore_segment_fuzz: small segment
# images built to the byte layout of logstore/log_format.h.
import os, struct

def crc32c(data, crc=0):
    crc ^= 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff

def mask(c):
    return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xffffffff

def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)

def lp(b):
    return varint(len(b)) + b

def header(segment, first_seq):
    h = struct.pack('<IHHQQQH', 0x4c46564b, 1, 64, segment, first_seq, 1700000000000, 1)
    h += b'\0' * (60 - len(h))
    return h + struct.pack('<I', mask(crc32c(h)))

def record(segment, seq, key, args, rtype=1):
    payload = varint(1) + varint(0) + bytes([1]) + varint(0) + varint(0) + lp(key) + varint(len(args))
    for a in args:
        payload += lp(a)
    rest = struct.pack('<IBBHIQQ', len(payload), rtype, 0, 0, segment & 0xffffffff, seq,
                       1700000000000 << 16)[0:28]
    body = rest + payload
    return struct.pack('<I', mask(crc32c(body))) + body

here = os.path.dirname(os.path.abspath(__file__))
recs = b''.join(record(1, 10 + i, b'key:%d' % i, [b'SET', b'key:%d' % i, b'v' * (i * 7)]) for i in range(6))
seeds = {
    'valid_6_records': header(1, 10) + recs,
    'valid_with_zero_tail': header(1, 10) + recs + b'\0' * 256,
    'torn_tail': header(1, 10) + recs[:-9],
    'flipped_middle': header(1, 10) + recs[:100] + bytes([recs[100] ^ 0x40]) + recs[101:],
    'recycled_stale': header(1, 10) + recs[:150] + b'\0' * 32 +
                      b''.join(record(0, 1 + i, b'old', [b'DEL', b'old']) for i in range(4)),
    'skippable_type': header(1, 1) + record(1, 1, b'a', [b'x'], rtype=0x85) + record(1, 2, b'b', [b'y']),
    'header_only': header(1, 1),
}
for name, data in seeds.items():
    with open(os.path.join(here, name), 'wb') as f:
        f.write(data)
