// Hybrid logical clock (Kulkarni et al.): a 48-bit physical millisecond part
// and a 16-bit logical counter packed into one u64, so that comparing stamps
// is comparing integers and "logical + 1" carries into the millisecond on
// overflow. Stamps never go backwards, even when the wall clock does.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "core/status.h"

namespace kvf {

class Hlc {
 public:
  static constexpr int kLogicalBits = 16;
  static constexpr uint64_t kLogicalMask = (uint64_t{1} << kLogicalBits) - 1;

  constexpr Hlc() = default;
  static constexpr Hlc FromPacked(uint64_t packed) { return Hlc(packed); }
  static constexpr Hlc FromParts(uint64_t physical_ms, uint16_t logical) {
    return Hlc((physical_ms << kLogicalBits) | logical);
  }

  constexpr uint64_t packed() const { return packed_; }
  constexpr uint64_t physical_ms() const { return packed_ >> kLogicalBits; }
  constexpr uint16_t logical() const { return static_cast<uint16_t>(packed_ & kLogicalMask); }

  friend constexpr auto operator<=>(Hlc, Hlc) = default;

 private:
  constexpr explicit Hlc(uint64_t packed) : packed_(packed) {}
  uint64_t packed_ = 0;
};

// Thread-safe (lock-free) HLC source. The physical source is injectable so
// tests can step the wall clock backwards.
class HybridClock {
 public:
  using PhysicalMs = std::function<uint64_t()>;

  // `max_forward_skew_ms`: a remote stamp further than this ahead of our wall
  // clock is refused by Update() rather than dragging our clock forward.
  explicit HybridClock(PhysicalMs physical = SystemMs, uint64_t max_forward_skew_ms = 60'000);

  // A stamp for a local event; strictly greater than every stamp this clock
  // returned or merged before.
  Hlc Now();
  // Merges a stamp received from a peer and returns a local stamp greater than
  // both. Fails (and leaves the clock alone) if `remote` is too far ahead.
  Result<Hlc> Update(Hlc remote);
  // The last stamp handed out or merged.
  Hlc Last() const { return Hlc::FromPacked(last_.load(std::memory_order_acquire)); }
  // How many times Now()/Update() saw the wall clock behind the last stamp.
  uint64_t backwards_steps() const { return backwards_steps_.load(std::memory_order_relaxed); }

  static uint64_t SystemMs();

 private:
  uint64_t Advance(uint64_t floor);

  PhysicalMs physical_;
  uint64_t max_forward_skew_ms_;
  std::atomic<uint64_t> last_{0};
  std::atomic<uint64_t> backwards_steps_{0};
};

}  // namespace kvf
