/* Capture filter for the mirror port: finds the (possibly tunnelled) TCP
 * segment of every frame, keeps segments to or from configured KV servers
 * and copies them into a BPF ring buffer; everything else is counted and
 * dropped. One parser, two hooks: XDP (kvf_capture_xdp) and TC
 * direct-action (kvf_capture_tc) for devices where XDP cannot attach.
 */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "capture_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---------------------------------------------------------------------
 * Configuration (rodata, set by user space between open and load)
 */

/* Non-zero: every frame is passed on to the stack after inspection
 * (XDP_PASS / TC_ACT_OK). Zero (a dedicated mirror port): dropped.
 */
const volatile __u8 cfg_pass_frames = 0;
/* Force a consumer wake-up after this many records without one (per CPU). */
const volatile __u32 cfg_wakeup_every = 64;
/* ... or as soon as this many bytes wait unconsumed in the ring. */
const volatile __u64 cfg_wakeup_bytes = 1 << 20;
/* UDP destination port of VXLAN, network byte order. */
const volatile __u16 cfg_vxlan_port = bpf_htons(4789);
/* Non-zero: some server is configured with the unspecified address (all
 * zero in `servers`), which matches any address on its port.
 */
const volatile __u8 cfg_any_address = 0;

/* ---------------------------------------------------------------------
 * Constants missing from vmlinux.h (they are #defines in UAPI headers)
 */

#define KVF_ETH_P_IP	     0x0800
#define KVF_ETH_P_IPV6	     0x86DD
#define KVF_ETH_P_8021Q	     0x8100
#define KVF_ETH_P_8021AD     0x88A8
#define KVF_ETH_P_QINQ_OLD   0x9100 /* pre-802.1ad QinQ, as user-space decode takes it */
#define KVF_ETH_P_TEB	     0x6558 /* GRE: transparent Ethernet bridging */
#define KVF_ETH_P_ERSPAN     0x88BE /* GRE: ERSPAN type I / II */
#define KVF_ETH_P_ERSPAN3    0x22EB /* GRE: ERSPAN type III */
#define KVF_IPPROTO_HOPOPTS  0
#define KVF_IPPROTO_TCP	     6
#define KVF_IPPROTO_UDP	     17
#define KVF_IPPROTO_ROUTING  43
#define KVF_IPPROTO_FRAGMENT 44
#define KVF_IPPROTO_GRE	     47
#define KVF_IPPROTO_AH	     51
#define KVF_IPPROTO_DSTOPTS  60
#define KVF_GRE_CSUM	     0x8000
#define KVF_GRE_ROUTING	     0x4000
#define KVF_GRE_KEY	     0x2000
#define KVF_GRE_SEQ	     0x1000
#define KVF_GRE_VERSION	     0x0007
#define KVF_TCP_FIN	     0x01
#define KVF_TCP_SYN	     0x02
#define KVF_TCP_RST	     0x04
#define KVF_TC_ACT_OK	     0
#define KVF_TC_ACT_SHOT	     2
/* Bytes the TC variant makes linear before parsing (all headers we parse). */
#define KVF_TC_PULL_LEN 256
/* IPv6 extension headers walked before giving up. */
#define KVF_MAX_IPV6_EXT 4

/* Why a frame was kept or dropped; each maps to one counter. */
enum kvf_reason {
	KVF_KEEP = 0,
	KVF_NOT_TCP,
	KVF_NO_MATCH,
	KVF_PURE_ACK,
	KVF_PARSE_ERROR,
	KVF_FRAGMENT,
};

/* ---------------------------------------------------------------------
 * Bounds-checked cursor parsers (after xdp-tools' parsing_helpers.h)
 */

struct cursor {
	void *pos;   /* next unparsed byte */
	void *start; /* first byte of the frame */
	void *end;   /* end of the linear (directly readable) part */
};

/* Returns the next `len` bytes (a compile-time constant) and advances, or
 * NULL when the linear part is shorter.
 */
