// Fuzz target: arbitrary bytes as a segment file. The scanner, the payload
// decoder and the read-only inspector must never crash, hang or read out of
// bounds, and what they accept must be consistent.
#include <cstdint>
#include <cstdlib>

#include "logstore/log_format.h"
#include "logstore/segment_scanner.h"
#include "logstore/verify.h"

using namespace kvf::logstore;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemFileSystem fs;
  const std::string path = "/log/" + SegmentFileName(1);
  fs.MutableContents(path)->assign(reinterpret_cast<const char*>(data), size);
  auto f = fs.OpenReadable(path);
  if (!f.ok()) std::abort();
  SegmentHeader h;
  const bool header_ok = DecodeSegmentHeader(kvf::ByteSpan(data, size), &h).ok();
  CollectingReporter rep;
  SegmentScanner sc(f->get(), 1, kSegmentHeaderSize, header_ok ? h.first_seq : 0, &rep);
  sc.SetLimit(size, 0, /*final=*/true);
  RecordView rv;
  uint64_t prev_seq = 0, prev_end = kSegmentHeaderSize;
  while (sc.Next(&rv)) {
    if (rv.offset < prev_end || rv.offset + rv.framed_size() > size) std::abort();
    if (prev_seq != 0 && rv.seq <= prev_seq) std::abort();  // accepted seqs strictly increase
    prev_seq = rv.seq;
    prev_end = rv.offset + rv.framed_size();
    kvf::ChangeRecord r;
    (void)DecodeChangePayload(rv.payload, kvf::Hlc::FromPacked(rv.hlc), &r);
  }
  if (sc.end_offset() > std::max<uint64_t>(size, kSegmentHeaderSize)) std::abort();
  for (const auto& d : rep.reports) {
    if (d.offset + d.bytes > size) std::abort();
  }
  auto sum = InspectLog(&fs, "/log", true);
  if (!sum.ok()) std::abort();
  // Also the payload decoder alone on the raw bytes.
  kvf::ChangeRecord r;
  (void)DecodeChangePayload(kvf::ByteSpan(data, size), kvf::Hlc(), &r);
  return 0;
}
