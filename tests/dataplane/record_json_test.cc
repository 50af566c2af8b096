// ctl/record_json.h writes the bytes nlohmann::json writes for a record (the
// format `decode --format json` and `capture --format records` always had),
// for keys and values of every byte: printable ASCII, quotes, backslashes,
// control bytes, valid and invalid UTF-8.
#include "ctl/record_json.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace kvf::ctl {
namespace {

std::string ByNlohmann(const RecordView& r, uint64_t seq) {
  nlohmann::json j;
  j["seq"] = seq;
  j["capture_ns"] = r.capture_ns;
  j["hlc"] = r.hlc.packed();
  j["db"] = r.db;
  j["op"] = std::string(RecordOpName(r.op));
  j["key"] = std::string(r.key);
  nlohmann::json args = nlohmann::json::array();
  for (std::string_view a : r.args) args.push_back(std::string(a));
  j["args"] = std::move(args);
  std::vector<std::string> flags;
  if (r.HasFlag(kNeedsReadback)) flags.push_back("needs_readback");
  if (r.HasFlag(kAfterGap)) flags.push_back("after_gap");
  if (r.HasFlag(kAmbiguousOrder)) flags.push_back("ambiguous_order");
  if (r.HasFlag(kInTransaction)) flags.push_back("in_transaction");
  if (r.HasFlag(kUnknownDb)) flags.push_back("unknown_db");
  if (r.HasFlag(kUnknownPrior)) flags.push_back("unknown_prior");
  if (r.HasFlag(kCreatesKey)) flags.push_back("creates_key");
  j["flags"] = flags;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

TEST(RecordJson, WritesTheBytesNlohmannWritesForEveryKindOfString) {
  std::mt19937_64 rng(7);
  const std::vector<std::string> alphabets = {
      "abcXYZ019 :_-{}[]~",                            // plain
      "ab\"\\c",                                       // escaped by a backslash
      std::string("a\x01\x08\x0c\n\r\t\x1f\x7f", 10),  // control bytes, DEL
      "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",         // valid UTF-8
      "a\xc3\xff\x80\xe2\x82",                         // invalid UTF-8
  };
  for (int n = 0; n < 3000; ++n) {
    auto word = [&](size_t max) {
      const std::string& a = alphabets[rng() % alphabets.size()];
      std::string s;
      for (size_t i = rng() % max; i > 0; --i) s.push_back(a[rng() % a.size()]);
      return s;
    };
    ChangeRecord c;
    c.capture_ns = rng();
    c.db = static_cast<uint16_t>(rng() % 16);
    c.op = static_cast<RecordOp>(1 + rng() % 4);
    c.flags = static_cast<uint16_t>(rng() % 128);
    c.key = word(20);
    for (size_t i = rng() % 5; i > 0; --i) c.args.push_back(word(n % 10 == 0 ? 3000 : 40));
    std::vector<std::string_view> views;
    const RecordView r = RecordView::Of(c, &views);
    const uint64_t seq = rng() % 1000000;
    std::string mine;
    AppendJsonRecord(&mine, r, seq);
    ASSERT_EQ(mine, ByNlohmann(r, seq)) << n;
  }
}

}  // namespace
}  // namespace kvf::ctl
