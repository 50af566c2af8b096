// Segment scanning with resynchronisation after damage; see the header for
// the contract and log_format.h for what counts as "end of log".
#include "logstore/segment_scanner.h"

#include <algorithm>
#include <cstdio>

namespace kvf::logstore {

namespace {
constexpr size_t kChunk = 1u << 20;

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
  uint64_t q = off + 1;
  *zero_at = limit_;
  while (q + kRecordHeaderSize <= limit_) {
    if (Ensure(q, kRecordHeaderSize) == nullptr) return UINT64_MAX;
    const uint64_t avail_end = buf_off_ + buf_len_;
    for (; q + kRecordHeaderSize <= avail_end; ++q) {
      const uint8_t* h = buf_.data() + (q - buf_off_);
      if (h[0] == 0 && *zero_at == limit_ && AllZero(h, kRecordHeaderSize)) *zero_at = q;
      if (LoadLE<uint32_t>(h + 12) != segment_low_) continue;
      const RecordHeader rh = DecodeRecordHeader(h);
      if (rh.type == kZeroType || rh.length > kMaxRecordPayload) continue;
      if (rh.seq <= last_seq_ && !(any_seq_ok_ && last_seq_ == 0)) continue;
      if (q + kRecordHeaderSize + rh.length > limit_) continue;
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
