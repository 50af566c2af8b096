// Encoders and decoders for the segment header, record framing and the
// change-record payload specified in log_format.h.
#include "logstore/log_format.h"

#include <cstdio>

#include "core/checksum.h"

namespace kvf::logstore {

void EncodeSegmentHeader(const SegmentHeader& h, uint8_t* dst) {
  std::memset(dst, 0, kSegmentHeaderSize);
  StoreLE<uint32_t>(dst, kSegmentMagic);
  StoreLE<uint16_t>(dst + 4, kFormatVersion);
  StoreLE<uint16_t>(dst + 6, static_cast<uint16_t>(kSegmentHeaderSize));
  StoreLE<uint64_t>(dst + 8, h.segment);
  StoreLE<uint64_t>(dst + 16, h.first_seq);
  StoreLE<uint64_t>(dst + 24, h.created_ms);
  StoreLE<uint16_t>(dst + 32, h.origin);
  StoreLE<uint32_t>(dst + 60, MaskCrc(Crc32c(0, dst, 60)));
}

Status DecodeSegmentHeader(ByteSpan src, SegmentHeader* h) {
  if (src.size() < kSegmentHeaderSize) return Corruption("segment header truncated");
  const uint8_t* p = src.data();
  if (LoadLE<uint32_t>(p) != kSegmentMagic) return Corruption("bad segment magic");
  if (UnmaskCrc(LoadLE<uint32_t>(p + 60)) != Crc32c(0, p, 60)) {
    return Corruption("segment header checksum mismatch");
  }
  if (LoadLE<uint16_t>(p + 4) != kFormatVersion) return Corruption("unknown segment format version");
  if (LoadLE<uint16_t>(p + 6) != kSegmentHeaderSize) return Corruption("bad segment header size");
  h->segment = LoadLE<uint64_t>(p + 8);
  h->first_seq = LoadLE<uint64_t>(p + 16);
  h->created_ms = LoadLE<uint64_t>(p + 24);
  h->origin = LoadLE<uint16_t>(p + 32);
  return Status::Ok();
}

void AppendFramedRecord(std::string* dst, uint8_t type, uint64_t segment, uint64_t seq, uint64_t hlc,
                        std::string_view payload) {
  const size_t at = dst->size();
  dst->resize(at + kRecordHeaderSize);
  uint8_t* p = reinterpret_cast<uint8_t*>(dst->data()) + at;
  StoreLE<uint32_t>(p + 4, static_cast<uint32_t>(payload.size()));
  p[8] = type;
  p[9] = 0;
  StoreLE<uint16_t>(p + 10, 0);
  StoreLE<uint32_t>(p + 12, static_cast<uint32_t>(segment));
  StoreLE<uint64_t>(p + 16, seq);
  StoreLE<uint64_t>(p + 24, hlc);
  uint32_t crc = Crc32c(0, p + 4, kRecordHeaderSize - 4);
  crc = Crc32c(crc, payload.data(), payload.size());
  StoreLE<uint32_t>(p, MaskCrc(crc));
  dst->append(payload);
}

bool RecordChecksumOk(const uint8_t* p, const RecordHeader& h) {
  const uint32_t crc = Crc32c(0, p + 4, kRecordHeaderSize - 4 + h.length);
  return UnmaskCrc(h.masked_crc) == crc;
}

std::string SegmentFileName(uint64_t segment) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx.seg", static_cast<unsigned long long>(segment));
  return buf;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* segment) {
  if (name.size() != 20 || name.substr(16) != ".seg") return false;
  uint64_t v = 0;
  for (size_t i = 0; i < 16; ++i) {
    const char c = name[i];
    uint64_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  *segment = v;
  return true;
}

// ---- change-record payload ----

namespace {

constexpr uint64_t kNsPerMs = 1'000'000;

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

}  // namespace

void EncodeChangePayload(const ChangeRecord& r, std::string* dst) {
  AppendVarint(dst, r.origin);
  AppendVarint(dst, r.db);
  dst->push_back(static_cast<char>(r.op));
  AppendVarint(dst, r.flags);
  // Wrapping arithmetic: the delta round-trips exactly whatever the values.
  const uint64_t delta = r.capture_ns - r.hlc.physical_ms() * kNsPerMs;
  AppendVarint(dst, ZigZag(static_cast<int64_t>(delta)));
  AppendLengthPrefixed(dst, r.key);
  AppendVarint(dst, r.args.size());
  for (const auto& a : r.args) AppendLengthPrefixed(dst, a);
}

Status DecodeChangePayload(ByteSpan payload, Hlc hlc, ChangeRecord* r) {
  ByteReader in(payload);
  uint64_t origin, db, flags, delta, argc;
  uint8_t op;
  if (!in.ReadVarint(&origin) || origin > 0xffff) return Corruption("record: bad origin");
  if (!in.ReadVarint(&db) || db > 0xffff) return Corruption("record: bad db");
  if (!in.ReadLE(&op) || op < static_cast<uint8_t>(RecordOp::kIdempotent) ||
      op > static_cast<uint8_t>(RecordOp::kDatabase)) {
    return Corruption("record: bad op");
  }
  if (!in.ReadVarint(&flags) || flags > 0xffff) return Corruption("record: bad flags");
  if (!in.ReadVarint(&delta)) return Corruption("record: bad capture time");
  std::string_view key;
  if (!in.ReadLengthPrefixed(&key, kMaxRecordPayload)) return Corruption("record: bad key");
  if (!in.ReadVarint(&argc) || argc > kMaxRecordArgs || argc > in.remaining()) {
    return Corruption("record: bad arg count");
  }
  r->hlc = hlc;
  r->origin = static_cast<SiteId>(origin);
  r->db = static_cast<uint16_t>(db);
  r->op = static_cast<RecordOp>(op);
  r->flags = static_cast<uint16_t>(flags);
  r->capture_ns = hlc.physical_ms() * kNsPerMs + static_cast<uint64_t>(UnZigZag(delta));
  r->key.assign(key);
  r->args.resize(argc);
  for (uint64_t i = 0; i < argc; ++i) {
    std::string_view a;
    if (!in.ReadLengthPrefixed(&a, kMaxRecordPayload)) return Corruption("record: bad arg");
    r->args[i].assign(a);
  }
  if (in.remaining() != 0) return Corruption("record: trailing bytes");
  return Status::Ok();
}

}  // namespace kvf::logstore
