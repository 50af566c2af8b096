// One change record as one line of JSON, as `decode --format json` and
// `capture --format records` print it: the keys in alphabetical order (args,
// capture_ns, db, flags, hlc, key, op, seq), no spaces, invalid UTF-8 in keys
// and values replaced by U+FFFD. The bytes are nlohmann::json's
// (`dump(-1, ' ', false, error_handler_t::replace)`); a string of ASCII,
// which most keys and values are, is escaped here instead of going through
// its UTF-8 checker (that took 63 % of a decode of 20 KB values).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/record.h"

namespace kvf::ctl {

// Appends `s` as a JSON string.
inline void AppendJsonString(std::string* out, std::string_view s) {
  bool ascii = true;
  for (const char c : s) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (!ascii) {
    // UTF-8 to check, and invalid sequences to replace as nlohmann does.
    out->append(
        nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  out->push_back('"');
  size_t from = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.substr(from, i - from));
    from = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(u, sizeof(u));
      }
    }
  }
  out->append(s.substr(from));
  out->push_back('"');
}

// Appends record `r`, numbered `seq`, and a newline.
inline void AppendJsonRecord(std::string* out, const RecordView& r, uint64_t seq) {
  out->append("{\"args\":[");
  for (size_t i = 0; i < r.args.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, r.args[i]);
  }
  out->append("],\"capture_ns\":").append(std::to_string(r.capture_ns));
  out->append(",\"db\":").append(std::to_string(r.db));
  out->append(",\"flags\":[");
  bool first = true;
  for (const auto& [flag, name] : {std::pair{kNeedsReadback, "needs_readback"},
                                   {kAfterGap, "after_gap"},
                                   {kAmbiguousOrder, "ambiguous_order"},
                                   {kInTransaction, "in_transaction"},
                                   {kUnknownDb, "unknown_db"},
                                   {kUnknownPrior, "unknown_prior"},
                                   {kCreatesKey, "creates_key"}}) {
    if (!r.HasFlag(flag)) continue;
    out->append(first ? "\"" : ",\"").append(name).push_back('"');
    first = false;
  }
  out->append("],\"hlc\":").append(std::to_string(r.hlc.packed()));
  out->append(",\"key\":");
  AppendJsonString(out, r.key);
  out->append(",\"op\":");
  AppendJsonString(out, RecordOpName(r.op));
  out->append(",\"seq\":").append(std::to_string(seq)).append("}\n");
}

}  // namespace kvf::ctl
