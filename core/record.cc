// Small helpers on the change record.
#include "core/record.h"

namespace kvf {

size_t ChangeRecord::ApproxBytes() const {
  size_t n = sizeof(ChangeRecord) + key.size();
  for (const auto& a : args) n += sizeof(std::string) + a.size();
  return n;
}

std::string_view RecordOpName(RecordOp op) {
  switch (op) {
    case RecordOp::kIdempotent: return "idempotent";
    case RecordOp::kOrdered: return "ordered";
    case RecordOp::kReadback: return "readback";
    case RecordOp::kDatabase: return "database";
  }
  return "unknown";
}

}  // namespace kvf
