// Hybrid logical clock implementation: a CAS loop over the packed stamp.
#include "core/hlc.h"

#include <chrono>
#include <string>

namespace kvf {

HybridClock::HybridClock(PhysicalMs physical, uint64_t max_forward_skew_ms)
    : physical_(std::move(physical)), max_forward_skew_ms_(max_forward_skew_ms) {}

uint64_t HybridClock::SystemMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Moves the clock to max(last + 1, floor, wall) and returns the new value.
uint64_t HybridClock::Advance(uint64_t floor) {
  const uint64_t wall = Hlc::FromParts(physical_(), 0).packed();
  uint64_t last = last_.load(std::memory_order_acquire);
  for (;;) {
    uint64_t next = last + 1;
    if (floor > next) next = floor;
    if (wall > next) {
      next = wall;
    } else if (wall < (last & ~Hlc::kLogicalMask)) {
      backwards_steps_.fetch_add(1, std::memory_order_relaxed);
    }
    if (last_.compare_exchange_weak(last, next, std::memory_order_acq_rel)) return next;
  }
}

Hlc HybridClock::Now() {
  return Hlc::FromPacked(Advance(0));
}

Result<Hlc> HybridClock::Update(Hlc remote) {
  const uint64_t wall_ms = physical_();
  if (remote.physical_ms() > wall_ms + max_forward_skew_ms_) {
    return InvalidArgument("remote clock " + std::to_string(remote.physical_ms()) + " ms is more than " +
                           std::to_string(max_forward_skew_ms_) + " ms ahead of local " +
                           std::to_string(wall_ms) + " ms");
  }
  return Hlc::FromPacked(Advance(remote.packed() + 1));
}

}  // namespace kvf
