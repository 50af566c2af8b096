/* Maps of the capture program (bpf/capture.bpf.c). Layouts of keys and
 * values are in capture_shared.h; user space sizes `servers` and `events`
 * before load and fills `servers` after.
 */
#pragma once

#include "capture_shared.h"

/* The KV server endpoints to capture: a frame is kept when its inner TCP
 * segment's destination or source (address, port) is a key here. Written by
 * user space only; the value is unused (0).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KVF_CAP_MAX_SERVERS);
	__type(key, struct kvf_cap_endpoint);
	__type(value, __u32);
} servers SEC(".maps");

/* Captured frames to user space: struct kvf_cap_record + frame bytes.
 * Size (power of two, multiple of the page size) set by user space.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Drop and delivery counters, one struct kvf_cap_counters per CPU in
 * slot 0. Read (summed over CPUs) by user space; never reset by the kernel.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kvf_cap_counters);
} counters SEC(".maps");

/* Per-CPU count of records submitted without waking the consumer since
 * the last wake-up (batched wake-ups). Private to the program.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} unsignaled SEC(".maps");
