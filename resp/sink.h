// Where RESP pairing delivers change records: a small interface so that the
// ambiguity tracker, the log writer and tests can each stand behind it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/record.h"

namespace kvf::resp {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Takes one record produced by connection `connection_id`. Records of one
  // connection arrive in the order their replies were captured.
  virtual void Emit(ChangeRecord&& record, uint64_t connection_id) = 0;
};

// Recycles records so that a steady stream of similar writes allocates no
// strings: the final consumer gives each record back once done with it, and
// the producer (convert.cc) reuses its buffers. Optional everywhere: without
// a pool (or with an empty one) records are simply constructed. Bounded by
// `max_free`. Thread confinement: one thread.
class RecordPool {
 public:
  explicit RecordPool(size_t max_free = 4096) : max_free_(max_free) {}

  // A record with default fields and an empty key, except that `args` may
  // still hold strings of an earlier use (their capacity is the point): the
  // caller resizes `args` and assigns every element.
  ChangeRecord TakeForReuse() {
    if (free_.empty()) return ChangeRecord{};
    ChangeRecord r = std::move(free_.back());
    free_.pop_back();
    r.seq = 0;
    r.hlc = Hlc{};
    r.capture_ns = 0;
    r.origin = 0;
    r.db = 0;
    r.op = RecordOp::kIdempotent;
    r.flags = kFlagNone;
    r.key.clear();
    return r;
  }
  void Give(ChangeRecord&& r) {
    if (free_.size() < max_free_) free_.push_back(std::move(r));
  }
  size_t free_records() const { return free_.size(); }

 private:
  size_t max_free_;
  std::vector<ChangeRecord> free_;
};

// Collects records in memory (tests, `decode`).
class VectorSink : public RecordSink {
 public:
  void Emit(ChangeRecord&& record, uint64_t) override { records.push_back(std::move(record)); }
  std::vector<ChangeRecord> records;
};

}  // namespace kvf::resp
