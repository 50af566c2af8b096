// kvf-wanem: the lab's WAN emulator, standing in for netem (absent from this
// kernel). It owns two TUN devices, one in each site's appliance namespace,
// and forwards IP packets between them through a model of a WAN path:
//
//   read ─► random loss ─► bottleneck queue (tail drop) ─► token bucket
//        ─► propagation delay ± jitter ─► write to the other TUN
//
// One thread per direction; each direction is a FIFO ring of preallocated
// packet slots, so nothing is allocated per packet. Jitter never reorders
// packets (a packet is never delivered before the one ahead of it), which
// keeps TCP's fast retransmit from firing on pure jitter, as on a real
// single-path WAN. Counters are written as JSON to --stats-file every 200 ms
// and on exit.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/status.h"

namespace {

using kvf::Result;
using kvf::Status;

std::atomic<bool> g_stop{false};

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct PathModel {
  double delay_ms = 0;         // one-way propagation delay
  double jitter_ms = 0;        // uniform in [-jitter, +jitter], clamped at 0 total
  double loss_pct = 0;         // independent random loss
  double rate_mbit = 0;        // 0 = unlimited
  uint64_t burst_bytes = 0;    // token bucket depth; 0 = automatic
  uint32_t queue_pkts = 1000;  // bottleneck queue limit (tail drop)
};

struct DirectionStats {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> forwarded_bytes{0};
  std::atomic<uint64_t> dropped_loss{0};
  std::atomic<uint64_t> dropped_queue{0};
  std::atomic<uint64_t> dropped_inflight{0};  // delay line full
  std::atomic<uint64_t> write_errors{0};
  std::atomic<uint64_t> max_queue_pkts{0};
};

// Opens TUN device `name` inside network namespace `netns` (a name under
// /var/run/netns, or empty for the current one). Creates it if needed.
Result<int> OpenTun(const std::string& netns, const std::string& name) {
  int self_ns = -1;
  if (!netns.empty()) {
    self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self_ns < 0) return Status::FromErrno(errno, "open /proc/self/ns/net");
    std::string path = "/var/run/netns/" + netns;
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      close(self_ns);
      return Status::FromErrno(errno, "open " + path);
    }
    int rc = setns(target, CLONE_NEWNET);
    int err = errno;
    close(target);
    if (rc < 0) {
      close(self_ns);
      return Status::FromErrno(err, "setns " + netns);
    }
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  Status st;
  if (fd < 0) {
    st = Status::FromErrno(errno, "open /dev/net/tun");
  } else {
    ifreq ifr{};
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      st = Status::FromErrno(errno, "TUNSETIFF " + name);
      close(fd);
      fd = -1;
    }
  }
  if (self_ns >= 0) {
    if (setns(self_ns, CLONE_NEWNET) < 0 && st.ok()) st = Status::FromErrno(errno, "setns back");
    close(self_ns);
  }
  if (!st.ok()) return st;
  return fd;
}

// One direction of the path: a ring of packet slots ordered by delivery time.
class Direction {
 public:
  Direction(std::string name, int in_fd, int out_fd, const PathModel& model, size_t slots, size_t slot_bytes,
            uint64_t seed)
      : name_(std::move(name)),
        in_fd_(in_fd),
        out_fd_(out_fd),
        model_(model),
        slot_bytes_(slot_bytes),
        ring_(slots),
        buffer_(new uint8_t[slots * slot_bytes]),
        rng_(seed) {
    if (model_.rate_mbit > 0) {
      bytes_per_ns_ = model_.rate_mbit * 1e6 / 8 / 1e9;
      burst_ = model_.burst_bytes ? static_cast<double>(model_.burst_bytes)
                                  : std::max(16384.0, bytes_per_ns_ * 1e6);  // 1 ms worth
      tokens_ = burst_;
    }
  }

  DirectionStats& stats() { return stats_; }
  const std::string& name() const { return name_; }

  void Run() {
    int64_t last_token_ns = NowNs();
    last_depart_ns_ = last_token_ns;
    while (!g_stop.load(std::memory_order_relaxed)) {
      int64_t now = NowNs();
      Deliver(now);
      // Sleep until the next delivery is due or a packet arrives.
      timespec timeout{0, 100'000'000};
      if (count_ > 0) {
        int64_t wait = ring_[head_].deliver_ns - now;
        if (wait < 0) wait = 0;
        if (wait < 100'000'000) timeout = {0, static_cast<long>(wait)};
      }
      pollfd pfd{in_fd_, POLLIN, 0};
      int n = ppoll(&pfd, 1, &timeout, nullptr);
      if (n < 0) {
        if (errno == EINTR) continue;
        std::perror("ppoll");
        return;
      }
      if (n == 0 || !(pfd.revents & POLLIN)) continue;
      // Drain what is readable (bounded, so deliveries are not starved).
      for (int i = 0; i < 256; ++i) {
        if (!Receive()) break;
      }
    }
  }

