// Small helpers on the change record.
#include "core/record.h"

namespace kvf {

size_t ChangeRecord::ApproxBytes() const {
  size_t n = sizeof(ChangeRecord) + key.size();
  for (const auto& a : args) n += sizeof(std::string) + a.size();
  return n;
}

ChangeRecord RecordView::ToRecord() const {
  ChangeRecord r;
  CopyRecordFields(*this, &r);
  r.key.assign(key);
  r.args.assign(args.begin(), args.end());
  return r;
}

RecordView RecordView::Of(const ChangeRecord& r, std::vector<std::string_view>* arg_views) {
  arg_views->assign(r.args.begin(), r.args.end());
  RecordView v;
  CopyRecordFields(r, &v);
  v.key = r.key;
  v.args = *arg_views;
  return v;
}

std::string_view RecordOpName(RecordOp op) {
  switch (op) {
    case RecordOp::kIdempotent: return "idempotent";
    case RecordOp::kOrdered: return "ordered";
    case RecordOp::kReadback: return "readback";
    case RecordOp::kDatabase: return "database";
    case RecordOp::kHold: return "hold";
  }
  return "unknown";
}

}  // namespace kvf