static __always_inline void *take(struct cursor *c, __u32 len)
{
	void *p = c->pos;

	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

/* Skips `len` bytes, `len` <= max (a constant). Returns 0 or -1. */
static __always_inline int skip(struct cursor *c, __u32 len, __u32 max)
{
	/* Verifier only: a packet pointer may only grow by a bounded scalar;
	 * callers already guarantee len <= max.
	 */
	if (len > max)
		return -1;
	if (c->pos + len > c->end)
		return -1;
	c->pos += len;
	return 0;
}

/* The TCP segment the parser found. */
struct segment {
	struct kvf_cap_endpoint src;
	struct kvf_cap_endpoint dst;
	__u32 l4_len; /* TCP header + payload, from the IP length fields */
	__u8 l4_proto;
	__u8 tcp_flags;
	__u32 payload_len;
};

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* Ethernet plus up to two VLAN tags (802.1Q, QinQ 802.1ad or 0x9100).
 * Stores the EtherType that follows, network order.
 */
static __always_inline int parse_l2(struct cursor *c, __be16 *proto)
{
	struct ethhdr *eth = take(c, sizeof(*eth));
	__be16 p;

	if (!eth)
		return KVF_PARSE_ERROR;
	p = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_tag *tag;

		if (p != bpf_htons(KVF_ETH_P_8021Q) && p != bpf_htons(KVF_ETH_P_8021AD) &&
		    p != bpf_htons(KVF_ETH_P_QINQ_OLD))
			break;
		tag = take(c, sizeof(*tag));
		if (!tag)
			return KVF_PARSE_ERROR;
		p = tag->proto;
	}
	*proto = p;
	return KVF_KEEP;
}

/* IPv4 or IPv6 header (with IPv6 extension headers). Fills addresses,
 * l4_proto and l4_len; `wire_len` is the whole frame's length, which the IP
 * length fields must not exceed, but for an `inner` header: a mirror that
 * truncates what it encapsulates (AWS Traffic Mirroring, ERSPAN sessions
 * with a length limit) sends a whole outer packet around a cut inner one,
 * which user space decodes and reads as a gap (a review: xdp refused the
 * frames decode was mended to keep, and the write was lost whole).
 */
