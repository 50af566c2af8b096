// Append throughput and durable-ack latency of the change log, beside a
// plain pwrite+fdatasync loop measured in the same run on the same disk.
// Run through bench/logstore/run.sh, which adds the fio baseline.
//   args: record bytes, fsync interval (ms)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "logstore/log.h"
#include "logstore/tools/synthetic.h"

namespace {

using kvf::logstore::Log;
using kvf::logstore::LogOptions;
using Clock = std::chrono::steady_clock;

constexpr size_t kBatch = 64;

std::string BenchDir() {
  const char* base = std::getenv("KVF_BENCH_DIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/kvft-logbench-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  return ::mkdtemp(buf.data()) != nullptr ? std::string(buf.data()) : std::string();
}

// Tracks (last seq of a batch, append time) and turns durable advances into
// ack latencies.
class AckTracker {
 public:
  void Appended(uint64_t seq) {
    std::lock_guard<std::mutex> l(mu_);
    pending_.emplace_back(seq, Clock::now());
  }
  void Durable(uint64_t seq) {
    const auto now = Clock::now();
    std::lock_guard<std::mutex> l(mu_);
    while (!pending_.empty() && pending_.front().first <= seq) {
      lat_us_.push_back(std::chrono::duration<double, std::micro>(now - pending_.front().second).count());
      pending_.pop_front();
    }
  }
  double Percentile(double q) {
    std::lock_guard<std::mutex> l(mu_);
    if (lat_us_.empty()) return 0;
    std::sort(lat_us_.begin(), lat_us_.end());
    return lat_us_[std::min(lat_us_.size() - 1, static_cast<size_t>(q * lat_us_.size()))];
  }

 private:
  std::mutex mu_;
  std::deque<std::pair<uint64_t, Clock::time_point>> pending_;
  std::vector<double> lat_us_;
};

void RunLog(benchmark::State& state, uint64_t rate) {
  const size_t record_bytes = static_cast<size_t>(state.range(0));
  const std::string dir = BenchDir();
  AckTracker acks;
  LogOptions o;
  o.dir = dir + "/log";
  o.sync_every_ms = static_cast<uint64_t>(state.range(1));
  o.segment_bytes = static_cast<uint64_t>(state.range(2)) << 20;
  Log* self = nullptr;
  // A destination that ships instantly: retention recycles segment files, as
  // in steady state (fresh fallocate'd files pay unwritten-extent conversion
  // on every fdatasync).
  o.on_durable = [&](uint64_t seq) {
    acks.Durable(seq);
    if (self != nullptr) (void)self->AdvanceCursor("bench", seq);
  };
  auto log = Log::Open(o);
  if (log.ok()) self = log->get();
  if (!log.ok()) {
    state.SkipWithError(log.status().ToString().c_str());
    return;
  }
  std::vector<kvf::ChangeRecord> batch(kBatch);
  for (size_t i = 0; i < kBatch; ++i) batch[i] = kvf::logstore::SyntheticRecord(i + 1, record_bytes, 1);
  uint64_t records = 0;
  const auto start = Clock::now();
  for (auto _ : state) {
    if (rate != 0) {
      const auto due = start + std::chrono::duration<double>(static_cast<double>(records) / rate);
      std::this_thread::sleep_until(due);
    }
    auto first = (*log)->AppendBatch(batch);
    if (!first.ok()) {
      state.SkipWithError(first.status().ToString().c_str());
      break;
    }
    acks.Appended(*first + kBatch - 1);
    records += kBatch;
  }
  (void)(*log)->Sync();
  state.counters["records_per_s"] =
      benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
  state.counters["MB_per_s"] =
      benchmark::Counter(static_cast<double>(records * record_bytes) / 1e6, benchmark::Counter::kIsRate);
  state.counters["ack_p50_us"] = acks.Percentile(0.50);
  state.counters["ack_p99_us"] = acks.Percentile(0.99);
  state.counters["syncs"] = static_cast<double>((*log)->Stats().syncs);
  state.SetLabel((*log)->Stats().io_backend);
  (void)(*log)->Close();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// As fast as the producer can go: throughput (ack latency includes queueing).
void BM_LogAppend(benchmark::State& state) {
  RunLog(state, 0);
}

// At a fixed offered load (~40 MB/s, at most 300k records/s): ack latency.
void BM_LogDurableAck(benchmark::State& state) {
  const uint64_t rate = std::min<uint64_t>(300'000, 40'000'000 / static_cast<uint64_t>(state.range(0)));
  RunLog(state, rate);
}

// Baseline: the same bytes in batches of 64 records with pwrite, and an
// fdatasync whenever the interval has passed, into a preallocated file.
void BM_PwriteFdatasync(benchmark::State& state) {
  const size_t record_bytes = static_cast<size_t>(state.range(0));
  const auto interval = std::chrono::milliseconds(state.range(1));
  const std::string dir = BenchDir();
  const std::string path = dir + "/baseline";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  constexpr off_t kFile = 64 << 20;
  if (fd < 0 || ::fallocate(fd, 0, 0, kFile) != 0) {
    state.SkipWithError("open/fallocate failed");
    return;
  }
  std::vector<char> buf(kBatch * record_bytes, 'x');
  off_t off = 0;
  uint64_t records = 0, syncs = 0;
  auto last_sync = Clock::now();
  for (auto _ : state) {
    if (off + static_cast<off_t>(buf.size()) > kFile) off = 0;  // wrap: like a recycled segment
    if (::pwrite(fd, buf.data(), buf.size(), off) != static_cast<ssize_t>(buf.size())) {
      state.SkipWithError("pwrite failed");
      break;
    }
    off += static_cast<off_t>(buf.size());
    records += kBatch;
    if (Clock::now() - last_sync >= interval) {
      ::fdatasync(fd);
      ++syncs;
      last_sync = Clock::now();
    }
  }
  ::fdatasync(fd);
  ::close(fd);
  state.counters["records_per_s"] =
      benchmark::Counter(static_cast<double>(records), benchmark::Counter::kIsRate);
  state.counters["MB_per_s"] =
      benchmark::Counter(static_cast<double>(records * record_bytes) / 1e6, benchmark::Counter::kIsRate);
  state.counters["syncs"] = static_cast<double>(syncs);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t bytes : {64, 128, 512, 4096}) {
    for (int64_t ms : {1, 5, 20}) b->Args({bytes, ms, 16});
  }
  b->ArgNames({"bytes", "fsync_ms", "segment_mb"})
      ->UseRealTime()
      ->MinTime(1.0)
      ->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_LogAppend)->Apply(Args);
BENCHMARK(BM_LogDurableAck)->Apply(Args);
BENCHMARK(BM_PwriteFdatasync)->Apply(Args);

}  // namespace

BENCHMARK_MAIN();
