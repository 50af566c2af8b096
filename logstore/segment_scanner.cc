// Segment scanning with resynchronisation after damage; see the header for
// the contract and log_format.h for what counts as "end of log".
#include "logstore/segment_scanner.h"

#include <algorithm>
#include <cstdio>

namespace kvf::logstore {

namespace {
constexpr size_t kChunk = 1u << 20;
constexpr uint64_t kMinResyncBudget = uint64_t{64} << 20;

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}
}  // namespace

uint64_t CollectingReporter::TotalBytes() const {
  uint64_t n = 0;
  for (const auto& r : reports) n += r.bytes;
  return n;
}

SegmentScanner::SegmentScanner(const RandomAccessFile* file, uint64_t segment, uint64_t offset,
                               uint64_t first_seq, Reporter* reporter)
    : file_(file),
      segment_(segment),
      segment_low_(static_cast<uint32_t>(segment)),
      reporter_(reporter),
      pos_(std::max<uint64_t>(offset, kSegmentHeaderSize)),
      last_seq_(first_seq > 0 ? first_seq - 1 : 0),
      any_seq_ok_(first_seq == 0) {}

void SegmentScanner::SetLimit(uint64_t limit, uint64_t expected_last_seq, bool final) {
  // Checksums a resync may compute: a few passes over the segment.
  resync_budget_ = std::max(resync_budget_, 4 * limit + kMinResyncBudget);
  limit_ = limit;
  expected_last_seq_ = expected_last_seq;
  final_ = final;
}

const uint8_t* SegmentScanner::Ensure(uint64_t off, size_t n) {
  if (off + n > limit_) return nullptr;
  if (off >= buf_off_ && off + n <= buf_off_ + buf_len_) return buf_.data() + (off - buf_off_);
  size_t want = std::max(n, kChunk);
  want = static_cast<size_t>(std::min<uint64_t>(want, limit_ - off));
  if (buf_.size() < want) buf_.resize(want);
  auto got = file_->Read(off, want, buf_.data());
  if (!got.ok()) {
    status_ = got.status();
    buf_len_ = 0;
    return nullptr;
  }
  buf_off_ = off;
  buf_len_ = *got;
  if (*got < want) limit_ = off + *got;  // the file is shorter than we were told
  if (*got < n) return nullptr;
  return buf_.data();
}

SegmentScanner::Check SegmentScanner::CheckAt(uint64_t off, RecordHeader* h, const char** why) {
  const uint8_t* p = Ensure(off, kRecordHeaderSize);
  if (p == nullptr) {
    *why = "partial record header";
    return Check::kBad;
  }
  if (AllZero(p, kRecordHeaderSize)) {
    *why = "zeroed bytes";
    return Check::kZero;
  }
  *h = DecodeRecordHeader(p);
  if (h->length > kMaxRecordPayload) {
    *why = "impossible record length";
    return Check::kBad;
  }
  if (off + kRecordHeaderSize + h->length > limit_) {
    *why = "record runs past the end of the data";
    return Check::kBad;
  }
  p = Ensure(off, kRecordHeaderSize + h->length);
  if (p == nullptr) {
    *why = "record unreadable";
    return Check::kBad;
  }
  if (!RecordChecksumOk(p, *h)) {
    *why = "checksum mismatch";
    return Check::kBad;
  }
  if (h->segment_low != segment_low_) {
    *why = "record of another segment (recycled file)";
    return Check::kStale;
  }
  if (h->type == kZeroType) {
    *why = "record of type 0";
    return Check::kBad;
  }
  if (any_seq_ok_ ? h->seq <= last_seq_ && last_seq_ != 0 : h->seq != last_seq_ + 1) {
    *why = "seq out of order";
    return Check::kBad;
  }
  return Check::kGood;
}

uint64_t SegmentScanner::Resync(uint64_t off, uint64_t* zero_at) {
  *zero_at = limit_;
  // The damaged record's own header, when it looks whole (of this segment,
  // of a known type, the seq expected): the search starts where its length
  // ends, and the bytes inside it are searched only for records that
  // something found after it shows missing (its length may be what was
  // damaged). A client's value may hold a framed record: a review's torn
  // write zeroed the last page of a SET whose value framed a FLUSHALL, and
  // the search from the next byte found it there.
  uint64_t after = 0;
  if (const uint8_t* h = Ensure(off, kRecordHeaderSize); h != nullptr) {
    const RecordHeader rh = DecodeRecordHeader(h);
    if (rh.segment_low == segment_low_ && rh.type != kZeroType && rh.length <= kMaxRecordPayload &&
        !any_seq_ok_ && rh.seq == last_seq_ + 1 && off + kRecordHeaderSize + rh.length <= limit_)
      after = off + kRecordHeaderSize + rh.length;
  }
  if (!status_.ok()) return UINT64_MAX;
  if (after == 0) return Search(off + 1, limit_, off, UINT64_MAX, zero_at);
  const uint64_t found = Search(after, limit_, off, UINT64_MAX, zero_at);
  if (!status_.ok()) return UINT64_MAX;
  uint64_t below = UINT64_MAX;
  if (found != UINT64_MAX) {
    below = DecodeRecordHeader(buf_.data() + (found - buf_off_)).seq;
    if (below <= last_seq_ + 2) return found;
  } else {
    // Nothing after it: the end of the log if its length ends at the end
    // of the data, at zeros or at a stale record (a torn write), else the
    // length may be damaged.
    RecordHeader h;
    const char* why = "";
    const uint64_t saved_last = last_seq_;
    last_seq_ = UINT64_MAX - 1;  // (only the kind of bytes there counts)
    const Check c = after + kRecordHeaderSize <= limit_ ? CheckAt(after, &h, &why) : Check::kBad;
    last_seq_ = saved_last;
    if (!status_.ok()) return UINT64_MAX;
    if (after == limit_ || c == Check::kZero || c == Check::kStale) {
      *zero_at = std::min(*zero_at, after);
      return UINT64_MAX;
    }
  }
  uint64_t inner_zero = 0;
  const uint64_t inner = Search(off + 1, after, off, below, &inner_zero);
  if (!status_.ok()) return UINT64_MAX;
  if (inner != UINT64_MAX) return inner;
  if (found == UINT64_MAX) {
    *zero_at = std::min(*zero_at, inner_zero);
    return UINT64_MAX;
  }
  return Ensure(found, kRecordHeaderSize) != nullptr ? found : UINT64_MAX;  // (Next reads its header)
}

