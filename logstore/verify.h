// Read-only inspection of a log directory, for `kvferryctl log verify|stats`:
// checks every segment record by record (or only the headers, for stats)
// without modifying anything.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "logstore/file.h"
#include "logstore/segment_scanner.h"

namespace kvf::logstore {

struct SegmentSummary {
  uint64_t number = 0;
  bool header_ok = false;
  uint64_t first_seq = 0;  // from the header (0: unknown)
  uint64_t created_ms = 0;
  uint64_t records = 0;     // valid change records (full verify only)
  uint64_t last_seq = 0;    // last valid seq found (full verify only)
  uint64_t end_offset = 0;  // where the valid records end (full verify only)
  uint64_t file_bytes = 0;
  uint64_t disk_bytes = 0;
};

struct LogSummary {
  std::vector<SegmentSummary> segments;
  uint64_t records = 0;
  uint64_t first_seq = 0;      // lowest seq present (0: empty)
  uint64_t last_seq = 0;       // highest seq present
  uint64_t contiguous_to = 0;  // every seq from first_seq to here is present and valid
  uint64_t recycled_files = 0;
  uint64_t disk_bytes = 0;
  std::vector<DropReport> damage;                   // everything a reader would drop
  std::vector<std::pair<uint64_t, uint64_t>> gaps;  // missing seq ranges between segments
  bool ok() const { return damage.empty() && gaps.empty(); }
};

// `full`: scan every record of every segment (verify); otherwise headers only
// plus the last segment (stats). Only I/O errors are returned as errors.
Result<LogSummary> InspectLog(FileSystem* fs, const std::string& dir, bool full);

}  // namespace kvf::logstore
