// The synthetic change record kvferry-logbench appends: a pure function of
// its seq, so the crash test can check every surviving record by content.
#pragma once

#include <string>

#include "core/record.h"
#include "logstore/log_format.h"

namespace kvf::logstore {

// The record for `seq`, padded so the framed record is about `record_bytes`.
inline ChangeRecord SyntheticRecord(uint64_t seq, size_t record_bytes, uint64_t now_ms) {
  ChangeRecord r;
  r.hlc = Hlc::FromParts(now_ms, 0);
  r.capture_ns = now_ms * 1'000'000;
  r.origin = 1;
  r.op = RecordOp::kIdempotent;
  r.key = "k" + std::to_string(seq);
  r.args = {"SET", r.key, ""};
  std::string probe;
  EncodeChangePayload(r, &probe);
  const size_t overhead = kRecordHeaderSize + probe.size() + 2;  // +2: value length varint growth
  r.args[2].assign(record_bytes > overhead ? record_bytes - overhead : 1, static_cast<char>('a' + seq % 26));
  return r;
}

// Whether `r` (read back from a log) is what SyntheticRecord wrote for r.seq.
inline bool IsSyntheticRecord(const ChangeRecord& r) {
  if (r.key != "k" + std::to_string(r.seq) || r.args.size() != 3 || r.args[0] != "SET" ||
      r.args[1] != r.key) {
    return false;
  }
  const char want = static_cast<char>('a' + r.seq % 26);
  for (char c : r.args[2]) {
    if (c != want) return false;
  }
  return !r.args[2].empty() && r.capture_ns == r.hlc.physical_ms() * 1'000'000;
}

}  // namespace kvf::logstore
