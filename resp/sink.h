// Where RESP pairing delivers change records: a small interface so that the
// ambiguity tracker, the log writer and tests can each stand behind it.
// Records travel as views (core/record.h): the producer's strings are valid
// during Emit only, so a stage that keeps a record copies what it needs.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/record.h"
#include "core/record_batch.h"

namespace kvf::resp {

// The command name of a record a Connection emits with
// ConnectionOptions::defer_unknown_scripts for an EVALSHA whose body it did
// not know (args: this, the sha, numkeys, keys, arguments): only a
// ShardMerge takes it, and passes on an EVAL with the body, or read-backs.
// Never stored or shipped (a replica without the script would refuse it).
inline constexpr std::string_view kDeferredScript = "EVALSHA";

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Takes one record produced by connection `connection_id`. Records of one
  // connection arrive in the order their replies were captured. `record` and
  // the bytes it points to are valid until Emit returns.
  virtual void Emit(const RecordView& record, uint64_t connection_id) = 0;
  // Takes records [begin, end) of `batch`, in order, as if each were passed
  // to Emit (which the default does). Valid until EmitBatch returns.
  virtual void EmitBatch(const RecordBatch& batch, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) Emit(batch.Get(i, &batch_args_), batch.connection_id(i));
  }

 private:
  std::vector<std::string_view> batch_args_;  // EmitBatch's views, kept to allocate once
};

// Hands an owning record to `sink` (tests, tools), with the request's
// capture time (ChangeRecord does not keep one).
inline void EmitRecord(RecordSink* sink, const ChangeRecord& record, uint64_t connection_id,
                       uint64_t request_ns = 0) {
  std::vector<std::string_view> args;
  RecordView v = RecordView::Of(record, &args);
  v.request_ns = request_ns;
  sink->Emit(v, connection_id);
}

// Collects owning copies of the records in memory (tests, tools).
class VectorSink : public RecordSink {
 public:
  void Emit(const RecordView& record, uint64_t) override { records.push_back(record.ToRecord()); }
  std::vector<ChangeRecord> records;
};

}  // namespace kvf::resp
