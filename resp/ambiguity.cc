// Ambiguity window: see ambiguity.h.
#include "resp/ambiguity.h"

#include "core/checksum.h"

namespace kvf::resp {

AmbiguityTracker::AmbiguityTracker(RecordSink* downstream, AmbiguityOptions options)
    : downstream_(downstream), opts_(options) {}

uint64_t AmbiguityTracker::MapKey(const ChangeRecord& r) { return Xxh3(r.key, r.db); }

void AmbiguityTracker::ReleaseFront() {
  Held h = std::move(held_.front());
  held_.pop_front();
  ++first_held_id_;
  downstream_->Emit(std::move(h.record), h.connection_id);
}

void AmbiguityTracker::Advance(uint64_t now_ns) {
  while (!held_.empty() && held_.front().record.capture_ns + opts_.window_ns < now_ns) ReleaseFront();
  while (!key_order_.empty() && key_order_.front().second + opts_.window_ns < now_ns) {
    auto it = last_.find(key_order_.front().first);
    if (it != last_.end() && it->second.latest.capture_ns == key_order_.front().second) last_.erase(it);
    key_order_.pop_front();
  }
}

void AmbiguityTracker::Flush() {
  while (!held_.empty()) ReleaseFront();
  last_.clear();
  key_order_.clear();
}

void AmbiguityTracker::FlagPartner(const Write& w, ChangeRecord* record) {
  const uint64_t ts = record->capture_ns;
  const uint64_t d = ts > w.capture_ns ? ts - w.capture_ns : w.capture_ns - ts;
  if (d >= opts_.window_ns) return;
  constexpr uint16_t kBoth = kAmbiguousOrder | kNeedsReadback;
  if (!record->HasFlag(kAmbiguousOrder)) ++stats_.ambiguous;
  record->flags |= kBoth;
  if (w.held_id >= first_held_id_ && w.held_id - first_held_id_ < held_.size()) {
    ChangeRecord& p = held_[w.held_id - first_held_id_].record;
    if (!p.HasFlag(kAmbiguousOrder)) ++stats_.ambiguous;
    p.flags |= kBoth;
  } else {
    ++stats_.late_partner;
  }
}

void AmbiguityTracker::Emit(ChangeRecord&& record, uint64_t connection_id) {
  ++stats_.records;
  const uint64_t ts = record.capture_ns;
  Advance(ts > opts_.window_ns ? ts - opts_.window_ns : 0);
  const uint64_t id = first_held_id_ + held_.size();
  if (record.op != RecordOp::kDatabase) {
    const uint64_t k = MapKey(record);
    auto it = last_.find(k);
    if (it != last_.end()) {
      Last& l = it->second;
      const Write w{connection_id, ts, id};
      if (l.latest.connection_id != connection_id) {
        FlagPartner(l.latest, &record);
        l.other = l.latest;
        l.has_other = true;
      } else if (l.has_other) {
        FlagPartner(l.other, &record);
      }
      l.latest = w;
      key_order_.emplace_back(k, ts);
    } else {
      while (last_.size() >= opts_.max_keys && !key_order_.empty()) {
        auto old = last_.find(key_order_.front().first);
        if (old != last_.end() && old->second.latest.capture_ns == key_order_.front().second) {
          last_.erase(old);
          ++stats_.keys_evicted;
        }
        key_order_.pop_front();
      }
      key_order_.emplace_back(k, ts);
      last_.emplace(k, Last{Write{connection_id, ts, id}, Write{}, false});
    }
  }
  while (key_order_.size() > 2 * opts_.max_keys) {  // updates of hot keys add entries too
    auto old = last_.find(key_order_.front().first);
    if (old != last_.end() && old->second.latest.capture_ns == key_order_.front().second) {
      last_.erase(old);
      ++stats_.keys_evicted;
    }
    key_order_.pop_front();
  }
  held_.push_back(Held{std::move(record), connection_id});
  if (held_.size() > opts_.max_held) {
    ++stats_.forced_releases;
    ReleaseFront();
  }
}

}  // namespace kvf::resp
