#!/usr/bin/env python3
"""Writes the seed corpus of decode_reassembly_fuzz: a few conversations in the
fuzzer's record format ([u8 control][u16 LE length][frame]), plain and inside
VLAN, VXLAN, GRE and ERSPAN, IPv4 and IPv6. Run from this folder."""
import struct, os

def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def tcp(sp, dp, seq, ack, flags, payload=b''):
    return struct.pack('!HHIIBBHHH', sp, dp, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload

def ipv4(src, dst, proto, payload):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, bytes(src), bytes(dst))
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload

def ipv6(src, dst, nh, payload):
    return struct.pack('!IHBB16s16s', 0x60000000, len(payload), nh, 64, bytes(src), bytes(dst)) + payload

def eth(etype, payload, vlans=()):
    b = b'\x02\0\0\0\0\x02\x02\0\0\0\0\x01'
    for tpid, vid in vlans: b += struct.pack('!HH', tpid, vid)
    return b + struct.pack('!H', etype) + payload

def udp(sp, dp, payload):
    return struct.pack('!HHHH', sp, dp, 8 + len(payload), 0) + payload

def rec(frame, control=1):
    return struct.pack('<BH', control, len(frame)) + frame

C4, S4 = [10, 0, 0, 1], [10, 0, 0, 2]
C6, S6 = [0xfd] + [0] * 14 + [1], [0xfd] + [0] * 14 + [2]

def conversation(wrap):
    """wrap(frame_bytes_of_ip_packet, is_v6) -> outer frame"""
    out = b''
    for v6 in (False, True):
        c, s = (C6, S6) if v6 else (C4, S4)
        ip = (lambda a, b, p: ipv6(a, b, 6, p)) if v6 else (lambda a, b, p: ipv4(a, b, 6, p))
        segs = [(True, 99, 0, 0x02, b''), (False, 499, 100, 0x12, b''),
                (True, 100, 500, 0x18, b'*3\r\n$3\r\nSET\r\n'), (True, 125, 500, 0x18, b'$1\r\nv\r\n'),
                (True, 113, 500, 0x18, b'$1\r\nk\r\n$1\r\nv\r\n'), (False, 500, 132, 0x18, b'+OK\r\n'),
                (True, 132, 505, 0x11, b''), (False, 505, 133, 0x11, b'')]
        for c2s, seq, ack, fl, p in segs:
            t = tcp(40000, 6379, seq, ack, fl, p) if c2s else tcp(6379, 40000, seq, ack, fl, p)
            out += rec(wrap(ip(c, s, t) if c2s else ip(s, c, t), v6), 0x81)
    return out

plain = lambda ip, v6: eth(0x86dd if v6 else 0x0800, ip)
vlan = lambda ip, v6: eth(0x86dd if v6 else 0x0800, ip, [(0x88a8, 1), (0x8100, 2)])
vxlan = lambda ip, v6: eth(0x0800, ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17,
                                        udp(5, 4789, b'\x08\0\0\0\0\0\x07\0' + plain(ip, v6))))
gre = lambda ip, v6: eth(0x0800, ipv4([1, 1, 1, 1], [2, 2, 2, 2], 47,
                                      struct.pack('!HHI', 0x2000, 0x6558, 5) + plain(ip, v6)))
erspan2 = lambda ip, v6: eth(0x0800, ipv4([1, 1, 1, 1], [2, 2, 2, 2], 47,
                                          struct.pack('!HHI', 0x1000, 0x88be, 1) + struct.pack('!HHI', 0x1000, 3, 0) + plain(ip, v6)))
erspan3 = lambda ip, v6: eth(0x0800, ipv4([1, 1, 1, 1], [2, 2, 2, 2], 47,
                                          struct.pack('!HHI', 0x1000, 0x22eb, 1) + struct.pack('!HHIHH', 0x2000, 3, 0, 0, 1) + b'\0' * 8 + plain(ip, v6)))
os.makedirs('corpus', exist_ok=True)
for name, w in [('plain', plain), ('vlan', vlan), ('vxlan', vxlan), ('gre', gre), ('erspan2', erspan2), ('erspan3', erspan3)]:
    with open('corpus/%s.bin' % name, 'wb') as f:
        f.write(conversation(w))
