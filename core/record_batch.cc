// RecordBatch: see record_batch.h.
#include "core/record_batch.h"

#include <algorithm>
#include <cstdint>

namespace kvf {

void RecordBatch::Add(const RecordView& r, uint64_t connection_id) {
  Entry e;
  e.seq = r.seq;
  e.hlc = r.hlc;
  e.capture_ns = r.capture_ns;
  e.origin = r.origin;
  e.db = r.db;
  e.flags = r.flags;
  e.op_bits = static_cast<uint8_t>(static_cast<uint8_t>(r.op) | (r.fcall_db_names << kFcallShift));
  e.source = r.source;
  e.connection_id = connection_id;
  e.offset = bytes_.size();
  e.first_len = static_cast<uint32_t>(lens_.size());
  e.span_us = 0;
  if (r.request_ns == RecordView::kUnansweredRequest) {
    e.span_us = kUnansweredSpan;
  } else if (r.request_ns != 0 && r.request_ns < r.capture_ns) {
    const uint64_t us = (r.capture_ns - r.request_ns + 999) / 1000;
    e.span_us = static_cast<uint32_t>(std::min<uint64_t>({us, kUnansweredSpan - 1, r.capture_ns / 1000}));
  }
  e.key_len = static_cast<uint32_t>(r.key.size());
  e.argc = static_cast<uint32_t>(r.args.size());
  bytes_.append(r.key);
  for (std::string_view a : r.args) {
    lens_.push_back(static_cast<uint32_t>(a.size()));
    bytes_.append(a);
  }
  entries_.push_back(e);
}

RecordView RecordBatch::Get(size_t i, std::vector<std::string_view>* args) const {
  const Entry& e = entries_[i];
  const char* p = bytes_.data() + e.offset;
  RecordView v;
  v.seq = e.seq;
  v.hlc = e.hlc;
  v.capture_ns = e.capture_ns;
  v.origin = e.origin;
  v.db = e.db;
  v.flags = e.flags;
  v.op = op(i);
  v.fcall_db_names = fcall_db_names(i);
  v.source = e.source;
  v.request_ns = unanswered(i) ? RecordView::kUnansweredRequest : request_ns(i);
  v.key = std::string_view(p, e.key_len);
  p += e.key_len;
  args->resize(e.argc);
  for (uint32_t a = 0; a < e.argc; ++a) {
    const uint32_t len = lens_[e.first_len + a];
    (*args)[a] = std::string_view(p, len);
    p += len;
  }
  v.args = *args;
  return v;
}

void RecordBatch::Clear() {
  entries_.clear();
  lens_.clear();
  bytes_.clear();
}

}  // namespace kvf
