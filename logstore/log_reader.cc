// LogReader: walks segments in seq order from a live Log (tailing the
// segment being written, up to the written or durable watermark) or from a
// directory offline (kvferryctl). Uses the sparse index to start near from_seq.
#include "logstore/log.h"

#include <algorithm>

namespace kvf::logstore {

LogReader::LogReader(const Log* log, FileSystem* fs, std::string dir, uint64_t from_seq, bool durable_only,
                     Reporter* reporter)
    : log_(log),
      fs_(fs),
      dir_(std::move(dir)),
      durable_only_(durable_only),
      reporter_(reporter),
      next_seq_(std::max<uint64_t>(from_seq, 1)) {}

LogReader::~LogReader() = default;

Result<std::unique_ptr<LogReader>> LogReader::OpenDir(FileSystem* fs, const std::string& dir,
                                                      uint64_t from_seq, Reporter* reporter) {
  auto names = fs->ListDir(dir);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> numbers;
  for (const auto& n : *names) {
    uint64_t v;
    if (ParseSegmentFileName(n, &v)) numbers.push_back(v);
  }
  std::sort(numbers.begin(), numbers.end());
  std::unique_ptr<LogReader> r(new LogReader(nullptr, fs, dir, from_seq, false, reporter));
  for (uint64_t n : numbers) {
    Log::Segment s;
    s.number = n;
    auto f = fs->OpenReadable(dir + "/" + SegmentFileName(n));
    if (!f.ok()) return f.status();
    uint8_t buf[kSegmentHeaderSize];
    auto got = (*f)->Read(0, sizeof(buf), buf);
    if (!got.ok()) return got.status();
    SegmentHeader h;
    if (DecodeSegmentHeader(ByteSpan(buf, *got), &h).ok() && h.segment == n) {
      s.first_seq = h.first_seq;
      s.created_ms = h.created_ms;
    }
    s.last_known = false;
    r->offline_segments_.push_back(s);
  }
  for (size_t i = 0; i + 1 < r->offline_segments_.size(); ++i) {
    auto& s = r->offline_segments_[i];
    const auto& next = r->offline_segments_[i + 1];
    if (s.first_seq > 0 && next.first_seq > 0) {
      s.last_seq = next.first_seq - 1;
      s.last_known = true;
    }
  }
  return r;
}

Log::ReadView LogReader::View() const {
  if (log_ != nullptr) return log_->Snapshot(durable_only_);
  Log::ReadView v;
  v.segments = offline_segments_;
  v.written_segment = UINT64_MAX;
  v.visible_seq = UINT64_MAX;
  return v;
}

bool LogReader::OpenSegmentFor(const Log::ReadView& view) {
  for (const auto& s : view.segments) {
    if (s.number <= segment_) continue;
    if (s.last_known && (s.last_seq < next_seq_ || s.last_seq < s.first_seq))
      continue;  // behind us, or empty
    auto f = fs_->OpenReadable(dir_ + "/" + SegmentFileName(s.number));
    if (!f.ok()) {
      status_ = f.status();
      return false;
    }
    uint64_t offset = kSegmentHeaderSize;
    uint64_t first = s.first_seq;  // 0: unknown
    if (log_ != nullptr) {
      for (const auto& [seq, off] : log_->IndexOf(s.number)) {
        if (seq > next_seq_) break;
        offset = off;
        first = seq;
      }
    }
    file_ = std::move(*f);
    segment_ = s.number;
    scanner_ = std::make_unique<SegmentScanner>(file_.get(), s.number, offset, first, reporter_);
    segment_complete_ = s.number < view.written_segment;
    if (segment_complete_) {
      uint64_t end = s.end_offset;
      if (end == 0) {
        auto size = file_->Size();
        if (!size.ok()) {
          status_ = size.status();
          return false;
        }
        end = *size;
      }
      limit_ = end;
      scanner_->SetLimit(end, s.last_known ? s.last_seq : 0, /*final=*/true);
    } else {
      limit_ = view.written_end;
      scanner_->SetLimit(limit_, 0, /*final=*/false);
    }
    return true;
  }
  return false;
}

bool LogReader::Next(ChangeRecord* out) {
  if (!status_.ok()) return false;
  if (have_held_) {
    if (held_.seq > visible_seq_) visible_seq_ = View().visible_seq;
    if (held_.seq > visible_seq_) return false;
    *out = std::move(held_);
    have_held_ = false;
    next_seq_ = out->seq + 1;
    return true;
  }
  bool refreshed = false;
  for (;;) {
    if (!scanner_) {
      const Log::ReadView view = View();
      visible_seq_ = view.visible_seq;
      if (!OpenSegmentFor(view)) return false;
    }
    RecordView rv;
    if (scanner_->Next(&rv)) {
      if (rv.seq < next_seq_) continue;
      ChangeRecord rec;
      Status s = DecodeChangePayload(rv.payload, Hlc::FromPacked(rv.hlc), &rec);
      if (!s.ok()) {
        if (reporter_ != nullptr) {
          DropReport r;
          r.segment = segment_;
          r.offset = rv.offset;
          r.bytes = rv.framed_size();
          r.first_seq = r.last_seq = rv.seq;
          r.reason = "undecodable change record: " + s.message();
          reporter_->Dropped(r);
        }
        next_seq_ = rv.seq + 1;
        continue;
      }
      rec.seq = rv.seq;
      if (rec.seq > visible_seq_) {
        visible_seq_ = View().visible_seq;
        if (rec.seq > visible_seq_) {
          held_ = std::move(rec);
          have_held_ = true;
          return false;
        }
      }
      *out = std::move(rec);
      next_seq_ = out->seq + 1;
      return true;
    }
    if (!scanner_->status().ok()) {
      status_ = scanner_->status();
      return false;
    }
    if (segment_complete_) {
      scanner_.reset();
      file_.reset();
      continue;  // on to the next segment, if any
    }
    // The live segment: see whether more was written, or it was sealed.
    if (refreshed) return false;
    refreshed = true;
    const Log::ReadView view = View();
    visible_seq_ = view.visible_seq;
    if (segment_ < view.written_segment) {
      uint64_t end = 0;
      for (const auto& s : view.segments) {
        if (s.number == segment_) end = s.end_offset;
      }
      if (end == 0) {
        auto size = file_->Size();
        end = size.ok() ? *size : limit_;
      }
      limit_ = end;
      scanner_->SetLimit(end, 0, /*final=*/false);
      segment_complete_ = true;
    } else if (view.written_end > limit_) {
      limit_ = view.written_end;
      scanner_->SetLimit(limit_, 0, /*final=*/false);
    } else {
      return false;
    }
  }
}

bool LogReader::WaitForMore(std::chrono::milliseconds timeout) {
  if (log_ == nullptr) return false;
  if (have_held_) return log_->WaitForMore(held_.seq - 1, durable_only_, timeout);
  return log_->WaitForMore(next_seq_ - 1, durable_only_, timeout);
}

}  // namespace kvf::logstore
