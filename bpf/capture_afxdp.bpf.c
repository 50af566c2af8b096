/* AF_XDP variant of the capture filter, for the delivery comparison in
 * docs/xdp.md: the same parser and counters as capture.bpf.c (included, not
 * copied), but a matching frame is redirected to the AF_XDP socket of its RX
 * queue (XSKMAP) instead of being copied into the BPF ring buffer.
 */
#include "capture.bpf.c"

/* AF_XDP sockets by RX queue index; user space inserts one socket per queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* Same classification and counters as kvf_capture_xdp. `delivered` counts
 * frames handed to an XSK redirect; `ring_full` counts matched frames with no
 * socket on their queue. Frames the socket's RX ring has no room for are
 * dropped later by the kernel and counted in the socket's XDP_STATISTICS
 * (rx_dropped / rx_ring_full), not here. Single-buffer only ("xdp"): in copy
 * mode a multi-buffer frame would need XDP_USE_SG on the socket.
 */
SEC("xdp")
int kvf_capture_afxdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 wire_len = (__u32)(data_end - data);
	__u32 fallback = cfg_pass_frames ? XDP_PASS : XDP_DROP;
	struct segment seg = {};
	struct kvf_cap_counters *cnt;
	__u32 zero = 0;
	long act;
	int r;

	cnt = bpf_map_lookup_elem(&counters, &zero);
	/* Verifier only: a one-slot array lookup of key 0 cannot fail. */
	if (!cnt)
		return fallback;
	cnt->seen++;
	r = classify(data, data_end, wire_len, &seg);
	switch (r) {
	case KVF_KEEP:
		cnt->matched++;
		act = bpf_redirect_map(&xsks, ctx->rx_queue_index, fallback);
		if (act == XDP_REDIRECT) {
			cnt->delivered++;
			cnt->bytes += wire_len;
		} else {
			cnt->ring_full++;
		}
		return act;
	default:
		count_refusal(cnt, r);
		break;
	}
	return fallback;
}
