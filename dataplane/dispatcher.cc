// Dispatcher: RX-side decode and hashing, per-worker SPSC rings of segment
// slots and of payload bytes (the payload is copied, so the RX burst can be
// recycled), and the worker loop that drives one FlowTable shard.
#include "dataplane/dispatcher.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>

namespace kvf::dataplane {
namespace {

size_t RoundUpPow2(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

struct Dispatcher::Worker {
  Worker(const DispatcherConfig& c, StreamConsumerFactory* factory)
      : slots(RoundUpPow2(c.queue_slots)),
        payload_end(slots.size()),
        mask(slots.size() - 1),
        bytes_size(RoundUpPow2(std::max(c.queue_bytes, c.max_segment_payload))),
        bytes(new uint8_t[bytes_size]),  // not zeroed: pages are touched as the ring fills
        table(c.flow_table, factory),
        factory(factory) {}

  // Slot ring: the producer owns `head`, the consumer owns `tail`.
  std::vector<TcpSegment> slots;
  // Byte ring: a payload never wraps (the producer skips the ring's tail
  // instead). Positions are monotonic; payload_end[i] is where slot i's bytes
  // end, so the consumer frees bytes up to it once the segment is processed.
  std::vector<uint64_t> payload_end;
  size_t mask;
  size_t bytes_size;
  std::unique_ptr<uint8_t[]> bytes;
  uint64_t bytes_head = 0;  // producer only
  alignas(64) std::atomic<uint64_t> head{0};
  alignas(64) std::atomic<uint64_t> tail{0};
  alignas(64) std::atomic<uint64_t> bytes_tail{0};

  // Idle workers sleep here; the producer wakes them only when `sleeping`
  // is set, so a busy worker costs the RX thread nothing.
  std::atomic<bool> sleeping{false};
  std::mutex wake_mu;
  std::condition_variable wake_cv;

  FlowTable table;  // touched only by the worker thread (or by Stop after join)
  StreamConsumerFactory* factory;
  std::thread thread;
  mutable std::mutex stats_mu;
  FlowTableStats published;
};

Dispatcher::Dispatcher(DispatcherConfig config, std::vector<StreamConsumerFactory*> factories)
    : config_(std::move(config)) {
  if (config_.workers == 0) config_.workers = 1;
  for (size_t i = 0; i < config_.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(config_, i < factories.size() ? factories[i] : nullptr));
  }
}

Dispatcher::~Dispatcher() {
  Stop();
}

void Dispatcher::Start() {
  if (started_) return;
  started_ = true;
  for (auto& w : workers_) {
    Worker* raw = w.get();
    w->thread = std::thread([this, raw] { RunWorker(raw); });
  }
}

size_t Dispatcher::Dispatch(std::span<const Packet> packets) {
  size_t queued = 0;
  uint64_t newest = 0;
  for (const Packet& p : packets) {
    newest = std::max(newest, p.ts_ns);
    TcpSegment seg;
    const DecodeStatus st = DecodeFrame(p.link, p.data, p.len, p.ts_ns, &seg);
    rx_.decode.Add(st);
    if (!Reassemblable(st, seg, p.len, p.wire_len)) continue;
    if (seg.payload_len > config_.max_segment_payload) {
      ++rx_.oversize_payload_drops;
      continue;
    }
    Worker& w = *workers_[WorkerFor(FlowKey::Of(seg.src, seg.dst), workers_.size())];
    const uint64_t h = w.head.load(std::memory_order_relaxed);
    if (h - w.tail.load(std::memory_order_acquire) >= w.slots.size()) {
      ++rx_.queue_full_drops;
      continue;
    }
    const size_t len = seg.payload_len;
    const size_t pos = w.bytes_head & (w.bytes_size - 1);
    const uint64_t start = pos + len > w.bytes_size ? w.bytes_head + (w.bytes_size - pos) : w.bytes_head;
    if (start + len - w.bytes_tail.load(std::memory_order_acquire) > w.bytes_size) {
      ++rx_.queue_full_drops;
      continue;
    }
    const size_t idx = h & w.mask;
    uint8_t* dst = w.bytes.get() + (start & (w.bytes_size - 1));
    if (len > 0) std::memcpy(dst, seg.payload, len);
    seg.payload = dst;
    w.bytes_head = start + len;
    w.payload_end[idx] = start + len;
    w.slots[idx] = seg;
    w.head.store(h + 1, std::memory_order_release);
    ++queued;
  }
  // Pairs with the fence in RunWorker: either the worker sees the new head
  // before sleeping, or we see `sleeping` and wake it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (auto& w : workers_) {
    if (w->sleeping.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(w->wake_mu);
      w->wake_cv.notify_one();
    }
  }
  rx_.segments_queued += queued;
  // After the segments: a worker that reads this and then finds its queue
  // empty has processed every segment up to this time.
  if (newest > 0) {
    rx_idle_.store(false, std::memory_order_relaxed);
    dispatched_wall_ns_.store(RealtimeNs(), std::memory_order_relaxed);
    if (newest > dispatched_ts_.load(std::memory_order_relaxed))
      dispatched_ts_.store(newest, std::memory_order_release);
  }
  std::lock_guard<std::mutex> lock(rx_mu_);
  rx_published_ = rx_;
  return queued;
}

void Dispatcher::NoteRxIdle() {
  rx_idle_.store(true, std::memory_order_release);
}

void Dispatcher::RunWorker(Worker* w) {
  using Clock = std::chrono::steady_clock;
  auto next_tick = Clock::now();
  uint64_t newest_ts = 0;
  int idle_spins = 0;
  auto tick = [&] {
    const uint64_t now = RealtimeNs();
    // Nothing queued: every segment dispatched so far is processed, and none
    // older than `mark` is to come.
    const bool queue_empty =
        w->head.load(std::memory_order_acquire) == w->tail.load(std::memory_order_relaxed);
    uint64_t mark = 0;
    if (queue_empty) {
      const bool rx_idle = rx_idle_.load(std::memory_order_acquire);
      const uint64_t dispatched = dispatched_ts_.load(std::memory_order_acquire);
      const uint64_t dispatched_wall = dispatched_wall_ns_.load(std::memory_order_relaxed);
      mark = std::max(newest_ts, dispatched);
      // The source is empty too: only frames still in the capture path
      // can come, none older than the lag allowance, on the frames' clock.
      if (config_.wall_clock_ticks && rx_idle && dispatched > 0 && now > dispatched_wall) {
        const uint64_t clock = dispatched + (now - dispatched_wall);
        if (clock > config_.rx_lag_ns) mark = std::max(mark, clock - config_.rx_lag_ns);
      }
      // Holds for the other direction's bytes end on this clock even when
      // their flow (or the whole worker) has fallen silent.
      w->table.AdvanceCaptureClock(mark);
    }
    w->table.Tick(config_.wall_clock_ticks ? now : newest_ts);
    if (w->factory != nullptr && queue_empty) {
      // Data the table still holds (behind a hole, or for the other
      // direction) is delivered later with its own, older time.
      w->factory->OnProgress(std::min(mark, w->table.OldestPendingNs()), w->table.RequestLagNs());
    }
    std::lock_guard<std::mutex> lock(w->stats_mu);
    w->published = w->table.stats();
  };
  for (;;) {
    const uint64_t h = w->head.load(std::memory_order_acquire);
    uint64_t t = w->tail.load(std::memory_order_relaxed);
    if (h == t) {
      if (stopping_.load(std::memory_order_acquire) && w->head.load(std::memory_order_acquire) == t) break;
      if (++idle_spins < 64) {
        std::this_thread::yield();
      } else {
        std::unique_lock<std::mutex> lock(w->wake_mu);
        w->sleeping.store(true, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (w->head.load(std::memory_order_acquire) == t && !stopping_.load(std::memory_order_acquire)) {
          w->wake_cv.wait_until(lock, next_tick);
        }
        w->sleeping.store(false, std::memory_order_relaxed);
      }
    } else {
      idle_spins = 0;
    }
    uint64_t freed = 0;
    bool any = false;
    for (int n = 0; t != h && n < 256; ++t, ++n) {
      const TcpSegment& seg = w->slots[t & w->mask];
      if (seg.ts_ns > newest_ts) newest_ts = seg.ts_ns;
      w->table.Process(seg);  // keeps no pointer into the payload (it copies what it buffers)
      freed = w->payload_end[t & w->mask];
      any = true;
    }
    if (any) w->bytes_tail.store(freed, std::memory_order_release);
    if (any && w->factory != nullptr) {
      w->factory->OnProgress(std::min(newest_ts, w->table.OldestPendingNs()), w->table.RequestLagNs());
    }
    w->tail.store(t, std::memory_order_release);
    if (Clock::now() >= next_tick) {
      tick();
      next_tick = Clock::now() + std::chrono::nanoseconds(config_.tick_interval_ns);
    }
  }
  w->table.CloseAll(CloseReason::kShutdown);
  if (w->factory != nullptr) w->factory->OnStop();
  std::lock_guard<std::mutex> lock(w->stats_mu);
  w->published = w->table.stats();
}

void Dispatcher::Stop() {
  if (!started_) Start();  // drain whatever was queued before Start
  const bool already = stopping_.exchange(true);
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->wake_mu);
    w->wake_cv.notify_one();
  }
  if (already) {
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    return;
  }
  for (auto& w : workers_) w->thread.join();
}

DispatcherStats Dispatcher::Stats() const {
  DispatcherStats s;
  {
    std::lock_guard<std::mutex> lock(rx_mu_);
    s = rx_published_;
  }
  for (const auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->stats_mu);
    s.flows += w->published;
  }
  return s;
}

}  // namespace kvf::dataplane