uint64_t SegmentScanner::Search(uint64_t q, uint64_t end, uint64_t off, uint64_t below_seq,
                                uint64_t* zero_at) {
  *zero_at = limit_;
  while (q < end && q + kRecordHeaderSize <= limit_) {
    if (Ensure(q, kRecordHeaderSize) == nullptr) return UINT64_MAX;
    const uint64_t avail_end = std::min(buf_off_ + buf_len_, end + kRecordHeaderSize - 1);
    for (; q + kRecordHeaderSize <= avail_end; ++q) {
      const uint8_t* h = buf_.data() + (q - buf_off_);
      if (h[0] == 0 && *zero_at == limit_ && AllZero(h, kRecordHeaderSize)) *zero_at = q;
      if (LoadLE<uint32_t>(h + 12) != segment_low_) continue;
      const RecordHeader rh = DecodeRecordHeader(h);
      if (rh.type == kZeroType || rh.length > kMaxRecordPayload || rh.seq >= below_seq) continue;
      if (rh.seq <= last_seq_ && !(any_seq_ok_ && last_seq_ == 0)) continue;
      // The damaged bytes held at most one record per header's worth: a
      // seq further on is not one of this segment's.
      if (last_seq_ != 0 && rh.seq > last_seq_ + 1 + (q - off) / kRecordHeaderSize) continue;
      if (q + kRecordHeaderSize + rh.length > limit_) continue;
      // Bounded work: a file of headers that each claim megabytes and fail
      // their checksum cost a checksum of megabytes per byte (a review's
      // 8 MiB crafted segment kept verify busy for good). Past the budget
      // the rest of the segment is damage.
      const uint64_t cost = kRecordHeaderSize + rh.length;
      if (cost > resync_budget_) return UINT64_MAX;
      resync_budget_ -= cost;
      const uint8_t* full = Ensure(q, kRecordHeaderSize + rh.length);
      if (full != nullptr && RecordChecksumOk(full, rh)) return q;
      if (!status_.ok()) return UINT64_MAX;
      ++q;
      break;  // Ensure may have moved the window: reload at the next position
    }
  }
  return UINT64_MAX;
}

void SegmentScanner::Report(uint64_t off, uint64_t bytes, uint64_t first_seq, uint64_t last_seq,
                            std::string reason, bool torn) {
  if (reporter_ == nullptr) return;
  DropReport r;
  r.segment = segment_;
  r.offset = off;
  r.bytes = bytes;
  r.first_seq = first_seq;
  r.last_seq = last_seq;
  r.reason = std::move(reason);
  r.torn_tail = torn;
  reporter_->Dropped(r);
}

bool SegmentScanner::Next(RecordView* out) {
  while (!done_ && status_.ok()) {
    if (expected_last_seq_ != 0 && last_seq_ >= expected_last_seq_ && !any_seq_ok_) return false;
    if (pos_ >= limit_) return false;
    RecordHeader h;
    const char* why = "";
    const Check c = CheckAt(pos_, &h, &why);
    if (!status_.ok()) return false;
    if (c == Check::kGood) {
      const uint8_t* p = buf_.data() + (pos_ - buf_off_);
      const uint64_t at = pos_;
      pos_ += kRecordHeaderSize + h.length;
      last_seq_ = h.seq;
      any_seq_ok_ = false;
      if (h.type != kChangeType) {
        if ((h.type & kSafeToSkipBit) == 0) {
          char msg[64];
          std::snprintf(msg, sizeof(msg), "unknown record type %u", h.type);
          Report(at, kRecordHeaderSize + h.length, h.seq, h.seq, msg, false);
        }
        continue;
      }
      ++records_;
      out->offset = at;
      out->type = h.type;
      out->seq = h.seq;
      out->hlc = h.hlc;
      out->payload = ByteSpan(p + kRecordHeaderSize, h.length);
      return true;
    }
    if (!final_ && c == Check::kBad && pos_ + kRecordHeaderSize > limit_) {
      return false;  // a live segment: the rest is not written yet
    }
    uint64_t zero_at = 0;
    const bool seq_known = !any_seq_ok_;
    const uint64_t next = Resync(pos_, &zero_at);
    if (!status_.ok()) return false;
    if (next == UINT64_MAX) {
      if (!final_) return false;
      done_ = true;
      if (c == Check::kBad) {
        torn_tail_ = true;
        Report(pos_, zero_at - pos_, 0, 0, std::string("torn tail: ") + why, true);
      }
      return false;
    }
    // Damage in the middle: drop it, note the seqs it swallowed, go on.
    RecordHeader nh = DecodeRecordHeader(buf_.data() + (next - buf_off_));
    const bool gap = seq_known && nh.seq > last_seq_ + 1;
    Report(pos_, next - pos_, gap ? last_seq_ + 1 : 0, gap ? nh.seq - 1 : 0, why, false);
    pos_ = next;
    any_seq_ok_ = true;  // accept the record Resync found, whatever its seq
  }
  return false;
}

}  // namespace kvf::logstore
