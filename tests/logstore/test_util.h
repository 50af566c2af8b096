// Helpers shared by the logstore tests: a temporary directory removed at the
// end, and small builders for change records and raw segments.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "core/record.h"
#include "logstore/log_format.h"

namespace kvf::logstore::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kvft-logstore-XXXXXX";
    char* p = ::mkdtemp(tmpl);
    path_ = p != nullptr ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline ChangeRecord MakeRecord(uint64_t i, size_t value_bytes = 16) {
  ChangeRecord r;
  r.hlc = Hlc::FromParts(1'700'000'000'000 + i, static_cast<uint16_t>(i));
  r.capture_ns = (1'700'000'000'000 + i) * 1'000'000 + 17;
  r.origin = 1;
  r.op = RecordOp::kIdempotent;
  r.key = "key:" + std::to_string(i);
  std::string value(value_bytes, 'v');
  if (!value.empty()) value.back() = static_cast<char>('a' + i % 26);  // never ends in zero bytes
  r.args = {"SET", r.key, value};
  return r;
}

// A segment file image: header + `n` change records with seqs first_seq...
// `offsets` receives each record's offset; the image's size is the end.
inline std::string BuildSegment(uint64_t segment, uint64_t first_seq, int n, std::vector<uint64_t>* offsets,
                                size_t value_bytes = 16) {
  std::string out(kSegmentHeaderSize, '\0');
  EncodeSegmentHeader(SegmentHeader{segment, first_seq, 1'700'000'000'000, 1},
                      reinterpret_cast<uint8_t*>(out.data()));
  for (int i = 0; i < n; ++i) {
    const ChangeRecord r = MakeRecord(first_seq + i, value_bytes);
    std::string payload;
    EncodeChangePayload(r, &payload);
    if (offsets != nullptr) offsets->push_back(out.size());
    AppendFramedRecord(&out, kChangeType, segment, first_seq + i, r.hlc.packed(), payload);
  }
  return out;
}

}  // namespace kvf::logstore::testing