 private:
  struct Slot {
    int64_t depart_ns = 0;
    int64_t deliver_ns = 0;
    uint32_t len = 0;
  };

  uint8_t* SlotData(size_t idx) { return buffer_.get() + idx * slot_bytes_; }

  // Reads one packet if one is waiting; returns false when the TUN is empty.
  bool Receive() {
    const size_t tail = (head_ + count_) % ring_.size();
    uint8_t scratch[65536];
    const bool full = count_ == ring_.size();
    uint8_t* dst = full ? scratch : SlotData(tail);
    const size_t cap = full ? sizeof(scratch) : slot_bytes_;
    ssize_t n = read(in_fd_, dst, cap);
    if (n <= 0) return false;
    stats_.received.fetch_add(1, std::memory_order_relaxed);
    const int64_t now = NowNs();
    if (full) {
      stats_.dropped_inflight.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (model_.loss_pct > 0 && uniform_(rng_) * 100.0 < model_.loss_pct) {
      stats_.dropped_loss.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    // Packets still waiting for the bottleneck: those not yet departed.
    while (queued_ > 0 && ring_[(head_ + count_ - queued_) % ring_.size()].depart_ns <= now) --queued_;
    if (queued_ >= model_.queue_pkts) {
      stats_.dropped_queue.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    Slot& s = ring_[tail];
    s.len = static_cast<uint32_t>(n);
    s.depart_ns = Depart(now, static_cast<size_t>(n));
    double delay_ns = model_.delay_ms * 1e6;
    if (model_.jitter_ms > 0) delay_ns += (uniform_(rng_) * 2 - 1) * model_.jitter_ms * 1e6;
    if (delay_ns < 0) delay_ns = 0;
    s.deliver_ns = std::max(s.depart_ns + static_cast<int64_t>(delay_ns), last_deliver_ns_);
    last_deliver_ns_ = s.deliver_ns;
    ++count_;
    if (s.depart_ns > now) ++queued_;
    if (queued_ > stats_.max_queue_pkts.load(std::memory_order_relaxed)) {
      stats_.max_queue_pkts.store(queued_, std::memory_order_relaxed);
    }
    return true;
  }

  // Token bucket: the time the packet leaves the bottleneck.
  int64_t Depart(int64_t now, size_t len) {
    if (bytes_per_ns_ <= 0) return now;
    const int64_t start = std::max(now, last_depart_ns_);
    tokens_ = std::min(burst_, tokens_ + static_cast<double>(start - last_depart_ns_) * bytes_per_ns_);
    int64_t depart = start;
    if (tokens_ >= static_cast<double>(len)) {
      tokens_ -= static_cast<double>(len);
    } else {
      depart = start + static_cast<int64_t>(std::ceil((static_cast<double>(len) - tokens_) / bytes_per_ns_));
      tokens_ = 0;
    }
    last_depart_ns_ = depart;
    return depart;
  }

  void Deliver(int64_t now) {
    while (count_ > 0 && ring_[head_].deliver_ns <= now) {
      const Slot& s = ring_[head_];
      ssize_t w = write(out_fd_, SlotData(head_), s.len);
      if (w == static_cast<ssize_t>(s.len)) {
        stats_.forwarded.fetch_add(1, std::memory_order_relaxed);
        stats_.forwarded_bytes.fetch_add(s.len, std::memory_order_relaxed);
      } else {
        stats_.write_errors.fetch_add(1, std::memory_order_relaxed);
      }
      head_ = (head_ + 1) % ring_.size();
      --count_;
      if (queued_ > count_) queued_ = count_;
    }
  }

  std::string name_;
  int in_fd_;
  int out_fd_;
  PathModel model_;
  size_t slot_bytes_;
  std::vector<Slot> ring_;
  std::unique_ptr<uint8_t[]> buffer_;
  size_t head_ = 0, count_ = 0, queued_ = 0;
  int64_t last_depart_ns_ = 0, last_deliver_ns_ = 0;
  double bytes_per_ns_ = 0, burst_ = 0, tokens_ = 0;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
  DirectionStats stats_;
};

std::string StatsJson(Direction& ab, Direction& ba) {
  auto one = [](Direction& d) {
    auto& s = d.stats();
    char buf[512];
    std::snprintf(buf, sizeof(buf),
                  "\"%s\":{\"received\":%llu,\"forwarded\":%llu,\"forwarded_bytes\":%llu,"
                  "\"dropped_loss\":%llu,\"dropped_queue\":%llu,\"dropped_inflight\":%llu,"
                  "\"write_errors\":%llu,\"max_queue_pkts\":%llu}",
                  d.name().c_str(), (unsigned long long)s.received.load(),
                  (unsigned long long)s.forwarded.load(), (unsigned long long)s.forwarded_bytes.load(),
                  (unsigned long long)s.dropped_loss.load(), (unsigned long long)s.dropped_queue.load(),
                  (unsigned long long)s.dropped_inflight.load(), (unsigned long long)s.write_errors.load(),
                  (unsigned long long)s.max_queue_pkts.load());
    return std::string(buf);
  };
  return "{" + one(ab) + "," + one(ba) + "}\n";
}

void WriteStats(const std::string& path, const std::string& json) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return;
  std::fputs(json.c_str(), f);
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvf-wanem: TUN-based WAN emulator for the kvferry lab"};
  std::string ns_a, ns_b, tun_a = "kvfwan0", tun_b = "kvfwan0", stats_file;
  PathModel model;
  size_t slots = 32768;
  size_t mtu = 1500;
  uint64_t seed = 1;
  app.add_option("--netns-a", ns_a, "network namespace of site A's TUN (empty: current)");
  app.add_option("--netns-b", ns_b, "network namespace of site B's TUN (empty: current)");
  app.add_option("--tun-a", tun_a, "TUN device name at site A")->capture_default_str();
  app.add_option("--tun-b", tun_b, "TUN device name at site B")->capture_default_str();
  app.add_option("--delay-ms", model.delay_ms, "one-way delay in ms")->check(CLI::NonNegativeNumber);
  app.add_option("--jitter-ms", model.jitter_ms, "uniform jitter +- ms (no reordering)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--loss", model.loss_pct, "random loss in percent, each way")->check(CLI::Range(0.0, 100.0));
  app.add_option("--rate-mbit", model.rate_mbit, "rate limit in Mbit/s each way (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--burst-bytes", model.burst_bytes, "token bucket depth (0: max(16 KiB, 1 ms at rate))");
  app.add_option("--queue-pkts", model.queue_pkts, "bottleneck queue limit in packets (tail drop)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--inflight-pkts", slots, "delay-line capacity in packets per direction")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{1} << 22));
  app.add_option("--mtu", mtu, "largest packet forwarded")
      ->capture_default_str()
      ->check(CLI::Range(576, 65535));
  app.add_option("--seed", seed, "random seed for loss and jitter")->capture_default_str();
  app.add_option("--stats-file", stats_file, "write JSON counters here every 200 ms and on exit");
  CLI11_PARSE(app, argc, argv);