static __always_inline int parse_l3(struct cursor *c, __be16 proto, __u32 wire_len,
				    bool inner, struct segment *seg)
{
	__u32 off = c->pos - c->start;

	if (proto == bpf_htons(KVF_ETH_P_IP)) {
		struct iphdr *ip = take(c, sizeof(*ip));
		__u32 ihl, tot;

		if (!ip)
			return KVF_PARSE_ERROR;
		ihl = ip->ihl * 4;
		if (ip->version != 4 || ihl < sizeof(*ip))
			return KVF_PARSE_ERROR;
		if (skip(c, ihl - sizeof(*ip), 40))
			return KVF_PARSE_ERROR;
		tot = bpf_ntohs(ip->tot_len);
		if (tot < ihl || (!inner && off + tot > wire_len))
			return KVF_PARSE_ERROR;
		if (ip->frag_off & bpf_htons(0x3fff)) /* MF set or offset != 0 */
			return KVF_FRAGMENT;
		seg->src.addr[10] = 0xff;
		seg->src.addr[11] = 0xff;
		__builtin_memcpy(&seg->src.addr[12], &ip->saddr, 4);
		seg->dst.addr[10] = 0xff;
		seg->dst.addr[11] = 0xff;
		__builtin_memcpy(&seg->dst.addr[12], &ip->daddr, 4);
		seg->l4_proto = ip->protocol;
		seg->l4_len = tot - ihl;
		return KVF_KEEP;
	}
	if (proto == bpf_htons(KVF_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = take(c, sizeof(*ip6));
		__u32 len;
		__u8 next;

		if (!ip6)
			return KVF_PARSE_ERROR;
		if (ip6->version != 6)
			return KVF_PARSE_ERROR;
		len = bpf_ntohs(ip6->payload_len);
		if (!inner && off + sizeof(*ip6) + len > wire_len)
			return KVF_PARSE_ERROR;
		__builtin_memcpy(seg->src.addr, &ip6->saddr, 16);
		__builtin_memcpy(seg->dst.addr, &ip6->daddr, 16);
		next = ip6->nexthdr;
#pragma unroll
		for (int i = 0; i < KVF_MAX_IPV6_EXT; i++) {
			struct ipv6_opt_hdr *ext;
			__u32 hl;

			if (next == KVF_IPPROTO_FRAGMENT)
				return KVF_FRAGMENT;
			if (next != KVF_IPPROTO_HOPOPTS && next != KVF_IPPROTO_ROUTING &&
			    next != KVF_IPPROTO_DSTOPTS && next != KVF_IPPROTO_AH)
				break;
			ext = take(c, 8); /* every extension header is >= 8 bytes */
			if (!ext)
				return KVF_PARSE_ERROR;
			if (next == KVF_IPPROTO_AH)
				hl = (ext->hdrlen + 2) * 4;
			else
				hl = (ext->hdrlen + 1) * 8;
			if (hl < 8 || hl > len)
				return KVF_PARSE_ERROR;
			if (skip(c, hl - 8, 2040))
				return KVF_PARSE_ERROR;
			len -= hl;
			next = ext->nexthdr;
		}
		if (next == KVF_IPPROTO_HOPOPTS || next == KVF_IPPROTO_ROUTING ||
		    next == KVF_IPPROTO_DSTOPTS || next == KVF_IPPROTO_AH)
			return KVF_PARSE_ERROR; /* more extension headers than we walk */
		seg->l4_proto = next;
		seg->l4_len = len;
		return KVF_KEEP;
	}
	return KVF_NOT_TCP;
}

/* The TCP header at the cursor: ports, flags, payload length. */
static __always_inline int parse_tcp(struct cursor *c, struct segment *seg)
{
	struct tcphdr *th = take(c, sizeof(*th));
	__u32 doff;

	if (!th)
		return KVF_PARSE_ERROR;
	doff = th->doff * 4;
	if (doff < sizeof(*th) || doff > seg->l4_len)
		return KVF_PARSE_ERROR;
	seg->src.port = th->source;
	seg->dst.port = th->dest;
	seg->tcp_flags = ((__u8 *)th)[13];
	seg->payload_len = seg->l4_len - doff;
	return KVF_KEEP;
}

/* A mirror tunnel header at the cursor (after the outer IP header). On
 * success the cursor is at the inner frame: inner Ethernet when *inner_l3
 * is zero, else directly at an IP header of EtherType *inner_l3.
 */
static __always_inline int parse_tunnel(struct cursor *c, struct segment *seg, __be16 *inner_l3)
{
	*inner_l3 = 0;
	if (seg->l4_proto == KVF_IPPROTO_UDP) {
		struct udphdr *udp = take(c, sizeof(*udp));
		__u8 *vxlan;

		if (!udp)
			return KVF_PARSE_ERROR;
		if (udp->dest != cfg_vxlan_port)
			return KVF_NOT_TCP;
		vxlan = take(c, 8);
		if (!vxlan)
			return KVF_PARSE_ERROR;
		if (!(vxlan[0] & 0x08)) /* "I" flag: VNI valid, required by RFC 7348 */
			return KVF_PARSE_ERROR;
		return KVF_KEEP;
	}
	if (seg->l4_proto == KVF_IPPROTO_GRE) {
		__be16 *gre = take(c, 4);
		__u16 flags;
		__u32 opt;

		if (!gre)
			return KVF_PARSE_ERROR;
		flags = bpf_ntohs(gre[0]);
		if (flags & (KVF_GRE_VERSION | KVF_GRE_ROUTING))
			return KVF_NOT_TCP; /* PPTP (v1) or source-routed GRE */
		opt = ((flags & KVF_GRE_CSUM) ? 4 : 0) + ((flags & KVF_GRE_KEY) ? 4 : 0) +
		      ((flags & KVF_GRE_SEQ) ? 4 : 0);
		if (skip(c, opt, 12))
			return KVF_PARSE_ERROR;
		if (gre[1] == bpf_htons(KVF_ETH_P_TEB))
			return KVF_KEEP;
		if (gre[1] == bpf_htons(KVF_ETH_P_ERSPAN)) {
			__u8 *hdr;

			if (!(flags & KVF_GRE_SEQ))
				return KVF_KEEP; /* type I: no ERSPAN header */
			hdr = take(c, 8);
			if (!hdr)
				return KVF_PARSE_ERROR;
			if ((hdr[0] >> 4) != 1) /* type II carries version 1 */
				return KVF_PARSE_ERROR;
			return KVF_KEEP;
		}
		if (gre[1] == bpf_htons(KVF_ETH_P_ERSPAN3)) {
			__u8 *hdr = take(c, 12);

			if (!hdr)
				return KVF_PARSE_ERROR;
			if ((hdr[0] >> 4) != 2) /* type III carries version 2 */
				return KVF_PARSE_ERROR;
			if ((hdr[11] & 0x01) && !take(c, 8)) /* "O": platform subheader */
				return KVF_PARSE_ERROR;
			return KVF_KEEP;
		}
		if (gre[1] == bpf_htons(KVF_ETH_P_IP) || gre[1] == bpf_htons(KVF_ETH_P_IPV6)) {
			*inner_l3 = gre[1];
			return KVF_KEEP;
		}
		return KVF_NOT_TCP;
	}
	return KVF_NOT_TCP;
}

/* Parses a whole frame into *seg and decides whether it is kept. */
static __always_inline int classify(void *data, void *data_end, __u32 wire_len, struct segment *seg)
{
	struct cursor c = {.pos = data, .start = data, .end = data_end};
	__be16 proto, inner_l3;
	__u32 *hit;
	int r;

	r = parse_l2(&c, &proto);
	if (r)
		return r;
	r = parse_l3(&c, proto, wire_len, false, seg);
	if (r)
		return r;
	if (seg->l4_proto != KVF_IPPROTO_TCP) {
		/* Mirror encapsulation: exactly one level of tunnel. */
		r = parse_tunnel(&c, seg, &inner_l3);
		if (r)
			return r;
		if (inner_l3) {
			proto = inner_l3;
		} else {
			r = parse_l2(&c, &proto);
			if (r)
				return r;
		}
		__builtin_memset(seg, 0, sizeof(*seg));
		r = parse_l3(&c, proto, wire_len, true, seg);
		if (r)
			return r;
		if (seg->l4_proto != KVF_IPPROTO_TCP)
			return KVF_NOT_TCP;
	}
	r = parse_tcp(&c, seg);
	if (r)
		return r;
	hit = bpf_map_lookup_elem(&servers, &seg->dst);
	if (!hit)
		hit = bpf_map_lookup_elem(&servers, &seg->src);
	if (!hit && cfg_any_address) {
		struct kvf_cap_endpoint any = {};

		any.port = seg->dst.port;
		hit = bpf_map_lookup_elem(&servers, &any);
		if (!hit) {
			any.port = seg->src.port;
			hit = bpf_map_lookup_elem(&servers, &any);
		}
	}
	if (!hit)
		return KVF_NO_MATCH;
	if (seg->payload_len == 0 && !(seg->tcp_flags & (KVF_TCP_SYN | KVF_TCP_FIN | KVF_TCP_RST)))
		return KVF_PURE_ACK;
	return KVF_KEEP;
}

/* ---------------------------------------------------------------------
 * Delivery to user space
 */

/* Copies the first `cap` bytes of the frame into a ring reservation of
 * class `snap` (a constant after inlining) and submits it, waking the
 * consumer only every cfg_wakeup_every records or when the ring fills.
 * Returns 0, or -1 when the ring is full.
 */
static __always_inline int submit(void *ctx, bool xdp, __u32 snap, __u32 cap, __u32 wire_len,
				  __u32 rx_queue, __u16 flags, struct kvf_cap_counters *cnt)
{
	struct kvf_cap_record *rec;
	__u32 zero = 0, *pending;
	__u64 wake = BPF_RB_NO_WAKEUP;
	__u64 len = cap; /* 64-bit so the bounds below stick to the register used */
	long err;

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec) + snap, 0);
	if (!rec)
		return -1;
	barrier_var(len);
	/* Verifier only: the copy length must be provably in [1, snap]. */
	if (len < 1 || len > snap) {
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
		return 0;
	}
	if (xdp)
		err = bpf_xdp_load_bytes(ctx, 0, rec->data, len);
	else
		err = bpf_skb_load_bytes(ctx, 0, rec->data, len);
	if (err) {
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
		cnt->parse_errors++;
		return 0;
	}
	rec->ts_ns = bpf_ktime_get_ns();
	rec->wire_len = wire_len;
	rec->cap_len = cap;
	rec->rx_queue = rx_queue;
	rec->flags = flags;
	rec->pad = 0;

	pending = bpf_map_lookup_elem(&unsignaled, &zero);
	/* Verifier only: a one-slot array lookup of key 0 cannot fail. */
	if (!pending || ++*pending >= cfg_wakeup_every ||
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes) {
		wake = BPF_RB_FORCE_WAKEUP;
		if (pending)
			*pending = 0;
		cnt->wakeups++;
	}
	bpf_ringbuf_submit(rec, wake);
	cnt->delivered++;
	cnt->bytes += wire_len;
	if (flags & KVF_CAP_F_TRUNCATED)
		cnt->oversize++;
	return 0;
}

