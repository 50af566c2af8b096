// Where RESP pairing delivers change records: a small interface so that the
// ambiguity tracker, the log writer and tests can each stand behind it.
#pragma once

#include <cstdint>
#include <vector>

#include "core/record.h"

namespace kvf::resp {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Takes one record produced by connection `connection_id`. Records of one
  // connection arrive in the order their replies were captured.
  virtual void Emit(ChangeRecord&& record, uint64_t connection_id) = 0;
};

// Collects records in memory (tests, `decode`).
class VectorSink : public RecordSink {
 public:
  void Emit(ChangeRecord&& record, uint64_t) override { records.push_back(std::move(record)); }
  std::vector<ChangeRecord> records;
};

}  // namespace kvf::resp
