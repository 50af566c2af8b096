#include "core/hlc.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace kvf {
namespace {

struct FakeWall {
  uint64_t ms = 1'000'000;
  HybridClock::PhysicalMs Source() {
    return [this] { return ms; };
  }
};

TEST(Hlc, PackingRoundTrips) {
  Hlc h = Hlc::FromParts(1'700'000'000'123, 42);
  EXPECT_EQ(h.physical_ms(), 1'700'000'000'123u);
  EXPECT_EQ(h.logical(), 42);
  EXPECT_LT(Hlc::FromParts(5, 65535), Hlc::FromParts(6, 0));
}

TEST(HybridClock, FollowsWallClockWhenItAdvances) {
  FakeWall wall;
  HybridClock clock(wall.Source());
  Hlc a = clock.Now();
  EXPECT_EQ(a.physical_ms(), wall.ms);
  EXPECT_EQ(a.logical(), 0);
  wall.ms += 5;
  Hlc b = clock.Now();
  EXPECT_EQ(b, Hlc::FromParts(wall.ms, 0));
}

TEST(HybridClock, LogicalCounterWithinOneMillisecond) {
  FakeWall wall;
  HybridClock clock(wall.Source());
  Hlc prev = clock.Now();
  for (int i = 1; i < 100; ++i) {
    Hlc next = clock.Now();
    EXPECT_EQ(next.physical_ms(), wall.ms);
    EXPECT_EQ(next.logical(), i);
    EXPECT_GT(next, prev);
    prev = next;
  }
}

TEST(HybridClock, MonotonicWhenWallClockStepsBackwards) {
  FakeWall wall;
  HybridClock clock(wall.Source());
  Hlc before = clock.Now();
  wall.ms -= 10'000;  // NTP step back by 10 s
  Hlc after = clock.Now();
  EXPECT_GT(after, before);
  EXPECT_EQ(after.physical_ms(), before.physical_ms());
  EXPECT_EQ(after.logical(), before.logical() + 1);
  EXPECT_GE(clock.backwards_steps(), 1u);
  wall.ms += 20'000;  // wall clock catches up and passes: physical part resumes
  EXPECT_EQ(clock.Now(), Hlc::FromParts(wall.ms, 0));
}

TEST(HybridClock, LogicalOverflowCarriesIntoMilliseconds) {
  FakeWall wall;
  HybridClock clock(wall.Source());
  Hlc last;
  for (int i = 0; i < 70'000; ++i) last = clock.Now();
  EXPECT_EQ(last.physical_ms(), wall.ms + 1);
  EXPECT_EQ(last.logical(), 70'000 - 1 - 65'536);
}

TEST(HybridClock, MergeMovesPastRemoteStamp) {
  FakeWall wall;
  HybridClock clock(wall.Source());
  clock.Now();
  Hlc remote = Hlc::FromParts(wall.ms + 2'000, 7);  // peer's wall clock is 2 s ahead
  auto merged = clock.Update(remote);
  ASSERT_TRUE(merged.ok());
  EXPECT_GT(*merged, remote);
  EXPECT_EQ(*merged, Hlc::FromParts(wall.ms + 2'000, 8));
  EXPECT_GT(clock.Now(), *merged);  // later local events stay after the merge
}

TEST(HybridClock, MergeOfOlderRemoteKeepsLocalOrder) {
  FakeWall wall;
  HybridClock clock(wall.Source());
  Hlc local = clock.Now();
  auto merged = clock.Update(Hlc::FromParts(wall.ms - 500, 3));
  ASSERT_TRUE(merged.ok());
  EXPECT_GT(*merged, local);
}

TEST(HybridClock, RefusesRemoteTooFarAhead) {
  FakeWall wall;
  HybridClock clock(wall.Source(), /*max_forward_skew_ms=*/1'000);
  Hlc before = clock.Now();
  auto merged = clock.Update(Hlc::FromParts(wall.ms + 5'000, 0));
  EXPECT_FALSE(merged.ok());
  EXPECT_EQ(clock.Last(), before);
}

TEST(HybridClock, UniqueAcrossThreads) {
  HybridClock clock;
  constexpr int kThreads = 4, kPer = 20'000;
  std::vector<std::vector<uint64_t>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      uint64_t prev = 0;
      for (int i = 0; i < kPer; ++i) {
        uint64_t v = clock.Now().packed();
        EXPECT_GT(v, prev);  // monotonic per thread
        prev = v;
        seen[t].push_back(v);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<uint64_t> all;
  for (auto& v : seen) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "duplicate stamp";
}

}  // namespace
}  // namespace kvf
