// The on-disk bytes of the kvferry change log: segment files, their header,
// record framing and the change-record payload. Everything that reads or
// writes a segment goes through the helpers here; docs/log_format.md has a
// worked example.
//
// A log is a directory of segment files named "<16 hex digits>.seg" (the
// segment number, zero-padded). All integers are little-endian.
//
// Segment file = SegmentHeader (64 bytes) then records back to back, no
// padding and no block structure, then whatever the file held before
// (zeros from fallocate, or stale records of a recycled file).
//
// SegmentHeader, kSegmentHeaderSize = 64 bytes:
//    0  u32  magic kSegmentMagic ("KVFL")
//    4  u16  format version (kFormatVersion = 1)
//    6  u16  header size (64)
//    8  u64  segment number (equals the number in the file name)
//   16  u64  first seq the segment was opened for
//   24  u64  creation time, unix milliseconds
//   32  u16  origin site id of the appliance that wrote it
//   34  u16  flags (0)
//   36  24 bytes reserved (written as 0, ignored on read)
//   60  u32  masked CRC32C of bytes [0, 60)
//
// Record = RecordHeader (32 bytes) + payload:
//    0  u32  masked CRC32C of bytes [4, 32 + length): header rest + payload
//    4  u32  length of the payload (<= kMaxRecordPayload)
//    8  u8   type (RecordType); bit 0x80 = safe to skip
//    9  u8   reserved (0)
//   10  u16  reserved (0)
//   12  u32  segment number, low 32 bits (recycled files: see below)
//   16  u64  seq (dense over the whole log, 1 is the first)
//   24  u64  HLC stamp, packed (core/hlc.h)
//   32  payload
//
// Checksum: CRC32C (core/checksum.h) because it runs on the SSE4.2
// instruction (~20 GB/s), catches every burst error up to 32 bits, and is
// masked as leveldb does so CRCs of data that contains CRCs stay strong.
//
// Where the log ends. Type 0 is never written: a preallocated (zeroed) tail
// reads as a header of zeros and means "no more records". Every write the
// writer does ends with 32 zero bytes (a zero record header) that the next
// write overwrites, so the end is marked even in a recycled segment file,
// which is reused without zeroing: the stale records of an older segment
// behind that marker carry another segment number and are never read as
// data (a reader resynchronising after damage only accepts records whose
// segment-number field is ours). Anything else that is
// not a valid record (bad CRC, impossible length) is damage: readers search
// forward for the next valid record of this segment with a higher seq; if
// one exists the damaged bytes are reported and skipped, otherwise they are
// a torn tail and are reported and dropped (see segment_scanner.h).
//
// Record types: 1 = change record (payload below). A reader that meets an
// unknown type with bit 0x80 set skips it silently (a later version's
// optional record); an unknown type without it is reported as dropped.
//
// Change-record payload, version 1 (seq and HLC live in the header):
//   varint origin site | varint db | u8 op (core RecordOp) | varint flags |
//   varint zigzag(capture_ns - hlc.physical_ms * 1e6) |
//   varint key length | key bytes |
//   varint argc | argc x (varint length | bytes)
// Varints are unsigned LEB128 (core/bytes.h). The payload must be consumed
// exactly; trailing bytes are corruption.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/record.h"
#include "core/status.h"

namespace kvf::logstore {

inline constexpr uint32_t kSegmentMagic = 0x4c46564bu;  // "KVFL" little-endian
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 64;
inline constexpr size_t kRecordHeaderSize = 32;
// Hard cap on one record's payload; Append refuses bigger records.
inline constexpr uint32_t kMaxRecordPayload = 16u << 20;
// Hard cap on the number of args a change record may carry.
inline constexpr uint64_t kMaxRecordArgs = 1u << 20;

enum RecordType : uint8_t {
  kZeroType = 0,          // preallocated space: never written, ends the log
  kChangeType = 1,        // a core ChangeRecord (payload version 1)
  kSafeToSkipBit = 0x80,  // readers that do not know the type skip it
};

struct SegmentHeader {
  uint64_t segment = 0;
  uint64_t first_seq = 0;
  uint64_t created_ms = 0;
  SiteId origin = 0;
};

// Writes the 64-byte header into `dst` (which must have room).
void EncodeSegmentHeader(const SegmentHeader& h, uint8_t* dst);
// Parses the first 64 bytes of `src`; Corruption if short, bad magic,
// version or checksum.
Status DecodeSegmentHeader(ByteSpan src, SegmentHeader* h);

struct RecordHeader {
  uint32_t masked_crc = 0;
  uint32_t length = 0;
  uint8_t type = 0;
  uint32_t segment_low = 0;
  uint64_t seq = 0;
  uint64_t hlc = 0;
};

inline RecordHeader DecodeRecordHeader(const uint8_t* p) {
  RecordHeader h;
  h.masked_crc = LoadLE<uint32_t>(p);
  h.length = LoadLE<uint32_t>(p + 4);
  h.type = p[8];
  h.segment_low = LoadLE<uint32_t>(p + 12);
  h.seq = LoadLE<uint64_t>(p + 16);
  h.hlc = LoadLE<uint64_t>(p + 24);
  return h;
}

// Appends one framed record (header + payload) to `dst`.
void AppendFramedRecord(std::string* dst, uint8_t type, uint64_t segment, uint64_t seq, uint64_t hlc,
                        std::string_view payload);

// True when the 32-byte header at `p` and the `h.length` payload bytes that
// follow it checksum correctly. `p` must have kRecordHeaderSize + h.length bytes.
bool RecordChecksumOk(const uint8_t* p, const RecordHeader& h);

// Segment file names.
std::string SegmentFileName(uint64_t segment);
// Parses "<16 hex>.seg"; false for anything else.
bool ParseSegmentFileName(std::string_view name, uint64_t* segment);

// ---- change-record payload codec ----

// Appends the payload encoding of `r` (everything but seq and hlc).
void EncodeChangePayload(const ChangeRecord& r, std::string* dst);
// Decodes a payload into `r` (seq and hlc are left for the caller to set
// from the header). Corruption on malformed, oversized or trailing bytes.
Status DecodeChangePayload(ByteSpan payload, Hlc hlc, ChangeRecord* r);

}  // namespace kvf::logstore
