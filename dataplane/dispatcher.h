// The multi-worker path for live capture: the RX thread decodes each frame
// and hands its TCP segment to one of N workers, chosen by the symmetric flow
// hash so both directions of a connection meet in one worker's FlowTable
// shard. Each worker has a bounded single-producer/single-consumer queue;
// a full queue drops the segment and counts it (reassembly then reports the
// hole as a gap, so nothing is lost silently). A queue is a ring of segment
// slots plus a ring of payload bytes: memory follows the bytes in flight, not
// slots × the largest payload.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "dataplane/decode.h"
#include "dataplane/flow_table.h"
#include "dataplane/packet.h"

namespace kvf::dataplane {

struct DispatcherConfig {
  size_t workers = 2;
  size_t queue_slots = 2048;          // segments per worker; rounded up to a power of two
  size_t queue_bytes = 16u << 20;     // payload bytes per worker; rounded up to a power of two
  size_t max_segment_payload = 9000;  // larger payloads are dropped (oversize_payload_drops)
  FlowTableConfig flow_table;         // each worker's shard gets this config
  uint64_t tick_interval_ns = 50'000'000;
  // Live capture: timeouts run on CLOCK_REALTIME, so idle flows and holes
  // time out without traffic. Offline: on the newest packet timestamp seen.
  bool wall_clock_ticks = true;
  // Live: while the source has nothing to deliver (NoteRxIdle), a worker
  // with nothing queued tells its factory (OnProgress) that nothing captured
  // more than this long before now is still to come: a frame can wait that
  // long in the capture path (pcap blocks time out after 50 ms). "Now" is
  // the newest frame's time plus the wall time since it was dispatched, so
  // sources whose clock is not CLOCK_REALTIME (a pcap file through DPDK's
  // net_pcap) work too.
  uint64_t rx_lag_ns = 100'000'000;
};

struct DispatcherStats {
  DecodeCounters decode;
  uint64_t segments_queued = 0;
  uint64_t queue_full_drops = 0;        // a worker's queue (slots or bytes) was full
  uint64_t oversize_payload_drops = 0;  // payload larger than max_segment_payload
  FlowTableStats flows;                 // summed over workers (as of their last tick)
};

class Dispatcher {
 public:
  // `factories[i]` is used only on worker i's thread; size() must equal
  // config.workers and each must outlive the dispatcher.
  Dispatcher(DispatcherConfig config, std::vector<StreamConsumerFactory*> factories);
  ~Dispatcher();  // Stop()
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts the worker threads. Segments dispatched before Start wait in the queues.
  void Start();
  // RX thread only. Decodes and enqueues; returns how many segments were queued.
  size_t Dispatch(std::span<const Packet> packets);
  // RX thread only: the source had nothing to deliver (until the next
  // Dispatch with frames). Lets idle workers' watermarks follow the clock.
  void NoteRxIdle();
  // Lets the workers drain their queues, closes every flow (kShutdown) and
  // joins the threads. Idempotent.
  void Stop();
  // Any thread.
  DispatcherStats Stats() const;

  static size_t WorkerFor(const FlowKey& key, size_t workers) { return key.WorkerOf(workers); }

 private:
  struct Worker;
  void RunWorker(Worker* w);

  DispatcherConfig config_;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;
  std::atomic<bool> stopping_{false};
  // Newest capture time of a segment queued so far (stored after the
  // segments), the wall time of that Dispatch, and whether the source has
  // been found empty since.
  std::atomic<uint64_t> dispatched_ts_{0};
  std::atomic<uint64_t> dispatched_wall_ns_{0};
  std::atomic<bool> rx_idle_{false};

  // RX-thread counters, published under rx_mu_ at the end of each Dispatch.
  DispatcherStats rx_;
  mutable std::mutex rx_mu_;
  DispatcherStats rx_published_;
};

}  // namespace kvf::dataplane