  auto fa = OpenTun(ns_a, tun_a);
  if (!fa.ok()) {
    std::fprintf(stderr, "kvf-wanem: site A: %s\n", fa.status().ToString().c_str());
    return 1;
  }
  auto fb = OpenTun(ns_b, tun_b);
  if (!fb.ok()) {
    std::fprintf(stderr, "kvf-wanem: site B: %s\n", fb.status().ToString().c_str());
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop.store(true); };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const size_t slot_bytes = (mtu + 63) & ~size_t{63};
  Direction ab("a_to_b", *fa, *fb, model, slots, slot_bytes, seed);
  Direction ba("b_to_a", *fb, *fa, model, slots, slot_bytes, seed * 7919 + 1);
  std::fprintf(stderr,
               "kvf-wanem: %s/%s <-> %s/%s delay %.2f ms jitter %.2f ms loss %.3f%% rate %.1f Mbit/s "
               "queue %u pkts\n",
               ns_a.c_str(), tun_a.c_str(), ns_b.c_str(), tun_b.c_str(), model.delay_ms, model.jitter_ms,
               model.loss_pct, model.rate_mbit, model.queue_pkts);
  std::thread t1([&] { ab.Run(); });
  std::thread t2([&] { ba.Run(); });
  while (!g_stop.load()) {
    WriteStats(stats_file, StatsJson(ab, ba));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  t1.join();
  t2.join();
  const std::string final_stats = StatsJson(ab, ba);
  WriteStats(stats_file, final_stats);
  std::fputs(final_stats.c_str(), stdout);
  return 0;
}
