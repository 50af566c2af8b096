// One change record as one line of JSON, as `decode --format json` and
// `capture --format records` print it: the keys in alphabetical order (args,
// capture_ns, db, flags, hlc, key, op, seq), no spaces, invalid UTF-8 in keys
// and values replaced by U+FFFD. The bytes are nlohmann::json's
// (`dump(-1, ' ', false, error_handler_t::replace)`); a string of ASCII,
// which most keys and values are, is escaped here instead of going through
// its UTF-8 checker (that took 63 % of a decode of 20 KB values). A record
// whose key, or any of whose arguments, is not valid UTF-8 (binary keys:
// packed ids, msgpack) also carries the exact bytes in base64: `key_b64`,
// and `args_b64` with every argument, so that a key to read back can still
// be named.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/record.h"

namespace kvf::ctl {

// Whether `s` is well-formed UTF-8 (RFC 3629: shortest forms, no
// surrogates, nothing past U+10FFFF), which is what nlohmann accepts.
inline bool IsUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // past U+10FFFF
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) < n || p[1] < lo || p[1] > hi) return false;
    for (size_t i = 2; i < n; ++i) {
      if (p[i] < 0x80 || p[i] > 0xbf) return false;
    }
    p += n;
  }
  return true;
}

// Appends the base64 (RFC 4648, padded) of `s`.
inline void AppendBase64(std::string* out, std::string_view s) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  for (; i + 3 <= s.size(); i += 3) {
    const uint32_t v = uint32_t{p[i]} << 16 | uint32_t{p[i + 1]} << 8 | p[i + 2];
    const char q[] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
                      kAlphabet[v & 63]};
    out->append(q, 4);
  }
  if (i < s.size()) {
    const bool two = i + 2 == s.size();
    const uint32_t v = uint32_t{p[i]} << 16 | (two ? uint32_t{p[i + 1]} << 8 : 0);
    const char q[] = {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], two ? kAlphabet[(v >> 6) & 63] : '=',
                      '='};
    out->append(q, 4);
  }
}

// Appends `s` as a JSON string; false if it was not valid UTF-8 (its
// invalid sequences are then replaced by U+FFFD).
inline bool AppendJsonString(std::string* out, std::string_view s) {
  bool ascii = true;
  for (const char c : s) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (!ascii) {
    // UTF-8 to check, and invalid sequences to replace as nlohmann does.
    out->append(
        nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return IsUtf8(s);
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
  return true;
}

// Appends record `r`, numbered `seq`, and a newline; `with_origin`: its
// origin site too (a stored record's; decode's and capture's are all 0).
inline void AppendJsonRecord(std::string* out, const RecordView& r, uint64_t seq, bool with_origin = false) {
  out->append("{\"args\":[");
  bool args_utf8 = true;
  for (size_t i = 0; i < r.args.size(); ++i) {
    if (i > 0) out->push_back(',');
    args_utf8 &= AppendJsonString(out, r.args[i]);
  }
  out->push_back(']');
  if (!args_utf8) {
    out->append(",\"args_b64\":[");
    for (size_t i = 0; i < r.args.size(); ++i) {
      out->append(i > 0 ? ",\"" : "\"");
      AppendBase64(out, r.args[i]);
      out->push_back('"');
    }
    out->push_back(']');
  }
  out->append(",\"capture_ns\":").append(std::to_string(r.capture_ns));
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
  if (!AppendJsonString(out, r.key)) {
    out->append(",\"key_b64\":\"");
    AppendBase64(out, r.key);
    out->push_back('"');
  }
  out->append(",\"op\":");
  AppendJsonString(out, RecordOpName(r.op));
  if (with_origin) out->append(",\"origin\":").append(std::to_string(r.origin));
  out->append(",\"seq\":").append(std::to_string(seq)).append("}\n");
}

}  // namespace kvf::ctl
