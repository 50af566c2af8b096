// RecordBatch and RecordView: records copied into a batch come back equal,
// field for field and byte for byte, including empty and binary strings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/record_batch.h"

namespace kvf {
namespace {

ChangeRecord Make(int i) {
  ChangeRecord r;
  r.seq = 1000 + static_cast<uint64_t>(i);
  r.hlc = Hlc::FromParts(1'700'000'000'000ull + static_cast<uint64_t>(i), static_cast<uint16_t>(i));
  r.capture_ns = 42 * static_cast<uint64_t>(i);
  r.origin = static_cast<SiteId>(i % 3);
  r.db = static_cast<uint16_t>(i % 16);
  r.op = static_cast<RecordOp>(1 + i % 4);
  r.flags = static_cast<uint16_t>(i % 32);
  r.key = i % 5 == 0 ? std::string() : "key:" + std::to_string(i);
  if (i % 7 != 0) {
    r.args = {"SET", r.key, std::string(static_cast<size_t>(i % 300), static_cast<char>(i))};
    r.args[2].push_back('\0');
    if (i % 4 == 0) r.args.push_back("");
  }
  return r;
}

TEST(RecordBatch, RecordsComeBackEqualAfterClearAndRefill) {
  RecordBatch batch;
  std::vector<std::string_view> scratch;
  for (int round = 0; round < 3; ++round) {
    std::vector<ChangeRecord> in;
    for (int i = 0; i < 500 + round * 100; ++i) {
      in.push_back(Make(i + round));
      batch.Add(RecordView::Of(in.back(), &scratch), 7 + static_cast<uint64_t>(i));
    }
    ASSERT_EQ(batch.size(), in.size());
    EXPECT_GT(batch.bytes(), 0u);
    std::vector<std::string_view> args;
    for (size_t i = 0; i < in.size(); ++i) {
      EXPECT_EQ(batch.Get(i, &args).ToRecord(), in[i]) << "round " << round << " record " << i;
      EXPECT_EQ(batch.connection_id(i), 7 + i);
    }
    batch.Clear();
    EXPECT_TRUE(batch.empty());
  }
}

TEST(RecordView, OfAndToRecordRoundTrip) {
  std::vector<std::string_view> scratch;
  for (int i = 0; i < 50; ++i) {
    const ChangeRecord r = Make(i);
    const RecordView v = RecordView::Of(r, &scratch);
    EXPECT_EQ(v.key.data(), r.key.data()) << "a view, not a copy";
    EXPECT_EQ(v.ToRecord(), r);
  }
}

}  // namespace
}  // namespace kvf
