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

// Whether nlohmann takes `s` as UTF-8 (its strict dump throws otherwise).
bool NlohmannUtf8(std::string_view s) {
  try {
    (void)nlohmann::json(std::string(s)).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

// Base64 written out bit by bit, to check AppendBase64 against.
std::string Base64Reference(std::string_view s) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<int> bits;
  for (const char c : s) {
    for (int b = 7; b >= 0; --b) bits.push_back((static_cast<unsigned char>(c) >> b) & 1);
  }
  std::string out;
  for (size_t i = 0; i < bits.size(); i += 6) {
    int v = 0;
    for (size_t b = i; b < i + 6; ++b) v = v * 2 + (b < bits.size() ? bits[b] : 0);
    out.push_back(alphabet[v]);
  }
  while (out.size() % 4 != 0) out.push_back('=');
  return out;
}

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
  // Binary keys and arguments also come exact, in base64.
  if (!NlohmannUtf8(r.key)) j["key_b64"] = Base64Reference(r.key);
  bool args_utf8 = true;
  for (std::string_view a : r.args) args_utf8 &= NlohmannUtf8(a);
  if (!args_utf8) {
    nlohmann::json b64 = nlohmann::json::array();
    for (std::string_view a : r.args) b64.push_back(Base64Reference(a));
    j["args_b64"] = std::move(b64);
  }
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

TEST(RecordJson, Base64AndUtf8CheckAgreeWithTheirReferences) {
  // RFC 4648's vectors.
  for (const auto& [in, want] : std::vector<std::pair<std::string, std::string>>{{"", ""},
                                                                                 {"f", "Zg=="},
                                                                                 {"fo", "Zm8="},
                                                                                 {"foo", "Zm9v"},
                                                                                 {"foob", "Zm9vYg=="},
                                                                                 {"fooba", "Zm9vYmE="},
                                                                                 {"foobar", "Zm9vYmFy"}}) {
    std::string got;
    AppendBase64(&got, in);
    EXPECT_EQ(got, want) << in;
  }
  // Edge sequences: overlong forms, surrogates, past U+10FFFF, truncated.
  const std::vector<std::string> edges = {"\xc0\x80",
                                          "\xc1\xbf",
                                          "\xc2\x80",
                                          "\xe0\x80\x80",
                                          "\xe0\xa0\x80",
                                          "\xed\x9f\xbf",
                                          "\xed\xa0\x80",
                                          "\xef\xbf\xbf",
                                          "\xf0\x8f\xbf\xbf",
                                          "\xf0\x90\x80\x80",
                                          "\xf4\x8f\xbf\xbf",
                                          "\xf4\x90\x80\x80",
                                          "\xf5\x80\x80\x80",
                                          "\xe2\x82",
                                          "\x80",
                                          "a\xff"};
  std::mt19937_64 rng(3);
  std::vector<std::string> cases = edges;
  for (int n = 0; n < 20000; ++n) {
    std::string s;
    for (size_t i = rng() % 6; i > 0; --i) {
      s += rng() % 3 == 0 ? edges[rng() % edges.size()] : std::string(1, static_cast<char>(rng()));
    }
    cases.push_back(s);
  }
  for (const std::string& s : cases) {
    EXPECT_EQ(IsUtf8(s), NlohmannUtf8(s)) << ::testing::PrintToString(s);
    std::string got;
    AppendBase64(&got, s);
    EXPECT_EQ(got, Base64Reference(s));
  }
}

}  // namespace
}  // namespace kvf::ctl