static __always_inline void deliver(void *ctx, bool xdp, __u32 wire_len, __u32 rx_queue,
				    struct kvf_cap_counters *cnt)
{
	__u16 flags = xdp ? 0 : KVF_CAP_F_TC;
	__u32 cap = wire_len;
	int r;

	if (cap > KVF_CAP_SNAP_MAX) {
		cap = KVF_CAP_SNAP_MAX;
		flags |= KVF_CAP_F_TRUNCATED;
	}
	if (cap <= KVF_CAP_SNAP_SMALL)
		r = submit(ctx, xdp, KVF_CAP_SNAP_SMALL, cap, wire_len, rx_queue, flags, cnt);
	else if (cap <= KVF_CAP_SNAP_MEDIUM)
		r = submit(ctx, xdp, KVF_CAP_SNAP_MEDIUM, cap, wire_len, rx_queue, flags, cnt);
	else if (cap <= KVF_CAP_SNAP_LARGE)
		r = submit(ctx, xdp, KVF_CAP_SNAP_LARGE, cap, wire_len, rx_queue, flags, cnt);
	else if (cap <= KVF_CAP_SNAP_PAGE)
		r = submit(ctx, xdp, KVF_CAP_SNAP_PAGE, cap, wire_len, rx_queue, flags, cnt);
	else if (cap <= KVF_CAP_SNAP_JUMBO)
		r = submit(ctx, xdp, KVF_CAP_SNAP_JUMBO, cap, wire_len, rx_queue, flags, cnt);
	else if (cap <= KVF_CAP_SNAP_16K)
		r = submit(ctx, xdp, KVF_CAP_SNAP_16K, cap, wire_len, rx_queue, flags, cnt);
	else if (cap <= KVF_CAP_SNAP_32K)
		r = submit(ctx, xdp, KVF_CAP_SNAP_32K, cap, wire_len, rx_queue, flags, cnt);
	else
		r = submit(ctx, xdp, KVF_CAP_SNAP_MAX, cap, wire_len, rx_queue, flags, cnt);
	if (r)
		cnt->ring_full++;
}

