// Reads the records of one segment file, verifying each, and reports every
// byte it could not accept through a Reporter (leveldb log_reader style):
// damage in the middle is reported and skipped, a torn tail is reported and
// ends the segment, a zeroed or recycled (stale) tail ends it silently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "logstore/file.h"
#include "logstore/log_format.h"

namespace kvf::logstore {

// One span of bytes a reader refused.
struct DropReport {
  uint64_t segment = 0;
  uint64_t offset = 0;     // where the refused bytes start in the segment file
  uint64_t bytes = 0;      // how many
  uint64_t first_seq = 0;  // seq range known to be lost (0/0 when none)
  uint64_t last_seq = 0;
  std::string reason;
  bool torn_tail = false;  // true: the bytes ended the segment (nothing valid after)
};

// Receives drop reports. Called on the reading thread.
class Reporter {
 public:
  virtual ~Reporter() = default;
  virtual void Dropped(const DropReport& r) = 0;
};

// Collects reports in memory (tests, kvferryctl).
class CollectingReporter : public Reporter {
 public:
  void Dropped(const DropReport& r) override { reports.push_back(r); }
  uint64_t TotalBytes() const;
  std::vector<DropReport> reports;
};

// A record as found in a segment. `payload` points into the scanner's
// buffer and stays valid until the next call to Next().
struct RecordView {
  uint64_t offset = 0;  // of the record header in the segment file
  uint8_t type = 0;
  uint64_t seq = 0;
  uint64_t hlc = 0;
  ByteSpan payload;
  uint64_t framed_size() const { return kRecordHeaderSize + payload.size(); }
};

class SegmentScanner {
 public:
  // Scans `file` (which must outlive the scanner) as segment `segment`,
  // starting at `offset` (>= kSegmentHeaderSize) where the record with seq
  // `first_seq` is expected (0: unknown, any first seq is accepted).
  // `reporter` may be null.
  SegmentScanner(const RandomAccessFile* file, uint64_t segment, uint64_t offset, uint64_t first_seq,
                 Reporter* reporter);

  // Only bytes below `limit` are read. `expected_last_seq` (0: unknown) stops
  // the scan cleanly once that seq was returned, without looking at the
  // tail. `final`: `limit` is the file's real end, so damage that nothing
  // valid follows is a torn tail; otherwise (a live segment still being
  // written) the scan just stops at the limit and may be extended later.
  void SetLimit(uint64_t limit, uint64_t expected_last_seq, bool final);

  // The next valid change or unknown-but-skippable-free record; false when
  // nothing more is readable below the limit (see status()).
  bool Next(RecordView* out);

  // Non-ok only for I/O errors (damage is reported, not returned).
  const Status& status() const { return status_; }
  // Offset just past the last accepted record: where a writer may continue.
  uint64_t end_offset() const { return pos_; }
  uint64_t last_seq() const { return last_seq_; }
  // Whether the scan ended on a torn tail (reported) rather than cleanly.
  bool torn_tail() const { return torn_tail_; }
  uint64_t records() const { return records_; }

 private:
  // Makes [off, off + n) available in buf_; false (with status_ set on I/O
  // error) if fewer than n bytes exist below limit_.
  const uint8_t* Ensure(uint64_t off, size_t n);
  enum class Check { kGood, kZero, kStale, kBad };
  // Classifies the bytes at `off` as a record of this segment.
  Check CheckAt(uint64_t off, RecordHeader* h, const char** why);
  // Searches (off, limit_) for the next valid record with seq > last_seq_:
  // after the damaged record when its header is whole, else from off + 1.
  // Returns its offset or UINT64_MAX (none, or the checksum budget spent);
  // `*zero_at` gets the first position searched where 32 zero bytes start
  // (or limit_).
  uint64_t Resync(uint64_t off, uint64_t* zero_at);
  // Resync's search of [q, end) (record starts) for a record with a seq
  // below `below_seq`, after damage at `off`.
  uint64_t Search(uint64_t q, uint64_t end, uint64_t off, uint64_t below_seq, uint64_t* zero_at);
  void Report(uint64_t off, uint64_t bytes, uint64_t first_seq, uint64_t last_seq, std::string reason,
              bool torn);

  const RandomAccessFile* file_;
  uint64_t segment_;
  uint32_t segment_low_;
  Reporter* reporter_;
  uint64_t pos_;
  uint64_t last_seq_;
  bool any_seq_ok_;
  uint64_t limit_ = 0;
  uint64_t expected_last_seq_ = 0;
  bool final_ = true;
  bool done_ = false;
  bool torn_tail_ = false;
  uint64_t records_ = 0;
  uint64_t resync_budget_ = 0;  // bytes Resync may still checksum (SetLimit)
  Status status_;

  std::vector<uint8_t> buf_;
  uint64_t buf_off_ = 0;
  size_t buf_len_ = 0;
};

}  // namespace kvf::logstore
