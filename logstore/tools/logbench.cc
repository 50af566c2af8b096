// kvferry-logbench: appends synthetic change records to a log directory and
// prints the durable watermark as it advances ("durable <seq>", one line per
// advance, flushed), then throughput and durable-ack latency. The crash test
// kills it at random moments; the benchmarks drive it.
//
// Record content is a pure function of its seq (key "k<seq>"), so a checker
// can verify every surviving record without knowing what the run did.
#include <poll.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "logstore/log.h"
#include "logstore/tools/synthetic.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string dir;
  size_t record_bytes = 128;
  uint64_t fsync_ms = 5;
  double seconds = 10;
  uint64_t rate = 0;  // records/s, 0 = as fast as possible
  std::string io = "auto";
  std::string sync = "ms";
  uint64_t segment_mb = 64;
  size_t batch = 64;
  bool quiet = false;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace kvf::logstore;
  Options opt;
  CLI::App app{"kvferry-logbench: append synthetic records and print the durable watermark"};
  app.add_option("--dir", opt.dir, "log directory")->required();
  app.add_option("--record-bytes", opt.record_bytes, "framed record size in bytes");
  app.add_option("--fsync-ms", opt.fsync_ms, "fdatasync interval (ms) for --sync ms");
  app.add_option("--seconds", opt.seconds, "how long to append");
  app.add_option("--rate", opt.rate, "records per second (0: unlimited)");
  app.add_option("--io", opt.io, "auto | uring | posix");
  app.add_option("--sync", opt.sync, "ms | batch | never");
  app.add_option("--segment-mb", opt.segment_mb, "segment size in MiB");
  app.add_option("--batch", opt.batch, "records per AppendBatch call");
  app.add_flag("--quiet", opt.quiet, "do not print durable lines");
  CLI11_PARSE(app, argc, argv);

  LogOptions lo;
  lo.dir = opt.dir;
  lo.io = opt.io == "uring"   ? kvf::logstore::IoBackend::kUring
          : opt.io == "posix" ? kvf::logstore::IoBackend::kPosix
                              : kvf::logstore::IoBackend::kAuto;
  lo.sync_mode = opt.sync == "batch"   ? SyncMode::kPerBatch
                 : opt.sync == "never" ? SyncMode::kNever
                                       : SyncMode::kEveryMs;
  lo.sync_every_ms = opt.fsync_ms;
  lo.segment_bytes = opt.segment_mb << 20;
  CollectingReporter reporter;
  lo.reporter = &reporter;
  auto log_or = Log::Open(lo);
  if (!log_or.ok()) {
    std::fprintf(stderr, "kvferry-logbench: %s\n", log_or.status().ToString().c_str());
    return 1;
  }
  Log& log = **log_or;
  const RecoveryInfo& rec = log.recovery();
  std::printf("open io=%s recovered_last=%llu dropped_bytes=%llu truncated=%llu\n",
              log.Stats().io_backend.c_str(), static_cast<unsigned long long>(rec.last_seq),
              static_cast<unsigned long long>(rec.dropped_bytes),
              static_cast<unsigned long long>(rec.truncated_bytes));
  std::fflush(stdout);

  // Latency samples: (seq, append time) for one record in each batch.
  std::mutex mu;
  std::deque<std::pair<uint64_t, Clock::time_point>> samples;
  std::vector<double> latencies_us;
  std::atomic<bool> done{false};
  std::thread printer([&] {
    uint64_t printed = 0;
    pollfd p{log.durable_eventfd(), POLLIN, 0};
    while (!done.load()) {
      if (::poll(&p, 1, 50) > 0) {
        uint64_t n;
        (void)!::read(p.fd, &n, sizeof(n));
      }
      const uint64_t d = log.durable_seq();
      const auto now = Clock::now();
      if (d > printed) {
        printed = d;
        if (!opt.quiet) {
          std::printf("durable %llu\n", static_cast<unsigned long long>(d));
          std::fflush(stdout);
        }
      }
      std::lock_guard<std::mutex> l(mu);
      while (!samples.empty() && samples.front().first <= d) {
        latencies_us.push_back(
            std::chrono::duration<double, std::micro>(now - samples.front().second).count());
        samples.pop_front();
      }
    }
  });

  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(opt.seconds);
  uint64_t next_seq = rec.last_seq + 1;
  uint64_t appended = 0;
  std::vector<kvf::ChangeRecord> batch(opt.batch);
  int rc = 0;
  while (Clock::now() < end) {
    if (opt.rate != 0) {
      const double should = std::chrono::duration<double>(Clock::now() - start).count() * opt.rate;
      if (static_cast<double>(appended) >= should) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
    }
    const uint64_t now_ms = kvf::HybridClock::SystemMs();
    for (size_t i = 0; i < batch.size(); ++i)
      batch[i] = SyntheticRecord(next_seq + i, opt.record_bytes, now_ms);
    auto first = log.AppendBatch(batch);
    if (!first.ok()) {
      std::fprintf(stderr, "append: %s\n", first.status().ToString().c_str());
      rc = 1;
      break;
    }
    if (*first != next_seq) {
      std::fprintf(stderr, "seq mismatch: got %llu want %llu\n", static_cast<unsigned long long>(*first),
                   static_cast<unsigned long long>(next_seq));
      rc = 1;
      break;
    }
    {
      std::lock_guard<std::mutex> l(mu);
      samples.emplace_back(next_seq + batch.size() - 1, Clock::now());
    }
    next_seq += batch.size();
    appended += batch.size();
  }
  const double append_s = std::chrono::duration<double>(Clock::now() - start).count();
  kvf::Status s = log.Sync();
  const double total_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  done = true;
  printer.join();
  if (!s.ok()) {
    std::fprintf(stderr, "sync: %s\n", s.ToString().c_str());
    rc = 1;
  }
  const LogStats st = log.Stats();
  s = log.Close();
  if (!s.ok()) rc = 1;
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) {
    if (latencies_us.empty()) return 0.0;
    return latencies_us[std::min(latencies_us.size() - 1, static_cast<size_t>(q * latencies_us.size()))];
  };
  const double bytes = static_cast<double>(appended) * static_cast<double>(opt.record_bytes);
  std::printf(
      "result records=%llu seconds=%.3f records_per_s=%.0f MB_per_s=%.1f syncs=%llu "
      "ack_p50_us=%.0f ack_p99_us=%.0f ack_max_us=%.0f durable=%llu io=%s\n",
      static_cast<unsigned long long>(appended), total_s, appended / append_s, bytes / append_s / 1e6,
      static_cast<unsigned long long>(st.syncs), pct(0.5), pct(0.99),
      latencies_us.empty() ? 0.0 : latencies_us.back(), static_cast<unsigned long long>(st.durable_seq),
      st.io_backend.c_str());
  return rc;
}
