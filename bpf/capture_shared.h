/* Layouts shared by the capture BPF program (bpf/capture.bpf.c) and user
 * space (dataplane/xdp): the server endpoint key, the per-CPU counters and
 * the ring buffer record. This is the only copy; C++ static_asserts sizes.
 */
#pragma once

#ifdef __bpf__
/* vmlinux.h (included by the .bpf.c before this header) defines __u8.. */
#else
#include <linux/types.h>
#endif

/* Default capacity of the server endpoint map (user space may resize it
 * before load).
 */
#define KVF_CAP_MAX_SERVERS 1024

/* Snap classes: a matched frame is copied into the smallest reservation
 * whose data area holds it. JUMBO takes a 9000-byte-MTU frame with tags and
 * a tunnel around it, and 16 and 32 KiB what lies between (a review: with
 * nothing between 4 KiB and 64 KiB, each jumbo frame took 64 KiB of the
 * ring, which then held 255 of them, and writes were lost as ring drops at
 * low rates). The largest class takes a whole GSO/GRO super-frame (generic
 * XDP and TC see those on veth and on devices with GRO) up to 65535 bytes,
 * the most one bpf_xdp_load_bytes call copies. A longer frame is
 * "oversize": its first KVF_CAP_SNAP_MAX bytes are delivered with
 * KVF_CAP_F_TRUNCATED set and wire_len telling the true length.
 */
#define KVF_CAP_SNAP_SMALL  128
#define KVF_CAP_SNAP_MEDIUM 512
#define KVF_CAP_SNAP_LARGE  2048
#define KVF_CAP_SNAP_PAGE   4096
#define KVF_CAP_SNAP_JUMBO  9216
#define KVF_CAP_SNAP_16K    16384
#define KVF_CAP_SNAP_32K    32768
#define KVF_CAP_SNAP_MAX    65535

/* A TCP endpoint of a KV server, the key of the `servers` map. IPv4
 * addresses are stored IPv4-mapped (::ffff:a.b.c.d) so one map serves both
 * families. `port` is in network byte order; `pad` must be zero.
 */
struct kvf_cap_endpoint {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
};

/* Per-CPU counters (value of the `counters` map, one slot). Every frame
 * the program sees lands in exactly one of: delivered, ring_full,
 * not_tcp, no_match, pure_ack, parse_errors, fragments. So
 *   seen == delivered + ring_full + not_tcp + no_match + pure_ack
 *           + parse_errors + fragments
 *   matched == delivered + ring_full
 * `oversize` counts delivered frames cut to KVF_CAP_SNAP_MAX (a subset of
 * delivered).
 */
struct kvf_cap_counters {
	__u64 seen;	    /* frames the program ran on */
	__u64 matched;	    /* TCP to/from a server, not a pure ACK */
	__u64 delivered;    /* records submitted to the ring buffer */
	__u64 ring_full;    /* matched but no room in the ring buffer */
	__u64 not_tcp;	    /* no TCP segment found (ARP, UDP, other tunnels) */
	__u64 no_match;	    /* TCP, but neither end is a configured server */
	__u64 pure_ack;	    /* matched endpoint, no payload, no SYN/FIN/RST */
	__u64 parse_errors; /* truncated or bogus headers (IHL, doff, lengths) */
	__u64 fragments;    /* IPv4/IPv6 fragments: cannot be matched, dropped */
	__u64 oversize;	    /* delivered truncated: frame > KVF_CAP_SNAP_MAX */
	__u64 wakeups;	    /* records submitted with a forced wake-up */
	__u64 bytes;	    /* wire bytes of delivered frames */
};

#define KVF_CAP_F_TRUNCATED 0x1 /* data holds fewer bytes than wire_len */
#define KVF_CAP_F_TC	    0x2 /* produced by the TC variant, not XDP */

/* One ring buffer record: this header, then cap_len frame bytes starting
 * at the outermost Ethernet header. The reservation is sizeof(header) plus
 * one snap class, so bytes past cap_len are unspecified.
 */
struct kvf_cap_record {
	__u64 ts_ns;	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) at capture */
	__u32 wire_len; /* frame length on the wire (all XDP fragments) */
	__u32 cap_len;	/* bytes that follow this header */
	__u32 rx_queue; /* NIC receive queue */
	__u16 flags;	/* KVF_CAP_F_* */
	__u16 pad;
	__u8 data[];
};
