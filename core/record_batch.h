// A batch of change records in two flat buffers (fixed fields + one byte
// arena): how records cross a thread boundary or wait in memory without one
// allocation per record. Add copies a RecordView in; Get gives a view back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/record.h"

namespace kvf {

class RecordBatch {
 public:
  // Copies `record` (its key and arguments) into the batch.
  void Add(const RecordView& record, uint64_t connection_id);
  // Record `i` as a view into the batch; `args` receives the argument views.
  // Valid until the batch is changed or `args` is reused.
  RecordView Get(size_t i, std::vector<std::string_view>* args) const;
  uint64_t connection_id(size_t i) const { return entries_[i].connection_id; }
  uint64_t capture_ns(size_t i) const { return entries_[i].capture_ns; }
  // The request's capture time, to the microsecond, rounded down (capture_ns
  // when not known, or for an unanswered write).
  uint64_t request_ns(size_t i) const {
    return unanswered(i) ? entries_[i].capture_ns
                         : entries_[i].capture_ns - uint64_t{entries_[i].span_us} * 1000;
  }
  // The write's reply was never seen (RecordView::kUnansweredRequest).
  bool unanswered(size_t i) const { return entries_[i].span_us == kUnansweredSpan; }
  // Single fields of record `i`, for stages that need only these (the
  // ambiguity tracker, counters) and would waste a Get.
  std::string_view key(size_t i) const {
    return std::string_view(bytes_.data() + entries_[i].offset, entries_[i].key_len);
  }
  // The command name (first argument); empty for a record without arguments.
  std::string_view first_arg(size_t i) const {
    const Entry& e = entries_[i];
    if (e.argc == 0) return {};
    return std::string_view(bytes_.data() + e.offset + e.key_len, lens_[e.first_len]);
  }
  size_t argc(size_t i) const { return entries_[i].argc; }
  uint16_t db(size_t i) const { return entries_[i].db; }
  RecordOp op(size_t i) const { return static_cast<RecordOp>(entries_[i].op_bits & kOpMask); }
  uint8_t fcall_db_names(size_t i) const { return entries_[i].op_bits >> kFcallShift; }
  uint16_t flags(size_t i) const { return entries_[i].flags; }
  uint8_t source(size_t i) const { return entries_[i].source; }
  void AddFlags(size_t i, uint16_t flags) { entries_[i].flags |= flags; }
  // Bytes of record `i`'s strings and their lengths (key, arguments, 4 per
  // argument): what a stage that holds records counts against its cap.
  size_t record_bytes(size_t i) const {
    const Entry& e = entries_[i];
    const size_t end = i + 1 < entries_.size() ? entries_[i + 1].offset : bytes_.size();
    return end - e.offset + sizeof(uint32_t) * e.argc;
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Bytes held: keys and arguments plus the fixed part, for batch caps.
  size_t bytes() const { return bytes_.size() + entries_.size() * sizeof(Entry) + lens_.size() * 4; }
  // Empties the batch, keeping its capacity.
  void Clear();
  // Exchanges contents (and capacity) with `other`: a stage takes a batch's
  // records without copying them and hands back an empty one.
  void Swap(RecordBatch& other) noexcept {
    entries_.swap(other.entries_);
    lens_.swap(other.lens_);
    bytes_.swap(other.bytes_);
  }

 private:
  struct Entry {
    uint64_t seq;
    Hlc hlc;
    uint64_t capture_ns;
    uint64_t connection_id;
    size_t offset;       // key bytes at bytes_[offset], then the arguments
    uint32_t first_len;  // index in lens_ of the first argument's length
    uint32_t span_us;    // capture_ns - request_ns, in µs rounded up (saturated); or kUnansweredSpan
    uint32_t key_len;
    uint32_t argc;
    SiteId origin;
    uint16_t db;
    uint16_t flags;
    // RecordView::op in the low bits, RecordView::fcall_db_names above
    // (so that the entry stays 64 bytes).
    uint8_t op_bits;
    uint8_t source;  // RecordView::source (in what was padding)
  };
  static_assert(sizeof(Entry) == 64);
  static constexpr uint8_t kOpMask = 0x0f;
  static constexpr int kFcallShift = 4;
  static constexpr uint32_t kUnansweredSpan = UINT32_MAX;
  std::vector<Entry> entries_;
  std::vector<uint32_t> lens_;  // argument lengths, all records in order
  std::string bytes_;
};

}  // namespace kvf