/* Counts a frame classify() did not keep under the reason it gave. */
static __always_inline void count_refusal(struct kvf_cap_counters *cnt, int verdict)
{
	switch (verdict) {
	case KVF_NOT_TCP:
		cnt->not_tcp++;
		break;
	case KVF_NO_MATCH:
		cnt->no_match++;
		break;
	case KVF_PURE_ACK:
		cnt->pure_ack++;
		break;
	case KVF_FRAGMENT:
		cnt->fragments++;
		break;
	default:
		cnt->parse_errors++;
		break;
	}
}

/* Runs the filter on one frame and updates the counters. */
static __always_inline void process(void *ctx, bool xdp, void *data, void *data_end, __u32 wire_len,
				    __u32 rx_queue)
{
	struct segment seg = {};
	struct kvf_cap_counters *cnt;
	__u32 zero = 0;
	int r;

	cnt = bpf_map_lookup_elem(&counters, &zero);
	/* Verifier only: a one-slot array lookup of key 0 cannot fail. */
	if (!cnt)
		return;
	cnt->seen++;
	r = classify(data, data_end, wire_len, &seg);
	if (r == KVF_KEEP) {
		cnt->matched++;
		deliver(ctx, xdp, wire_len, rx_queue, cnt);
	} else {
		count_refusal(cnt, r);
	}
}

/* ---------------------------------------------------------------------
 * Entry points
 */

/* XDP, multi-buffer aware ("xdp.frags"): a frame larger than a page (GSO
 * on veth, jumbo frames) arrives in fragments; headers are parsed from the
 * linear part and the copy reads across fragments.
 */
SEC("xdp.frags")
int kvf_capture_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	process(ctx, true, data, data_end, bpf_xdp_get_buff_len(ctx), ctx->rx_queue_index);
	return cfg_pass_frames ? XDP_PASS : XDP_DROP;
}

/* TC ingress, direct action. Headers may sit outside the linear part of
 * an skb, so the first KVF_TC_PULL_LEN bytes are made linear first.
 */
SEC("tc")
int kvf_capture_tc(struct __sk_buff *skb)
{
	__u32 wire_len = skb->len;
	__u32 rx_queue = skb->queue_mapping;
	__u32 want = wire_len < KVF_TC_PULL_LEN ? wire_len : KVF_TC_PULL_LEN;
	void *data, *data_end;

	if (skb->data_end - skb->data < want)
		bpf_skb_pull_data(skb, want); /* on failure the parser sees less */
	/* Verifier only: stops clang from merging the ctx loads below with the
	 * ones above into a modified ctx pointer, which the verifier rejects.
	 */
	asm volatile("" ::: "memory");
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	process(skb, false, data, data_end, wire_len, rx_queue);
	return cfg_pass_frames ? KVF_TC_ACT_OK : KVF_TC_ACT_SHOT;
}
