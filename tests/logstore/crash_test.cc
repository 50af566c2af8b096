// Crash test on real files: kvferry-logbench appends under load with an
// fdatasync every 5 ms and prints its durable watermark; we SIGKILL it at
// random moments (>= 100 rounds) and check after each that recovery kept
// every record up to the last watermark printed, seqs are dense, checksums
// hold, record contents are intact and the writer resumes at the next seq.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>

#include "logstore/log.h"
#include "logstore/tools/synthetic.h"
#include "test_util.h"

namespace kvf::logstore {
namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = -1;
  int out = -1;
  std::string buf;
  uint64_t watermark = 0;
  bool opened = false;

  // Consumes whatever the child printed; returns false at EOF.
  bool Pump(int timeout_ms) {
    pollfd p{out, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return true;
    char tmp[4096];
    const ssize_t n = ::read(out, tmp, sizeof(tmp));
    if (n <= 0) return false;
    buf.append(tmp, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.rfind("durable ", 0) == 0)
        watermark = std::max<uint64_t>(watermark, std::stoull(line.substr(8)));
      if (line.rfind("open ", 0) == 0) opened = true;
    }
    return true;
  }
};

Child Spawn(const std::string& dir) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(KVF_LOGBENCH_PATH, KVF_LOGBENCH_PATH, "--dir", dir.c_str(), "--record-bytes", "128", "--fsync-ms",
            "5", "--seconds", "60", "--rate", "100000", "--segment-mb", "1", "--batch", "16", nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  c.out = fds[0];
  return c;
}

TEST(CrashTest, SigkillAtRandomMomentsLosesNothingDurable) {
  testing::TempDir tmp;
  const std::string dir = tmp.path() + "/log";
  const unsigned seed = static_cast<unsigned>(std::random_device{}());
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int kRounds = 100;
  uint64_t verified = 0;  // every seq <= verified was checked already
  uint64_t max_watermark = 0;
  int torn_tails = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Child c = Spawn(dir);
    ASSERT_GT(c.pid, 0);
    // Mostly kill while appending; sometimes during start-up and recovery.
    const bool early = rng() % 10 == 0;
    const auto delay = std::chrono::milliseconds(early ? rng() % 15 : 5 + rng() % 120);
    auto deadline = Clock::now() + delay;
    if (!early) {
      const auto open_by = Clock::now() + std::chrono::seconds(10);
      while (!c.opened && Clock::now() < open_by && c.Pump(10)) {
      }
      ASSERT_TRUE(c.opened) << "child did not start";
      deadline = Clock::now() + delay;
    }
    while (Clock::now() < deadline) {
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
      if (!c.Pump(std::max(left, 0))) break;
    }
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    while (c.Pump(0)) {
      pollfd p{c.out, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
    }
    ::close(c.out);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited on its own, status " << status;
    max_watermark = std::max(max_watermark, c.watermark);

    CollectingReporter rep;
    LogOptions o;
    o.dir = dir;
    o.io = IoBackend::kPosix;
    o.segment_bytes = 1 << 20;
    o.reporter = &rep;
    auto log = Log::Open(o);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    const uint64_t last = (*log)->recovery().last_seq;
    ASSERT_GE(last, c.watermark) << "a record the child reported durable is gone";
    ASSERT_GE(last, verified);
    for (const auto& r : rep.reports) {
      ASSERT_TRUE(r.torn_tail) << "unexpected damage: " << r.reason;
      ++torn_tails;
    }
    // Everything written since the last round: dense, intact, checksums hold.
    CollectingReporter read_rep;
    auto reader = (*log)->NewReader(verified + 1, false, &read_rep);
    ChangeRecord rec;
    uint64_t expect = verified + 1;
    while (reader->Next(&rec)) {
      ASSERT_EQ(rec.seq, expect);
      ASSERT_TRUE(IsSyntheticRecord(rec)) << "seq " << rec.seq;
      ++expect;
    }
    ASSERT_TRUE(reader->status().ok());
    ASSERT_TRUE(read_rep.reports.empty());
    ASSERT_EQ(expect, last + 1);
    // The writer resumes at the next seq.
    auto seq = (*log)->Append(SyntheticRecord(last + 1, 128, HybridClock::SystemMs()));
    ASSERT_TRUE(seq.ok());
    ASSERT_EQ(*seq, last + 1);
    ASSERT_TRUE((*log)->Close().ok());
    verified = last + 1;
  }
  // A last full pass, offline, over the whole log.
  CollectingReporter rep;
  MemFileSystem unused;
  auto fs = NewPosixFileSystem(IoBackend::kPosix);
  ASSERT_TRUE(fs.ok());
  auto reader = LogReader::OpenDir(fs->get(), dir, 1, &rep);
  ASSERT_TRUE(reader.ok());
  ChangeRecord rec;
  uint64_t expect = 1;
  while ((*reader)->Next(&rec)) {
    ASSERT_EQ(rec.seq, expect);
    ASSERT_TRUE(IsSyntheticRecord(rec));
    ++expect;
  }
  EXPECT_EQ(expect, verified + 1);
  EXPECT_TRUE(rep.reports.empty());
  EXPECT_GT(max_watermark, 0u);
  std::printf("crash test: %d rounds, %llu records, %d torn tails recovered, seed %u\n", kRounds,
              static_cast<unsigned long long>(verified), torn_tails, seed);
}

}  // namespace
}  // namespace kvf::logstore
